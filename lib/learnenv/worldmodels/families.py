"""The world-model families by name, for configs, checkpoints and the command line."""

from __future__ import annotations

from learnenv.worldmodels.base import WorldModel
from learnenv.worldmodels.onestep import OneStepModel
from learnenv.worldmodels.recurrent import RecurrentModel
from learnenv.worldmodels.separate import SeparateModel

__all__ = ["FAMILIES", "make_model"]

FAMILIES: dict[str, type[WorldModel]] = {
    cls.family: cls for cls in (OneStepModel, RecurrentModel, SeparateModel)}


def make_model(family: str, obs_dim: int, action_size: int, discrete: bool, **kwargs) -> WorldModel:
    if family not in FAMILIES:
        raise ValueError(f"Unknown world-model family {family!r}; valid: {', '.join(FAMILIES)}.")
    return FAMILIES[family](obs_dim, action_size, discrete, **kwargs)
