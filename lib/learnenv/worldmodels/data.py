"""Transition datasets: whole episodes of a real environment, stored as arrays.

A world model learns from what a policy saw. Episodes are kept whole, padded
to the environment's step cap and masked, because the recurrent model needs
histories and the compounding-error test replays recorded action sequences::

    episodes = collect(env, env_params, random_policy(env, env_params), None, key,
                       num_episodes=200)
    episodes.obs.shape       # (200, T, obs_dim); T = the step cap
    episodes.num_steps()     # real environment steps in the dataset

``next_obs`` is the real next observation also on an episode's last step
(gymnax's ``info["final_observation"]``), and ``terminated`` is true only for
a real termination, not for the time limit.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

__all__ = ["Episodes", "collect", "random_policy", "concatenate"]

Policy = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]


@struct.dataclass
class Episodes:
    """Arrays of shape ``(num_episodes, T, ...)``; ``mask`` is 1 on real steps."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    mask: jax.Array

    @property
    def num_episodes(self) -> int:
        return self.obs.shape[0]

    def num_steps(self) -> int:
        """How many real environment steps the dataset holds."""
        return int(self.mask.sum())

    def lengths(self) -> jax.Array:
        """Real steps per episode; the time axis is the last, so a vmapped batch of
        datasets ``(seeds, episodes, T)`` gives ``(seeds, episodes)``."""
        return self.mask.sum(axis=-1)

    def returns(self) -> jax.Array:
        return (self.reward * self.mask).sum(axis=-1)

    def take(self, index) -> "Episodes":
        """Some episodes (an index array or a slice)."""
        return jax.tree.map(lambda x: x[index], self)

    def split(self, train_fraction: float = 0.8) -> tuple["Episodes", "Episodes"]:
        """The first ``train_fraction`` of episodes, and the rest (held out)."""
        cut = int(round(self.num_episodes * train_fraction))
        if not 0 < cut < self.num_episodes:
            raise ValueError(f"train_fraction={train_fraction} leaves no episode on one side "
                             f"of {self.num_episodes}.")
        return self.take(slice(0, cut)), self.take(slice(cut, None))


def random_policy(env, env_params) -> Policy:
    """Uniformly random actions from the action space, in the agents' policy signature."""
    space = env.action_space(env_params)
    return lambda params, obs, key, greedy=False: space.sample(key)


def collect(env, env_params, policy: Policy, policy_params: Any, key: jax.Array,
            num_episodes: int, max_steps: int | None = None, greedy: bool = False,
            epsilon: float = 0.0) -> Episodes:
    """``num_episodes`` episodes of ``policy`` in parallel, each to its end.

    Pure and jittable (``num_episodes``, ``max_steps``, ``greedy`` are static);
    ``max_steps`` defaults to the step cap. With probability ``epsilon`` an action
    is uniformly random, which widens what a trained policy's data covers.
    """
    max_steps = int(env_params.max_steps_in_episode) if max_steps is None else int(max_steps)
    space = env.action_space(env_params)

    def one_episode(key):
        reset_key, loop_key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)

        def step(carry, key):
            obs, state, alive = carry
            act_key, random_key, coin_key, step_key = jax.random.split(key, 4)
            action = policy(policy_params, obs, act_key, greedy)
            action = jnp.where(jax.random.uniform(coin_key) < epsilon, space.sample(random_key),
                               action)
            next_obs, state, reward, terminated, truncated, info = env.step(
                step_key, state, action, env_params)
            row = Episodes(obs=obs, action=action, reward=reward.astype(jnp.float32),
                           next_obs=info["final_observation"], terminated=terminated,
                           mask=alive)
            alive = alive * (1.0 - jnp.logical_or(terminated, truncated))
            return (next_obs, state, alive), row

        carry = (obs, state, jnp.ones((), jnp.float32))
        return jax.lax.scan(step, carry, jax.random.split(loop_key, max_steps))[1]

    episodes = jax.vmap(one_episode)(jax.random.split(key, num_episodes))
    return episodes.replace(obs=episodes.obs.astype(jnp.float32),
                            next_obs=episodes.next_obs.astype(jnp.float32),
                            terminated=episodes.terminated & (episodes.mask > 0))


def concatenate(*datasets: Episodes) -> Episodes:
    """One dataset of the episodes of several (same step cap)."""
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *datasets)
