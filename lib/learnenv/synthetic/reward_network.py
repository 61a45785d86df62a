"""Reward networks (Ferreira et al., 2022): the real dynamics, a learned reward.

A *reward network* (RN) keeps the real environment's states, transitions and
terminations and only changes the reward the agent sees. The paper's variants
all use a learned potential ``Phi``; this module implements the *additive
potential-based* one::

    r' = r + gamma * Phi(s') - Phi(s)

Potential-based shaping (Ng et al., 1999) does not change which policies are
optimal, only how quickly an agent finds one: the RN is learned, with the same
NES loop as the SE, so that agents reach a good real return within a short
budget. The other variants of the paper (exclusive ``gamma Phi(s') - Phi(s)``,
non-potential ``Phi(s')`` and ``r + Phi(s')``) are one-line changes of
:meth:`RewardNetworkEnvironment.shaped_reward`.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from learnenv import kinds
from learnenv.synthetic.base import LearnedEnvironment, MLPHead

__all__ = ["RewardNetworkEnvironment"]


@kinds.register("reward-network")
class RewardNetworkEnvironment(LearnedEnvironment):
    """The real ``real_env_name`` with the additive potential-based learned reward."""

    short_name = "RN"

    def __init__(self, real_env_name: str, hidden_sizes: Sequence[int] = (64,),
                 activation: str = "leaky_relu", max_steps_in_episode: int | None = None,
                 gamma: float = 0.99, **real_kwargs):
        super().__init__(real_env_name, max_steps_in_episode, **real_kwargs)
        self.hidden_sizes = tuple(hidden_sizes)
        self.activation = activation
        self.gamma = float(gamma)
        self.potential_net = MLPHead(self.hidden_sizes, 1, activation)

    def spec(self):
        return {**super().spec(), "hidden_sizes": list(self.hidden_sizes),
                "activation": self.activation, "gamma": self.gamma}

    def init_network_params(self, key) -> dict:
        return {"potential": self.potential_net.init(key, jnp.zeros((self.obs_dim,)))["params"]}

    def potential(self, network_params, obs):
        return self.potential_net.apply({"params": network_params["potential"]}, obs)[..., 0]

    def shaped_reward(self, network_params, obs, next_obs, reward, terminated):
        # No potential after a true terminal state (its value is zero by definition).
        phi_next = jnp.where(terminated, 0.0, self.potential(network_params, next_obs))
        return reward + self.gamma * phi_next - self.potential(network_params, obs)

    def reset_env(self, key, params):
        return self.real_env.reset_env(key, self.real_env_params)

    def step_env(self, key, state, action, params):
        obs = self.real_env.get_obs(state, self.real_env_params)
        next_obs, next_state, reward, terminated, info = self.real_env.step_env(
            key, state, action, self.real_env_params
        )
        shaped = self.shaped_reward(params.network_params, obs, next_obs, reward, terminated)
        return next_obs, next_state, shaped, terminated, info

    def is_terminated(self, state, params):
        return self.real_env.is_terminated(state, self.real_env_params)

    @property
    def num_actions(self) -> int:
        return self.real_env.num_actions
