"""Save and load parameters together with what is needed to trust them later.

One call each::

    io.save("runs/ppo-cartpole", params=result.params, config=config,
            env_name="CartPole-v1", env_params=env_params, metrics=result.metrics)
    ckpt = io.load("runs/ppo-cartpole", expect_env="CartPole-v1")
    ckpt.params, ckpt.config, ckpt.env_params, ckpt.metrics, ckpt.meta

File format (version 1)
-----------------------
A checkpoint named ``runs/ppo-cartpole`` is two files side by side:

``runs/ppo-cartpole.msgpack``
    The arrays: ``{"params": ..., "env_params": ..., "metrics": ...}`` as a flax
    msgpack state dict (``flax.serialization.msgpack_serialize``): nested dicts
    keyed by strings, sequences keyed ``"0", "1", ...``, dataclass fields by name.
    Flax tools read it directly: ``flax.serialization.msgpack_restore(data)``.
``runs/ppo-cartpole.json``
    Everything else, readable and diffable: format version, kind, environment
    name, config (values and class, so it is rebuilt on load), the structure,
    shapes and dtypes of every saved tree, the SHA-256 of the ``.msgpack`` file,
    provenance (git commit and dirty flag, package versions, device, Python,
    timestamp, wall-clock seconds) and a free ``extra`` dict.

Why a pair of files: the metadata stays a text file that ``git diff`` and a
reviewer can read, a pretrained model ships as two package-data files, and a
directory per checkpoint would hide both behind a level of nesting. Each file is
written atomically (temporary file, then ``os.replace``), arrays first and
metadata last; the metadata holds the hash of the arrays, so a half-finished
save, a truncated file or a pair that does not belong together is reported as
corrupt instead of loading wrong numbers.

Trees are any pytree of arrays: flax params dicts, flax ``struct`` dataclasses
(env params, optimiser and ES states), tuples, named tuples, Python scalars,
``None`` and PRNG keys, both typed (``jax.random.key``, stored through
``jax.random.key_data``) and raw ``uint32`` ones. Without a template, ``load``
rebuilds dicts, lists, tuples, named tuples and dataclasses (importing their
classes); with ``like=template`` it restores into the template's exact pytree
structure and checks every leaf's shape and dtype.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from learnenv import provenance as _provenance

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "TemplateMismatchError",
    "save",
    "load",
    "read_meta",
    "describe",
    "checkpoint_exists",
    "tree_spec",
    "import_class",
    "restore_like",
    "to_jsonable",
    "write_json",
    "dumps_json",
    "atomic_write_bytes",
    "atomic_write_text",
]

FORMAT = "learnenv-checkpoint"
FORMAT_VERSION = 1
ARRAYS_SUFFIX = ".msgpack"
META_SUFFIX = ".json"
_TREES = ("params", "env_params", "metrics")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, from another format, or does not fit."""


class TemplateMismatchError(CheckpointError):
    """A saved tree does not fit the template given with ``like=``."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """What :func:`load` returns."""

    path: Path  # the checkpoint's name (without suffix)
    kind: str
    params: Any
    config: Any  # the Config instance, or its dict when the class cannot be rebuilt
    env_name: str | None
    env_params: Any
    metrics: Any
    extra: dict
    meta: dict  # the whole metadata file

    @property
    def provenance(self) -> dict:
        return self.meta.get("provenance", {})


# --------------------------------------------------------------------------- files


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix in (ARRAYS_SUFFIX, META_SUFFIX):
        p = p.with_suffix("")
    return p


def _with_suffix(stem: Path, suffix: str) -> Path:
    return stem.parent / (stem.name + suffix)


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


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether both files of the checkpoint ``path`` exist."""
    stem = _stem(path)
    return _with_suffix(stem, META_SUFFIX).is_file() and _with_suffix(stem, ARRAYS_SUFFIX).is_file()


# --------------------------------------------------------------------------- JSON


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
    if _is_typed_key(obj):
        return to_jsonable(np.asarray(jax.random.key_data(obj)))
    if isinstance(obj, (np.ndarray, jax.Array)):
        arr = np.asarray(obj)
        if arr.dtype.kind == "c":
            return to_jsonable({"real": arr.real, "imag": arr.imag})
        return to_jsonable(arr.tolist())
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
    if isinstance(obj, complex):
        return {"real": to_jsonable(obj.real), "imag": to_jsonable(obj.imag)}
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


