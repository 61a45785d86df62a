"""learnenv.config: validated frozen configs and the quick/full preset switch."""

from __future__ import annotations

import dataclasses

import pytest

from learnenv import config as cfgmod
from learnenv.config import Config, field


@dataclasses.dataclass(frozen=True)
class ToyConfig(Config):
    lr: float = field(3e-4, low=0.0, high=1.0, low_inclusive=False)
    num_envs: int = field(8, low=1, high=4096)
    gamma: float = field(0.99, low=0.0, high=1.0)
    algo: str = field("ppo", choices=("ppo", "dqn"))
    hidden: tuple = field((64, 64))

    def validate(self) -> None:
        if self.algo == "dqn" and self.num_envs > 1024:
            raise ValueError(f"ToyConfig.num_envs={self.num_envs} must be <= 1024 when algo='dqn'.")


PRESETS = {"quick": ToyConfig(num_envs=4), "full": ToyConfig(num_envs=256)}


@pytest.fixture
def no_preset_env(monkeypatch):
    monkeypatch.delenv(cfgmod.PRESET_ENV_VAR, raising=False)


# --- validation -------------------------------------------------------------


def test_defaults_are_valid():
    assert ToyConfig().num_envs == 8


@pytest.mark.parametrize(
    "changes, field_name, range_text",
    [
        ({"lr": -3e-4}, "lr", "(0.0, 1.0]"),
        ({"lr": 0.0}, "lr", "(0.0, 1.0]"),  # exclusive lower bound
        ({"num_envs": 0}, "num_envs", "[1, 4096]"),
        ({"num_envs": 5000}, "num_envs", "[1, 4096]"),
        ({"gamma": 1.5}, "gamma", "[0.0, 1.0]"),
        ({"gamma": float("nan")}, "gamma", "[0.0, 1.0]"),
    ],
)
def test_out_of_range_value_names_field_and_range(changes, field_name, range_text):
    with pytest.raises(ValueError) as info:
        ToyConfig(**changes)
    message = str(info.value)
    assert f"ToyConfig.{field_name}=" in message
    assert range_text in message


def test_invalid_choice_lists_choices():
    with pytest.raises(ValueError, match=r"ToyConfig\.algo='sac'.*'ppo', 'dqn'"):
        ToyConfig(algo="sac")


def test_non_number_for_numeric_field_raises_type_error():
    with pytest.raises(TypeError, match=r"ToyConfig\.num_envs='8'"):
        ToyConfig(num_envs="8")
    with pytest.raises(TypeError, match=r"ToyConfig\.num_envs=True"):
        ToyConfig(num_envs=True)


def test_cross_field_validate_runs():
    with pytest.raises(ValueError, match="num_envs=2048"):
        ToyConfig(algo="dqn", num_envs=2048)


def test_replace_validates_and_rejects_unknown_fields():
    cfg = ToyConfig()
    assert cfg.replace(num_envs=16).num_envs == 16
    assert cfg.num_envs == 8  # unchanged
    with pytest.raises(ValueError, match="num_envs"):
        cfg.replace(num_envs=-1)
    with pytest.raises(TypeError, match="no field"):
        cfg.replace(num_env=16)


def test_mutable_default_is_rejected():
    with pytest.raises(TypeError, match="immutable"):
        field([64, 64])


def test_dict_round_trip():
    cfg = ToyConfig(hidden=(32,))
    assert ToyConfig.from_dict(cfg.to_dict()) == cfg
    # JSON turns tuples into lists; from_dict turns them back.
    assert ToyConfig.from_dict({**cfg.to_dict(), "hidden": [32]}) == cfg
    with pytest.raises(TypeError, match="no field"):
        ToyConfig.from_dict({"bogus": 1})


# --- frozen -----------------------------------------------------------------


def test_config_is_frozen():
    cfg = ToyConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1e-3  # type: ignore[misc]
    assert hash(cfg) == hash(ToyConfig())


# --- presets ----------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("quick", "quick"), ("full", "full"), (" FULL ", "full")])
def test_preset_from_environment_variable(monkeypatch, value, expected):
    monkeypatch.setenv(cfgmod.PRESET_ENV_VAR, value)
    assert cfgmod.preset_name() == expected
    assert cfgmod.select(PRESETS) == PRESETS[expected]


def test_argument_overrides_environment(monkeypatch):
    monkeypatch.setenv(cfgmod.PRESET_ENV_VAR, "full")
    assert cfgmod.preset_name("quick") == "quick"
    assert cfgmod.select(PRESETS, "quick") == PRESETS["quick"]


def test_default_follows_hardware(monkeypatch, no_preset_env):
    monkeypatch.setattr(cfgmod, "gpu_available", lambda: False)
    assert cfgmod.preset_name() == "quick"
    monkeypatch.setattr(cfgmod, "gpu_available", lambda: True)
    assert cfgmod.preset_name() == "full"


def test_empty_environment_variable_means_unset(monkeypatch):
    monkeypatch.setenv(cfgmod.PRESET_ENV_VAR, "")
    monkeypatch.setattr(cfgmod, "gpu_available", lambda: False)
    assert cfgmod.preset_name() == "quick"


def test_unknown_preset_from_environment(monkeypatch):
    monkeypatch.setenv(cfgmod.PRESET_ENV_VAR, "medium")
    with pytest.raises(ValueError) as info:
        cfgmod.preset_name()
    message = str(info.value)
    assert "'medium'" in message and cfgmod.PRESET_ENV_VAR in message
    assert "quick" in message and "full" in message


def test_unknown_preset_from_argument(no_preset_env):
    with pytest.raises(ValueError, match=r"'huge' \(from argument\)"):
        cfgmod.select(PRESETS, "huge")


def test_select_requires_every_preset():
    with pytest.raises(KeyError, match="full"):
        cfgmod.select({"quick": ToyConfig()}, "quick")


def test_describe_preset_names_preset_and_source(monkeypatch):
    monkeypatch.setenv(cfgmod.PRESET_ENV_VAR, "quick")
    line = cfgmod.describe_preset()
    assert "'quick'" in line and "$LEARNENV_PRESET" in line and "JAX" in line


def test_describe_preset_with_explicit_argument(no_preset_env):
    line = cfgmod.describe_preset("full")
    assert "'full'" in line and "chosen by the caller" in line
