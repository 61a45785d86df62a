"""Long loops that survive interruption: checkpoint periodically, resume exactly.

Every loop over generations or epochs in the book runs through
:func:`run_resumable`::

    def step(state, generation):            # pure Python around jitted work
        es_state, key = state
        key, ask_key, tell_key = jax.random.split(key, 3)
        ...
        return (es_state, key), {"best_fitness": fitness.min()}

    out = run_resumable(step, (es_state, key), num_iterations=200,
                        checkpoint_dir="runs/snes", config=config)
    out.state, out.metrics["best_fitness"]   # metrics stacked: shape (200,)

The state is any pytree (ES states, optimiser states, typed or raw PRNG keys,
Python numbers). Every ``every`` iterations, and when the loop is interrupted
(Ctrl-C, a crash in ``step_fn``, a notebook's stop button), the state and the
metrics so far are written to ``checkpoint_dir``. Calling again with the same
arguments continues from the last checkpoint, and because the whole state,
keys included, is saved bit for bit, the final state and metrics are identical
to those of an uninterrupted run. A finished run is not recomputed: calling
again returns it at once, so re-executing a notebook is cheap.

A checkpoint belongs to one run: it stores a fingerprint of the config, of the
structure of the initial state and of its values (the seed), and refuses to
resume a different run with a message saying what differs. The values are
checked to the bit or, failing that, by a summary that tolerates the last-bit
differences of floats computed on other hardware, so that a run started on a
GPU resumes or finishes on a laptop (see :func:`_values_summary`).

Weak types cannot be saved (a loaded array is strongly typed), so the loop
hands ``step_fn`` strongly typed states only, fresh or resumed: both trace and
compute alike.

Why not orbax's ``CheckpointManager``: we checked orbax-checkpoint 0.12. It
writes each step as a directory of about a dozen files (OCDBT binary shards,
``_METADATA``, ``_CHECKPOINT_METADATA``, ``commit_success.txt``) and saves on
background threads (``wait_until_finished``). Our checkpoints are the same
readable ``.json`` + ``.msgpack`` pair as every other learnenv checkpoint
(hash-checked, with provenance and the run's fingerprint), and the save made
when the loop is interrupted (Ctrl-C) must finish before the exception
propagates, which a synchronous write of two small files does simply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from flax import serialization

from learnenv import io
from learnenv import provenance as _provenance

__all__ = ["run_resumable", "ResumableResult", "RunMismatchError", "latest_checkpoint",
           "progress_enabled"]

PROGRESS_ENV_VAR = "LEARNENV_PROGRESS"
_NAME_RE = re.compile(r"^state-(\d{8,})\.json$")


@dataclasses.dataclass(frozen=True)
class ResumableResult:
    state: Any  # the state after num_iterations iterations
    metrics: Any  # per-iteration metrics stacked on a leading axis (numpy), or None
    start_iteration: int  # where this call started (0 unless it resumed)
    num_iterations: int
    wall_clock_s: float  # loop time summed over every call that worked on this run
    checkpoint: Path | None  # the last checkpoint written or read


class RunMismatchError(io.CheckpointError):
    """The checkpoint directory holds a checkpoint of a different run."""


def progress_enabled(progress: bool | None = None) -> bool:
    """``progress`` if given, else ``$LEARNENV_PROGRESS`` (default on; "0" turns bars off)."""
    if progress is not None:
        return bool(progress)
    return os.environ.get(PROGRESS_ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def _checkpoint_name(directory: Path, iteration: int) -> Path:
    return directory / f"state-{iteration:08d}"


def _list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    matches = (_NAME_RE.match(p.name) for p in directory.iterdir())
    return sorted((int(m.group(1)), directory / m.string[: -len(".json")]) for m in matches if m)


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint in ``checkpoint_dir`` (by iteration), or ``None``."""
    found = _list_checkpoints(Path(checkpoint_dir))
    return found[-1][1] if found else None


