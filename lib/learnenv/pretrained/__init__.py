"""Learned environments shipped with learnenv, loadable in one call.

    from learnenv import pretrained
    pretrained.names()                          # what is shipped
    env, env_params = pretrained.load("se-cartpole")
    pretrained.describe("se-cartpole")          # provenance, config, test results

Each entry is a :mod:`learnenv.io` checkpoint pair ``NAME.json`` +
``NAME.msgpack`` in this folder (package data). The metadata's
``extra["loader"]`` names the function (``"module:function"``) that turns the
checkpoint into ``(env, env_params)``, so synthetic environments of any kind
(SEs, SCBs, ...) share this one entry point; a checkpoint without a loader is
returned as a :class:`learnenv.io.Checkpoint`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from learnenv import io

__all__ = ["UnknownPretrainedError", "names", "path", "load", "load_checkpoint", "describe"]

FOLDER = Path(__file__).resolve().parent


class UnknownPretrainedError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0])


def names() -> list[str]:
    """Every shipped name, sorted."""
    return sorted(p.name[: -len(".json")] for p in FOLDER.glob("*.json")
                  if p.with_suffix(".msgpack").is_file())


def path(name: str) -> Path:
    """The checkpoint path (without suffix) of ``name``; unknown names list the valid ones."""
    if name in names():
        return FOLDER / name
    valid = ", ".join(names()) or "(none shipped)"
    raise UnknownPretrainedError(f"No pretrained environment {name!r}. Valid names: {valid}.")


def load(name: str) -> Any:
    """``(env, env_params)`` of a shipped environment (via its checkpoint's loader)."""
    stem = path(name)
    loader = io.read_meta(stem).get("extra", {}).get("loader")
    if not loader:
        return io.load(stem)
    module, _, fn = loader.partition(":")
    return getattr(importlib.import_module(module), fn)(stem)


def load_checkpoint(name: str) -> io.Checkpoint:
    """The raw checkpoint (params, config, metrics, provenance, extra)."""
    return io.load(path(name))


def describe(name: str) -> str:
    return io.describe(path(name))