# --------------------------------------------------------------------------- trees


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str) -> type:
    """The class named ``"module:QualName"`` (as stored in checkpoint metadata)."""
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"{path} is not a class")
    return obj


_import_class = import_class  # older name, still used by callers


def _is_typed_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _entry_key(entry: Any) -> Any:
    """One step of a jax key path as the key used in the state dict."""
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return str(entry)


def _path_str(path: tuple) -> str:
    return "/".join(str(p) for p in path) if path else "<root>"


def _node_kind(x: Any) -> tuple[str, str | None]:
    if isinstance(x, dict) and type(x) is dict:
        return "dict", None
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return "namedtuple", _class_path(type(x))
    if type(x) is tuple:
        return "tuple", None
    if type(x) is list:
        return "list", None
    if dataclasses.is_dataclass(x):
        return "dataclass", _class_path(type(x))
    return "pytree", _class_path(type(x))


_OMIT = object()  # a node with no arrays in the msgpack (None, constants)


def _encode(x: Any, path: tuple, what: str) -> tuple[dict, Any]:
    """(JSON spec, msgpack data) of a pytree."""
    if x is None:
        return {"t": "none"}, _OMIT
    if _is_typed_key(x):
        data = np.asarray(jax.random.key_data(x))
        impl = str(jax.random.key_impl(x))
        return {"t": "key", "impl": impl, "shape": list(x.shape)}, data
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        arr = np.asarray(x)
        if arr.dtype.hasobject or arr.dtype.fields is not None:
            raise TypeError(f"Cannot save {what}/{_path_str(path)}: dtype {arr.dtype} is not numeric.")
        spec = {"t": "array", "shape": list(arr.shape), "dtype": arr.dtype.name}
        if getattr(x, "weak_type", False):
            spec["weak"] = True
        return spec, arr
    if isinstance(x, (bool, int, float)):
        return {"t": "py", "type": type(x).__name__}, x
    if isinstance(x, str):
        return {"t": "const", "value": x}, _OMIT
    if isinstance(x, jax.ShapeDtypeStruct):
        raise TypeError(f"Cannot save {what}/{_path_str(path)}: it is an abstract ShapeDtypeStruct.")

    children, treedef = jax.tree_util.tree_flatten_with_path(x, is_leaf=lambda n: n is not x)
    if treedef.num_nodes == 1 and len(children) == 1 and children[0][0] == ():
        raise TypeError(
            f"Cannot save {what}/{_path_str(path)}: leaf of type {type(x).__name__} is "
            "not an array, a Python number, a string or None."
        )
    kind, cls = _node_kind(x)
    spec: dict[str, Any] = {"t": kind}
    if cls is not None:
        spec["cls"] = cls
    if kind == "dataclass":
        static = {}
        for f in dataclasses.fields(x):
            if not f.metadata.get("pytree_node", True):
                try:
                    json.dumps(getattr(x, f.name))
                    static[f.name] = getattr(x, f.name)
                except TypeError:
                    spec["static_unsaved"] = True
        if static:
            spec["static"] = static
    items = []
    data: dict[str, Any] = {}
    for (entry,), child in children:
        key = _entry_key(entry)
        if not isinstance(key, (str, int)):
            raise TypeError(
                f"Cannot save {what}/{_path_str(path)}: key {key!r} is not a string or an int."
            )
        child_spec, child_data = _encode(child, path + (key,), what)
        items.append([key, child_spec])
        if child_data is not _OMIT:
            data[str(key)] = child_data
    spec["c"] = items
    return spec, data


# In the metadata file a spec is written compactly, one line per leaf:
# "float32[4, 64]", "weak float32[]", "key<threefry2x32>[2]", "int", null, and
# {"t": "dict" | "list" | "tuple" | "namedtuple" | "dataclass" | "pytree",
#  "cls": "module:Class", "c": {key: spec} or [spec, ...]} for inner nodes.
_ARRAY_RE = re.compile(r"^(weak )?(\w+)\[([0-9, ]*)\]$")
_KEY_RE = re.compile(r"^key<(.+)>\[([0-9, ]*)\]$")


