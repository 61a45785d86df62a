"""The two action distributions the agents need, as plain functions.

distrax would provide these, but it depends on tfp-nightly (TensorFlow
Probability's nightly build), a large and unpinned install for a student's Colab;
the few lines below are all the agents use.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOG_2PI = jnp.log(2.0 * jnp.pi)


# Categorical over logits (discrete actions) --------------------------------
def categorical_sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    return jax.random.categorical(key, logits)


def categorical_log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(logits)
    return jnp.take_along_axis(log_p, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


# Diagonal Gaussian (continuous actions) -------------------------------------
def gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, x: jax.Array) -> jax.Array:
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * LOG_2PI, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    return jnp.sum(log_std + 0.5 * (LOG_2PI + 1.0), axis=-1)


def tanh_gaussian_sample_and_log_prob(key, mean, log_std):
    """Sample a = tanh(u), u ~ N(mean, std), with the change-of-variables log-prob (SAC)."""
    u = gaussian_sample(key, mean, log_std)
    a = jnp.tanh(u)
    log_prob = gaussian_log_prob(mean, log_std, u)
    log_prob -= jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
    return a, log_prob
