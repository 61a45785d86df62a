"""Save and load parameters together with what is needed to trust them later.

One call each::

    io.save("runs/ppo", params=result.params, config=config, env_name="CartPole-v1",
            env_params=env_params, metrics=result.metrics)
    ckpt = io.load("runs/ppo", like=params_template, config_cls=PPOConfig)
    ckpt.params, ckpt.config, ckpt.env_params, ckpt.metrics, ckpt.provenance

and for learned environments (or any object of a kind registered in
:mod:`learnenv.kinds`)::

    io.save_environment("runs/se", env, env_params, config=config, metrics=metrics)
    env, env_params = io.load_environment("runs/se")

File format (version 2)
-----------------------
A checkpoint named ``runs/se`` is two files side by side:

``runs/se.msgpack``
    The arrays: ``{"params": ..., "env_params": ..., "metrics": ...}`` (the trees
    that were given), each a flax state dict (``flax.serialization.to_state_dict``)
    with typed PRNG keys stored as their ``key_data``, written with
    ``msgpack_serialize``. Flax reads it directly with ``msgpack_restore``.
``runs/se.json``
    Everything else, readable and diffable: format version, ``kind`` and the
    ``spec`` that rebuilds the object, environment name, config values, every
    leaf's path, dtype and shape, the SHA-256 of the ``.msgpack`` file,
    provenance (:mod:`learnenv.provenance`) and a free ``extra`` dict.

Loading is safe: the metadata is only ever read as data. Arrays are restored
into a template the *code* builds (``like=``, or the ``default_params`` of the
environment that :mod:`learnenv.kinds` builds from ``kind`` and ``spec``), with
every leaf's dtype and shape checked; without a template they come back as
plain nested dicts. Nothing named in a file is imported. Weak types are not
saved: loaded arrays are strongly typed.

Each file is written atomically (temporary file, then ``os.replace``), arrays
first and metadata last; the metadata holds the hash of the arrays, so a
half-finished save or a modified arrays file is reported as corrupt instead of
loading wrong numbers. Checkpoints of format version 1 are converted by
the repository's ``scripts/convert_checkpoint_v1.py PATH``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, traverse_util

from learnenv import kinds
from learnenv import provenance as _provenance

__all__ = [
    "FORMAT", "FORMAT_VERSION", "Checkpoint", "CheckpointError", "TemplateMismatchError",
    "OldFormatError", "save", "load", "save_environment", "load_environment", "read_meta",
    "describe", "checkpoint_files", "tree_spec", "restore", "config_meta",
    "read_arrays", "spec_summary", "to_jsonable", "dumps_json", "write_json", "atomic_write_bytes",
    "atomic_write_text", "is_prng_key",
]

FORMAT = "learnenv-checkpoint"
FORMAT_VERSION = 2
ARRAYS_SUFFIX = ".msgpack"
META_SUFFIX = ".json"
TREES = ("params", "env_params", "metrics")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, from another format, or does not fit."""


class TemplateMismatchError(CheckpointError):
    """A saved tree does not fit the template it is restored into."""


class OldFormatError(CheckpointError):
    """A checkpoint of an older format version: scripts/convert_checkpoint_v1.py converts it."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """What :func:`load` returns."""

    path: Path  # the checkpoint's name (without suffix)
    kind: str
    params: Any
    config: Any  # the dict of values, or an instance of the config_cls given to load
    env_name: str | None
    env_params: Any
    metrics: Any
    extra: dict
    meta: dict  # the whole metadata file

    @property
    def provenance(self) -> dict:
        return self.meta.get("provenance", {})

    @property
    def spec(self) -> dict | None:
        return self.meta.get("spec")


# --------------------------------------------------------------------------- files


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (ARRAYS_SUFFIX, META_SUFFIX) else p


def checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(metadata file, arrays file)`` of the checkpoint ``path``."""
    stem = _stem(path)
    return stem.parent / (stem.name + META_SUFFIX), stem.parent / (stem.name + ARRAYS_SUFFIX)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- JSON