def _shape_str(shape: list[int]) -> str:
    return ", ".join(str(int(d)) for d in shape)


def _parse_shape(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d.strip()]


def _compact(spec: dict) -> Any:
    t = spec["t"]
    if t == "none":
        return None
    if t == "py":
        return spec["type"]
    if t == "array":
        return ("weak " if spec.get("weak") else "") + f"{spec['dtype']}[{_shape_str(spec['shape'])}]"
    if t == "key":
        return f"key<{spec['impl']}>[{_shape_str(spec['shape'])}]"
    if t == "const":
        return {"const": spec["value"]}
    out = {k: v for k, v in spec.items() if k != "c"}
    if t in ("list", "tuple"):
        out["c"] = [_compact(c) for _, c in spec["c"]]
    else:
        out["c"] = {str(k): _compact(c) for k, c in spec["c"]}
        int_keys = [str(k) for k, _ in spec["c"] if isinstance(k, int)]
        if int_keys:
            out["int_keys"] = int_keys
    return out


def _expand(spec: Any) -> dict:
    if spec is None:
        return {"t": "none"}
    if isinstance(spec, str):
        if spec in ("int", "float", "bool"):
            return {"t": "py", "type": spec}
        m = _KEY_RE.match(spec)
        if m:
            return {"t": "key", "impl": m.group(1), "shape": _parse_shape(m.group(2))}
        m = _ARRAY_RE.match(spec)
        if m:
            out = {"t": "array", "dtype": m.group(2), "shape": _parse_shape(m.group(3))}
            if m.group(1):
                out["weak"] = True
            return out
        raise CheckpointError(f"Unreadable leaf description {spec!r} in checkpoint metadata.")
    if not isinstance(spec, dict):
        raise CheckpointError(f"Unreadable tree description {spec!r:.60} in checkpoint metadata.")
    if "const" in spec:
        return {"t": "const", "value": spec["const"]}
    out = {k: v for k, v in spec.items() if k not in ("c", "int_keys")}
    children = spec.get("c", [])
    if isinstance(children, list):
        out["c"] = [[i, _expand(c)] for i, c in enumerate(children)]
    else:
        int_keys = set(spec.get("int_keys", []))
        out["c"] = [[int(k) if k in int_keys else k, _expand(c)] for k, c in children.items()]
    return out


def tree_spec(tree: Any) -> Any:
    """The JSON description (structure, shapes, dtypes) ``save`` stores for a tree."""
    return _compact(_encode(tree, (), "tree")[0])


def _leaf_paths(spec: dict, path: tuple = ()) -> list[tuple[tuple, dict]]:
    if spec["t"] in ("array", "key", "py"):
        return [(path, spec)]
    out = []
    for key, child in spec.get("c", []):
        out.extend(_leaf_paths(child, path + (key,)))
    return out


def _count(spec: dict) -> dict[str, int]:
    leaves = _leaf_paths(spec)
    size = sum(int(np.prod(s["shape"])) if s["t"] == "array" else 1 for _, s in leaves)
    return {"leaves": len(leaves), "values": size}


def _decode_leaf(spec: dict, data: Any, where: str) -> Any:
    t = spec["t"]
    if t == "py":
        caster = {"bool": bool, "int": int, "float": float}[spec["type"]]
        if isinstance(data, np.ndarray):
            data = data.item()
        return caster(data)
    if not isinstance(data, np.ndarray):
        raise CheckpointError(f"{where}: the arrays file holds no array here (corrupt file?).")
    if t == "key":
        return jax.random.wrap_key_data(jnp.asarray(data), impl=spec["impl"])
    if list(data.shape) != list(spec["shape"]) or data.dtype.name != spec["dtype"]:
        raise CheckpointError(
            f"{where}: the arrays file holds {data.dtype.name}{list(data.shape)} but its "
            f"metadata says {spec['dtype']}{spec['shape']} (corrupt file?)."
        )
    return _to_jax(data, weak=spec.get("weak", False))


