"""Separate transition and reward models: ``s' = s + f(s, a)``, ``(r, done) = g(s, a, s' - s)``.

The lecture's third design. Each network has one job: ``f`` only the
dynamics, ``g`` only the reward and termination, which it reads off the next
state (CartPole ends when the *next* pole angle crosses a threshold, an easy
function of ``s'`` and a hard one of ``(s, a)``). ``g`` reads the change
``s' - s``, which with ``s`` says as much as ``s'``. During training it sees the
real change; in a rollout it sees ``f``'s prediction, so its errors add to
``f``'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learnenv.synthetic.base import MLPHead
from learnenv.worldmodels.base import Prediction, WorldModel

__all__ = ["SeparateModel"]


class SeparateModel(WorldModel):
    family = "separate"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transition = MLPHead(self.hidden_sizes, self.obs_dim, self.activation)
        self.reward_done = MLPHead(self.hidden_sizes, 2, self.activation)

    def init(self, key):
        k_f, k_g = jax.random.split(key)
        x = jnp.zeros((self.obs_dim + self.action_size,))
        return {"transition": self.transition.init(k_f, x)["params"],
                "reward_done": self.reward_done.init(
                    k_g, jnp.zeros((2 * self.obs_dim + self.action_size,)))["params"]}

    def step(self, net, carry, obs_n, action, delta_n=None):
        a = self.action_input(action)
        delta = self.transition.apply({"params": net["transition"]}, jnp.concatenate([obs_n, a]))
        seen = delta if delta_n is None else delta_n  # teacher forcing in training
        out = self.reward_done.apply({"params": net["reward_done"]},
                                     jnp.concatenate([obs_n, a, seen]))
        return carry, Prediction(delta, out[0], out[1])