def _hash_leaves(tree: Any) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        if io.is_prng_key(leaf):
            leaf = jax.random.key_data(leaf)
        arr = np.asarray(leaf)
        h.update(f"{arr.dtype.name}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


SUMMARY_RTOL, SUMMARY_ATOL = 1e-4, 1e-6


def _values_summary(tree: Any) -> dict[str, Any]:
    """What identifies ``tree``'s values across machines: integer and key leaves exactly
    (their hash), each float leaf by its mean and mean absolute value.

    Why: the same seed initialises networks with floats that differ in their last
    bits on a GPU and on a CPU, so the exact hash of the initial state cannot tell
    a run moved to another machine from another run; these summaries agree to about
    1e-7 between machines but differ by far more between seeds (and the keys, hashed
    exactly, differ too). Non-finite summaries are kept as text ("inf", "nan").
    """
    leaves = [jax.random.key_data(x) if io.is_prng_key(x) else x
              for x in jax.tree_util.tree_leaves(tree)]
    floats, others = [], []
    for leaf in leaves:
        arr = np.asarray(leaf)
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            others.append(arr)
            continue
        x = arr.astype(np.float64).ravel()
        pair = (x.mean(), np.abs(x).mean()) if x.size else (0.0, 0.0)
        floats.append([float(v) if np.isfinite(v) else str(float(v)) for v in pair])
    return {"floats": floats, "others_sha256": _hash_leaves(others)}


def _summaries_agree(saved: Any, now: Mapping[str, Any]) -> bool:
    """Same integer bits and every float summary within ``SUMMARY_ATOL + SUMMARY_RTOL *``
    the leaf's mean absolute value (a checkpoint without a summary: never)."""
    if not isinstance(saved, Mapping) or saved.get("others_sha256") != now["others_sha256"]:
        return False
    pairs = saved.get("floats")
    if not isinstance(pairs, list) or len(pairs) != len(now["floats"]):
        return False
    for old, new in zip(pairs, now["floats"]):
        if old == new:
            continue
        if any(isinstance(v, str) for v in (*old, *new)):  # "inf" or "nan" must match
            return False
        tolerance = SUMMARY_ATOL + SUMMARY_RTOL * max(abs(old[1]), abs(new[1]))
        if any(abs(a - b) > tolerance for a, b in zip(old, new)):
            return False
    return True


def _fingerprint(config: Any, fingerprint: Any, init_state: Any,
                 extendable: tuple[str, ...] = ()) -> dict[str, Any]:
    meta = io.config_meta(config)
    if meta is not None and extendable:
        meta = {**meta, "values": {k: v for k, v in meta["values"].items() if k not in extendable}}
    return {
        "config": meta,
        "fingerprint": io.to_jsonable(fingerprint),
        "state_structure": io.tree_spec(init_state),
        "init_state_sha256": _hash_leaves(init_state),
        "init_state_summary": _values_summary(init_state),
    }


def _first_diff(saved: Any, now: Any, path: str = "") -> str:
    if isinstance(saved, dict) and isinstance(now, dict):
        for k in list(saved) + [k for k in now if k not in saved]:
            if k not in now:
                return f"{path}{k} is only in the checkpoint"
            if k not in saved:
                return f"{path}{k} is new"
            if saved[k] != now[k]:
                return _first_diff(saved[k], now[k], f"{path}{k}.")
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        for i, (a, b) in enumerate(zip(saved, now)):
            if a != b:
                return _first_diff(a, b, f"{path}{i}.")
    return f"{path.rstrip('.') or 'value'}: {json.dumps(saved)} in the checkpoint, {json.dumps(now)} now"


def _check_fingerprint(saved: Mapping[str, Any], now: Mapping[str, Any], where: Path) -> None:
    checks = (("config", "the config differs"), ("fingerprint", "the fingerprint differs"),
              ("state_structure", "the state's structure, shapes or dtypes differ"))
    problems = [f"{what} ({_first_diff(saved.get(entry), now[entry])})"
                for entry, what in checks if saved.get(entry) != now[entry]]
    same_structure = saved.get("state_structure") == now["state_structure"]
    same_values = (saved.get("init_state_sha256") == now["init_state_sha256"]
                   or _summaries_agree(saved.get("init_state_summary"), now["init_state_summary"]))
    if same_structure and not same_values:
        problems.append("the initial state has different values (another seed or initialisation?)")
    if problems:
        raise RunMismatchError(
            f"The checkpoint in {where} belongs to a different run: {'; '.join(problems)}. "
            f"Delete {where} or choose another checkpoint_dir to start this run afresh."
        )


def _check_same_type(init_state: Any, new_state: Any) -> None:
    """step_fn must keep the state's structure, shapes and dtypes (as lax.scan requires)."""
    a, b = io.tree_spec(init_state), io.tree_spec(new_state)
    if a != b or jax.tree.structure(init_state) != jax.tree.structure(new_state):
        raise TypeError(
            "step_fn returned a state whose structure, shapes or dtypes differ from "
            f"init_state ({_first_diff(a, b).replace('in the checkpoint', 'in init_state')}); "
            "a resumed run would not match an uninterrupted one."
        )


def _strongly_typed(tree: Any) -> Any:
    """``tree`` with weakly typed arrays made strong (same dtype and values)."""
    return jax.tree.map(
        lambda x: jax.lax.convert_element_type(x, x.dtype) if getattr(x, "weak_type", False) else x,
        tree,
    )


def _concat(saved: Any, new: list[Any]) -> Any:
    """The metrics ``saved`` so far followed by the ``new`` iterations' ones, stacked."""
    if not new:
        return saved
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *new)
    if saved is None:
        return stacked
    saved = serialization.from_state_dict(stacked, saved)  # loaded as dicts: into step_fn's form
    return jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b]), saved, stacked)


