"""brax robots as gymnax environments.

brax's own training wrappers (``EpisodeWrapper``, ``AutoResetWrapper``) give a
different interface from gymnax's. Here a raw brax ``Env`` is wrapped as a gymnax
``Environment`` so the same agents and wrappers run on it: gymnax's base ``step``
supplies the time limit (``max_steps_in_episode``) and the auto-reset, and the
adapter only supplies ``reset_env`` and ``step_env``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class BraxEnvState(environment.EnvState):
    brax_state: Any
    time: int


@struct.dataclass
class BraxEnvParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class BraxGymnaxEnv(environment.Environment):
    """A brax ``Env`` behind the gymnax interface (actions in [-1, 1])."""

    def __init__(self, brax_env: Any, env_name: str):
        self._brax_env = brax_env
        self._env_name = env_name

    @property
    def name(self) -> str:
        return f"brax/{self._env_name}"

    @property
    def default_params(self) -> BraxEnvParams:
        return BraxEnvParams()

    def reset_env(self, key, params):
        brax_state = self._brax_env.reset(key)
        return brax_state.obs, BraxEnvState(brax_state=brax_state, time=0)

    def step_env(self, key, state, action, params):
        del key  # brax dynamics are deterministic
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        brax_state = self._brax_env.step(state.brax_state, action)
        new_state = BraxEnvState(brax_state=brax_state, time=state.time + 1)
        terminated = brax_state.done.astype(bool)
        return brax_state.obs, new_state, brax_state.reward, terminated, {}

    @property
    def num_actions(self) -> int:
        return int(self._brax_env.action_size)

    def action_space(self, params=None):
        return spaces.Box(low=-1.0, high=1.0, shape=(self._brax_env.action_size,))

    def observation_space(self, params=None):
        size = self._brax_env.observation_size
        return spaces.Box(low=-jnp.inf, high=jnp.inf, shape=(size,), dtype=jnp.float32)


def make_brax(env_name: str, backend: str = "positional", **kwargs: Any):
    """``(env, env_params)`` for a brax environment; extra kwargs go to brax."""
    from brax import envs as brax_envs

    max_steps = kwargs.pop("max_steps_in_episode", None)
    brax_env = brax_envs.get_environment(env_name, backend=backend, **kwargs)
    env = BraxGymnaxEnv(brax_env, env_name)
    params = env.default_params
    if max_steps is not None:
        params = params.replace(max_steps_in_episode=int(max_steps))
    return env, params
