"""Play an environment by hand, and record a rollout as an animation.

A learned simulator is an environment, so a person can play it: :class:`Panel`
shows its current frame and one button per action; pressing a button steps the
environment and shows the next frame (ipywidgets, in Jupyter and in Colab with
its custom widget manager enabled). A static book cannot run a kernel, so
:func:`animation` turns recorded frames into an HTML animation that plays in
the built page.

    panel = Panel(env, env_params, jax.random.key(0), ["no-op", "left", "right"])
    panel            # the widget, in a notebook
    panel.press(1)   # what the "left" button does
"""

from __future__ import annotations

import io
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

__all__ = ["Panel", "animation", "png"]


def _last_frame(obs) -> np.ndarray:
    """A frame stack's newest frame, or the frame itself."""
    obs = np.asarray(obs)
    return obs[-1] if obs.ndim == 3 else obs


def png(frame, scale: int = 24) -> bytes:
    """A grayscale frame in [0, 1] as PNG bytes, each pixel a ``scale``-pixel square."""
    import matplotlib.image

    big = np.kron(np.clip(np.asarray(frame, np.float32), 0.0, 1.0), np.ones((scale, scale)))
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, big, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


class Panel:
    """Buttons that step ``env`` and an image of its newest frame.

    ``start``: ``(obs, state)`` to begin from (for example a learned simulator's
    ``prompt(frame)``); by default a reset. ``frame_of(obs)`` picks the frame to
    show (default: the newest of a frame stack). An episode that ends starts
    again from ``start``. ``history`` keeps every frame shown, ``rewards`` every
    reward.
    """

    def __init__(self, env, env_params, key: jax.Array, action_names: Sequence[str],
                 start: tuple[Any, Any] | None = None,
                 frame_of: Callable[[Any], np.ndarray] = _last_frame, scale: int = 24):
        import ipywidgets as widgets

        num_actions = env.action_space(env_params).n
        if len(action_names) != num_actions:
            raise ValueError(f"Panel: {len(action_names)} action names for {num_actions} "
                             "actions.")
        self.env, self.env_params, self.frame_of, self.scale = env, env_params, frame_of, scale
        self._step = jax.jit(env.step)
        self._key, reset_key = jax.random.split(key)
        self._start = start if start is not None else jax.jit(env.reset)(reset_key, env_params)
        self.obs, self.state = self._start
        self.history = [self.frame_of(self.obs)]
        self.rewards: list[float] = []
        self.image = widgets.Image(value=png(self.history[-1], scale), format="png")
        self.buttons = [widgets.Button(description=name) for name in action_names]
        for action, button in enumerate(self.buttons):
            button.on_click(lambda _, action=action: self.press(action))
        self.status = widgets.HTML("step 0")
        self.widget = widgets.VBox([self.image, widgets.HBox(self.buttons), self.status])

    def press(self, action: int) -> np.ndarray:
        """Step with ``action``; returns the frame now shown."""
        self._key, step_key = jax.random.split(self._key)
        obs, state, reward, terminated, truncated, _ = self._step(
            step_key, self.state, action, self.env_params)
        self.rewards.append(float(reward))
        done = bool(terminated) or bool(truncated)
        self.obs, self.state = self._start if done else (obs, state)
        self.history.append(self.frame_of(self.obs))
        self.image.value = png(self.history[-1], self.scale)
        self.status.value = (f"step {len(self.rewards)}, reward {self.rewards[-1]:.2f}, "
                             f"return {sum(self.rewards):.2f}" + (" (episode ended)" if done else ""))
        return self.history[-1]

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def animation(rows: Mapping[str, Sequence[np.ndarray]], interval: int = 250, size: float = 2.0):
    """An HTML animation (``IPython.display.HTML``) of frame sequences side by side:
    ``rows`` maps a title to its frames ``(T, H, W)``; all play in step."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib import animation as mpl_animation

    titles = list(rows)
    sequences = [np.asarray(rows[t]) for t in titles]
    length = min(len(s) for s in sequences)
    fig, axes = plt.subplots(1, len(titles), figsize=(size * len(titles), size + 0.4),
                             squeeze=False)
    images = []
    for ax, title, frames in zip(axes[0], titles, sequences):
        images.append(ax.imshow(frames[0], cmap="gray", vmin=0.0, vmax=1.0))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])  # no ticks, but the frame's border stays: bright cells
        ax.set_yticks([])  # (Breakout's bricks) would otherwise merge with the page

    def draw(t):
        for image, frames in zip(images, sequences):
            image.set_data(frames[t])
        fig.suptitle(f"step {t + 1}", fontsize=9)
        return images

    anim = mpl_animation.FuncAnimation(fig, draw, frames=length, interval=interval)
    html = HTML(anim.to_jshtml(default_mode="loop"))
    plt.close(fig)
    return html
