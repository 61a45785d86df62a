"""Wrappers the agents need, written once.

Each wrapper is itself a gymnax ``Environment``, so wrappers stack and a wrapped
environment is still an environment. gymnax's ``step`` already auto-resets (it
returns the first observation of the next episode when one ends, and the last
observation of the finished one in ``info["final_observation"]``), so there is
no auto-reset wrapper here; the brax adapter inherits the same behaviour.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment


class Wrapper(Environment):
    """Delegates everything to the wrapped environment."""

    def __init__(self, env: Environment):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: forward to the inner env.
        if name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

    @property
    def default_params(self) -> Any:
        return self._env.default_params

    @property
    def name(self) -> str:
        return self._env.name

    @property
    def num_actions(self) -> int:
        return self._env.num_actions

    def action_space(self, params: Any = None):
        return self._env.action_space(params)

    def observation_space(self, params: Any = None):
        return self._env.observation_space(params)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        return self._env.reset(key, params)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        return self._env.step(key, state, action, params)


@struct.dataclass
class EpisodeStatisticsState:
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array
    returned_episode_return: jax.Array
    returned_episode_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Tracks undiscounted episode returns and lengths in ``info``.

    ``info["returned_episode"]`` is True on the step an episode ends, and
    ``info["returned_episode_returns"]`` holds that episode's return (and keeps
    the last finished episode's return in between).
    """

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        zero = jnp.zeros((), jnp.float32)
        zero_i = jnp.zeros((), jnp.int32)
        return obs, EpisodeStatisticsState(env_state, zero, zero_i, zero, zero_i)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        new_return = state.episode_return + reward.astype(jnp.float32)
        new_length = state.episode_length + 1
        state = EpisodeStatisticsState(
            env_state=env_state,
            episode_return=new_return * (1 - done),
            episode_length=new_length * (1 - done),
            returned_episode_return=jnp.where(done, new_return, state.returned_episode_return),
            returned_episode_length=jnp.where(done, new_length, state.returned_episode_length),
        )
        info = {
            **info,
            "returned_episode": done,
            "returned_episode_returns": state.returned_episode_return,
            "returned_episode_lengths": state.returned_episode_length,
        }
        return obs, state, reward, terminated, truncated, info


class FlattenObservation(Wrapper):
    """Flattens image-like observations (MinAtar's 10x10xC grids) for MLP agents."""

    def observation_space(self, params: Any = None):
        space = self._env.observation_space(params)
        size = int(jnp.prod(jnp.array(space.shape)))
        return spaces.Box(low=0.0, high=1.0, shape=(size,), dtype=jnp.float32)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return jnp.ravel(obs).astype(jnp.float32), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(
            key, state, action, params
        )
        info = {**info, "final_observation": jnp.ravel(info["final_observation"])}
        return jnp.ravel(obs).astype(jnp.float32), state, reward, terminated, truncated, info


class SelectObservation(Wrapper):
    """Keeps only some components of a flat observation: a partially observed task.

    CartPole-v1 observed as ``(x, theta)`` without the two velocities is the
    standard test of temporal dependencies: from one observation the next one is
    not predictable, from a short history it is.
    """

    def __init__(self, env: Environment, indices: Sequence[int]):
        super().__init__(env)
        size = int(env.observation_space(env.default_params).shape[0])
        indices = tuple(int(i) for i in indices)
        if not indices or len(set(indices)) != len(indices) or not all(0 <= i < size for i in indices):
            raise ValueError(f"observe={list(indices)} must be distinct indices in [0, {size}) "
                             f"of the {size} observation components.")
        self.indices = indices
        self._index = jnp.asarray(indices)

    def observation_space(self, params: Any = None):
        space = self._env.observation_space(params)
        low, high = jnp.broadcast_to(space.low, space.shape), jnp.broadcast_to(space.high, space.shape)
        return spaces.Box(low[self._index], high[self._index], (len(self.indices),), space.dtype)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return obs[..., self._index], state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": info["final_observation"][..., self._index]}
        return obs[..., self._index], state, reward, terminated, truncated, info


@struct.dataclass
class NormalizeObservationState:
    env_state: Any
    mean: jax.Array
    var: jax.Array
    count: jax.Array


