"""Frames from observations, drawn in JAX.

gymnax renders classic control through pygame: outside JAX, one frame at a
time. A video model that scores an agent's every step (the VIPER reward) or a
world model that predicts pixels needs frames inside the jitted training
step, so these renderers are pure ``jnp`` functions of the observation: vmap
them over a batch, call them inside ``env.step``.

A frame is a grayscale ``float32`` image in [0, 1] of shape ``(size, size)``.
Lines have soft edges (the intensity falls linearly over one pixel with the
distance to the shape), so a small change of angle changes the frame a
little instead of flipping whole pixels: nearby states give nearby frames.

``score=True`` draws a score display into the bottom rows: a bar whose length
is the step's task reward, as a game shows its score. The VIPER chapter uses
it to show how a displayed score leaks the reward into a video model, and
:func:`mask_score` blanks it again.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["pendulum", "cartpole", "minatar", "mask_score", "renderer", "names",
           "scene_samples", "SCORE_ROWS", "CLASSIC", "MINATAR"]

SCORE_ROWS = 2  # the bottom rows that hold the score display
_PENDULUM_MAX_COST = jnp.pi ** 2 + 0.1 * 8.0 ** 2  # Pendulum-v1's cost without the torque term


def _grid(size: int):
    """Pixel centres: rows and columns of a ``size`` x ``size`` image."""
    coords = jnp.arange(size, dtype=jnp.float32) + 0.5
    return coords[:, None], coords[None, :]


def _segment(size: int, start, end, half_width: float) -> jax.Array:
    """A soft line from ``start`` to ``end`` ((row, col) in pixels)."""
    rows, cols = _grid(size)
    start, end = jnp.asarray(start, jnp.float32), jnp.asarray(end, jnp.float32)
    direction = end - start
    length2 = jnp.maximum(direction @ direction, 1e-6)
    along = ((rows - start[0]) * direction[0] + (cols - start[1]) * direction[1]) / length2
    along = jnp.clip(along, 0.0, 1.0)
    distance = jnp.hypot(rows - start[0] - along * direction[0],
                         cols - start[1] - along * direction[1])
    return jnp.clip(half_width + 0.5 - distance, 0.0, 1.0)


def _bar(size: int, fraction) -> jax.Array:
    """The score display: the bottom rows filled from the left to ``fraction``."""
    _, cols = _grid(size)
    filled = jnp.clip(jnp.clip(fraction, 0.0, 1.0) * size - (cols - 0.5), 0.0, 1.0)
    rows = jnp.arange(size)[:, None] >= size - SCORE_ROWS
    return jnp.where(rows, filled, 0.0)


def pendulum(obs: jax.Array, size: int = 16, score: bool = False) -> jax.Array:
    """Pendulum-v1 from its observation ``(cos theta, sin theta, theta_dot)``.

    A rod from the pivot, as gym draws it (``theta = 0`` points up). The frame
    shows the angle only: the velocity must be read from several frames, as
    in a real video. With ``score``, the bar shows ``1 - cost / max_cost``
    with Pendulum's cost ``theta^2 + 0.1 theta_dot^2`` (the torque term is not
    visible in a frame).
    """
    cos, sin, velocity = obs[0], obs[1], obs[2]
    usable = size - SCORE_ROWS  # the pendulum stays above the score display
    pivot = jnp.array([usable // 2 + 0.5, size // 2 + 0.5])  # a pixel's centre
    length = 0.42 * usable
    tip = pivot + length * jnp.stack([-cos, -sin])
    frame = _segment(size, pivot, tip, half_width=0.5)
    if score:
        theta = jnp.arctan2(sin, cos)
        cost = theta ** 2 + 0.1 * velocity ** 2
        frame = jnp.maximum(frame, _bar(size, 1.0 - cost / _PENDULUM_MAX_COST))
    return frame


def cartpole(obs: jax.Array, size: int = 16, score: bool = False) -> jax.Array:
    """CartPole-v1 from its observation ``(x, x_dot, theta, theta_dot)``.

    A cart (a short thick line) on the track, with the pole from its top. The
    track spans CartPole's limits ``|x| <= 2.4``. CartPole's reward is 1 on
    every step, so its score display is a full bar while the episode runs.
    """
    x, theta = obs[0], obs[2]
    usable = size - SCORE_ROWS
    centre = size / 2 + jnp.clip(x / 2.4, -1.0, 1.0) * (size / 2 - 2)
    cart_row = 0.8 * usable
    cart = _segment(size, (cart_row, centre - 1.5), (cart_row, centre + 1.5), half_width=0.7)
    length = 0.6 * usable
    tip = jnp.stack([cart_row - length * jnp.cos(theta), centre + length * jnp.sin(theta)])
    frame = jnp.maximum(cart, _segment(size, jnp.stack([cart_row, centre]), tip, 0.5))
    if score:
        frame = jnp.maximum(frame, _bar(size, 1.0))
    return frame


def minatar(obs: jax.Array) -> jax.Array:
    """A MinAtar observation ``(10, 10, channels)`` of booleans as one grayscale frame.

    MinAtar's frames are already small images: each object type has its own
    channel. Channel ``c`` gets the gray level ``(c + 1) / channels`` and a
    cell shows its highest set channel (empty cells are 0), so nothing is lost
    when no two objects share a cell.
    """
    channels = obs.shape[-1]
    levels = jnp.arange(1, channels + 1, dtype=jnp.float32) / channels
    return jnp.max(obs.astype(jnp.float32) * levels, axis=-1)


def mask_score(frames: jax.Array) -> jax.Array:
    """``frames`` (..., size, size) with the score display blanked, as VIPER masks
    the score of Atari games before the video model sees them."""
    return frames.at[..., -SCORE_ROWS:, :].set(0.0)


def _minatar_frame(obs: jax.Array, size: int = 10, score: bool = False) -> jax.Array:
    """MinAtar's grid as gray levels, each cell a ``size / 10`` pixel square."""
    if score:
        raise ValueError("MinAtar frames have no score display.")
    scale = size // obs.shape[0]
    return jnp.repeat(jnp.repeat(minatar(obs), scale, axis=0), scale, axis=1)


