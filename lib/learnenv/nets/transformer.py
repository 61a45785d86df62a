"""A causal (GPT-style) transformer over token sequences.

The video model of VIPER (VideoGPT) is a transformer that reads the tokens of
a few frames in order and predicts each next token. :class:`CausalTransformer`
is that network, pre-LayerNorm blocks of masked self-attention and an MLP, with
learned position embeddings. It is written with flax's own attention
(``nn.MultiHeadDotProductAttention`` and ``nn.make_causal_mask``) so that the
causal mask, the most common bug of such models, is the library's.

Its input is shifted by one: position ``i`` reads tokens ``0 .. i-1`` (a
begin-of-sequence token at position 0) and its logits predict token ``i``. So
``log_softmax(logits)[i, tokens[i]]`` is ``log p(token_i | tokens_<i)``, the
quantity VIPER sums into a reward.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["Block", "CausalTransformer", "token_log_probs"]


class Block(nn.Module):
    """Pre-LayerNorm self-attention and MLP; ``mask=None`` attends everywhere
    (bidirectional, as Genie's MaskGIT dynamics model)."""

    d_model: int
    num_heads: int

    @nn.compact
    def __call__(self, x, mask):
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(h, h, mask=mask)
        h = nn.LayerNorm()(x)
        h = nn.Dense(self.d_model)(nn.gelu(nn.Dense(4 * self.d_model)(h)))
        return x + h


class CausalTransformer(nn.Module):
    """``tokens (..., length) -> logits (..., length, vocab_size)``, shifted (see above)."""

    vocab_size: int
    length: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4

    @nn.compact
    def __call__(self, tokens):
        bos = jnp.full(tokens.shape[:-1] + (1,), self.vocab_size, tokens.dtype)
        inputs = jnp.concatenate([bos, tokens[..., :-1]], axis=-1)
        x = nn.Embed(self.vocab_size + 1, self.d_model)(inputs)
        position = self.param("position", nn.initializers.normal(0.02),
                              (self.length, self.d_model))
        x = x + position[: tokens.shape[-1]]
        mask = nn.make_causal_mask(inputs)
        for _ in range(self.num_layers):
            x = Block(self.d_model, self.num_heads)(x, mask)
        return nn.Dense(self.vocab_size)(nn.LayerNorm()(x))


def token_log_probs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """``log p(token_i | tokens_<i)`` for every position: shape of ``tokens``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
