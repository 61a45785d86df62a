"""Learned environments shipped with learnenv, loadable in one call.

    from learnenv import pretrained
    pretrained.names()                          # what is shipped
    env, env_params = pretrained.load("se-cartpole")
    pretrained.describe("se-cartpole")          # provenance, config, test results

Each shipped entry (:func:`shipped_names`) is a :mod:`learnenv.io` checkpoint
pair ``NAME.json`` + ``NAME.msgpack`` in this folder (package data), written by
:func:`learnenv.io.save_environment`: its metadata names a registered kind
(:mod:`learnenv.kinds`) and the arguments that build the environment, so
synthetic environments of any kind (SEs, SCBs, ...) share this one entry point.

The ``paper-scb-*`` entries (:func:`paper_names`) are the SCB paper's own
meta-trained bandits (Liesen et al., 2024). They are not shipped here: they are
read from the installed ``synthetic-gymnax`` package (``pip install
"learnenv[paper]"``) by :mod:`learnenv.synthetic.paper_scb`, which never imports
it; without it, loading one raises an error that says how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnenv import io

__all__ = ["UnknownPretrainedError", "names", "shipped_names", "paper_names", "path", "load",
           "load_checkpoint", "describe"]

FOLDER = Path(__file__).resolve().parent


class UnknownPretrainedError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0])


def shipped_names() -> list[str]:
    """The names of the checkpoints shipped in this folder, sorted."""
    return sorted(p.name[: -len(".json")] for p in FOLDER.glob("*.json")
                  if p.with_suffix(".msgpack").is_file())


def paper_names() -> list[str]:
    """The SCB paper's ten published SCBs (``paper-scb-<task>``), read from the
    ``synthetic-gymnax`` package; listed whether or not it is installed."""
    from learnenv.synthetic import paper_scb

    return paper_scb.pretrained_names()


def names() -> list[str]:
    """Every name :func:`load` accepts, sorted: the shipped ones and the paper's."""
    return sorted(shipped_names() + paper_names())


def _is_paper(name: str) -> bool:
    return isinstance(name, str) and name in paper_names()


def path(name: str) -> Path:
    """The checkpoint path (without suffix) of ``name``; for a paper SCB, the installed
    ``checkpoint.pkl`` it is read from. Unknown names list the valid ones."""
    if name in shipped_names():
        return FOLDER / name
    if _is_paper(name):
        from learnenv.synthetic import paper_scb

        return paper_scb.checkpoint_file(name)
    valid = ", ".join(names()) or "(none shipped)"
    raise UnknownPretrainedError(f"No pretrained environment {name!r}. Valid names: {valid}.")


def load(name: str) -> Any:
    """``(env, env_params)`` of a shipped environment or of a paper SCB."""
    if _is_paper(name):
        from learnenv.synthetic import paper_scb

        return paper_scb.load(name)
    return io.load_environment(path(name))


def load_checkpoint(name: str, config_cls: type | None = None) -> io.Checkpoint:
    """The raw checkpoint (env params, config, metrics, provenance, extra);
    ``config_cls`` rebuilds its config (else a dict).

    A paper SCB has no learnenv checkpoint: its :class:`~learnenv.io.Checkpoint`
    holds the env params, no config or metrics, and as provenance
    :func:`learnenv.synthetic.paper_scb.provenance` (package version, file hash,
    upstream config facts).
    """
    if _is_paper(name):
        from learnenv.synthetic import paper_scb

        if config_cls is not None:
            raise TypeError(f"{name} has no config: the paper's meta-training config is "
                            "described in its provenance, not stored as a learnenv config.")
        env, env_params = paper_scb.load(name)
        prov = paper_scb.provenance(name)
        extra = {"num_parameters": env.num_parameters(env_params),
                 "max_steps_in_episode": int(env_params.max_steps_in_episode)}
        meta = {"kind": env.kind, "spec": env.spec(), "env_name": env.name,
                "provenance": prov, "extra": extra}
        return io.Checkpoint(path=paper_scb.checkpoint_file(name), kind=env.kind, params=None,
                             config=None, env_name=env.name, env_params=env_params,
                             metrics=None, extra=extra, meta=meta)
    return io.load(path(name), config_cls=config_cls)


def describe(name: str) -> str:
    """A few lines about ``name``: its provenance (and, if shipped, config and contents)."""
    if _is_paper(name):
        from learnenv.synthetic import paper_scb

        return paper_scb.describe(name)
    return io.describe(path(name))
