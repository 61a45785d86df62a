"""Experiment configs and the quick/full preset switch.

Every experiment in the book is described by a frozen dataclass that inherits
from :class:`Config`. Fields declare their allowed values with :func:`field`, and
the config checks them when it is built, so a typo such as ``lr=-3e-4`` fails
at once with a message naming the field, instead of an hour later as a NaN.

The check starts with the field's annotation: an ``int`` field takes ints only
(not ``4.5``, not ``True``), a ``float`` field takes any real number and stores
it as a float, a ``bool`` field takes ``True`` or ``False`` only (not ``0``/``1``),
a ``str`` field takes strings, and a ``tuple`` field takes tuples, never lists:
a config is frozen and hashable (jit uses it as a static argument), and a list
would make it neither. JSON has no tuples, so :meth:`Config.from_dict` (and the
command line's ``--set``) turn lists, nested ones too, back into tuples.

Every experiment also has two presets: ``quick`` (a CPU, minutes, used by CI and
the book build) and ``full`` (paper scale, one Colab GPU). :func:`preset_name`
picks one from the ``LEARNENV_PRESET`` environment variable, defaulting to
``quick`` on every machine, GPU or not: a full run takes hours, so it is asked
for (``LEARNENV_PRESET=full``), never stumbled into by opening a notebook on a
GPU runtime.

:func:`runs_dir` says where run folders (checkpoints, results) go: Google Drive
when it is mounted on Colab, so a full run survives the runtime; else ``runs``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import os
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

PRESETS = ("quick", "full")
PRESET_ENV_VAR = "LEARNENV_PRESET"
# Where Colab mounts Google Drive (``drive.mount("/content/drive")``); a
# constant so that tests can point it at a folder of their own.
DRIVE_ROOT = Path("/content/drive/MyDrive")

C = TypeVar("C", bound="Config")


def field(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    choices: Sequence[Any] | Callable[[], Iterable[Any]] | None = None,
    traced: bool = False,
    doc: str = "",
) -> Any:
    """A dataclass field with an allowed range (numbers) or set of choices.

    ``choices`` is either the allowed values or a function of no arguments that
    returns them, called each time a config is checked: ``choices=envs.names``
    lists the environments registered by then, and nothing is computed (or
    imported) when the class is defined.

    ``traced=True`` marks a numeric hyperparameter that the training function
    reads as a traced value (so it can be vmapped: a learning rate, an entropy
    coefficient); every other field is static (shapes, step counts, flags that
    change the program). :meth:`Config.hyperparams` collects the traced ones.
    """
    if choices is not None and not callable(choices):
        choices = tuple(choices)
    meta = dict(traced=traced, low=low, high=high, low_inclusive=low_inclusive,
                high_inclusive=high_inclusive, choices=choices, doc=doc)
    if isinstance(default, (list, dict, set)):
        raise TypeError("Config fields must be immutable; use a tuple.")
    return dataclasses.field(default=default, metadata=meta)


def deep_tuple(value: Any) -> Any:
    """``value`` with every list, however deeply nested in lists and tuples, made a
    tuple: JSON (and so a saved config or a ``--set`` value) has lists where the
    config had tuples, and a config holds no lists."""
    if isinstance(value, (list, tuple)):
        return tuple(deep_tuple(v) for v in value)
    return value


# How a type error names the expected type.
_TYPE_NAMES = {int: "an int", float: "a number", bool: "True or False", str: "a string",
               tuple: "a tuple"}
# The same types by name, for annotations that typing.get_type_hints cannot evaluate.
_BUILTIN_TYPES = {t.__name__: t for t in _TYPE_NAMES}


@functools.cache
def _field_types(config_class: type) -> dict[str, Any]:
    """The annotation of every field, as a type.

    Modules here use ``from __future__ import annotations``, so annotations are
    strings; :func:`typing.get_type_hints` evaluates them. For a class whose
    annotations name something it cannot see (a class defined inside a
    function), the builtin names are read directly and the rest not checked.
    """
    try:
        return typing.get_type_hints(config_class)
    except NameError:
        return {f.name: _BUILTIN_TYPES.get(f.type, Any) if isinstance(f.type, str) else f.type
                for f in dataclasses.fields(config_class)}


def _as_type(owner: str, name: str, value: Any, annotation: Any) -> Any:
    """``value`` as the field's annotated type, or a TypeError naming the field.

    Ints (and NumPy numbers) widen to float in a float field, NumPy integers
    become ints; nothing else is converted, since a ``bool`` is an ``int`` to
    Python but ``num_envs=True`` is surely a mistake. Annotations that are not a
    class (``Any``, unions) are not checked; generics such as ``tuple[int, ...]``
    are checked as their class alone.
    """
    kind = typing.get_origin(annotation) or annotation
    if kind is Any or not isinstance(kind, type):
        return value
    is_bool = isinstance(value, bool)
    if kind is float and isinstance(value, numbers.Real) and not is_bool:
        return float(value)
    if kind is int and isinstance(value, numbers.Integral) and not is_bool:
        return int(value)
    if kind not in (int, float) and isinstance(value, kind):
        return value
    expected = _TYPE_NAMES.get(kind, f"a {kind.__name__}")
    why = " (a config is frozen and hashable, a list neither)" if isinstance(value, list) else ""
    raise TypeError(
        f"{owner}.{name}={value!r} must be {expected}, not {type(value).__name__}{why}."
    )


def _allowed(meta: Mapping[str, Any]) -> tuple | None:
    """The field's choices, calling the function that lists them if it is one."""
    choices = meta.get("choices")
    return tuple(choices()) if callable(choices) else choices


