"""The experiments of the book, by name, for chapters and the command line.

An experiment is a function ``run(config, out_dir, key) -> dict`` plus a
``quick`` and a ``full`` config. A module in this package registers it::

    register(
        "ppo-cartpole",
        "PPO on CartPole-v1, many seeds in one vmapped call.",
        presets={"quick": PPOCartPole(num_seeds=8), "full": PPOCartPole(num_seeds=16)},
        run=run,
    )

``run`` writes figures (PNG) and checkpoints into ``out_dir`` and returns JSON-
friendly results (numbers, lists, arrays). Chapters call the same function (or
:func:`run_experiment`), so the book and ``python -m learnenv run NAME`` give the
same numbers.

Every module of this package is imported to find the experiments (for
``python -m learnenv list``), so keep module level light: define configs at
module level, but import agents, environments and brax inside ``run``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from learnenv.config import PRESETS, Config, preset_name, select

__all__ = ["Experiment", "register", "get", "names", "experiments", "discover", "run_experiment",
           "UnknownExperimentError"]

RunFn = Callable[[Config, Path, Any], Mapping[str, Any]]


class UnknownExperimentError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str  # one line
    presets: Mapping[str, Config]
    run: RunFn
    module: str

    def config(self, preset: str | None = None) -> Config:
        """The config of ``preset`` (``None``: from $LEARNENV_PRESET or the hardware)."""
        return select(self.presets, preset)


_registry: dict[str, Experiment] = {}
_import_errors: dict[str, str] = {}
_discovered = False


def register(name: str, description: str, presets: Mapping[str, Config],
             run: RunFn | None = None) -> Any:
    """Register an experiment; without ``run``, returns a decorator for it."""
    if run is None:
        return lambda fn: (register(name, description, presets, fn), fn)[1]
    if not name or name != name.strip() or " " in name:
        raise ValueError(f"Experiment name {name!r} must be a non-empty word (use dashes).")
    description = " ".join(description.split())
    if not description:
        raise ValueError(f"Experiment {name!r} needs a one-line description.")
    missing = [p for p in PRESETS if p not in presets]
    if missing:
        raise ValueError(f"Experiment {name!r} defines no config for preset(s) {missing}.")
    for p, cfg in presets.items():
        if not isinstance(cfg, Config):
            raise TypeError(f"Experiment {name!r}: preset {p!r} is a {type(cfg).__name__}, not a Config.")
    if not callable(run):
        raise TypeError(f"Experiment {name!r}: run must be callable.")
    module = getattr(run, "__module__", "?")
    old = _registry.get(name)
    if old is not None and old.module != module:
        raise ValueError(f"Experiment {name!r} is already registered by {old.module}.")
    exp = Experiment(name, description, dict(presets), run, module)
    _registry[name] = exp
    return exp


def discover() -> dict[str, str]:
    """Import every module of this package once (each registers its experiments).

    Returns the modules that failed to import, with their error; a broken
    module does not hide the others.
    """
    global _discovered
    if not _discovered:
        _discovered = True
        for info in pkgutil.iter_modules(__path__, prefix=__name__ + "."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception as err:  # report, keep listing the rest
                _import_errors[info.name] = f"{type(err).__name__}: {err}"
    return dict(_import_errors)


def experiments() -> dict[str, Experiment]:
    """All registered experiments, sorted by name."""
    discover()
    return dict(sorted(_registry.items()))


def names() -> list[str]:
    return list(experiments())


def get(name: str) -> Experiment:
    """The experiment ``name``; an unknown name raises an error listing the valid ones."""
    known = experiments()
    if name in known:
        return known[name]
    msg = f"Unknown experiment {name!r}. Valid experiments: {', '.join(known) or '(none)'}."
    if _import_errors:
        msg += " Modules that failed to import: " + "; ".join(
            f"{m} ({e})" for m, e in _import_errors.items()
        )
    raise UnknownExperimentError(msg)


def run_experiment(name: str, out_dir: str | Path, *, preset: str | None = None, seed: int = 0,
                   overrides: Mapping[str, Any] | None = None, config: Config | None = None,
                   command: list[str] | None = None) -> dict[str, Any]:
    """Run a registered experiment and write ``out_dir/results.json``; returns its content.

    ``config`` replaces the preset's config; ``overrides`` replace some of its
    fields. ``results.json`` holds the experiment's results, the config (with
    its class), preset, seed, figures written, provenance, wall-clock seconds
    and the command line.
    """
    import jax

    from learnenv import io, provenance

    exp = get(name)
    preset = preset_name(preset)
    cfg = config if config is not None else exp.config(preset)
    if overrides:
        cfg = cfg.replace(**overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = provenance.collect()["timestamp"]
    t0 = time.perf_counter()
    results = exp.run(cfg, out, jax.random.key(seed))
    wall = time.perf_counter() - t0
    if not isinstance(results, Mapping):
        raise TypeError(f"Experiment {name!r} returned {type(results).__name__}, not a dict.")
    record = {
        "experiment": name,
        "description": exp.description,
        "preset": preset,
        "seed": seed,
        "config": io.config_meta(cfg),
        "results": io.to_jsonable(dict(results)),
        "figures": sorted(str(p.relative_to(out)) for p in out.rglob("*.png")),
        "wall_clock_s": wall,
        "started": started,
        "command": command,
        "provenance": provenance.collect(wall_clock_s=wall),
    }
    io.write_json(out / "results.json", record)
    return record
