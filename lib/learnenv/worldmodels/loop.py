"""Gradient steps as a Python loop over one jitted update, resumable.

The world models that see frames (the diffusion model, Genie's latent action
and dynamics models) train with convolutions or attention over images. On
XLA's CPU backend the gradient of a convolution inside a ``lax.scan`` ran about
20 times slower than the same jitted gradient called on its own (measured with
jax 0.10.2), and a Python dispatch per step costs far less than that. So these
fits call a jitted ``update`` once per step, in chunks: progress (tqdm) and
checkpoints come between chunks, through :func:`learnenv.checkpoint.run_resumable`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["adam_fit", "fit_steps"]


def adam_fit(tx, init_params: Callable, sample: Callable, loss: Callable):
    """``(init, update)`` of a model trained by one optax step per sampled batch.

    ``init(key) -> state`` initialises ``init_params(key)`` and the optimiser;
    ``update(state, *args) -> (state, metrics)`` draws ``sample(key, *args)`` and
    steps on ``loss(params, batch, key) -> (loss, metrics)``. The diffusion model
    and Genie's dynamics model share it; the latent action model has its own, as
    it also resets unused codes."""
    import optax

    def init(key):
        init_key, loop_key = jax.random.split(key)
        params = init_params(init_key)
        return {"params": params, "opt_state": tx.init(params), "key": loop_key}

    def update(state, *args):
        key, batch_key, loss_key = jax.random.split(state["key"], 3)
        batch = sample(batch_key, *args)
        grads, metrics = jax.grad(lambda p: loss(p, batch, loss_key),
                                  has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state, "key": key}, metrics

    return init, update


def fit_steps(update: Callable, state: Any, args: tuple, steps: int, chunk: int,
              checkpoint_dir=None, config: Any = None, fingerprint: Any = None,
              progress: bool | None = None, desc: str | None = None,
              evaluate: Callable | None = None) -> tuple[Any, dict, float]:
    """Run ``state, metrics = update(state, *args)`` ``steps`` times:
    ``(state, metrics, wall_clock_s)``, the metrics stacked one per step and the
    loop's time summed over every call that worked on this fit (a resumed fit
    reports its whole cost). With ``checkpoint_dir`` an interrupted fit resumes
    where it stopped (after the last whole chunk). ``evaluate(state) -> dict``,
    if given, runs after every chunk; its results, one per chunk, are
    ``metrics["evaluation"]`` (a learning curve, saved with the checkpoints)."""
    from learnenv.checkpoint import run_resumable

    def run_chunk(state, index):
        metrics = []
        for _ in range(min(chunk, steps - index * chunk)):
            state, m = update(state, *args)
            metrics.append(m)
        # A short last chunk is padded so that every chunk stacks to the same shape.
        metrics = jax.tree.map(lambda *xs: jnp.pad(jnp.stack(xs), (0, chunk - len(xs))),
                               *metrics)
        # A dict, not a tuple: checkpoints store metrics as dicts (string keys).
        out = {"steps": metrics}
        if evaluate:
            out["evaluation"] = evaluate(state)
        return state, out

    result = run_resumable(run_chunk, state, -(-steps // chunk), checkpoint_dir, config=config,
                           fingerprint=fingerprint, progress=progress, desc=desc)
    metrics = jax.tree.map(lambda x: x.reshape(-1)[:steps], result.metrics["steps"])
    if evaluate:
        metrics = {**metrics, "evaluation": result.metrics["evaluation"]}
    return result.state, metrics, result.wall_clock_s
