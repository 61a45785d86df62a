"""Synthetic environments that imitate a real one (Ferreira et al., 2022).

A *synthetic environment* (SE) replaces the real dynamics by three small
networks, each reading the concatenation ``[one_hot(a), s]``::

    s' = f_state([one_hot(a), s])        # next state, predicted directly
    r  = f_reward([one_hot(a), s])       # reward
    d  = f_done([one_hot(a), s]) > 0.5   # termination

Episodes start from the *real* environment's initial-state distribution and
are cut at a step cap (200 for the paper's CartPole-v0). The weights are not
fitted to real transitions: an evolution strategy
(:mod:`learnenv.synthetic.se_training`) moves them so that agents trained
*inside* the SE do well in the real environment. Nothing forces the SE to be a
faithful model, and it usually is not one.

Like the synthetic bandits of :mod:`learnenv.synthetic.bandit`, the weights are
the ``env_params`` (:class:`~learnenv.synthetic.bandit.SyntheticEnvParams`), so
any agent of :mod:`learnenv.agents` trains on an SE unchanged and a population
of SEs is just a batch of ``env_params``.
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

__all__ = ["SyntheticEnvironment", "SyntheticEnvParams", "SyntheticEnvState"]


@kinds.register("se")
class SyntheticEnvironment(LearnedEnvironment):
    """A learned stand-in for ``real_env_name`` with discrete actions.

    ``hidden_sizes``: hidden layers of each of the three networks (the paper's
    varied-hyperparameter runs: one layer of 128). ``max_steps_in_episode``:
    the step cap of the SE *and* of the real environment it imitates (``None``:
    the real environment's own); ``real_kwargs`` go to :func:`learnenv.envs.make`.

    ``state_clip`` (0 = off) bounds every predicted state component to
    ``[-state_clip, state_clip]``. This is our safeguard, not the paper's: a
    randomly perturbed MLP iterated 200 times easily diverges (states of 1e4 and
    more, rewards to match), agents trained there learn nothing, every member
    of the population scores the same, and the search stalls for good.

    ``init_scale`` multiplies the real reset's states (1 = the paper's). Wider
    start states make the SE show states on both sides of a controller's
    boundary, a regulariser for SEs that teach agents other than the inner one.
    """

    short_name = "SE"

    def __init__(self, real_env_name: str, hidden_sizes: Sequence[int] = (128,),
                 activation: str = "leaky_relu", max_steps_in_episode: int | None = None,
                 state_clip: float = 0.0, init_scale: float = 1.0, **real_kwargs):
        super().__init__(real_env_name, max_steps_in_episode, **real_kwargs)
        self.state_clip = float(state_clip)
        self.init_scale = float(init_scale)
        if not self.discrete:
            raise ValueError(
                f"SyntheticEnvironment needs discrete actions; {real_env_name} has continuous ones."
            )
        self.hidden_sizes = tuple(hidden_sizes)
        self.activation = activation
        self.state_net = MLPHead(self.hidden_sizes, self.obs_dim, activation)
        self.reward_net = MLPHead(self.hidden_sizes, 1, activation)
        self.done_net = MLPHead(self.hidden_sizes, 1, activation)

    def spec(self):
        return {**super().spec(), "hidden_sizes": list(self.hidden_sizes),
                "activation": self.activation, "state_clip": self.state_clip,
                **({"init_scale": self.init_scale} if self.init_scale != 1.0 else {})}

    # --- parameters ----------------------------------------------------------
    def init_network_params(self, key: jax.Array) -> dict:
        x = jnp.zeros((self.action_size + self.obs_dim,))
        k_s, k_r, k_d = jax.random.split(key, 3)
        return {
            "state": self.state_net.init(k_s, x)["params"],
            "reward": self.reward_net.init(k_r, x)["params"],
            "done": self.done_net.init(k_d, x)["params"],
        }

    # --- the three networks ----------------------------------------------------
    def _features(self, obs, action):
        return jnp.concatenate([jax.nn.one_hot(action, self.action_size), obs], axis=-1)

    def predict(self, network_params, obs, action):
        """(next_obs, reward, done logit) for a state-action pair; batches broadcast."""
        x = self._features(obs, action)
        next_obs = self.state_net.apply({"params": network_params["state"]}, x)
        if self.state_clip > 0:
            next_obs = jnp.clip(next_obs, -self.state_clip, self.state_clip)
        reward = self.reward_net.apply({"params": network_params["reward"]}, x)[..., 0]
        done = self.done_net.apply({"params": network_params["done"]}, x)[..., 0]
        return next_obs, reward, done

    def reward(self, network_params, obs, action):
        """The learned reward alone (as an SCB's ``reward``), for probing what it says."""
        return self.predict(network_params, obs, action)[1]

    # --- the gymnax environment -------------------------------------------------
    def reset_env(self, key, params):
        """Initial states come from the real environment's reset."""
        obs, _ = self.real_env.reset_env(key, self.real_env_params)
        obs = self.init_scale * jnp.asarray(obs, jnp.float32)
        return obs, SyntheticEnvState(obs=obs, time=0)

    def step_env(self, key, state, action, params):
        next_obs, reward, done = self.predict(params.network_params, state.obs, action)
        terminated = done > 0.5
        new_state = SyntheticEnvState(obs=next_obs, time=state.time + 1)
        return next_obs, new_state, reward, terminated, {}

    def is_terminated(self, state, params):
        # Termination depends on the action that led here, so it is decided in
        # step_env; a state on its own is never terminal.
        return jnp.array(False)