def _to_jax(arr: np.ndarray, weak: bool = False) -> jax.Array | np.ndarray:
    """A jnp array, or the numpy array itself when JAX would change its dtype.

    With 64-bit types disabled (JAX's default) ``jnp.asarray`` turns float64 into
    float32; a loaded value must equal the saved one, so those stay numpy.
    """
    if jax.dtypes.canonicalize_dtype(arr.dtype) != arr.dtype:
        return np.array(arr)
    out = jnp.asarray(arr)
    if weak and out.dtype == arr.dtype:
        try:  # keep weak typing so jitted functions see exactly the saved types
            from jax._src.lax.lax import _convert_element_type

            out = _convert_element_type(out, out.dtype, weak_type=True)
        except Exception:  # private API moved: strong types are a safe fallback
            pass
    return out


_warned: set[str] = set()


def _decode(spec: dict, data: Any, path: tuple, what: str) -> Any:
    """Rebuild a tree from its spec without a template."""
    t = spec["t"]
    where = f"{what}/{_path_str(path)}"
    if t == "none":
        return None
    if t == "const":
        return spec["value"]
    if t in ("array", "key", "py"):
        return _decode_leaf(spec, data, where)
    if not isinstance(data, dict):
        data = {}
    children = []
    for key, child_spec in spec["c"]:
        children.append((key, _decode(child_spec, data.get(str(key), _OMIT), path + (key,), what)))
    if t == "dict":
        return dict(children)
    if t == "list":
        return [v for _, v in children]
    if t == "tuple":
        return tuple(v for _, v in children)
    cls_path = spec.get("cls", "?")
    try:
        cls = import_class(cls_path)
        if t == "namedtuple":
            return cls(*(v for _, v in children))
        if t == "dataclass" and not spec.get("static_unsaved"):
            return cls(**dict(children), **spec.get("static", {}))
        raise TypeError("no way to rebuild it without a template")
    except Exception as err:
        if cls_path not in _warned:
            _warned.add(cls_path)
            warnings.warn(
                f"{where}: could not rebuild {cls_path} ({err}); returning a dict. "
                "Pass a template with like= to restore it exactly.",
                stacklevel=4,
            )
        return {str(k): v for k, v in children}


def _spec_child(spec: dict, key: Any) -> dict | None:
    for k, child in spec.get("c", []):
        if str(k) == str(key):
            return child
    return None


