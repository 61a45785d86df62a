"""Convert checkpoints of format version 1 to the current format.

Format 1 stored, next to the arrays, the classes of every tree node and a
``"module:function"`` loader, which loading imported and called. The current
format (:mod:`learnenv.io`) stores data only; this module rewrites a format-1
checkpoint in place, its arrays bit for bit, and imports nothing named in it::

    python scripts/convert_checkpoint_v1.py runs/se runs/ppo/agents

Environment checkpoints become their registered kind (:mod:`learnenv.kinds`)
through a fixed table of the loaders learnenv shipped; the fingerprint of a
:func:`learnenv.checkpoint.run_resumable` checkpoint is carried over, so the
run resumes. It lives outside the library: only checkpoints written before
format 2 need it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
from flax import serialization

from learnenv import io

__all__ = ["convert"]


def _flatten(spec: Any, path: str = "") -> dict[str, Any]:
    """A format-1 tree description as ``{path: leaf}``, the way :func:`io.tree_spec` writes it."""
    if spec is None:
        return {path: None}
    if isinstance(spec, str):
        if spec.startswith("key<"):  # "key<threefry2x32>[2]": the impl's name, now its dtype
            impl, _, shape = spec[4:].partition(">")
            return {path: f"{jax.random.key(0, impl=impl).dtype}{shape}"}
        return {path: spec.removeprefix("weak ")}  # weak types are no longer saved
    if "const" in spec:
        return {path: type(spec["const"]).__name__}
    out: dict[str, Any] = {}
    for key, child in _children(spec):
        out.update(_flatten(child, f"{path}/{key}" if path else str(key)))
    return out


def _children(spec: dict) -> Any:
    children = spec.get("c", {})
    return enumerate(children) if isinstance(children, list) else children.items()


def _put_back_constants(spec: Any, data: dict) -> None:
    """Format 1 left ``None`` and string leaves out of the arrays; flax state dicts hold them."""
    for key, child in _children(spec) if isinstance(spec, dict) else ():
        if child is None or (isinstance(child, dict) and "const" in child):
            data[str(key)] = None if child is None else child["const"]
        elif isinstance(child, dict):
            _put_back_constants(child, data.setdefault(str(key), {}))


# The environment loaders format 1 named, and the kind and spec each one means.
_LOADERS = {
    "learnenv.synthetic.meta:load_scb": lambda x: (
        "scb" if x["kind"] == "bandit" else "synthetic-mdp",
        {"real_env_name": x["real_env"], "hidden_sizes": [x["hidden_size"]]},
    ),
    "learnenv.synthetic.se_training:load_se": lambda x: (
        {"learnenv.synthetic.environment:SyntheticEnvironment": "se",
         "learnenv.synthetic.reward_network:RewardNetworkEnvironment": "reward-network",
         }[x.get("env_class", "learnenv.synthetic.environment:SyntheticEnvironment")],
        {"real_env_name": x["real_env"], "hidden_sizes": x["hidden_sizes"],
         "activation": x["activation"], "max_steps_in_episode": x["max_steps_in_episode"],
         **({"state_clip": x["state_clip"]} if "state_clip" in x else {})},
    ),
}


def convert(path: str | os.PathLike) -> Path:
    """Rewrite the format-1 checkpoint ``path`` in the current format, in place."""
    meta_file, arrays_file = io.checkpoint_files(path)
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != io.FORMAT or meta.get("format_version") != 1:
        raise io.CheckpointError(f"{meta_file} is not a learnenv checkpoint of format version 1.")
    data = io.read_arrays(path, meta.get("arrays_sha256"))
    trees = dict(meta.get("trees", {}))
    for name, spec in trees.items():
        if spec is None or "const" in spec:
            data[name] = None if spec is None else spec["const"]
        else:
            _put_back_constants(spec, data.setdefault(name, {}))
    extra = dict(meta.get("extra") or {})
    kind, spec = meta.get("kind", "agent"), None
    loader = extra.pop("loader", None)
    if loader is not None:
        if loader not in _LOADERS:
            raise io.CheckpointError(f"{meta_file} names loader {loader!r}, unknown to this converter.")
        kind, spec = _LOADERS[loader](extra)
        extra.pop("env_class", None)
        data["env_params"] = {"network_params": data.pop("params")}
        trees["env_params"] = {"t": "dict", "c": {"network_params": trees.pop("params")}}
    fingerprint = extra.get("fingerprint")
    if isinstance(fingerprint, dict) and "state_structure" in fingerprint:
        extra["fingerprint"] = {**fingerprint, "state_structure": _flatten(fingerprint["state_structure"])}
    data = {name: data[name] for name in io.TREES if name in data}
    specs = {name: _flatten(trees[name]) for name in data}
    blob = serialization.msgpack_serialize(data)
    new_meta = {
        "format": io.FORMAT,
        "format_version": io.FORMAT_VERSION,
        "kind": kind,
        "spec": spec,
        "env_name": meta.get("env_name"),
        "config": meta.get("config"),
        "arrays_file": arrays_file.name,
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        "summary": {name: io.spec_summary(s) for name, s in specs.items()},
        "trees": specs,
        "provenance": meta.get("provenance", {}),
        "extra": extra,
        "converted_from_format_version": 1,
    }
    io.atomic_write_bytes(arrays_file, blob)
    io.atomic_write_text(meta_file, json.dumps(new_meta, indent=1, allow_nan=False) + "\n")
    return io.checkpoint_files(path)[0].with_suffix("")


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python scripts/convert_checkpoint_v1.py CHECKPOINT [CHECKPOINT ...]", file=sys.stderr)
        return 2
    for path in argv:
        print(f"converted {convert(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