def _describe_range(meta: Mapping[str, Any]) -> str:
    lo = "-inf" if meta.get("low") is None else repr(meta["low"])
    hi = "inf" if meta.get("high") is None else repr(meta["high"])
    left = "[" if meta.get("low_inclusive", True) else "("
    right = "]" if meta.get("high_inclusive", True) else ")"
    return f"in {left}{lo}, {hi}{right}"


def _did_you_mean(word: Any, candidates: Iterable[Any]) -> str:
    """`` (did you mean 'relu'?)`` for a misspelt string, else nothing."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [c for c in candidates if isinstance(c, str)], n=3)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def _check_value(owner: str, name: str, value: Any, meta: Mapping[str, Any]) -> None:
    where = f"{owner}.{name}={value!r}"
    choices = _allowed(meta)
    if choices is not None:
        if value not in choices:
            raise ValueError(
                f"{where} is not allowed{_did_you_mean(value, choices)}: "
                f"must be one of {', '.join(map(repr, choices))}."
            )
        return
    lo, hi = meta.get("low"), meta.get("high")
    if lo is None and hi is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number {_describe_range(meta)}.")
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{where} is NaN: must be {_describe_range(meta)}.")
    too_low = lo is not None and (value < lo if meta["low_inclusive"] else value <= lo)
    too_high = hi is not None and (value > hi if meta["high_inclusive"] else value >= hi)
    if too_low or too_high:
        raise ValueError(f"{where} is out of range: must be {_describe_range(meta)}.")


def _check_names(config_class: type, names: Iterable[str]) -> None:
    """A TypeError for names that are not fields of ``config_class``, listing the fields."""
    fields = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(names) - set(fields))
    if unknown:
        listed = ", ".join(repr(n) + _did_you_mean(n, fields) for n in unknown)
        raise TypeError(
            f"{config_class.__name__} has no field(s) {listed}; valid fields: {', '.join(fields)}."
        )


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: a frozen dataclass whose fields are validated when built."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        types = _field_types(type(self))
        for f in dataclasses.fields(self):
            value = _as_type(owner, f.name, getattr(self, f.name), types.get(f.name, Any))
            object.__setattr__(self, f.name, value)  # frozen: store the widened value
            _check_value(owner, f.name, value, f.metadata)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override and raise ValueError naming the fields."""

    def hyperparams(self) -> Any:
        """The ``traced=True`` fields as a pytree (a flax struct), the values that
        ``train(key, hyperparams, env_params)`` takes traced: one declaration per
        hyperparameter, the config field, and this view of it."""
        cls = hyperparams_class(type(self))
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed, checked like a new config."""
        _check_names(type(self), changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """The config of ``to_dict()``, also after a trip through JSON (lists become tuples)."""
        _check_names(cls, data)
        return cls(**{k: deep_tuple(v) for k, v in data.items()})

    @classmethod
    def coerce(cls: type[C], value: "C | Mapping[str, Any] | None", owner: str) -> C:
        """``value`` as a config of this class: ``None`` gives the defaults, a dict (a
        saved ``to_dict()``) is rebuilt; anything else is an error naming ``owner``."""
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if not isinstance(value, cls):
            raise TypeError(f"{owner}: config must be a {cls.__name__} or its dict, not "
                            f"{type(value).__name__}.")
        return value


_HYPERPARAMS_CLASSES: dict[type, type] = {}


def hyperparams_class(config_class: type) -> type:
    """The flax struct of ``config_class``'s traced fields (made once per class).

    Its fields keep the config's defaults, so ``hyperparams_class(PPOConfig)()``
    holds PPO's default hyperparameters.
    """
    if config_class not in _HYPERPARAMS_CLASSES:
        from flax import struct

        traced = [f for f in dataclasses.fields(config_class) if f.metadata.get("traced")]
        name = config_class.__name__.removesuffix("Config") + "Hyperparams"
        namespace = {"__annotations__": {f.name: float for f in traced},
                     **{f.name: f.default for f in traced},
                     "__module__": config_class.__module__, "__qualname__": name,
                     "__doc__": f"The traced hyperparameters of {config_class.__name__}."}
        _HYPERPARAMS_CLASSES[config_class] = struct.dataclass(type(name, (), namespace))
    return _HYPERPARAMS_CLASSES[config_class]


def preset_name(preset: str | None = None) -> str:
    """Resolve the preset: the argument, else $LEARNENV_PRESET, else ``quick``."""
    chosen = preset if preset is not None else os.environ.get(PRESET_ENV_VAR)
    if not chosen:
        return "quick"
    chosen = chosen.strip().lower()
    if chosen not in PRESETS:
        raise ValueError(
            f"Unknown preset {chosen!r} (from {'argument' if preset else PRESET_ENV_VAR}); "
            f"valid presets: {', '.join(PRESETS)}."
        )
    return chosen


def select(presets: Mapping[str, C], preset: str | None = None) -> C:
    """Pick the config for the current preset from ``{"quick": ..., "full": ...}``."""
    name = preset_name(preset)
    missing = [p for p in PRESETS if p not in presets]
    if missing:
        raise KeyError(f"Experiment defines no config for preset(s) {missing}.")
    return presets[name]


def describe_preset(preset: str | None = None, chapter: str | None = None) -> str:
    """The line every chapter prints at its top; with ``chapter``, also what it costs
    (from the book's time ledger, results/book/chapter-times.json), so a reader
    knows before running it and before choosing ``full``."""
    import jax

    name = preset_name(preset)
    if preset:
        source = "chosen by the caller"
    elif os.environ.get(PRESET_ENV_VAR):
        source = f"from ${PRESET_ENV_VAR}"
    else:
        source = "the default; full is opt-in"
    device = jax.devices()[0]
    lines = [f"learnenv preset: {name!r} ({source})",
             f"JAX {jax.__version__} on {device.platform.upper()} ({device.device_kind}); "
             f"set {PRESET_ENV_VAR}=quick or full to change the preset."]
    return "\n".join(lines + (_chapter_cost(chapter) if chapter else []))


def _chapter_cost(chapter: str) -> list[str]:
    """Lines of at most about 80 characters: a notebook's output box does not wrap."""
    import json
    import textwrap

    from learnenv import results

    try:
        ledger = json.loads(results.path("book/chapter-times.json").read_text())
        row = ledger["chapters"][chapter]
    except (FileNotFoundError, KeyError):
        return [f"No run time of {chapter!r} is recorded yet."]
    quick = (f"{row['quick_seconds'] / 60:.1f} min, measured on a "
             f"{ledger.get('cpu_count', '?')}-core CPU"
             if isinstance(row.get("quick_seconds"), (int, float)) else "not measured yet")
    full = (f"{row['full_seconds'] / 60:.1f} min, measured on a GPU"
            if isinstance(row.get("full_seconds"), (int, float))
            else row.get("full_estimate", "not measured"))
    return ["Run time of this chapter:", f"  quick: {quick} (cap {row['cap_minutes']} min)",
            *textwrap.wrap(f"full: {full}", 78, initial_indent="  ", subsequent_indent="    ")]


RUNS_DIR_ENV_VAR = "LEARNENV_RUNS_DIR"


def runs_dir() -> Path:
    """The folder for run folders (checkpoints, results): ``$LEARNENV_RUNS_DIR`` if
    set (the book build keeps runs with its execution cache, so that a changed
    library never resumes an old run), else ``learnenv-runs`` in Google Drive when it
    is mounted, so that a full run on Colab outlives the runtime and resumes from
    its checkpoints, else ``runs`` in the working folder."""
    if os.environ.get(RUNS_DIR_ENV_VAR):
        return Path(os.environ[RUNS_DIR_ENV_VAR])
    return DRIVE_ROOT / "learnenv-runs" if DRIVE_ROOT.is_dir() else Path("runs")
