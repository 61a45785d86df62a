"""Small network pieces shared by every agent.

Heads that belong to one algorithm (actor-critic, Q-network, squashed actor)
live next to that algorithm; what is shared is the MLP torso and its init.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable] = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "leaky_relu": nn.leaky_relu,
    "elu": nn.elu,
    "swish": nn.swish,
}


def activation(name: str) -> Callable:
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def dense(features: int, scale: float = np.sqrt(2)) -> nn.Dense:
    """Orthogonal init with zero bias, the standard for on- and off-policy MLPs."""
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale),
                    bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Hidden layers with an activation after each; no output layer."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = activation(self.activation)
        x = x.reshape(x.shape[: x.ndim - 1] + (-1,)) if x.ndim else x[None]
        for size in self.hidden_sizes:
            x = act(dense(size)(x))
        return x