class NormalizeObservation(Wrapper):
    """Normalises observations with running mean and variance.

    The statistics live in the state of each environment copy. To share them
    across a batch of environments (as in purejaxrl), average them outside;
    for the short runs in this book per-copy statistics are enough. Use
    :func:`normalize` with a state's statistics to normalise observations at
    evaluation time.
    """

    def __init__(self, env: Environment, epsilon: float = 1e-8, clip: float = 10.0):
        super().__init__(env)
        self.epsilon = epsilon
        self.clip = clip

    def _update(self, state: NormalizeObservationState, obs: jax.Array):
        # Chan et al.'s parallel update with a batch of one (as gym's RunningMeanStd).
        count = state.count + 1.0
        delta = obs - state.mean
        mean = state.mean + delta / count
        m2 = state.var * state.count + jnp.square(delta) * state.count / count
        return state.replace(mean=mean, var=m2 / count, count=count)

    def normalize(self, obs: jax.Array, state: NormalizeObservationState) -> jax.Array:
        scaled = (obs - state.mean) / jnp.sqrt(state.var + self.epsilon)
        return jnp.clip(scaled, -self.clip, self.clip)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        obs = obs.astype(jnp.float32)
        state = NormalizeObservationState(
            env_state=env_state,
            mean=jnp.zeros_like(obs),
            var=jnp.ones_like(obs),
            count=jnp.full((), 1e-4, jnp.float32),
        )
        state = self._update(state, obs)
        return self.normalize(obs, state), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        obs = obs.astype(jnp.float32)
        state = self._update(state.replace(env_state=env_state), obs)
        info = {**info, "final_observation": self.normalize(info["final_observation"], state)}
        return self.normalize(obs, state), state, reward, terminated, truncated, info


@struct.dataclass
class StickyActionsState:
    env_state: Any
    last_action: jax.Array


class StickyActions(Wrapper):
    """With probability ``p`` the environment repeats the previous action instead of
    the one chosen (Machado et al. 2018). The original MinAtar makes its games
    stochastic this way (``sticky_action_prob=0.1``); gymnax's MinAtar leaves it
    out, so the same action always has the same effect. Discrete actions only;
    an episode starts with action 0."""

    def __init__(self, env: Environment, p: float):
        super().__init__(env)
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"StickyActions: p={p} must be in [0, 1).")
        self.p = float(p)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        return obs, StickyActionsState(env_state, jnp.zeros((), jnp.int32))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        coin_key, step_key = jax.random.split(key)
        action = jnp.where(jax.random.uniform(coin_key) < self.p, state.last_action,
                           jnp.asarray(action, jnp.int32))
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            step_key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        last = jnp.where(done, 0, action)  # gymnax has reset the inner environment
        return obs, StickyActionsState(env_state, last), reward, terminated, truncated, info


@struct.dataclass
class FrameStackState:
    env_state: Any
    frames: jax.Array


class FrameStack(Wrapper):
    """Observations as the last ``num_frames`` frames ``(num_frames, H, W)``, drawn by
    ``draw(obs)``: what an agent of a pixel world model sees, for the real
    environment. A new episode starts with its first frame repeated, as the world
    model's episodes do; ``info["final_observation"]`` is the stack that ends one."""

    def __init__(self, env: Environment, draw, num_frames: int):
        super().__init__(env)
        if int(num_frames) < 1:
            raise ValueError(f"FrameStack: num_frames={num_frames} must be at least 1.")
        self.draw, self.num_frames = draw, int(num_frames)
        space = env.observation_space(env.default_params)
        self.frame_shape = tuple(jax.eval_shape(draw, jax.ShapeDtypeStruct(
            space.shape, jnp.float32)).shape)

    def observation_space(self, params: Any = None):
        return spaces.Box(0.0, 1.0, (self.num_frames, *self.frame_shape), jnp.float32)

    def _fresh(self, obs):
        return jnp.broadcast_to(self.draw(obs), (self.num_frames, *self.frame_shape))

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        frames = self._fresh(obs)
        return frames, FrameStackState(env_state, frames)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params)
        final = jnp.concatenate([state.frames[1:], self.draw(info["final_observation"])[None]])
        frames = jnp.where(jnp.logical_or(terminated, truncated), self._fresh(obs), final)
        info = {**info, "final_observation": final}
        return frames, FrameStackState(env_state, frames), reward, terminated, truncated, info


class MappedActions(Wrapper):
    """A discrete action space of ``len(mapping)`` actions, action ``i`` played as the
    inner environment's ``mapping[i]``. A policy trained on Genie's latent actions
    acts in the real game through the latent-to-true map fitted on labelled pairs."""

    def __init__(self, env: Environment, mapping: Sequence[int]):
        super().__init__(env)
        mapping = tuple(int(a) for a in mapping)
        inner = env.action_space(env.default_params).n
        if not mapping or not all(0 <= a < inner for a in mapping):
            raise ValueError(f"MappedActions: mapping={mapping} must name actions in "
                             f"[0, {inner}).")
        self.mapping = mapping

    def action_space(self, params=None):
        return spaces.Discrete(len(self.mapping))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        real = jnp.asarray(self.mapping, jnp.int32)[action]
        return self._env.step(key, state, real, params)
