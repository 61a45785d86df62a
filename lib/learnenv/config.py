"""Experiment configs and the quick/full preset switch.

Every experiment in the book is described by a frozen dataclass that inherits
from :class:`Config`. Fields declare their allowed values with :func:`field`, and
the config checks them when it is built, so a typo such as ``lr=-3e-4`` fails
at once with a message naming the field, instead of an hour later as a NaN.

Every experiment also has two presets: ``quick`` (a CPU, minutes, used by CI and
the book build) and ``full`` (paper scale, one Colab GPU). :func:`preset_name`
picks one from the ``LEARNENV_PRESET`` environment variable, defaulting to
``full`` when JAX sees a GPU and ``quick`` otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Mapping, Sequence, TypeVar

PRESETS = ("quick", "full")
PRESET_ENV_VAR = "LEARNENV_PRESET"

C = TypeVar("C", bound="Config")


def field(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    choices: Sequence[Any] | None = None,
    traced: bool = False,
    doc: str = "",
) -> Any:
    """A dataclass field with an allowed range (numbers) or set of choices.

    ``traced=True`` marks a numeric hyperparameter that the training function
    reads as a traced value (so it can be vmapped: a learning rate, an entropy
    coefficient); every other field is static (shapes, step counts, flags that
    change the program). :meth:`Config.hyperparams` collects the traced ones.
    """
    meta = dict(
        traced=traced,
        low=low,
        high=high,
        low_inclusive=low_inclusive,
        high_inclusive=high_inclusive,
        choices=tuple(choices) if choices is not None else None,
        doc=doc,
    )
    if isinstance(default, (list, dict, set)):
        raise TypeError("Config fields must be immutable; use a tuple.")
    return dataclasses.field(default=default, metadata=meta)


def _describe_range(meta: Mapping[str, Any]) -> str:
    if meta.get("choices") is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    lo, hi = meta.get("low"), meta.get("high")
    left = ("[" if meta.get("low_inclusive", True) else "(") + (
        "-inf" if lo is None else repr(lo)
    )
    right = ("inf" if hi is None else repr(hi)) + (
        "]" if meta.get("high_inclusive", True) else ")"
    )
    return f"in {left}, {right}"


def _check_value(owner: str, name: str, value: Any, meta: Mapping[str, Any]) -> None:
    where = f"{owner}.{name}={value!r}"
    if meta.get("choices") is not None:
        if value not in meta["choices"]:
            raise ValueError(f"{where} is not allowed: must be {_describe_range(meta)}.")
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


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: a frozen dataclass whose fields are validated when built."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for f in dataclasses.fields(self):
            _check_value(owner, f.name, getattr(self, f.name), f.metadata)
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
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            valid = ", ".join(f.name for f in dataclasses.fields(self))
            raise TypeError(
                f"{type(self).__name__} has no field(s) {sorted(unknown)}; valid fields: {valid}."
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}.")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fixed)


_HYPERPARAMS_CLASSES: dict[type, type] = {}


def traced_fields(config_class: type) -> tuple[str, ...]:
    """Names of the fields of ``config_class`` declared with ``traced=True``."""
    return tuple(f.name for f in dataclasses.fields(config_class) if f.metadata.get("traced"))


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


def gpu_available() -> bool:
    import jax

    try:
        return jax.default_backend() in ("gpu", "cuda", "rocm")
    except RuntimeError:
        return False


def preset_name(preset: str | None = None) -> str:
    """Resolve the preset: the argument, else $LEARNENV_PRESET, else by hardware."""
    chosen = preset if preset is not None else os.environ.get(PRESET_ENV_VAR)
    if chosen is None or chosen == "":
        return "full" if gpu_available() else "quick"
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


def describe_preset(preset: str | None = None) -> str:
    """The line every chapter prints at its top."""
    import jax

    name = preset_name(preset)
    if preset:
        source = "chosen by the caller"
    elif os.environ.get(PRESET_ENV_VAR):
        source = f"from ${PRESET_ENV_VAR}"
    else:
        source = "a GPU was found" if name == "full" else "no GPU was found"
    device = jax.devices()[0]
    return (
        f"learnenv preset: {name!r} ({source}); JAX {jax.__version__} on "
        f"{device.platform.upper()} ({device.device_kind}). "
        f"Set {PRESET_ENV_VAR}=quick or full to change it."
    )
