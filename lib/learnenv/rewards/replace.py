"""Replace an environment's reward by a learned one, keep everything else.

A reward learned from preferences (Motif), from a video model's likelihood
(VIPER) or from anything else is a function of what the agent sees. Wrapping
the real environment with it gives an environment that any agent of the
engine trains on unchanged: same states, transitions, terminations and spaces,
only the reward differs. The agent sees::

    r~ = extrinsic_weight * r  +  learned_weight * (r_phi - mean) / std  +  offset

with ``r`` the environment's own reward and ``r_phi = reward_fn(reward_params,
transition)``. The defaults (0, 1, mean 0, std 1, offset 0) give the learned
reward alone; ``mean`` and ``std`` put it on a unit scale
(:meth:`LearnedRewardParams.normalised`), as Motif normalises its reward
model's output, and ``extrinsic_weight > 0`` mixes the task's reward back in
(Motif's ``alpha_2 * r_ext``). ``info["extrinsic_reward"]`` keeps ``r`` for
evaluation and ``info["learned_reward"]`` the raw ``r_phi``.

Every number above lives in the environment's parameters
(:class:`LearnedRewardParams`), next to the inner environment's, so a batch of
learned rewards is a batch of ``env_params``: ``jax.vmap`` over seeds, over
reward models, or over the four arms of an ablation (true reward is
``extrinsic_weight=1, learned_weight=0``; a constant reward ``learned_weight=0,
offset=c``) trains in one compiled call.

The reward sees one :class:`Transition`: the observation the action was chosen
from, the action, and the real next observation (gymnax's
``info["final_observation"]``, also on an episode's last step). A reward that
needs the past (a video model scoring x_{t+1} given x_{t-k+1..t}) asks for
``context=k``: the wrapper then keeps the last ``k`` observations of the
current episode in its state and passes them as ``transition.history``, with
``transition.history_mask`` zero on the slots before the episode began.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments.environment import Environment

from learnenv.envs.wrappers import Wrapper

__all__ = ["LearnedReward", "LearnedRewardParams", "LearnedRewardState", "Transition",
           "RewardFn"]


@struct.dataclass
class Transition:
    """What a learned reward may look at, for one step of one environment."""

    obs: jax.Array  # the observation the action was chosen from
    action: jax.Array
    next_obs: jax.Array  # the real next observation (the last one of an episode too)
    history: jax.Array | None = None  # (context, *obs_shape), oldest first, ends with obs
    history_mask: jax.Array | None = None  # (context,): 1 where the slot is in this episode


# reward_fn(reward_params, transition) -> scalar reward
RewardFn = Callable[[Any, Transition], jax.Array]


@struct.dataclass
class LearnedRewardParams:
    """The wrapped environment's parameters: the inner ones, the reward's, the mix."""

    env_params: Any
    reward_params: Any
    mean: jax.Array | float = 0.0
    std: jax.Array | float = 1.0
    offset: jax.Array | float = 0.0
    extrinsic_weight: jax.Array | float = 0.0
    learned_weight: jax.Array | float = 1.0

    @property
    def max_steps_in_episode(self):
        """The inner environment's step cap (what evaluation loops read)."""
        return self.env_params.max_steps_in_episode

    def normalised(self, learned_rewards: jax.Array) -> "LearnedRewardParams":
        """These params with ``mean`` and ``std`` of ``learned_rewards`` (samples of
        ``r_phi``, e.g. on the observations of the dataset it was fitted on), so the
        agent sees the learned reward with mean 0 and standard deviation 1 there."""
        r = jnp.asarray(learned_rewards, jnp.float32)
        return self.replace(mean=r.mean(), std=jnp.maximum(r.std(), 1e-6))


@struct.dataclass
class LearnedRewardState:
    env_state: Any
    obs: jax.Array  # the current observation (the next transition's ``obs``)
    history: jax.Array | None = None
    history_mask: jax.Array | None = None


