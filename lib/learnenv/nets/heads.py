"""Reward and termination heads of world models that predict frames.

A model of frames is an environment only once it also says what each step
pays and whether the episode ends. DIAMOND reads both off the frames with a
small separate head and *classifies* the reward's sign (-1, 0 or +1: Atari
agents train on clipped rewards) instead of regressing its value, so an
ordinary step pays exactly 0 rather than a small spurious amount an agent could
farm. The diffusion simulator and Genie's dynamics model share these pieces.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

__all__ = ["sign_and_done", "reward_of", "head_losses"]


def sign_and_done(features: jax.Array, hidden: int) -> tuple[jax.Array, jax.Array]:
    """``(reward-sign logits (..., 3), termination logit (...))`` from features, by
    two swish layers. Call it inside a module's ``nn.compact`` method: its layers
    belong to that module."""
    x = features
    for _ in range(2):
        x = nn.swish(nn.Dense(hidden)(x))
    out = nn.Dense(4)(x)
    return out[..., :3], out[..., 3]


def reward_of(reward_logits: jax.Array) -> jax.Array:
    """The most likely sign as the reward: -1.0, 0.0 or 1.0."""
    return jnp.argmax(reward_logits, axis=-1).astype(jnp.float32) - 1.0


def head_losses(reward_logits, done_logit, reward, terminated) -> tuple[jax.Array, jax.Array]:
    """``(reward_loss, done_loss)``: cross-entropy of the reward's sign and of termination."""
    sign = jnp.sign(reward).astype(jnp.int32) + 1
    reward_loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(reward_logits, sign))
    done_loss = jnp.mean(optax.sigmoid_binary_cross_entropy(done_logit, terminated))
    return reward_loss, done_loss
