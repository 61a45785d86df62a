"""Small network pieces shared by every agent.

Heads that belong to one algorithm (actor-critic, Q-network, squashed actor)
live next to that algorithm; what is shared is the MLP torso and its init.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
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


def check_hidden_sizes(owner: str, hidden_sizes) -> None:
    """Raise an error naming ``owner.hidden_sizes`` unless it is a tuple of positive ints."""
    if not hidden_sizes or any(
        not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden_sizes
    ):
        raise ValueError(
            f"{owner}.hidden_sizes={hidden_sizes!r} must be a non-empty tuple of positive ints."
        )


def orthogonal(scale: float = 1.0) -> Callable:
    """``nn.initializers.orthogonal`` without LAPACK: same distribution, same values.

    jaxlib's CPU QR runs a batch of matrices on the intra-op thread pool and
    waits for it; when several batched QRs run at once (initialising a network
    inside ``jax.vmap`` over seeds) on a 2-core machine every pool thread
    waits and the program hangs forever (seen with jax 0.10.2 here and on
    2-core Colab). Gram-Schmidt, done twice for stability, gives the Q of the
    QR with a positive diagonal of R, which is what jax.random.orthogonal returns.
    """

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ValueError("orthogonal initializer requires at least a 2D shape")
        n_rows, n_cols = int(np.prod(shape[:-1])), int(shape[-1])
        big, small = max(n_rows, n_cols), min(n_rows, n_cols)
        z = jax.random.normal(key, (big, small), dtype)

        def add_column(j, q):
            v = z[:, j]
            v = v - q @ (q.T @ v)
            v = v - q @ (q.T @ v)
            return q.at[:, j].set(v / jnp.linalg.norm(v))

        q = jax.lax.fori_loop(0, small, add_column, jnp.zeros_like(z))
        q = q.T if n_rows < n_cols else q
        return (scale * q).reshape(shape).astype(dtype)

    return init


def dense(features: int, scale: float = np.sqrt(2)) -> nn.Dense:
    """Orthogonal init with zero bias, the standard for on- and off-policy MLPs."""
    return nn.Dense(features, kernel_init=orthogonal(scale),
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