def is_prng_key(x: Any) -> bool:
    """Whether ``x`` is a typed PRNG key array (``jax.random.key``), concrete or abstract."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def to_jsonable(obj: Any) -> Any:
    """Convert results to plain JSON: arrays to (nested) lists, configs to dicts.

    Non-finite floats become ``None`` (strict JSON has no NaN); typed PRNG keys
    become their ``key_data``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if is_prng_key(obj):
        return to_jsonable(np.asarray(jax.random.key_data(obj)))
    if isinstance(obj, (np.ndarray, jax.Array)):
        return to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "_fields") and isinstance(obj, tuple):  # named tuple
        return {f: to_jsonable(getattr(obj, f)) for f in obj._fields}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    raise TypeError(f"Cannot convert {type(obj).__name__} to JSON: {obj!r:.80}")


def dumps_json(data: Any, indent: int = 2) -> str:
    """Strict, indented JSON of ``to_jsonable(data)`` with lists of numbers on one line.

    Curves of hundreds of points stay one line each, so a results file reads
    (and diffs) as a list of named quantities.
    """

    def fmt(obj: Any, level: int) -> str:
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        if isinstance(obj, dict) and obj:
            items = [f"{inner}{json.dumps(k)}: {fmt(v, level + 1)}" for k, v in obj.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
            if all(isinstance(v, list) and not any(isinstance(w, (dict, list)) for w in v) for v in obj):
                rows = [inner + json.dumps(v, allow_nan=False) for v in obj]  # a matrix: one row a line
            else:
                rows = [inner + fmt(v, level + 1) for v in obj]
            return "[\n" + ",\n".join(rows) + "\n" + pad + "]"
        return json.dumps(obj, allow_nan=False)

    return fmt(to_jsonable(data), 0) + "\n"


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write ``dumps_json(data)``."""
    atomic_write_text(path, dumps_json(data))


def config_meta(config: Any) -> dict | None:
    """A config as metadata: its values, and its class name as a label (never imported)."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
        label = f"{type(config).__module__}:{type(config).__qualname__}"
        return {"class": label, "values": to_jsonable(values)}
    if isinstance(config, Mapping):
        return {"class": None, "values": to_jsonable(dict(config))}
    raise TypeError(f"config must be a Config (dataclass) or a dict, not {type(config).__name__}.")


def _rebuild_config(entry: Any, config_cls: type | None, where: Path) -> Any:
    """The saved config values, or ``config_cls`` built from them when the caller names it."""
    if not isinstance(entry, Mapping):
        return None
    values = dict(entry.get("values") or {})
    if config_cls is None:
        return values
    label = str(entry.get("class") or "")
    if label and label.rpartition(":")[2] != config_cls.__qualname__:
        raise CheckpointError(
            f"Checkpoint {where} holds a config of class {label!r}, not {config_cls.__qualname__}."
        )
    if hasattr(config_cls, "from_dict"):
        return config_cls.from_dict(values)
    return config_cls(**values)


# --------------------------------------------------------------------------- trees


def _leaf_str(x: Any) -> Any:
    """A leaf as the metadata writes it: ``"float32[4, 64]"``, ``"key<fry>[]"``, ``"int"``."""
    if not hasattr(x, "dtype"):  # None, Python numbers and strings
        return None if x is None else type(x).__name__
    dtype = str(x.dtype) if is_prng_key(x) else np.dtype(x.dtype).name
    return f"{dtype}[{', '.join(str(int(d)) for d in x.shape)}]"


def state_dict(tree: Any) -> Any:
    """``tree`` as a flax state dict, typed PRNG keys replaced by their ``key_data``."""
    plain = jax.tree.map(lambda x: jax.random.key_data(x) if is_prng_key(x) else x, tree)
    return serialization.to_state_dict(plain)


def tree_spec(tree: Any) -> dict[str, Any]:
    """Every leaf of ``tree`` as ``{"path/to/leaf": "dtype[shape]"}``: what the metadata stores."""
    raw = serialization.to_state_dict(tree)
    if not isinstance(raw, dict):
        return {"": _leaf_str(raw)}
    flat = traverse_util.flatten_dict(raw, sep="/")
    return {path: _leaf_str(flat[path]) for path in sorted(flat)}


def _check_fits(saved: Mapping[str, Any], template: Mapping[str, Any], what: str, source: str) -> None:
    """Raise :class:`TemplateMismatchError` naming the first leaf that does not fit."""
    src = f" from {source}" if source else ""
    for path, want in template.items():
        if path not in saved:
            raise TemplateMismatchError(
                f"Cannot restore {what}{src}: the template has a leaf '{what}/{path}' "
                "that the checkpoint lacks."
            )
        if saved[path] != want:
            raise TemplateMismatchError(
                f"Cannot restore {what}{src}: leaf '{what}/{path}' is {saved[path]} in the "
                f"checkpoint but {want} in the template."
            )
    extra = [p for p in saved if p not in template]
    if extra:
        raise TemplateMismatchError(
            f"Cannot restore {what}{src}: the checkpoint has a leaf '{what}/{extra[0]}' that "
            f"the template lacks ({len(extra)} extra leaves in all)."
        )


def _to_jax(x: Any) -> Any:
    """A loaded leaf as a jnp array; numpy where JAX would change its dtype (float64
    without x64), so that a loaded value always equals the saved one."""
    if not isinstance(x, np.ndarray) or jax.dtypes.canonicalize_dtype(x.dtype) != x.dtype:
        return x
    return jnp.asarray(x)


def _like(template_leaf: Any, value: Any) -> Any:
    """A restored value in the form of its template leaf (key, numpy, jnp, Python)."""
    if is_prng_key(template_leaf):
        if isinstance(template_leaf, jax.Array):
            return jax.random.wrap_key_data(value, impl=jax.random.key_impl(template_leaf))
        return jax.random.wrap_key_data(value)  # abstract template: the default implementation
    if isinstance(template_leaf, (np.ndarray, np.generic)):
        return np.asarray(value)[()] if isinstance(template_leaf, np.generic) else np.array(value)
    return _to_jax(value)


def restore(template: Any, saved: Any, spec: Mapping[str, Any], what: str = "tree",
            source: str = "") -> Any:
    """The saved state dict ``saved`` (described by ``spec``) in the pytree form of ``template``.

    ``template`` may hold arrays or ``jax.ShapeDtypeStruct`` leaves; every leaf
    must match a saved one in dtype and shape, and every saved leaf must be used.
    """
    want = tree_spec(template)
    _check_fits(spec, want, what, source)  # by the metadata: the clearest message
    try:
        out = jax.tree.map(_like, template, serialization.from_state_dict(template, saved))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"Cannot restore {what} from {source}: the arrays do not fit "
                              f"their metadata ({err}).") from None
    _check_fits(tree_spec(out), want, what, source)  # by the arrays themselves, key types too
    return out