class LearnedReward(Wrapper):
    """``env`` with its reward replaced by ``reward_fn`` (see the module docstring).

    ``reward_params`` and the mix (``mean``, ``std``, ``offset``,
    ``extrinsic_weight``, ``learned_weight``) become ``default_params``; pass
    other :class:`LearnedRewardParams` to ``reset``/``step`` (or to an agent's
    ``train(key, env_params=...)``) to change them without recompiling. The
    observation and action spaces are the inner environment's.
    """

    def __init__(self, env: Environment, reward_fn: RewardFn, reward_params: Any, *,
                 env_params: Any = None, mean: float = 0.0, std: float = 1.0,
                 offset: float = 0.0, extrinsic_weight: float = 0.0,
                 learned_weight: float = 1.0, context: int = 0):
        super().__init__(env)
        if not callable(reward_fn):
            raise TypeError(f"LearnedReward: reward_fn must be callable, not "
                            f"{type(reward_fn).__name__}.")
        if isinstance(context, bool) or not isinstance(context, int) or context < 0:
            raise ValueError(f"LearnedReward: context={context!r} must be an int >= 0 "
                             "(observations of history the reward sees).")
        if isinstance(std, (int, float)) and not std > 0:
            raise ValueError(f"LearnedReward: std={std} must be > 0 (it divides the reward).")
        self.reward_fn = reward_fn
        self.context = context
        self._default = LearnedRewardParams(
            env_params=env.default_params if env_params is None else env_params,
            reward_params=reward_params, mean=mean, std=std, offset=offset,
            extrinsic_weight=extrinsic_weight, learned_weight=learned_weight)

    @property
    def default_params(self) -> LearnedRewardParams:
        return self._default

    def _params(self, params) -> LearnedRewardParams:
        if params is None:
            return self._default
        if not isinstance(params, LearnedRewardParams):
            raise TypeError(
                f"LearnedReward takes LearnedRewardParams, not {type(params).__name__}: wrap "
                "the inner environment's params with env.default_params.replace(env_params=...).")
        return params

    def action_space(self, params: Any = None):
        return self._env.action_space(self._params(params).env_params)

    def observation_space(self, params: Any = None):
        return self._env.observation_space(self._params(params).env_params)

    def reward(self, params: LearnedRewardParams, transition: Transition, extrinsic):
        """The reward the agent sees, and the raw learned one."""
        learned = jnp.asarray(self.reward_fn(params.reward_params, transition), jnp.float32)
        if learned.shape != ():
            raise ValueError(f"LearnedReward: reward_fn returned shape {learned.shape} for one "
                             "transition; it must return a scalar.")
        mixed = (params.extrinsic_weight * extrinsic
                 + params.learned_weight * (learned - params.mean) / params.std + params.offset)
        return mixed.astype(jnp.float32), learned

    def _fresh_history(self, obs):
        """The history of an episode that has just begun: only ``obs`` is real."""
        if not self.context:
            return None, None
        history = jnp.zeros((self.context,) + obs.shape, obs.dtype).at[-1].set(obs)
        return history, jnp.zeros((self.context,), jnp.float32).at[-1].set(1.0)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        params = self._params(params)
        obs, env_state = self._env.reset(key, params.env_params)
        history, mask = self._fresh_history(obs)
        return obs, LearnedRewardState(env_state, obs, history, mask)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        params = self._params(params)
        obs, env_state, extrinsic, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params.env_params)
        transition = Transition(state.obs, action, info["final_observation"],
                                state.history, state.history_mask)
        reward, learned = self.reward(params, transition, extrinsic)
        history, mask = state.history, state.history_mask
        if self.context:
            done = jnp.logical_or(terminated, truncated)
            fresh, fresh_mask = self._fresh_history(obs)
            rolled = jnp.concatenate([history[1:], obs[None].astype(history.dtype)])
            rolled_mask = jnp.concatenate([mask[1:], jnp.ones((1,), jnp.float32)])
            history = jnp.where(done, fresh, rolled)
            mask = jnp.where(done, fresh_mask, rolled_mask)
        info = {**info, "extrinsic_reward": extrinsic, "learned_reward": learned}
        return obs, LearnedRewardState(env_state, obs, history, mask), reward, terminated, \
            truncated, info
