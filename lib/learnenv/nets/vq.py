"""Vector quantisation: continuous vectors to the nearest of K learned codes.

A VQ-VAE (van den Oord et al., 2017) encodes an input to vectors ``z``,
replaces each by its nearest code ``e_k`` of a codebook, and decodes the
codes. The index ``k`` is a discrete token: what an autoregressive video model
predicts (VIPER) or what a latent action is (Genie). Three pieces, as pure
functions on a codebook array ``(num_codes, code_dim)`` that lives in the
model's parameters:

- :func:`quantize`: nearest codes, the straight-through estimator (the decoder's
  gradient flows to the encoder as if quantisation were the identity), and
  the two VQ losses ``|sg[z] - e|^2 + commitment * |z - sg[e]|^2``;
- :func:`usage`: how often each code was chosen in a batch;
- :func:`reset_unused`: codes nobody chose are moved onto encoder outputs
  (the usual cure for codebook collapse, where a few codes take all inputs
  and the rest never train again).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["quantize", "usage", "reset_unused", "perplexity"]


def quantize(codebook: jax.Array, z: jax.Array, commitment: float = 0.25):
    """``(z_q, codes, loss)`` for vectors ``z`` of shape ``(..., code_dim)``.

    ``z_q`` equals the chosen codes in the forward pass and has the gradient of
    ``z`` in the backward pass; ``codes`` are their indices; ``loss`` is the
    codebook loss plus ``commitment`` times the commitment loss (means).
    """
    distances = (jnp.sum(z ** 2, -1, keepdims=True) - 2.0 * z @ codebook.T
                 + jnp.sum(codebook ** 2, -1))
    codes = jnp.argmin(distances, axis=-1)
    quantized = codebook[codes]
    codebook_loss = jnp.mean(jnp.square(jax.lax.stop_gradient(z) - quantized))
    commitment_loss = jnp.mean(jnp.square(z - jax.lax.stop_gradient(quantized)))
    z_q = z + jax.lax.stop_gradient(quantized - z)
    return z_q, codes, codebook_loss + commitment * commitment_loss


def usage(codes: jax.Array, num_codes: int) -> jax.Array:
    """How many times each code occurs in ``codes`` (any shape): ``(num_codes,)``."""
    return jnp.bincount(codes.reshape(-1), length=num_codes)


def perplexity(counts: jax.Array) -> jax.Array:
    """exp(entropy) of the code frequencies: the number of codes effectively used."""
    p = counts / jnp.maximum(counts.sum(), 1)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def reset_unused(codebook: jax.Array, counts: jax.Array, z: jax.Array,
                 key: jax.Array) -> jax.Array:
    """``codebook`` with every code of zero ``counts`` replaced by a random row of
    ``z`` (encoder outputs, ``(n, code_dim)``), so that it is chosen again."""
    z = z.reshape(-1, codebook.shape[-1])
    picks = z[jax.random.randint(key, (codebook.shape[0],), 0, z.shape[0])]
    return jnp.where((counts == 0)[:, None], jax.lax.stop_gradient(picks), codebook)
