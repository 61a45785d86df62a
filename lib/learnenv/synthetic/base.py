"""What every learned environment shares.

A learned environment stands in for a real one: it keeps the real
environment's observation and action spaces, and its network weights are its
``env_params``, so any agent trains on it unchanged and a population of learned
environments is just a batch of ``env_params``. The synthetic bandits, synthetic
MDPs, Ferreira-style SEs and reward networks differ only in their networks and
in ``reset_env``/``step_env``.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from learnenv import envs
from learnenv.agents.networks import activation as _activation


def broadcast(tree: Any, n: int) -> Any:
    """``n`` copies of ``tree`` stacked on a new axis 0: one environment as a population."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), tree)


class MLPHead(nn.Module):
    """Hidden layers, then a linear output, with flax's default init
    (LeCun-normal kernels, zero biases): the point evolution starts from."""

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = _activation(self.activation)
        for size in self.hidden_sizes:
            x = act(nn.Dense(size)(x))
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


class LearnedEnvironment(environment.Environment):
    """Base class: the real environment it replaces, and weights as params.

    Subclasses set ``short_name`` and implement ``init_network_params``,
    ``reset_env`` and ``step_env``; ``episode_cap`` is the step limit stored in
    the params (the real environment's, unless ``max_steps_in_episode`` is given).
    Registered subclasses (``@kinds.register("se")``) extend :meth:`spec` with
    their own constructor arguments, so :func:`learnenv.io.save_environment`
    can save them and :func:`learnenv.io.load_environment` rebuild them.
    """

    short_name = "Learned"
    flat_observations = True  # False: the subclass handles image observations itself
    kind: str | None = None  # the registered kind name (set by kinds.register)

    def __init__(self, real_env_name: str, max_steps_in_episode: int | None = None,
                 **real_kwargs: Any):
        super().__init__()
        self.real_env_name = real_env_name
        self.max_steps_in_episode = max_steps_in_episode
        self.real_kwargs = dict(real_kwargs)
        if max_steps_in_episode:
            real_kwargs = {"max_steps_in_episode": int(max_steps_in_episode), **real_kwargs}
        self.real_env, self.real_env_params = envs.make(real_env_name, **real_kwargs)
        self.obs_shape = envs.observation_shape(self.real_env, self.real_env_params)
        if self.flat_observations and len(self.obs_shape) != 1:
            raise ValueError(
                f"{real_env_name} has observations of shape {self.obs_shape}; "
                f"{type(self).__name__} needs flat observations."
            )
        self.obs_dim = int(self.obs_shape[0]) if len(self.obs_shape) == 1 else None
        self.discrete = envs.is_discrete(self.real_env, self.real_env_params)
        self.action_size = envs.action_dim(self.real_env, self.real_env_params)
        self.max_steps = int(self.real_env_params.max_steps_in_episode)

    def spec(self) -> dict[str, Any]:
        """The constructor's arguments as JSON data: ``type(self)(**self.spec())``
        builds this environment again (with fresh weights)."""
        cap = {"max_steps_in_episode": self.max_steps_in_episode} if self.max_steps_in_episode else {}
        return {"real_env_name": self.real_env_name, **cap, **self.real_kwargs}

    # --- parameters ----------------------------------------------------------
    def init_network_params(self, key: jax.Array) -> dict:
        raise NotImplementedError

    @property
    def episode_cap(self) -> int:
        return self.max_steps

    def init_params(self, key: jax.Array) -> SyntheticEnvParams:
        return SyntheticEnvParams(self.init_network_params(key), max_steps_in_episode=self.episode_cap)

    @property
    def default_params(self) -> SyntheticEnvParams:
        return self.init_params(jax.random.key(0))

    def num_parameters(self, params: SyntheticEnvParams | None = None) -> int:
        params = self.default_params if params is None else params
        return int(sum(x.size for x in jax.tree.leaves(params.network_params)))

    # --- spaces and names ------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.short_name}[{self.real_env_name}]"

    @property
    def num_actions(self) -> int:
        return self.action_size

    def action_space(self, params=None):
        return self.real_env.action_space(self.real_env_params)

    def observation_space(self, params=None):
        return spaces.Box(-jnp.inf, jnp.inf, self.obs_shape, jnp.float32)
