"""A toy learned environment for the tests: an MLP whose weights are the env_params.

It is deliberately not a library class: the point of the test is that an agent
written for gymnax trains, unchanged, on *any* environment that follows the
interface, including one defined outside the library.
"""

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

OBS_DIM, NUM_ACTIONS, HIDDEN = 4, 2, 16


@struct.dataclass
class ToyState(environment.EnvState):
    obs: jax.Array
    time: int


@struct.dataclass
class ToyParams:
    w_in: jax.Array  # (OBS_DIM + NUM_ACTIONS, HIDDEN)
    w_next: jax.Array  # (HIDDEN, OBS_DIM)
    w_reward: jax.Array  # (HIDDEN,)
    max_steps_in_episode: int = struct.field(pytree_node=False, default=50)


def random_params(key) -> ToyParams:
    k1, k2, k3 = jax.random.split(key, 3)
    return ToyParams(
        w_in=jax.random.normal(k1, (OBS_DIM + NUM_ACTIONS, HIDDEN)) / 2,
        w_next=jax.random.normal(k2, (HIDDEN, OBS_DIM)) / 4,
        w_reward=jax.random.normal(k3, (HIDDEN,)),
    )


class ToyLearnedEnv(environment.Environment):
    """next_obs = tanh(h W_next), reward = h . w_reward, h = tanh([obs, onehot(a)] W_in)."""

    @property
    def default_params(self) -> ToyParams:
        return random_params(jax.random.key(0))

    def reset_env(self, key, params):
        obs = jax.random.uniform(key, (OBS_DIM,), minval=-1.0, maxval=1.0)
        return obs, ToyState(obs=obs, time=0)

    def step_env(self, key, state, action, params):
        x = jnp.concatenate([state.obs, jax.nn.one_hot(action, NUM_ACTIONS)])
        h = jnp.tanh(x @ params.w_in)
        next_obs = jnp.tanh(h @ params.w_next)
        reward = h @ params.w_reward
        return next_obs, ToyState(obs=next_obs, time=state.time + 1), reward, jnp.array(False), {}

    def action_space(self, params=None):
        return spaces.Discrete(NUM_ACTIONS)

    def observation_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (OBS_DIM,), jnp.float32)
