"""A small conditional U-Net: the denoiser of a diffusion world model.

DIAMOND's denoiser is a U-Net whose residual blocks are told the noise level
and the action through adaptive group normalisation: the conditioning vector
gives each block a scale and a shift of its normalised features. This is the
same design at laptop scale: two resolutions, one residual block each way,
skip connections between them.

    net = UNet(channels=(32, 64), out_channels=1)
    y = net.apply(params, x, cond)   # x: (B, H, W, C), cond: (B, D) -> (B, H, W, 1)
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["UNet", "ResBlock"]


def _groups(channels: int) -> int:
    """Group normalisation's groups: 8, or fewer for narrow layers."""
    for groups in (8, 4, 2):
        if channels % groups == 0:
            return groups
    return 1


class ResBlock(nn.Module):
    """norm -> scale/shift from ``cond`` -> swish -> conv, twice, plus the input."""

    channels: int

    @nn.compact
    def __call__(self, x, cond):
        skip = x if x.shape[-1] == self.channels else nn.Conv(self.channels, (1, 1))(x)
        scale, shift = jnp.split(nn.Dense(2 * self.channels)(cond), 2, axis=-1)
        h = nn.GroupNorm(_groups(x.shape[-1]))(x)
        h = nn.Conv(self.channels, (3, 3))(nn.swish(h))
        h = nn.GroupNorm(_groups(self.channels), use_scale=False, use_bias=False)(h)
        h = h * (1.0 + scale[..., None, None, :]) + shift[..., None, None, :]
        # Zero-initialised last convolution: each block starts as the identity.
        h = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros)(nn.swish(h))
        return skip + h


class UNet(nn.Module):
    """Down through ``channels`` (halving the resolution after each level but the
    last), then up with skip connections; a 3x3 convolution to ``out_channels``."""

    channels: Sequence[int] = (32, 64)
    out_channels: int = 1

    @nn.compact
    def __call__(self, x, cond):
        cond = nn.swish(nn.Dense(4 * self.channels[0])(cond))
        h = nn.Conv(self.channels[0], (3, 3))(x)
        skips = []
        for level, width in enumerate(self.channels):
            h = ResBlock(width)(h, cond)
            if level < len(self.channels) - 1:
                skips.append(h)
                h = nn.Conv(width, (3, 3), strides=(2, 2))(h)
        for width, skip in zip(reversed(self.channels[:-1]), reversed(skips)):
            b, hh, ww, c = h.shape
            h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
            h = ResBlock(width)(jnp.concatenate([h, skip], axis=-1), cond)
        h = nn.swish(nn.GroupNorm(_groups(h.shape[-1]))(h))
        return nn.Conv(self.out_channels, (3, 3))(h)