def spec_summary(spec: Mapping[str, Any]) -> dict[str, int]:
    """``{"leaves", "values"}`` of a :func:`tree_spec`, for readers of the metadata."""
    sizes = [math.prod(int(d) for d in s[s.index("[") + 1 : -1].split(",") if d.strip())
             if isinstance(s, str) and s.endswith("]") else 1 for s in spec.values()]
    return {"leaves": len(sizes), "values": sum(sizes)}


# --------------------------------------------------------------------------- save / load


def save(path: str | os.PathLike, *, params: Any = None, config: Any = None,
         env_name: str | None = None, env_params: Any = None, kind: str = "agent",
         spec: Mapping[str, Any] | None = None, metrics: Any = None,
         extra: Mapping[str, Any] | None = None, wall_clock_s: float | None = None,
         provenance: Mapping[str, Any] | None = None) -> Path:
    """Save a checkpoint as ``path.msgpack`` + ``path.json``; returns ``path`` (no suffix).

    ``kind`` says what it holds: a kind registered in :mod:`learnenv.kinds`
    (with the JSON ``spec`` its builder takes; see :func:`save_environment`),
    or a label such as ``"agent"`` or ``"resume-state"``. ``extra`` must be
    JSON-serialisable (numpy values are converted). ``provenance`` replaces
    the record collected now (to reuse one across many saves).
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, not {kind!r}.")
    trees = {name: tree for name, tree in
             {"params": params, "env_params": env_params, "metrics": metrics}.items() if tree is not None}
    blob = serialization.msgpack_serialize({name: state_dict(t) for name, t in trees.items()})
    specs = {name: tree_spec(t) for name, t in trees.items()}
    prov = dict(provenance) if provenance is not None else _provenance.collect()
    if wall_clock_s is not None:
        prov["wall_clock_s"] = float(wall_clock_s)
    meta_file, arrays_file = checkpoint_files(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "spec": to_jsonable(dict(spec)) if spec is not None else None,
        "env_name": env_name,
        "config": config_meta(config),
        "arrays_file": arrays_file.name,
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        "summary": {name: spec_summary(s) for name, s in specs.items()},
        "trees": specs,
        "provenance": prov,
        "extra": to_jsonable(dict(extra)) if extra is not None else {},
    }
    meta_text = json.dumps(meta, indent=1, allow_nan=False) + "\n"
    atomic_write_bytes(arrays_file, blob)
    atomic_write_text(meta_file, meta_text)
    return _stem(path)


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata of a checkpoint, checked for format and version (arrays not read)."""
    meta_file, arrays_file = checkpoint_files(path)
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"No checkpoint at {_stem(path)}: {meta_file.name} does not exist "
            f"(a checkpoint is {meta_file.name} + {arrays_file.name})."
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{meta_file} is not valid JSON ({err}): corrupt checkpoint.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_file} is not a learnenv checkpoint (no format {FORMAT!r}).")
    version = meta.get("format_version")
    if version == 1:
        raise OldFormatError(
            f"{meta_file} is in checkpoint format version 1, which named classes and loader "
            f"functions to import; convert it (arrays unchanged) with the repository's "
            f"`python scripts/convert_checkpoint_v1.py {_stem(path)}`."
        )
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{meta_file} has an invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_file} was written in checkpoint format version {version}, but this "
            f"learnenv reads versions up to {FORMAT_VERSION}: upgrade learnenv to load it."
        )
    return meta


