"""A recurrent learned environment: a GRU over the history of ``(s, a)``.

The lecture's second design, "RNN predicting (s_{t+1}, r_{t+1})". Its memory
gives temporal dependencies: CartPole observed without velocities becomes
predictable again, because two positions in a row tell the velocity. The price
is training on sequences (with a burn-in to warm the memory up) and a state
that the environment has to carry from step to step.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from learnenv.agents.networks import activation as _activation
from learnenv.worldmodels.base import Prediction, WorldModel

__all__ = ["RecurrentModel"]


class _GRUNet(nn.Module):
    hidden_sizes: tuple
    out_size: int
    activation: str

    @nn.compact
    def __call__(self, carry, x):
        act = _activation(self.activation)
        x = act(nn.Dense(self.hidden_sizes[0])(x))
        carry, h = nn.GRUCell(self.hidden_sizes[0])(carry, x)
        for size in self.hidden_sizes[1:]:
            h = act(nn.Dense(size)(h))
        return carry, nn.Dense(self.out_size)(h)


class RecurrentModel(WorldModel):
    family = "recurrent"
    recurrent = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.net = _GRUNet(self.hidden_sizes, self.obs_dim + 2, self.activation)

    def initial_carry(self):
        return jnp.zeros((self.hidden_sizes[0],))

    def init(self, key):
        x = jnp.zeros((self.obs_dim + self.action_size,))
        return self.net.init(key, self.initial_carry(), x)["params"]

    def step(self, net, carry, obs_n, action, delta_n=None):
        x = jnp.concatenate([obs_n, self.action_input(action)])
        carry, out = self.net.apply({"params": net}, carry, x)
        return carry, Prediction(out[:-2], out[-2], out[-1])
