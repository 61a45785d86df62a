"""Fitting a world model to episodes with optax: supervised learning, nothing more.

Windows of ``window`` consecutive steps are drawn uniformly over the real steps
of the dataset, and :func:`~learnenv.worldmodels.base.sequence_loss` scores the
model's one-step predictions on them. An ensemble is ``ensemble_size`` members
trained side by side (``jax.vmap``) from different initialisations and
different minibatches: where they disagree, the data said little, which is how
MBPO and PETS keep an agent from exploiting the model's errors.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from learnenv.config import Config, field
from learnenv.worldmodels.base import Stats, WorldModel, sequence_loss
from learnenv.worldmodels.data import Episodes

__all__ = ["FitConfig", "make_fit", "sample_windows"]


@dataclasses.dataclass(frozen=True)
class FitConfig(Config):
    steps: int = field(2_000, low=1, doc="gradient steps")
    batch_size: int = field(64, low=1, doc="windows per gradient step")
    window: int = field(8, low=1, doc="steps per window")
    burn_in: int = field(0, low=0, doc="first steps of a window that only warm up the memory")
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False)
    max_grad_norm: float = field(10.0, low=0.0, low_inclusive=False)
    ensemble_size: int = field(1, low=1, doc="members trained side by side")
    reward_weight: float = field(1.0, low=0.0)
    done_weight: float = field(1.0, low=0.0)

    def validate(self) -> None:
        if self.burn_in >= self.window:
            raise ValueError(f"FitConfig.burn_in={self.burn_in} must be less than "
                             f"window={self.window}: no step of a window would be scored.")


def sample_windows(episodes: Episodes, key: jax.Array, batch_size: int, window: int) -> Episodes:
    """``batch_size`` windows ``(batch_size, window, ...)`` starting at real steps.

    Steps past an episode's end (or past the array) are masked out.
    """
    num_episodes, length = episodes.mask.shape
    # Inverse CDF over the real steps: O(batch log N), where a categorical draw
    # would cost a random number per step of the whole dataset.
    cumulative = jnp.cumsum(episodes.mask.reshape(-1))
    u = jax.random.uniform(key, (batch_size,)) * cumulative[-1]
    start = jnp.searchsorted(cumulative, u, side="right")
    ep, t0 = start // length, start % length
    t = t0[:, None] + jnp.arange(window)[None, :]
    inside = t < length
    t = jnp.minimum(t, length - 1)
    rows = jax.tree.map(lambda x: x[ep[:, None], t], episodes)
    return rows.replace(mask=rows.mask * inside)


def make_fit(model: WorldModel, config: FitConfig):
    """``fit(key, episodes) -> (nets, stats, losses)``: pure and jittable.

    ``nets`` has a leading axis of ``ensemble_size`` members; ``losses`` is the
    training loss per step, ``(ensemble_size, steps)``.
    """
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                     optax.adam(config.learning_rate))

    def fit(key: jax.Array, episodes: Episodes):
        stats = Stats.of(episodes)

        def batch_loss(net, batch):
            losses, _ = jax.vmap(lambda w: sequence_loss(
                model, net, stats, w, config.burn_in, config.reward_weight,
                config.done_weight))(batch)
            return losses.mean()

        def member(key):
            init_key, loop_key = jax.random.split(key)
            net = model.init(init_key)

            def update(carry, key):
                net, opt_state = carry
                batch = sample_windows(episodes, key, config.batch_size, config.window)
                loss, grads = jax.value_and_grad(batch_loss)(net, batch)
                updates, opt_state = tx.update(grads, opt_state, net)
                return (optax.apply_updates(net, updates), opt_state), loss

            (net, _), losses = jax.lax.scan(update, (net, tx.init(net)),
                                            jax.random.split(loop_key, config.steps))
            return net, losses

        nets, losses = jax.vmap(member)(jax.random.split(key, config.ensemble_size))
        return nets, stats, losses

    return fit
