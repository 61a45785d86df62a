"""Distractors: observation dimensions that carry nothing about the task.

Real sensors report much that does not matter (a flickering background, the
temperature of a motor that never overheats). :class:`Distractors` appends
``n`` such dimensions to a vector observation, leaving the original ones
intact, so that a learned *state abstraction* has something to throw away.
Two kinds:

- ``"iid"``: fresh Gaussian noise ``scale * N(0, 1)`` at every step;
  nothing about it can be predicted.
- ``"walk"``: a random walk pulled back towards 0 (an AR(1) process,
  ``x' = rho x + sqrt(1 - rho^2) scale eps``), started from its stationary
  law: the same spread ``scale``, but each value predicts the next, as a
  slowly drifting background does.

The distractors are a property of the sensor, not of the episode: they keep
evolving across the environment's auto-resets, and
``info["final_observation"]`` carries the same distractor values as the
observation returned with it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from learnenv.envs.wrappers import Wrapper

__all__ = ["Distractors", "DistractorsState", "KINDS"]

KINDS = ("iid", "walk")


@struct.dataclass
class DistractorsState:
    env_state: Any
    noise: jax.Array


class Distractors(Wrapper):
    """Appends ``n`` task-irrelevant dimensions of spread ``scale`` to the observation."""

    def __init__(self, env: Environment, n: int, kind: str = "iid", scale: float = 10.0,
                 persistence: float = 0.95):
        super().__init__(env)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"Distractors: n={n!r} must be a non-negative int.")
        if kind not in KINDS:
            raise ValueError(
                f"Distractors: unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}.")
        if not scale > 0:
            raise ValueError(f"Distractors: scale={scale!r} must be positive.")
        if not 0.0 <= persistence < 1.0:
            raise ValueError(f"Distractors: persistence={persistence!r} must lie in [0, 1).")
        shape = env.observation_space(env.default_params).shape
        if len(shape) != 1:
            raise ValueError(f"Distractors need vector observations; {env.name} has shape {shape}.")
        self.n, self.kind, self.scale = n, kind, float(scale)
        self.persistence = persistence if kind == "walk" else 0.0
        self.num_original = int(shape[0])

    def observation_space(self, params: Any = None):
        inner = self._env.observation_space(params)
        low = jnp.broadcast_to(jnp.asarray(inner.low, jnp.float32), inner.shape)
        high = jnp.broadcast_to(jnp.asarray(inner.high, jnp.float32), inner.shape)
        inf = jnp.full((self.n,), jnp.inf, jnp.float32)
        return spaces.Box(jnp.concatenate([low, -inf]), jnp.concatenate([high, inf]),
                          (self.num_original + self.n,), jnp.float32)

    def _next_noise(self, key, noise):
        rho = self.persistence
        eps = jax.random.normal(key, (self.n,))
        return rho * noise + jnp.sqrt(1.0 - rho ** 2) * self.scale * eps

    def _observe(self, obs, noise):
        return jnp.concatenate([obs.astype(jnp.float32), noise])

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        env_key, noise_key = jax.random.split(key)
        obs, env_state = self._env.reset(env_key, params)
        noise = self.scale * jax.random.normal(noise_key, (self.n,))  # the stationary law
        return self._observe(obs, noise), DistractorsState(env_state, noise)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        env_key, noise_key = jax.random.split(key)
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            env_key, state.env_state, action, params)
        noise = self._next_noise(noise_key, state.noise)
        info = {**info, "final_observation": self._observe(info["final_observation"], noise)}
        return (self._observe(obs, noise), DistractorsState(env_state, noise), reward,
                terminated, truncated, info)
