"""How wrong a learned environment is: one step, and many steps open loop.

A model used as an environment feeds its own predictions back in. An error of
1% per step then compounds: after ``k`` steps the state can be far from any the
model was trained on, and its next prediction is worse still. The test replays
the recorded actions of held-out episodes: the model sees the real
observations for ``context`` steps (a recurrent model warms its memory up),
then runs open loop, and the error at horizon ``k`` is measured against what
really happened ``k`` steps later. ``context`` equal to the episode length
gives the one-step (teacher-forced) error.

Errors are root mean squared errors of the observation in units of the
training data's standard deviation per component, so components and tasks
compare; 1.0 is as wrong as guessing the mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learnenv.worldmodels.base import Stats, WorldModel, ensemble_carry, ensemble_predict
from learnenv.worldmodels.data import Episodes

__all__ = ["replay", "one_step_error", "open_loop_error"]


def replay(model: WorldModel, nets, stats: Stats, episodes: Episodes, context: int):
    """The ensemble-mean predictions ``(next_obs, reward, done_logit)`` along each
    episode's recorded actions, open loop from step ``context`` on."""

    def one_episode(ep):
        def step(carry, x):
            memory, model_obs, t = carry
            real_obs, action = x
            obs = jnp.where(t < context, real_obs, model_obs)
            memory, next_obs, reward, done_logit = ensemble_predict(
                model, nets, stats, memory, obs, action)
            mean = next_obs.mean(0), reward.mean(0), done_logit.mean(0)
            return (memory, mean[0], t + 1), mean

        carry = (ensemble_carry(model, nets), ep.obs[0], jnp.zeros((), jnp.int32))
        return jax.lax.scan(step, carry, (ep.obs, ep.action))[1]

    return jax.vmap(one_episode)(episodes)


def _state_error(next_obs, episodes: Episodes, stats: Stats):
    return jnp.sqrt(jnp.mean(jnp.square((next_obs - episodes.next_obs) / stats.obs_std), -1))


def one_step_error(model: WorldModel, nets, stats: Stats, episodes: Episodes) -> dict:
    """Teacher-forced errors over every real step: state RMSE (in stds), reward
    absolute error, and how often termination is predicted right (on all steps,
    and on the terminal steps alone, which are rare)."""
    length = episodes.mask.shape[1]
    next_obs, reward, done_logit = replay(model, nets, stats, episodes, context=length)
    mask, n = episodes.mask, episodes.mask.sum()
    terminal = episodes.terminated.astype(jnp.float32) * mask
    correct = ((done_logit > 0) == episodes.terminated).astype(jnp.float32)
    return {
        "state_rmse": (_state_error(next_obs, episodes, stats) * mask).sum() / n,
        "reward_abs_error": (jnp.abs(reward - episodes.reward) * mask).sum() / n,
        "done_accuracy": (correct * mask).sum() / n,
        "terminal_recall": (correct * terminal).sum() / jnp.maximum(terminal.sum(), 1.0),
    }


def open_loop_error(model: WorldModel, nets, stats: Stats, episodes: Episodes,
                    horizon: int, context: int = 1) -> jax.Array:
    """Mean state error ``k`` steps after the last real observation (the
    ``context``-th), for ``k = 1 .. horizon``; an episode counts only up to its end."""
    if context < 1 or context - 1 + horizon > episodes.mask.shape[1]:
        raise ValueError(f"context={context} must be >= 1 and context - 1 + horizon={horizon} "
                         f"at most the episodes' length {episodes.mask.shape[1]}.")
    next_obs, _, _ = replay(model, nets, stats, episodes, context)
    # The prediction made from the last real observation (step context - 1) is 1 step ahead.
    window = slice(context - 1, context - 1 + horizon)
    error = _state_error(next_obs, episodes, stats)[:, window]
    mask = episodes.mask[:, window]
    return (error * mask).sum(0) / jnp.maximum(mask.sum(0), 1.0)
