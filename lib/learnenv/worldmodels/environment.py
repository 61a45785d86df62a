"""A fitted world model as a gymnax environment: what model-based RL trains in.

Its weights are its ``env_params`` (like every learned environment of this
book, :class:`~learnenv.synthetic.base.LearnedEnvironment`), so any agent trains
in it unchanged and it saves and loads in one call::

    env = WorldModelEnvironment("CartPole-v1", family="one-step", ensemble_size=5)
    env_params = env.fitted_params(*fit(key, episodes))
    learnenv.io.save_environment("cartpole-model", env, env_params)

An episode starts from the real environment's reset (``start="real"``) or from
a Gaussian fitted to the first observations of the data (``start="learned"``,
for when the real reset is not available either). Each step asks one ensemble
member, drawn at random per step as MBPO does, so an agent cannot rely on the
quirks of any single member. The episode ends when the model predicts
termination or at the real step cap.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment

from learnenv import kinds
from learnenv.synthetic.base import LearnedEnvironment, SyntheticEnvParams
from learnenv.worldmodels.base import Stats, ensemble_carry, ensemble_predict
from learnenv.worldmodels.data import Episodes
from learnenv.worldmodels.families import make_model

__all__ = ["WorldModelEnvironment", "WorldModelState"]

STARTS = ("real", "learned")


@struct.dataclass
class WorldModelState(environment.EnvState):
    obs: jax.Array
    memory: jax.Array  # every member's recurrent memory (empty for feed-forward families)
    time: int


@kinds.register("world-model")
class WorldModelEnvironment(LearnedEnvironment):
    short_name = "Model"

    def __init__(self, real_env_name: str, family: str = "one-step",
                 hidden_sizes: Sequence[int] = (128, 128), activation: str = "swish",
                 ensemble_size: int = 1, start: str = "real",
                 max_steps_in_episode: int | None = None, **real_kwargs: Any):
        super().__init__(real_env_name, max_steps_in_episode, **real_kwargs)
        if start not in STARTS:
            raise ValueError(f"start={start!r} must be one of {STARTS}.")
        if int(ensemble_size) < 1:
            raise ValueError(f"ensemble_size={ensemble_size} must be at least 1.")
        self.family, self.start = family, start
        self.ensemble_size = int(ensemble_size)
        self.model = make_model(family, self.obs_dim, self.action_size, self.discrete,
                                hidden_sizes=tuple(hidden_sizes), activation=activation)

    def spec(self):
        return {**super().spec(), "family": self.family,
                "hidden_sizes": list(self.model.hidden_sizes),
                "activation": self.model.activation, "ensemble_size": self.ensemble_size,
                "start": self.start}

    @property
    def name(self) -> str:
        return f"{self.short_name}[{self.family}, {self.real_env_name}]"

    # --- parameters ----------------------------------------------------------
    def init_network_params(self, key: jax.Array) -> dict:
        nets = jax.vmap(self.model.init)(jax.random.split(key, self.ensemble_size))
        zeros, ones = jnp.zeros((self.obs_dim,)), jnp.ones((self.obs_dim,))
        return {"nets": nets, "stats": Stats.identity(self.obs_dim),
                "start_mean": zeros, "start_std": ones}

    def fitted_params(self, nets, stats: Stats, episodes: Episodes | None = None) -> SyntheticEnvParams:
        """``env_params`` from :func:`~learnenv.worldmodels.fit.make_fit`'s output;
        ``episodes`` (their first observations) fit the learned start distribution."""
        members = jax.tree.leaves(nets)[0].shape[0]
        if members != self.ensemble_size:
            raise ValueError(f"nets hold {members} ensemble members; this environment was "
                             f"built with ensemble_size={self.ensemble_size}.")
        template = self.default_params.network_params
        start_mean, start_std = template["start_mean"], template["start_std"]
        if episodes is not None:
            first = episodes.obs[:, 0]
            start_mean, start_std = first.mean(0), jnp.maximum(first.std(0), 1e-6)
        elif self.start == "learned":
            raise ValueError("start='learned' needs the episodes to fit the start distribution.")
        return SyntheticEnvParams(
            {"nets": nets, "stats": stats, "start_mean": start_mean, "start_std": start_std},
            max_steps_in_episode=self.episode_cap)

    # --- the gymnax environment -------------------------------------------------
    def reset_env(self, key, params):
        if self.start == "real":
            obs, _ = self.real_env.reset(key, self.real_env_params)
        else:
            p = params.network_params
            obs = p["start_mean"] + p["start_std"] * jax.random.normal(key, (self.obs_dim,))
        memory = ensemble_carry(self.model, params.network_params["nets"])
        obs = jnp.asarray(obs, jnp.float32)
        return obs, WorldModelState(obs=obs, memory=memory, time=0)

    def step_env(self, key, state, action, params):
        p = params.network_params
        memory, next_obs, reward, done_logit = ensemble_predict(
            self.model, p["nets"], p["stats"], state.memory, state.obs, action)
        member = jax.random.randint(key, (), 0, self.ensemble_size)
        next_obs, reward = next_obs[member], reward[member]
        terminated = done_logit[member] > 0.0
        new_state = WorldModelState(obs=next_obs, memory=memory, time=state.time + 1)
        return next_obs, new_state, reward, terminated, {}

    def is_terminated(self, state, params):
        # Termination is predicted from the transition in step_env.
        return jnp.array(False)
