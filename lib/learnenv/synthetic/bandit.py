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

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from learnenv import envs


class _MLP(nn.Module):
    """A plain MLP with flax's default init: the ES search starts from it."""

    hidden_sizes: Sequence[int]
    out_size: int

    @nn.compact
    def __call__(self, x):
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        return nn.Dense(self.out_size)(x)


@struct.dataclass
class SyntheticEnvState(environment.EnvState):
    obs: jax.Array
    time: int


@struct.dataclass
class SyntheticEnvParams:
    """The learned weights. ``max_steps_in_episode`` is static (not vmapped)."""

    network_params: Any
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1)


class SyntheticContextualBandit(environment.Environment):
    """One-step episodes: a learned context distribution and a learned reward.

    Observation and action spaces are those of the real environment it stands
    in for; discrete actions enter the reward network one-hot, continuous
    actions raw.
    """

    def __init__(self, real_env_name: str, hidden_sizes: Sequence[int] = (32,), **real_kwargs):
        self.real_env_name = real_env_name
        self.real_env, self.real_env_params = envs.make(real_env_name, **real_kwargs)
        self.hidden_sizes = tuple(hidden_sizes)
        self.obs_shape = envs.observation_shape(self.real_env, self.real_env_params)
        if len(self.obs_shape) != 1:
            raise ValueError(
                f"{real_env_name} has observations of shape {self.obs_shape}; "
                "synthetic environments need flat observations."
            )
        self.obs_dim = self.obs_shape[0]
        self.discrete = envs.is_discrete(self.real_env, self.real_env_params)
        self.action_size = envs.action_dim(self.real_env, self.real_env_params)
        self.context_net = _MLP(self.hidden_sizes, self.obs_dim)
        self.reward_net = _MLP(self.hidden_sizes, 1)

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

    def init_params(self, key: jax.Array) -> SyntheticEnvParams:
        return SyntheticEnvParams(self.init_network_params(key), max_steps_in_episode=1)

    @property
    def default_params(self) -> SyntheticEnvParams:
        return self.init_params(jax.random.key(0))

    def num_parameters(self, params: SyntheticEnvParams | None = None) -> int:
        params = self.default_params if params is None else params
        return int(sum(x.size for x in jax.tree.leaves(params.network_params)))

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

    @property
    def name(self) -> str:
        return f"SCB[{self.real_env_name}]"

    @property
    def num_actions(self) -> int:
        return self.action_size

    def action_space(self, params=None):
        return self.real_env.action_space(self.real_env_params)

    def observation_space(self, params=None):
        return spaces.Box(-jnp.inf, jnp.inf, self.obs_shape, jnp.float32)


class SyntheticMDP(SyntheticContextualBandit):
    """The SCB plus a learned residual transition and a learned done head.

    ``s' = s + h([s, a])``, and the episode terminates when ``d(s') > 0`` or at
    ``max_steps_in_episode`` (the real environment's cap by default).
    """

    def __init__(self, real_env_name: str, hidden_sizes: Sequence[int] = (32,),
                 max_steps_in_episode: int | None = None, **real_kwargs):
        super().__init__(real_env_name, hidden_sizes, **real_kwargs)
        self.max_steps = int(max_steps_in_episode or self.real_env_params.max_steps_in_episode)
        self.transition_net = _MLP(self.hidden_sizes, self.obs_dim)
        self.done_net = _MLP(self.hidden_sizes, 1)

    def init_network_params(self, key):
        k_base, k_tr, k_done = jax.random.split(key, 3)
        params = super().init_network_params(k_base)
        sa = jnp.zeros((self.obs_dim + self.action_size,))
        params["transition"] = self.transition_net.init(k_tr, sa)["params"]
        params["done"] = self.done_net.init(k_done, jnp.zeros((self.obs_dim,)))["params"]
        return params

    def init_params(self, key):
        return SyntheticEnvParams(self.init_network_params(key), max_steps_in_episode=self.max_steps)

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

    @property
    def name(self) -> str:
        return f"SyntheticMDP[{self.real_env_name}]"
