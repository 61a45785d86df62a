"""A toy "learned environment" for tests: an MLP whose weights are its env_params.

Everything the agents see of a learned environment is here in miniature: the
dynamics and the reward are small neural networks, their weights live in
``env_params`` (so a population of environments is a batch of params, and
``jax.vmap`` over ``env_params`` trains an agent on each), and episodes end only
by a time limit (truncation, never termination)::

    next_obs = tanh(W [obs, onehot(a)] + b)
    reward   = tanh(v . relu(U [obs, onehot(a)] + c) + d)

It is deliberately not a library class: the point of the tests is that an agent
written for gymnax trains, unchanged, on *any* environment that follows the
interface, including one defined outside the library.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

OBS_DIM = 4
NUM_ACTIONS = 2
HIDDEN = 16


@struct.dataclass
class ToyEnvState(environment.EnvState):
    obs: jax.Array
    time: int


@struct.dataclass
class ToyEnvParams:
    w: jax.Array  # (OBS_DIM + NUM_ACTIONS, OBS_DIM) dynamics
    b: jax.Array  # (OBS_DIM,)
    u: jax.Array  # (OBS_DIM + NUM_ACTIONS, HIDDEN) reward hidden layer
    c: jax.Array  # (HIDDEN,)
    v: jax.Array  # (HIDDEN,)
    d: jax.Array  # ()
    # Static (not a leaf), so it stays a Python int when the weights are vmapped.
    max_steps_in_episode: int = struct.field(pytree_node=False, default=50)


def random_params(key: jax.Array, max_steps_in_episode: int = 50) -> ToyEnvParams:
    """Random weights: each key is a different environment."""
    kw, kb, ku, kc, kv = jax.random.split(key, 5)
    n_in = OBS_DIM + NUM_ACTIONS
    return ToyEnvParams(
        w=jax.random.normal(kw, (n_in, OBS_DIM)) * 1.2 / jnp.sqrt(n_in),
        b=jax.random.normal(kb, (OBS_DIM,)) * 0.1,
        u=jax.random.normal(ku, (n_in, HIDDEN)) * 2.0 / jnp.sqrt(n_in),
        c=jax.random.normal(kc, (HIDDEN,)) * 0.1,
        v=jax.random.normal(kv, (HIDDEN,)) / jnp.sqrt(HIDDEN),
        d=jnp.zeros(()),
        max_steps_in_episode=max_steps_in_episode,
    )


class ToyLearnedEnv(environment.Environment):
    """Discrete actions, 4-d observations in [-1, 1], 50-step episodes."""

    @property
    def default_params(self) -> ToyEnvParams:
        return random_params(jax.random.key(0))

    def _inputs(self, obs, action):
        return jnp.concatenate([obs, jax.nn.one_hot(action, NUM_ACTIONS)])

    def step_env(self, key, state, action, params):
        x = self._inputs(state.obs, action)
        next_obs = jnp.tanh(x @ params.w + params.b)
        reward = jnp.tanh(jax.nn.relu(x @ params.u + params.c) @ params.v + params.d)
        state = ToyEnvState(obs=next_obs, time=state.time + 1)
        return next_obs, state, reward, jnp.array(False), {}

    def reset_env(self, key, params):
        obs = jax.random.uniform(key, (OBS_DIM,), minval=-1.0, maxval=1.0)
        return obs, ToyEnvState(obs=obs, time=0)

    @property
    def name(self) -> str:
        return "ToyLearnedEnv"

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def action_space(self, params=None):
        return spaces.Discrete(NUM_ACTIONS)

    def observation_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (OBS_DIM,), jnp.float32)