def read_arrays(path: Path, sha256: Any) -> dict:
    """The arrays file as nested dicts, after checking it against the metadata's hash."""
    arrays_file = checkpoint_files(path)[1]
    if not arrays_file.is_file():
        raise CheckpointError(f"Checkpoint {path} has metadata but no arrays file {arrays_file.name}.")
    blob = arrays_file.read_bytes()
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise CheckpointError(
            f"Checkpoint {path} is corrupt: {arrays_file.name} does not match the hash in its "
            "metadata (truncated, modified, or from another save)."
        )
    try:
        data = serialization.msgpack_restore(blob)
    except Exception as err:
        raise CheckpointError(f"Checkpoint {path} is corrupt: cannot decode its arrays ({err}).") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"Checkpoint {path} is corrupt: its arrays file holds no trees.")
    return data


def load(path: str | os.PathLike, *, expect_env: str | None = None, like: Any = None,
         env_params_like: Any = None, metrics_like: Any = None,
         config_cls: type | None = None) -> Checkpoint:
    """Load a checkpoint written by :func:`save` (``path`` with or without suffix).

    ``like``, ``env_params_like``, ``metrics_like``: templates (arrays or
    ``jax.ShapeDtypeStruct``) that params, env params and metrics are restored
    into, every leaf's dtype and shape checked; without one a tree comes back as
    nested dicts of arrays (typed PRNG keys as their ``key_data``).
    ``config_cls``: rebuild the config as this class (else its dict of values).
    ``expect_env``: refuse a checkpoint saved for another environment.
    """
    stem = _stem(path)
    meta = read_meta(stem)
    if expect_env is not None and meta.get("env_name") != expect_env:
        saved = meta.get("env_name")
        raise CheckpointError(
            f"Checkpoint {stem} was saved for environment {saved!r}, not {expect_env!r}."
            if saved is not None
            else f"Checkpoint {stem} records no environment, but {expect_env!r} was expected."
        )
    data = read_arrays(stem, meta.get("arrays_sha256"))
    specs = meta.get("trees")
    if not isinstance(specs, dict):
        raise CheckpointError(f"Checkpoint {stem} has unreadable metadata (no trees).")
    templates = {"params": like, "env_params": env_params_like, "metrics": metrics_like}
    trees = {}
    for name in TREES:
        if name not in data:
            trees[name] = None
        elif templates[name] is not None:
            trees[name] = restore(templates[name], data[name], specs.get(name, {}), name, str(stem))
        else:
            trees[name] = jax.tree.map(_to_jax, data[name])
    return Checkpoint(
        path=stem,
        kind=meta.get("kind", ""),
        params=trees["params"],
        config=_rebuild_config(meta.get("config"), config_cls, stem),
        env_name=meta.get("env_name"),
        env_params=trees["env_params"],
        metrics=trees["metrics"],
        extra=meta.get("extra", {}),
        meta=meta,
    )


# --------------------------------------------------------------------------- environments


def _params_template(obj: Any) -> Any:
    """The abstract ``default_params`` of ``obj``: shapes, dtypes and static fields, no weights."""
    return jax.eval_shape(lambda: obj.default_params)