def restore_like(like: Any, spec: dict, data: Any, what: str = "tree", source: str = "") -> Any:
    """Restore saved ``(spec, data)`` into the pytree structure of ``like``.

    Every leaf of ``like`` (arrays, ``jax.ShapeDtypeStruct``, PRNG keys, Python
    numbers) must match a saved leaf of the same shape and dtype, and every saved
    leaf must be used; otherwise :class:`CheckpointError` names the first
    mismatching leaf.
    """
    src = f" from {source}" if source else ""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    used: set[tuple] = set()
    out = []
    for kp, leaf in leaves:
        path = tuple(_entry_key(e) for e in kp)
        node_spec, node_data = spec, data
        for key in path:
            node_spec = _spec_child(node_spec, key) if node_spec is not None else None
            node_data = node_data.get(str(key), _OMIT) if isinstance(node_data, dict) else _OMIT
        where = f"{what}/{_path_str(path)}"
        if node_spec is not None and node_spec["t"] == "const" and isinstance(leaf, str):
            out.append(node_spec["value"])
            continue
        if node_spec is None or node_spec["t"] not in ("array", "key", "py"):
            raise TemplateMismatchError(
                f"Cannot restore {what}{src}: the template has a leaf {where!r} "
                "that the checkpoint lacks."
            )
        used.add(path)
        _check_leaf(leaf, node_spec, where, what, src)
        value = _decode_leaf(node_spec, node_data, where)
        if isinstance(leaf, (bool, int, float)) and not isinstance(leaf, np.generic):
            value = type(leaf)(np.asarray(value).item())
        elif isinstance(leaf, np.generic):
            value = np.asarray(value)[()]
        elif isinstance(leaf, np.ndarray):
            value = np.array(value)
        out.append(value)
    extra = [p for p, _ in _leaf_paths(spec) if p not in used]
    if extra:
        raise TemplateMismatchError(
            f"Cannot restore {what}{src}: the checkpoint has a leaf "
            f"{what + '/' + _path_str(extra[0])!r} that the template lacks "
            f"({len(extra)} extra leaves in all)."
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def _describe_saved(spec: dict) -> str:
    if spec["t"] == "key":
        return f"PRNG key array of shape {tuple(spec['shape'])}"
    if spec["t"] == "py":
        return f"Python {spec['type']}"
    return f"shape {tuple(spec['shape'])} and dtype {spec['dtype']}"


def _check_leaf(leaf: Any, spec: dict, where: str, what: str, src: str) -> None:
    def fail(template: str) -> None:
        raise TemplateMismatchError(
            f"Cannot restore {what}{src}: leaf {where!r} has {_describe_saved(spec)} in the "
            f"checkpoint but {template} in the template."
        )

    leaf_dtype = getattr(leaf, "dtype", None)
    if leaf_dtype is not None and jnp.issubdtype(leaf_dtype, jax.dtypes.prng_key):
        if spec["t"] != "key" or list(leaf.shape) != list(spec["shape"]):
            fail(f"PRNG key array of shape {tuple(leaf.shape)}")
        if _is_typed_key(leaf) and str(jax.random.key_impl(leaf)) != spec["impl"]:
            fail(f"PRNG implementation {jax.random.key_impl(leaf)}")
        return
    if isinstance(leaf, (bool, int, float)) and not isinstance(leaf, np.generic):
        if spec["t"] == "py" or (spec["t"] == "array" and spec["shape"] == []):
            return
        fail(f"Python {type(leaf).__name__}")
    shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
    dtype = np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype)).name
    if spec["t"] != "array" or tuple(spec["shape"]) != shape or spec["dtype"] != dtype:
        fail(f"shape {shape} and dtype {dtype}")


# --------------------------------------------------------------------------- configs


def _config_meta(config: Any) -> dict | None:
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
        return {"class": _class_path(type(config)), "values": to_jsonable(values)}
    if isinstance(config, Mapping):
        return {"class": None, "values": to_jsonable(dict(config))}
    raise TypeError(f"config must be a Config (dataclass) or a dict, not {type(config).__name__}.")


def rebuild_config(entry: Mapping[str, Any] | None) -> Any:
    """The Config saved by :func:`save` (its dict, with a warning, if the class is gone)."""
    if entry is None:
        return None
    values = entry.get("values", {})
    if not entry.get("class"):
        return values
    try:
        cls = import_class(entry["class"])
        if hasattr(cls, "from_dict"):
            return cls.from_dict(values)
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)
    except Exception as err:
        warnings.warn(
            f"Could not rebuild config {entry['class']} ({type(err).__name__}: {err}); "
            "returning its values as a dict.",
            stacklevel=3,
        )
        return values


# --------------------------------------------------------------------------- save / load


