"""Synthetic contextual bandits and synthetic MDPs (Liesen et al., 2024).

A *synthetic contextual bandit* (SCB) replaces a real environment by two small
networks: a context network that maps Gaussian noise to an initial observation,
``s0 = f(z), z ~ N(0, I)``, and a reward network ``r = g([s, a])``. Every episode
lasts one step, so an agent trained on it only has to learn which action pays
in which state: the reward *is* the Q-value. Both networks are meta-learned
(:mod:`learnenv.synthetic.meta`) so that agents trained on the SCB do well in
the real environment.

The *synthetic MDP* adds a residual transition ``s' = s + h([s, a])`` and a done
head ``d(s') > 0``, the comparison the paper makes to show that the transition
model is not needed.

Both are gymnax environments whose network weights are the ``env_params``, so
any agent of :mod:`learnenv.agents` trains on them, and a population of them is
just a batch of ``env_params``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from learnenv import kinds
from learnenv.synthetic.base import (
    LearnedEnvironment,
    MLPHead,
    SyntheticEnvParams,
    SyntheticEnvState,
)

__all__ = ["SyntheticContextualBandit", "SyntheticMDP", "SyntheticEnvParams", "SyntheticEnvState"]


@kinds.register("scb")
class SyntheticContextualBandit(LearnedEnvironment):
    """One-step episodes: a learned context distribution and a learned reward.

    Observation and action spaces are those of the real environment it stands
    in for; discrete actions enter the reward network one-hot, continuous
    actions raw.
    """

    short_name = "SCB"

    def __init__(self, real_env_name: str, hidden_sizes: Sequence[int] = (32,), **real_kwargs):
        super().__init__(real_env_name, **real_kwargs)
        self.hidden_sizes = tuple(hidden_sizes)
        self.context_net = MLPHead(self.hidden_sizes, self.obs_dim)
        self.reward_net = MLPHead(self.hidden_sizes, 1)

    def spec(self):
        return {**super().spec(), "hidden_sizes": list(self.hidden_sizes)}

    # --- parameters --------------------------------------------------------
    def _action_features(self, action):
        if self.discrete:
            return jax.nn.one_hot(action, self.action_size)
        return jnp.reshape(jnp.asarray(action, jnp.float32), (self.action_size,))

    def init_network_params(self, key: jax.Array) -> dict:
        k_ctx, k_rew = jax.random.split(key)
        dummy_obs = jnp.zeros((self.obs_dim,))
        dummy_act = jnp.zeros((self.action_size,))
        return {
            "context": self.context_net.init(k_ctx, dummy_obs)["params"],
            "reward": self.reward_net.init(k_rew, jnp.concatenate([dummy_obs, dummy_act]))["params"],
        }

    @property
    def episode_cap(self) -> int:
        return 1

    # --- the environment -----------------------------------------------------
    def context(self, network_params, z: jax.Array) -> jax.Array:
        return self.context_net.apply({"params": network_params["context"]}, z)

    def reward(self, network_params, obs: jax.Array, action) -> jax.Array:
        x = jnp.concatenate([obs, self._action_features(action)], axis=-1)
        return self.reward_net.apply({"params": network_params["reward"]}, x)[..., 0]

    def reset_env(self, key, params):
        z = jax.random.normal(key, (self.obs_dim,))
        obs = self.context(params.network_params, z)
        return obs, SyntheticEnvState(obs=obs, time=0)

    def step_env(self, key, state, action, params):
        reward = self.reward(params.network_params, state.obs, action)
        new_state = SyntheticEnvState(obs=state.obs, time=state.time + 1)
        # Every episode ends after one step: terminated, so nothing is bootstrapped.
        return state.obs, new_state, reward, jnp.array(True), {}

    def is_terminated(self, state, params):
        return jnp.array(True)


@kinds.register("synthetic-mdp")
class SyntheticMDP(SyntheticContextualBandit):
    """The SCB plus a learned residual transition and a learned done head.

    ``s' = s + h([s, a])``, and the episode terminates when ``d(s') > 0`` or at
    ``max_steps_in_episode`` (the real environment's cap by default).
    """

    short_name = "SyntheticMDP"

    def __init__(self, real_env_name: str, hidden_sizes: Sequence[int] = (32,),
                 max_steps_in_episode: int | None = None, **real_kwargs):
        super().__init__(real_env_name, hidden_sizes, **real_kwargs)
        self.max_steps_in_episode = max_steps_in_episode  # the MDP's cap, not the real env's
        self.max_steps = int(max_steps_in_episode or self.max_steps)
        self.transition_net = MLPHead(self.hidden_sizes, self.obs_dim)
        self.done_net = MLPHead(self.hidden_sizes, 1)

    def init_network_params(self, key):
        k_base, k_tr, k_done = jax.random.split(key, 3)
        params = super().init_network_params(k_base)
        sa = jnp.zeros((self.obs_dim + self.action_size,))
        params["transition"] = self.transition_net.init(k_tr, sa)["params"]
        params["done"] = self.done_net.init(k_done, jnp.zeros((self.obs_dim,)))["params"]
        return params

    @property
    def episode_cap(self) -> int:
        return self.max_steps

    def step_env(self, key, state, action, params):
        net = params.network_params
        reward = self.reward(net, state.obs, action)
        x = jnp.concatenate([state.obs, self._action_features(action)], axis=-1)
        next_obs = state.obs + self.transition_net.apply({"params": net["transition"]}, x)
        terminated = self.done_net.apply({"params": net["done"]}, next_obs)[0] > 0
        new_state = SyntheticEnvState(obs=next_obs, time=state.time + 1)
        return next_obs, new_state, reward, terminated, {}

    def is_terminated(self, state, params):
        return self.done_net.apply({"params": params.network_params["done"]}, state.obs)[0] > 0
