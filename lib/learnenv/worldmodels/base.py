"""What every world-model family shares: one step of prediction, and its loss.

The lecture asks which design a learned environment should have: one network
predicting ``(s', r)``, a recurrent network over the history, or separate
transition and reward models. Here the three are *families* behind one
interface, so the same training, rollout and environment code runs all of them::

    carry, pred = family.step(net, carry, obs_n, action, delta_n=None)

``obs_n`` is the observation normalised with the training data's statistics
(:class:`Stats`); ``pred`` holds the normalised change ``delta`` of the
observation, the normalised reward and the logit of termination. ``carry`` is
the family's memory (empty for feed-forward families). ``delta_n`` is the real
normalised change during training (teacher forcing); only a family whose
reward and termination read the next state uses it, and it uses its own
prediction when it is ``None``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from learnenv.agents.networks import ACTIVATIONS, check_hidden_sizes

__all__ = ["Stats", "Prediction", "WorldModel", "predict", "ensemble_carry", "ensemble_predict",
           "sequence_loss"]


@struct.dataclass
class Stats:
    """Normalisation of the training data: targets of similar scale per component."""

    obs_mean: jax.Array
    obs_std: jax.Array
    delta_mean: jax.Array
    delta_std: jax.Array
    reward_mean: jax.Array
    reward_std: jax.Array

    @classmethod
    def identity(cls, obs_dim: int) -> "Stats":
        zeros, ones = jnp.zeros((obs_dim,)), jnp.ones((obs_dim,))
        return cls(zeros, ones, zeros, ones, jnp.zeros(()), jnp.ones(()))

    @classmethod
    def of(cls, episodes) -> "Stats":
        """Means and standard deviations over the real steps of ``episodes``."""
        w = episodes.mask[..., None]
        n = episodes.mask.sum()

        def moments(x, w):
            mean = (x * w).sum(axis=(0, 1)) / n
            std = jnp.sqrt((jnp.square(x - mean) * w).sum(axis=(0, 1)) / n)
            return mean, jnp.maximum(std, 1e-6)  # a constant component must not divide by 0

        obs = moments(episodes.obs, w)
        delta = moments(episodes.next_obs - episodes.obs, w)
        reward = moments(episodes.reward, episodes.mask)
        return cls(*obs, *delta, *reward)

    def normalize(self, obs):
        return (obs - self.obs_mean) / self.obs_std


@struct.dataclass
class Prediction:
    delta: jax.Array  # normalised s' - s
    reward: jax.Array  # normalised reward
    done_logit: jax.Array


class WorldModel:
    """A family: its networks' ``init`` and one ``step``. Subclasses set ``family``."""

    family = ""
    recurrent = False

    def __init__(self, obs_dim: int, action_size: int, discrete: bool,
                 hidden_sizes: Sequence[int] = (128, 128), activation: str = "swish"):
        check_hidden_sizes(type(self).__name__, tuple(hidden_sizes))
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}.")
        self.obs_dim, self.action_size, self.discrete = obs_dim, action_size, discrete
        self.hidden_sizes, self.activation = tuple(hidden_sizes), activation

    def action_input(self, action):
        if self.discrete:
            return jax.nn.one_hot(action, self.action_size)
        return jnp.atleast_1d(action).astype(jnp.float32)

    def init(self, key: jax.Array) -> Any:
        raise NotImplementedError

    def initial_carry(self) -> jax.Array:
        return jnp.zeros((0,))

    def step(self, net, carry, obs_n, action, delta_n=None) -> tuple[jax.Array, Prediction]:
        raise NotImplementedError


def predict(model: WorldModel, net, stats: Stats, carry, obs, action):
    """One step in real units: ``(carry, next_obs, reward, done_logit)``."""
    carry, p = model.step(net, carry, stats.normalize(obs), action)
    next_obs = obs + p.delta * stats.delta_std + stats.delta_mean
    reward = p.reward * stats.reward_std + stats.reward_mean
    return carry, next_obs, reward, p.done_logit


def ensemble_carry(model: WorldModel, nets) -> jax.Array:
    """The initial memory of every member of an ensemble ``nets`` (leading axis)."""
    members = jax.tree.leaves(nets)[0].shape[0]
    return jnp.broadcast_to(model.initial_carry(), (members,) + model.initial_carry().shape)


def ensemble_predict(model: WorldModel, nets, stats: Stats, carry, obs, action):
    """:func:`predict` for every member: each output gets a leading member axis."""
    return jax.vmap(lambda net, c: predict(model, net, stats, c, obs, action))(nets, carry)


def sequence_loss(model: WorldModel, net, stats: Stats, window, burn_in: int = 0,
                  reward_weight: float = 1.0, done_weight: float = 1.0):
    """Teacher-forced loss of one window of an episode (arrays of shape ``(L, ...)``).

    Every step sees the *real* observation (and the real change, for the
    families that read it), so the loss is the one-step error; the first
    ``burn_in`` steps only warm up a recurrent memory (R2D2's burn-in).
    Normalised mean squared error of the state change and the reward, and the
    binary cross-entropy of termination, each averaged over the real steps.
    """
    obs_n = stats.normalize(window.obs)
    delta_target = (window.next_obs - window.obs - stats.delta_mean) / stats.delta_std
    reward_target = (window.reward - stats.reward_mean) / stats.reward_std

    def step(carry, x):
        o, a, n = x
        carry, p = model.step(net, carry, o, a, n)
        return carry, p

    _, p = jax.lax.scan(step, model.initial_carry(), (obs_n, window.action, delta_target))
    weight = window.mask * (jnp.arange(window.mask.shape[0]) >= burn_in)
    denom = jnp.maximum(weight.sum(), 1.0)
    state = (jnp.square(p.delta - delta_target).mean(-1) * weight).sum() / denom
    reward = (jnp.square(p.reward - reward_target) * weight).sum() / denom
    done = (optax.sigmoid_binary_cross_entropy(p.done_logit, window.terminated.astype(jnp.float32))
            * weight).sum() / denom
    loss = state + reward_weight * reward + done_weight * done
    return loss, {"state_mse": state, "reward_mse": reward, "done_bce": done}
