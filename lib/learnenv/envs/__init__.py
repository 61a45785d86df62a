"""One way to get any environment as ``(env, env_params)``.

Everything in this book — gymnax classic control, MinAtar and bsuite, brax
robots through an adapter, and the learned environments of later chapters —
is a gymnax :class:`~gymnax.environments.environment.Environment`: pure
``reset(key, params)`` and ``step(key, state, action, params)`` functions with
explicit parameters. Agents therefore never know which kind they train on,
and a population of learned environments is just a batch of ``env_params``.

>>> env, env_params = make("CartPole-v1")
>>> obs, state = env.reset(jax.random.key(0), env_params)
>>> obs, state, reward, terminated, truncated, info = env.step(key, state, 0, env_params)
"""

from __future__ import annotations

from typing import Any

import gymnax
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from learnenv.envs.wrappers import (EpisodeStatistics, FlattenObservation, FrameStack,
                                    MappedActions, NormalizeObservation, SelectObservation,
                                    StickyActions, Wrapper)

__all__ = ["make", "names", "is_discrete", "action_dim", "observation_shape", "Environment",
           "Wrapper", "EpisodeStatistics", "NormalizeObservation", "FlattenObservation",
           "SelectObservation", "StickyActions", "FrameStack", "MappedActions"]

BRAX_PREFIX = "brax/"

# The environments brax ships (brax >= 0.10). brax has no public listing of its
# registry, and importing it costs seconds, so the names are written here;
# tests/test_envs.py checks that brax builds every one.
BRAX_ENVS = ("ant", "fast", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
             "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher", "swimmer",
             "walker2d")


def _brax_names() -> list[str]:
    return [BRAX_PREFIX + n for n in BRAX_ENVS]


def names() -> list[str]:
    """Every name :func:`make` accepts."""
    return sorted(gymnax.registered_envs) + _brax_names()


def make(name: str, **kwargs: Any) -> tuple[Environment, Any]:
    """Build ``(env, env_params)`` by name.

    ``kwargs`` go to the environment's constructor; for gymnax environments a
    keyword that matches a field of the default params (for example
    ``max_steps_in_episode=200``) replaces that field instead. ``observe`` (a
    list of indices) keeps only those observation components
    (:class:`~learnenv.envs.wrappers.SelectObservation`): ``make("CartPole-v1",
    observe=[0, 2])`` is CartPole without its velocities. ``sticky`` (a
    probability) repeats the previous action that often
    (:class:`~learnenv.envs.wrappers.StickyActions`), as the original MinAtar does.
    """
    sticky = kwargs.pop("sticky", None)
    if sticky:
        env, env_params = make(name, **kwargs)
        if not is_discrete(env, env_params):
            raise ValueError(f"sticky={sticky}: {name} has continuous actions; sticky actions "
                             "need discrete ones.")
        return StickyActions(env, sticky), env_params
    observe = kwargs.pop("observe", None)
    if observe is not None:
        env, env_params = make(name, **kwargs)
        return SelectObservation(env, observe), env_params
    if name.startswith(BRAX_PREFIX):
        from learnenv.envs.brax_adapter import make_brax

        if name not in _brax_names():
            raise ValueError(_unknown(name))
        return make_brax(name[len(BRAX_PREFIX):], **kwargs)
    if name not in gymnax.registered_envs:
        raise ValueError(_unknown(name))
    env, env_params = gymnax.make(name)
    param_fields = set(getattr(env_params, "__dataclass_fields__", {}))
    param_kwargs = {k: v for k, v in kwargs.items() if k in param_fields}
    ctor_kwargs = {k: v for k, v in kwargs.items() if k not in param_fields}
    if ctor_kwargs:
        env, env_params = gymnax.make(name, **ctor_kwargs)
    if param_kwargs:
        env_params = env_params.replace(**param_kwargs)
    return env, env_params


def _unknown(name: str) -> str:
    import difflib

    valid = names()
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"Unknown environment {name!r}.{hint} Valid names: {', '.join(valid)}."


def is_discrete(env: Environment, env_params: Any) -> bool:
    return isinstance(env.action_space(env_params), spaces.Discrete)


def action_dim(env: Environment, env_params: Any) -> int:
    """Number of discrete actions, or the size of a continuous action vector."""
    space = env.action_space(env_params)
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    shape = space.shape
    return int(shape[0]) if len(shape) else 1


def observation_shape(env: Environment, env_params: Any) -> tuple[int, ...]:
    return tuple(env.observation_space(env_params).shape)