def save(
    path: str | os.PathLike,
    *,
    params: Any,
    config: Any = None,
    env_name: str | None = None,
    env_params: Any = None,
    kind: str = "agent",
    metrics: Any = None,
    extra: Mapping[str, Any] | None = None,
    wall_clock_s: float | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Save a checkpoint as ``path.msgpack`` + ``path.json``; returns ``path`` (no suffix).

    ``kind`` says what the params are: ``"agent"``, ``"environment"`` (a learned
    or synthetic environment), ``"es-state"``, ``"resume-state"``... ``extra``
    must be JSON-serialisable (numpy values are converted). ``provenance``
    replaces the record collected now (to reuse one across many saves).
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, not {kind!r}.")
    stem = _stem(path)
    trees = {"params": params, "env_params": env_params, "metrics": metrics}
    specs, data = {}, {}
    for name, tree in trees.items():
        if tree is None and name != "params":
            continue
        specs[name], tree_data = _encode(tree, (), name)
        data[name] = {} if tree_data is _OMIT else tree_data
    blob = serialization.msgpack_serialize(data, in_place=True)
    prov = dict(provenance) if provenance is not None else _provenance.collect()
    if wall_clock_s is not None:
        prov["wall_clock_s"] = float(wall_clock_s)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "env_name": env_name,
        "config": _config_meta(config),
        "arrays_file": _with_suffix(stem, ARRAYS_SUFFIX).name,
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        "summary": {name: _count(spec) for name, spec in specs.items()},
        "trees": {name: _compact(spec) for name, spec in specs.items()},
        "provenance": prov,
        "extra": to_jsonable(dict(extra)) if extra is not None else {},
    }
    meta_text = json.dumps(meta, indent=1, allow_nan=False) + "\n"
    atomic_write_bytes(_with_suffix(stem, ARRAYS_SUFFIX), blob)
    atomic_write_text(_with_suffix(stem, META_SUFFIX), meta_text)
    return stem


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata of a checkpoint, checked for format and version (arrays not read)."""
    stem = _stem(path)
    meta_path = _with_suffix(stem, META_SUFFIX)
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at {stem}: {meta_path.name} does not exist "
            f"(a checkpoint is {stem.name}{META_SUFFIX} + {stem.name}{ARRAYS_SUFFIX})."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{meta_path} is not valid JSON ({err}): corrupt checkpoint.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not a learnenv checkpoint (no format {FORMAT!r}).")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{meta_path} has an invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path} was written in checkpoint format version {version}, but this "
            f"learnenv reads versions up to {FORMAT_VERSION}: upgrade learnenv to load it."
        )
    return meta


def load(
    path: str | os.PathLike,
    *,
    expect_env: str | None = None,
    like: Any = None,
    env_params_like: Any = None,
) -> Checkpoint:
    """Load a checkpoint written by :func:`save` (``path`` with or without suffix).

    ``expect_env``: refuse a checkpoint saved for another environment.
    ``like``: a template pytree (arrays or ``jax.ShapeDtypeStruct``) the params
    are restored into, with every leaf's shape and dtype checked; without it
    params come back as nested dicts (and rebuilt dataclasses) of jnp arrays.
    ``env_params_like``: the same for ``env_params``.
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
    arrays_path = _with_suffix(stem, ARRAYS_SUFFIX)
    if not arrays_path.is_file():
        raise CheckpointError(f"Checkpoint {stem} has metadata but no arrays file {arrays_path.name}.")
    blob = arrays_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("arrays_sha256"):
        raise CheckpointError(
            f"Checkpoint {stem} is corrupt: {arrays_path.name} does not match the hash in "
            f"{stem.name}{META_SUFFIX} (truncated, modified, or from another save)."
        )
    try:
        data = serialization.msgpack_restore(blob)
    except Exception as err:
        raise CheckpointError(f"Checkpoint {stem} is corrupt: cannot decode its arrays ({err}).") from None
    try:
        specs = {name: _expand(spec) for name, spec in meta["trees"].items()}
    except (KeyError, AttributeError, TypeError, ValueError) as err:
        raise CheckpointError(f"Checkpoint {stem} has unreadable metadata ({err}).") from None
    trees: dict[str, Any] = {}
    for name in _TREES:
        if name not in specs:
            trees[name] = None
            continue
        template = like if name == "params" else env_params_like if name == "env_params" else None
        if template is not None:
            trees[name] = restore_like(template, specs[name], data.get(name), name, str(stem))
        else:
            trees[name] = _decode(specs[name], data.get(name), (), name)
    return Checkpoint(
        path=stem,
        kind=meta.get("kind", ""),
        params=trees["params"],
        config=rebuild_config(meta.get("config")),
        env_name=meta.get("env_name"),
        env_params=trees["env_params"],
        metrics=trees["metrics"],
        extra=meta.get("extra", {}),
        meta=meta,
    )


def describe(path: str | os.PathLike) -> str:
    """A few lines about a checkpoint, from its metadata only (arrays not read)."""
    stem = _stem(path)
    meta = read_meta(stem)
    lines = [
        f"{stem}: {meta.get('kind')} checkpoint, format version {meta['format_version']}, "
        f"environment {meta.get('env_name')!r}"
    ]
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
