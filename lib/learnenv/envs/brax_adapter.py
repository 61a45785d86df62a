"""brax robots as gymnax environments.

brax's own training wrappers (``EpisodeWrapper``, ``AutoResetWrapper``) give a
different interface from gymnax's. Here a raw brax ``Env`` is wrapped as a gymnax
``Environment`` so the same agents and wrappers run on it: gymnax's base ``step``
supplies the time limit (``max_steps_in_episode``) and the auto-reset, and the
adapter only supplies ``reset_env`` and ``step_env``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
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

    @functools.cached_property
    def _observation_size(self) -> int:
        # brax's own observation_size runs reset() op by op: seconds on a CPU (15 s for
        # walker2d's generalized pipeline). Its shape alone, traced abstractly, is instant.
        reset_state = jax.eval_shape(self._brax_env.reset, jax.random.PRNGKey(0))
        return int(reset_state.obs.shape[-1])

    def observation_space(self, params=None):
        size = self._observation_size
        return spaces.Box(low=-jnp.inf, high=jnp.inf, shape=(size,), dtype=jnp.float32)


class _ClipCompatNumpy:
    """``jax.numpy`` whose ``clip`` still takes ``a_min``/``a_max`` (see :func:`_fluid_compat`)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(jnp, name)

    @staticmethod
    def clip(a, a_min=None, a_max=None, **kwargs):
        return jnp.clip(a, min=kwargs.pop("min", a_min), max=kwargs.pop("max", a_max), **kwargs)


def _fluid_compat() -> None:
    """brax 0.14.2's fluid forces (swimmer: viscosity) call ``jnp.clip(..., a_min=)``,
    which jax 0.10 removed, so swimmer's ``step`` fails with a TypeError. brax fixed it
    upstream (commit 5c994de, 2026-03-30) after its last release; until a release has
    it, give ``brax.fluid`` a ``jax.numpy`` whose ``clip`` takes the old keywords.
    Nothing changes where ``jnp.clip`` still accepts them."""
    import inspect

    from brax import fluid

    if isinstance(fluid.jp, _ClipCompatNumpy) or "a_min" in inspect.signature(jnp.clip).parameters:
        return
    if "a_min=" in inspect.getsource(fluid.force):
        fluid.jp = _ClipCompatNumpy()


# brax environments that support only the "generalized" backend.
GENERALIZED_ONLY = ("swimmer",)


def make_brax(env_name: str, backend: str | None = None, **kwargs: Any):
    """``(env, env_params)`` for a brax environment; extra kwargs go to brax.

    ``backend`` defaults to ``"positional"``, the fastest to build and step on a
    CPU, except for swimmer, which supports only ``"generalized"`` (brax's own
    default for every robot, and the one the SCB paper's real environments used).
    """
    from brax import envs as brax_envs

    if backend is None:
        backend = "generalized" if env_name in GENERALIZED_ONLY else "positional"
    _fluid_compat()
    max_steps = kwargs.pop("max_steps_in_episode", None)
    brax_env = brax_envs.get_environment(env_name, backend=backend, **kwargs)
    env = BraxGymnaxEnv(brax_env, env_name)
    params = env.default_params
    if max_steps is not None:
        params = params.replace(max_steps_in_episode=int(max_steps))
    return env, params
