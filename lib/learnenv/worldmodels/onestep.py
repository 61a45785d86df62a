"""The simplest learned environment: one MLP from ``(s, a)`` to ``(s' - s, r, done)``.

The lecture's first design, "NN predicting (s_{t+1}, r_{t+1})". It is what
MBPO and PETS use (as an ensemble). Predicting the *change* of the state
rather than the state is the standard trick: most of ``s'`` is ``s``. Its
weakness is the Markov assumption: from one observation it cannot know what
the observation leaves out (the velocities of CartPole observed as positions).
"""

from __future__ import annotations

import jax.numpy as jnp

from learnenv.synthetic.base import MLPHead
from learnenv.worldmodels.base import Prediction, WorldModel

__all__ = ["OneStepModel"]


class OneStepModel(WorldModel):
    family = "one-step"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.net = MLPHead(self.hidden_sizes, self.obs_dim + 2, self.activation)

    def init(self, key):
        return self.net.init(key, jnp.zeros((self.obs_dim + self.action_size,)))["params"]

    def step(self, net, carry, obs_n, action, delta_n=None):
        out = self.net.apply({"params": net}, jnp.concatenate([obs_n, self.action_input(action)]))
        return carry, Prediction(out[:-2], out[-2], out[-1])