def _load_latest(directory: Path, init_state: Any, prints: dict) -> tuple[io.Checkpoint | None, Path | None]:
    """The newest readable checkpoint whose fingerprint matches (older ones if the newest is corrupt)."""
    for iteration, path in reversed(_list_checkpoints(directory)):
        try:
            meta = io.read_meta(path)
            _check_fingerprint(meta.get("extra", {}).get("fingerprint", {}), prints, directory)
            ckpt = io.load(path, like=init_state)
        except (RunMismatchError, io.TemplateMismatchError, io.OldFormatError):
            raise
        except io.CheckpointError as err:
            warnings.warn(f"Skipping unreadable checkpoint {path}: {err}", stacklevel=3)
            continue
        return ckpt, path
    return None, None


def _scalar_postfix(metrics: Any, limit: int = 4) -> dict[str, str]:
    if not isinstance(metrics, Mapping):
        return {}
    out = {}
    for k, v in metrics.items():
        arr = np.asarray(v) if not isinstance(v, Mapping) else None
        if arr is not None and arr.size == 1 and arr.dtype.kind in "fiub":
            out[str(k)] = f"{arr.item():.4g}"
        if len(out) >= limit:
            break
    return out


def run_resumable(
    step_fn: Callable[[Any, int], tuple[Any, Any]],
    init_state: Any,
    num_iterations: int,
    checkpoint_dir: str | os.PathLike | None = None,
    *,
    every: int = 5,
    every_seconds: float | None = None,
    keep: int = 2,
    config: Any = None,
    fingerprint: Any = None,
    progress: bool | None = None,
    desc: str | None = None,
    kind: str = "resume-state",
    extendable: tuple[str, ...] = (),
) -> ResumableResult:
    """Run ``state, metrics = step_fn(state, i)`` for ``i`` in ``range(num_iterations)``.

    ``checkpoint_dir``: where checkpoints go (``None``: no checkpoints, same loop).
    On start the newest checkpoint there is loaded and the loop continues after
    it; a checkpoint of another run (different ``config``, ``fingerprint``,
    state structure or initial state) is refused. A checkpoint is written after
    every ``every`` iterations (0: never periodically), or when
    ``every_seconds`` have passed since the last one, after the last iteration,
    and when the loop is interrupted by any exception (which is then re-raised,
    with a note saying where progress was saved). Only the newest ``keep``
    checkpoints are kept.

    ``extendable``: names of ``config`` fields that only say how far to run
    (such as a number of generations) and so are left out of the fingerprint:
    a finished run resumes and goes on when asked for more iterations.

    ``metrics`` returned by ``step_fn`` (any pytree of scalars or arrays, or
    ``None``) are moved to the host each iteration, stacked on a leading axis
    and saved with the state. ``progress`` shows a tqdm bar (``None``: on
    unless ``$LEARNENV_PROGRESS=0``) with the latest scalar metrics.
    """
    if int(num_iterations) != num_iterations or num_iterations < 0:
        raise ValueError(f"num_iterations must be a non-negative integer, not {num_iterations!r}.")
    if every < 0 or keep < 1:
        raise ValueError(f"every must be >= 0 and keep >= 1 (got every={every}, keep={keep}).")
    num_iterations = int(num_iterations)
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    init_state = _strongly_typed(init_state)

    state, start, saved_metrics, elapsed_before, last_path = init_state, 0, None, 0.0, None
    prints = None
    if directory is not None:
        prints = _fingerprint(config, fingerprint, init_state, tuple(extendable))
        ckpt, last_path = _load_latest(directory, init_state, prints)
        if ckpt is not None:
            start = int(ckpt.extra["iteration"])
            if start > num_iterations:
                raise io.CheckpointError(
                    f"The checkpoint {last_path} is at iteration {start}, past the "
                    f"num_iterations={num_iterations} asked for; its state cannot be rewound. "
                    "Ask for at least as many iterations or use another checkpoint_dir."
                )
            state = ckpt.params
            if ckpt.metrics is not None:
                saved_metrics = jax.tree_util.tree_map(np.asarray, ckpt.metrics)
            elapsed_before = float(ckpt.extra.get("wall_clock_s", 0.0))
    record = _provenance.collect() if directory is not None else None

    history: list[Any] = []
    done = start  # iterations completed; state and history[: done - start] match it
    saved_at = start
    t_start = time.perf_counter()
    t_saved = t_start

    def write(iteration: int, current_state: Any) -> Path:
        nonlocal last_path, saved_at, t_saved
        metrics = _concat(saved_metrics, history[: iteration - start])
        wall = elapsed_before + time.perf_counter() - t_start
        path = io.save(
            _checkpoint_name(directory, iteration),
            params=current_state,  # not device_get: that would drop weak types
            metrics=metrics, config=config, kind=kind, wall_clock_s=wall, provenance=record,
            extra={"iteration": iteration, "num_iterations": num_iterations,
                   "wall_clock_s": wall, "fingerprint": prints},
        )
        found = _list_checkpoints(directory)
        newer = [p for it, p in found if it > iteration]  # unreadable ones skipped on resume
        older = [p for it, p in found if it <= iteration][:-keep]
        for old in newer + older:
            for file in io.checkpoint_files(old):  # metadata first: never a lone .json
                file.unlink(missing_ok=True)
        last_path, saved_at, t_saved = path, iteration, time.perf_counter()
        return path

    from tqdm.auto import tqdm

    bar = tqdm(total=num_iterations, initial=start, desc=desc,
               disable=not progress_enabled(progress), dynamic_ncols=True)
    try:
        for i in range(start, num_iterations):
            new_state, metrics = step_fn(state, i)
            if i == start:
                _check_same_type(init_state, new_state)
            metrics = jax.device_get(metrics)
            history.append(metrics)
            # CPython runs signal handlers (Ctrl-C) only at calls and loop jumps, never
            # between these two stores: an interrupt sees both updated or neither.
            state, done = _strongly_typed(new_state), i + 1
            bar.update(1)
            postfix = _scalar_postfix(metrics)
            if postfix:
                bar.set_postfix(postfix, refresh=False)
            if directory is not None and done < num_iterations:
                periodic = every > 0 and done % every == 0
                timely = every_seconds is not None and time.perf_counter() - t_saved >= every_seconds
                if periodic or timely:
                    write(done, state)
    except BaseException as err:
        if directory is not None and done > saved_at:
            try:
                path = write(done, state)
                err.add_note(
                    f"learnenv: progress up to iteration {done} of {num_iterations} was saved in "
                    f"{path}; call again with the same arguments to resume."
                )
            except Exception as save_err:  # keep the original error; say why saving failed
                err.add_note(f"learnenv: could not save progress: {save_err}")
        raise
    finally:
        bar.close()

    if directory is not None and (done > saved_at or last_path is None):
        write(done, state)
    return ResumableResult(
        state=state,
        metrics=_concat(saved_metrics, history),
        start_iteration=start,
        num_iterations=num_iterations,
        # a finished run read back did no work: its time stays the checkpoint's
        wall_clock_s=elapsed_before + (time.perf_counter() - t_start if done > start else 0.0),
        checkpoint=last_path,
    )
