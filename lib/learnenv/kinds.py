"""The registry of kinds: what a checkpoint's ``"kind"`` may name, and how to build it.

A checkpoint's metadata is data. It says *which* registered kind it holds and
the keyword arguments to build one (its ``spec``); this registry, filled by
code, says *how*. Loading never imports a module or calls a function named in
a file: a name that is not registered is an error.

A kind is a name and a builder, ``builder(**spec) -> obj``. A class is a
builder, so the learned environments register themselves::

    @kinds.register("se")
    class SyntheticEnvironment(LearnedEnvironment): ...

Anything else that is built from JSON arguments registers a function, for
example a model that is not an environment, or an environment whose weights
come from files in another format::

    kinds.register("video-reward", lambda checkpoint_dir, frames=16:
                   VideoRewardModel(checkpoint_dir, frames))

    model = kinds.build("video-reward", {"checkpoint_dir": "models/vid", "frames": 8})

(The SCB paper's published SCBs are such a kind, ``"paper-scb"`` with spec
``{"task": "hopper"}``: :mod:`learnenv.synthetic.paper_scb` reads their weights
from the installed ``synthetic-gymnax`` package.)

:func:`learnenv.io.save_environment` saves any object with a registered
``kind``, a ``spec()`` (JSON kwargs for its builder) and ``default_params``
(the template its weights are restored into); :func:`learnenv.io.load_environment`
builds it back through this registry. A builder that reads its weights from
external files simply makes them its ``default_params``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["UnknownKindError", "register", "build", "builder", "names"]

_BUILDERS: dict[str, Callable[..., Any]] = {}


class UnknownKindError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0])


def register(name: str, builder: Callable[..., Any] | None = None):
    """Register ``builder`` under ``name``; without ``builder``, a class decorator.

    A class registered this way gets ``kind = name``. Registering another
    builder under a taken name is an error: a kind must mean one thing.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A kind's name must be a non-empty string, not {name!r}.")
    if builder is None:
        def decorate(cls):
            register(name, cls)
            cls.kind = name
            return cls
        return decorate
    taken = _BUILDERS.get(name)
    if taken is not None and taken is not builder:
        raise ValueError(f"Kind {name!r} is already registered to {taken!r}.")
    _BUILDERS[name] = builder
    return builder


# The kinds defined in learnenv, and the module whose import registers each (the list is
# code, never read from a file). A kind's module is imported only when that kind is asked
# for, so loading a checkpoint imports its own code and nothing else.
_BUILTINS: dict[str, str] = {
    "se": "synthetic.environment", "reward-network": "synthetic.reward_network",
    "scb": "synthetic.bandit", "synthetic-mdp": "synthetic.bandit",
    "paper-scb": "synthetic.paper_scb", "world-model": "worldmodels.environment",
    "video-reward": "rewards.video", "diffusion-world-model": "worldmodels.diffusion",
    "genie-world-model": "worldmodels.genie",
}


def builder(name: str) -> Callable[..., Any]:
    """The builder registered under ``name``; an unknown name lists the known ones."""
    if isinstance(name, str) and name not in _BUILDERS and name in _BUILTINS:
        importlib.import_module(f"learnenv.{_BUILTINS[name]}")
    if not isinstance(name, str) or name not in _BUILDERS:
        raise UnknownKindError(f"Unknown kind {name!r}; registered kinds: {', '.join(names())}.")
    return _BUILDERS[name]


def build(name: str, spec: Mapping[str, Any]) -> Any:
    """``builder(name)(**spec)``: the object a checkpoint's kind and spec describe."""
    return builder(name)(**dict(spec))


def names() -> list[str]:
    """Every registered kind, sorted: learnenv's own (imported or not) and any other."""
    return sorted(set(_BUILDERS) | set(_BUILTINS))
