"""Learned environments shipped with learnenv, loadable in one call.

    from learnenv import pretrained
    pretrained.names()                          # what is shipped
    env, env_params = pretrained.load("se-cartpole")
    pretrained.describe("se-cartpole")          # provenance, config, test results

Each entry is a :mod:`learnenv.io` checkpoint pair ``NAME.json`` +
``NAME.msgpack`` in this folder (package data), written by
:func:`learnenv.io.save_environment`: its metadata names a registered kind
(:mod:`learnenv.kinds`) and the arguments that build the environment, so
synthetic environments of any kind (SEs, SCBs, ...) share this one entry point.
"""

from __future__ import annotations

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
    """``(env, env_params)`` of a shipped environment."""
    return io.load_environment(path(name))


def load_checkpoint(name: str, config_cls: type | None = None) -> io.Checkpoint:
    """The raw checkpoint (env params, config, metrics, provenance, extra);
    ``config_cls`` rebuilds its config (else a dict)."""
    return io.load(path(name), config_cls=config_cls)


def describe(name: str) -> str:
    return io.describe(path(name))