def save_environment(path: str | os.PathLike, env: Any, env_params: Any, *, config: Any = None,
                     metrics: Any = None, extra: Mapping[str, Any] | None = None,
                     wall_clock_s: float | None = None) -> Path:
    """Save a learned environment (any object of a registered kind) with its weights.

    The metadata records ``env.kind`` and ``env.spec()``; :func:`load_environment`
    rebuilds ``env`` from them and restores ``env_params`` into its
    ``default_params``. That this will work is checked now, not at load time.
    """
    kind, spec = getattr(env, "kind", None), getattr(env, "spec", None)
    if kind is None or spec is None:
        raise TypeError(
            f"{type(env).__name__} has no registered kind and spec(); see learnenv.kinds."
        )
    spec = to_jsonable(spec())
    json.dumps(spec, allow_nan=False)
    rebuilt = _params_template(kinds.build(kind, spec))
    if jax.tree.structure(rebuilt) != jax.tree.structure(env_params):
        raise ValueError(
            f"env_params do not have the structure (or static fields) of the default_params of "
            f"the {kind!r} environment built from {spec}: {jax.tree.structure(env_params)} vs "
            f"{jax.tree.structure(rebuilt)}."
        )
    _check_fits(tree_spec(env_params), tree_spec(rebuilt), "env_params", f"kind {kind!r}")
    name = getattr(env, "name", None)
    return save(path, env_params=env_params, kind=kind, spec=spec, env_name=name, config=config,
                metrics=metrics, extra=extra, wall_clock_s=wall_clock_s)


def load_environment(path: str | os.PathLike, *, expect_kind: str | tuple[str, ...] | None = None):
    """``(env, env_params)`` of a checkpoint written by :func:`save_environment`.

    The environment is built by the builder registered for the checkpoint's
    kind (:mod:`learnenv.kinds`) from its JSON spec; ``expect_kind`` refuses
    other kinds.
    """
    stem = _stem(path)
    meta = read_meta(stem)
    kind, spec = meta.get("kind"), meta.get("spec")
    allowed = (expect_kind,) if isinstance(expect_kind, str) else expect_kind
    if allowed is not None and kind not in allowed:
        wanted = " or ".join(map(repr, allowed))
        raise CheckpointError(f"Checkpoint {stem} holds kind {kind!r}, not {wanted}.")
    if not isinstance(spec, dict):
        raise CheckpointError(f"Checkpoint {stem} (kind {kind!r}) has no spec to build an environment from.")
    try:
        env = kinds.build(kind, spec)
    except kinds.UnknownKindError as err:
        raise CheckpointError(f"Cannot load {stem}: {err}") from None
    except TypeError as err:
        raise CheckpointError(f"Cannot load {stem}: its spec does not fit kind {kind!r} ({err}).") from None
    return env, load(stem, env_params_like=_params_template(env)).env_params


# --------------------------------------------------------------------------- reading


def describe(path: str | os.PathLike) -> str:
    """A few lines about a checkpoint, from its metadata only (arrays not read)."""
    stem = _stem(path)
    meta = read_meta(stem)
    lines = [
        f"{stem}: {meta.get('kind')} checkpoint, format version {meta['format_version']}, "
        f"environment {meta.get('env_name')!r}"
    ]
    if meta.get("spec"):
        lines.append("  spec: " + ", ".join(f"{k}={v!r}" for k, v in meta["spec"].items()))
    config = meta.get("config")
    if config:
        values = ", ".join(f"{k}={v!r}" for k, v in config.get("values", {}).items())
        name = (config.get("class") or "dict").rsplit(":", 1)[-1]
        lines.append(f"  config: {name}({values})")
    for name, summary in meta.get("summary", {}).items():
        lines.append(f"  {name}: {summary['leaves']} leaves, {summary['values']:,} values")
    prov = meta.get("provenance", {})
    git = prov.get("git") or {}
    code = (
        f"git {git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}" if git.get("commit") else "no git"
    )
    device = prov.get("device", {})
    packages = prov.get("packages", {})
    versions = ", ".join(f"{k} {packages[k]}" for k in ("learnenv", "jax", "flax") if packages.get(k))
    wall = f", {prov['wall_clock_s']:.1f} s" if "wall_clock_s" in prov else ""
    lines.append(
        f"  saved {prov.get('timestamp', '?')} on {device.get('device_kind', '?')} "
        f"({device.get('platform', '?')}){wall}; {code}; {versions}"
    )
    if meta.get("extra"):
        lines.append(f"  extra: {', '.join(meta['extra'])}")
    return "\n".join(lines)