CLASSIC = ("CartPole-v1", "Pendulum-v1")  # drawn from flat state observations
MINATAR = ("Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar")
_RENDERERS: dict[str, Callable] = {"Pendulum-v1": pendulum, "CartPole-v1": cartpole,
                                   **{name: _minatar_frame for name in MINATAR}}


def _pendulum_states(key, n):
    angle_key, speed_key = jax.random.split(key)
    theta = jax.random.uniform(angle_key, (n,), minval=-jnp.pi, maxval=jnp.pi)
    speed = jax.random.uniform(speed_key, (n,), minval=-8.0, maxval=8.0)
    return jnp.stack([jnp.cos(theta), jnp.sin(theta), speed], axis=1)


def _cartpole_states(key, n):
    # Positions and angles up to CartPole's termination limits; velocities are not drawn.
    low = jnp.array([-2.4, -1.0, -0.21, -1.0])
    return jax.random.uniform(key, (n, 4), minval=low, maxval=-low)


_SCENES: dict[str, Callable] = {"Pendulum-v1": _pendulum_states, "CartPole-v1": _cartpole_states}


def scene_samples(env_name: str, key: jax.Array, n: int) -> jax.Array:
    """``n`` observations spread uniformly over what the renderer of ``env_name`` can
    show (every angle of the pendulum; every cart position and pole angle short of
    termination): frames of the scene, independent of any policy, for fitting
    an image tokenizer whose resolution is the same everywhere."""
    if env_name not in _SCENES:
        raise ValueError(f"No scene sampler for {env_name!r}; there are: {', '.join(_SCENES)}.")
    return _SCENES[env_name](key, n)


def names() -> list[str]:
    """The environments :func:`renderer` draws."""
    return sorted(_RENDERERS)


def renderer(env_name: str, size: int = 16, score: bool = False) -> Callable[[jax.Array],
                                                                            jax.Array]:
    """``frame(obs) -> (size, size)`` for ``env_name``; vmap it over a batch."""
    if env_name not in _RENDERERS:
        raise ValueError(f"No JAX renderer for {env_name!r}. Renderers exist for: "
                         f"{', '.join(names())}.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"renderer: size={size!r} must be an int >= 8 pixels.")
    if env_name in MINATAR and size % 10:
        raise ValueError(f"renderer: {env_name} draws its 10 x 10 grid; size={size} must be "
                         "a multiple of 10.")
    draw = _RENDERERS[env_name]
    return lambda obs: draw(jnp.asarray(obs, jnp.float32), size, score)
