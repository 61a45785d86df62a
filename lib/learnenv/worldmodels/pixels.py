"""Frames for world models that predict pixels: datasets, windows, image metrics.

A pixel world model learns ``p(x_{t+1} | x_{t-k+1..t}, a_t)`` from rendered
episodes. :class:`FrameData` holds one source's episodes as frames (drawn in
JAX by :mod:`learnenv.envs.render`) with the actions as fixed-size vectors, so
that sources with different action spaces fit one model:

- a discrete action is its one-hot vector;
- a continuous action is divided by the action space's bound;
- either is padded with zeros to ``action_dim`` entries.

Before an episode's first frame the context repeats that frame, as a learned
environment prompted with one real frame must (:func:`window`).
:func:`psnr` and :func:`sharpness` measure predicted frames.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from learnenv import envs
from learnenv.envs import render
from learnenv.worldmodels.data import Episodes

__all__ = ["FrameData", "frame_data", "action_vector", "action_size", "window",
           "draw_steps", "sample_windows", "psnr", "sharpness"]


@struct.dataclass
class FrameData:
    """One source's episodes: ``frames`` ``(N, T + 1, H, W)`` (``x_0 .. x_T``) and
    per step ``(N, T, ...)`` the action vector, reward, termination and mask."""

    frames: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    mask: jax.Array

    @property
    def num_steps(self) -> int:
        return int(self.mask.sum())


@functools.lru_cache(maxsize=None)
def _action_space(env_name: str) -> tuple[bool, int, float]:
    """``(discrete, entries, bound)`` of ``env_name``'s action space."""
    env, env_params = envs.make(env_name)
    discrete = envs.is_discrete(env, env_params)
    bound = 1.0 if discrete else float(jnp.max(env.action_space(env_params).high))
    return discrete, envs.action_dim(env, env_params), bound


def action_size(env_name: str) -> int:
    """Entries of ``env_name``'s action vector: actions (discrete) or dimensions."""
    return _action_space(env_name)[1]


def action_vector(env_name: str, action: jax.Array, size: int) -> jax.Array:
    """``action`` of ``env_name`` as a vector of ``size`` entries (see the module)."""
    discrete, entries, bound = _action_space(env_name)
    if discrete:
        vector = jax.nn.one_hot(action, entries)
    else:
        vector = jnp.atleast_1d(jnp.asarray(action, jnp.float32)) / bound  # (..., dims)
    if vector.shape[-1] > size:
        raise ValueError(f"{env_name}'s actions need {vector.shape[-1]} entries; the model "
                         f"has action_dim={size}.")
    pad = [(0, 0)] * (vector.ndim - 1) + [(0, size - vector.shape[-1])]
    return jnp.pad(vector, pad)


def frame_data(env_name: str, episodes: Episodes, frame_size: int, action_dim: int) -> FrameData:
    """``episodes`` of ``env_name`` rendered as frames of ``frame_size`` pixels."""
    draw = render.renderer(env_name, frame_size)
    obs = jnp.concatenate([episodes.obs[:, :1], episodes.next_obs], axis=1)
    frames = jax.vmap(jax.vmap(draw))(obs.astype(jnp.float32))
    action = action_vector(env_name, episodes.action, action_dim)
    return FrameData(frames=frames, action=action, reward=episodes.reward,
                     terminated=episodes.terminated.astype(jnp.float32), mask=episodes.mask)


def window(frames: jax.Array, t: jax.Array, context: int) -> jax.Array:
    """The ``context`` frames ``x_{t-context+1} .. x_t`` of one episode's ``frames``;
    before the first frame, the first frame again."""
    index = jnp.maximum(t - jnp.arange(context - 1, -1, -1), 0)
    return frames[index]


def draw_steps(mask: jax.Array, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """``(episode, t)`` of ``n`` real steps drawn uniformly from a ``(N, T)`` step mask."""
    length = mask.shape[1]
    cumulative = jnp.cumsum(mask.reshape(-1))
    flat = jnp.searchsorted(cumulative, jax.random.uniform(key, (n,)) * cumulative[-1],
                            side="right")
    return flat // length, flat % length


def sample_windows(data: FrameData, key: jax.Array, n: int, context: int) -> dict:
    """``n`` real steps drawn uniformly: context, action, next frame, reward, termination."""
    episode, t = draw_steps(data.mask, key, n)
    return {"context": jax.vmap(lambda e, t: window(data.frames[e], t, context))(episode, t),
            "action": data.action[episode, t], "next": data.frames[episode, t + 1],
            "reward": data.reward[episode, t], "terminated": data.terminated[episode, t]}


def psnr(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """Peak signal-to-noise ratio (dB) of frames in [0, 1], per frame (last two axes)."""
    mse = jnp.mean(jnp.square(prediction - target), axis=(-2, -1))
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


def sharpness(frames: jax.Array) -> jax.Array:
    """Gradient energy per frame: the mean squared difference between neighbouring
    pixels. Blur spreads an edge over more pixels with smaller steps, so a blurred
    frame has less of it than the sharp frame it blurs."""
    dy = jnp.diff(frames, axis=-2)
    dx = jnp.diff(frames, axis=-1)
    return jnp.mean(jnp.square(dy), axis=(-2, -1)) + jnp.mean(jnp.square(dx), axis=(-2, -1))
