"""learnenv.config: validated frozen configs and the quick/full preset switch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from learnenv import config as cfgmod
from learnenv.config import Config, deep_tuple, field


@dataclasses.dataclass(frozen=True)
class ToyConfig(Config):
    lr: float = field(3e-4, low=0.0, high=1.0, low_inclusive=False)
    num_envs: int = field(8, low=1, high=4096)
    gamma: float = field(0.99, low=0.0, high=1.0)
    algo: str = field("ppo", choices=("ppo", "dqn"))
    hidden: tuple = field((64, 64))
    # Plain defaults, without field(): checked by their annotation alone.
    clip: float = 10.0
    anneal: bool = True

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


# --- types, from the annotations ----------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"num_envs": 4.5}, r"ToyConfig\.num_envs=4\.5 must be an int, not float"),
        ({"num_envs": 8.0}, r"ToyConfig\.num_envs=8\.0 must be an int, not float"),
        ({"num_envs": None}, r"ToyConfig\.num_envs=None must be an int"),
        ({"lr": "1e-3"}, r"ToyConfig\.lr='1e-3' must be a number, not str"),
        ({"lr": True}, r"ToyConfig\.lr=True must be a number, not bool"),
        ({"clip": "10"}, r"ToyConfig\.clip='10' must be a number"),
        ({"anneal": 1}, r"ToyConfig\.anneal=1 must be True or False, not int"),
        ({"anneal": 0}, r"ToyConfig\.anneal=0 must be True or False"),
        ({"anneal": "False"}, r"ToyConfig\.anneal='False' must be True or False, not str"),
        ({"algo": 1}, r"ToyConfig\.algo=1 must be a string, not int"),
        ({"hidden": [32]}, r"ToyConfig\.hidden=\[32\] must be a tuple, not list \(a config is frozen"),
        ({"hidden": 32}, r"ToyConfig\.hidden=32 must be a tuple"),
    ],
)
def test_wrong_type_names_field_and_type(changes, message):
    with pytest.raises(TypeError, match=message):
        ToyConfig(**changes)
    with pytest.raises(TypeError, match=message):
        ToyConfig().replace(**changes)


def test_numbers_widen_to_the_annotated_type():
    cfg = ToyConfig(lr=1, clip=3, num_envs=np.int64(16), gamma=np.float32(0.5))
    assert (cfg.lr, cfg.clip, cfg.num_envs, cfg.gamma) == (1.0, 3.0, 16, 0.5)
    assert [type(v) for v in (cfg.lr, cfg.clip, cfg.num_envs, cfg.gamma)] == [float, float, int, float]
    assert cfg == ToyConfig(lr=1.0, clip=3.0, num_envs=16, gamma=0.5)
    assert hash(cfg) == hash(ToyConfig(lr=1.0, clip=3.0, num_envs=16, gamma=0.5))


def test_annotations_of_a_class_defined_in_a_function_are_checked():
    class Local:
        pass

    @dataclasses.dataclass(frozen=True)
    class LocalConfig(Config):
        steps: int = 1
        thing: Local | None = None  # a name get_type_hints cannot resolve: not checked

    assert LocalConfig(thing=Local()).steps == 1
    with pytest.raises(TypeError, match=r"LocalConfig\.steps=1\.5 must be an int"):
        LocalConfig(steps=1.5)


# --- choices computed when checked ----------------------------------------------


_REGISTERED = ["CartPole-v1", "Acrobot-v1"]
_calls = []


def _registered_names():
    _calls.append(None)
    return _REGISTERED


@dataclasses.dataclass(frozen=True)
class EnvConfig(Config):
    env_name: str = field("CartPole-v1", choices=_registered_names)


def test_callable_choices_are_read_when_a_config_is_checked(monkeypatch):
    monkeypatch.setitem(globals(), "_REGISTERED", ["CartPole-v1", "Acrobot-v1"])
    calls = len(_calls)
    assert EnvConfig().env_name == "CartPole-v1"
    assert len(_calls) > calls
    with pytest.raises(ValueError, match="not allowed"):
        EnvConfig(env_name="MountainCar-v0")
    _REGISTERED.append("MountainCar-v0")  # registered after the class was defined
    assert EnvConfig(env_name="MountainCar-v0").env_name == "MountainCar-v0"


def test_callable_choices_are_not_called_when_the_class_is_defined():
    def boom():
        raise AssertionError("choices called at class definition")

    @dataclasses.dataclass(frozen=True)
    class Lazy(Config):
        name: str = field("a", choices=boom)

    with pytest.raises(AssertionError, match="class definition"):
        Lazy()


def test_wrong_name_lists_valid_names_and_suggests_the_closest():
    with pytest.raises(ValueError) as info:
        EnvConfig(env_name="Cartpole-v1")
    message = str(info.value)
    assert message.startswith("EnvConfig.env_name='Cartpole-v1' is not allowed (did you mean 'CartPole-v1'?)")
    assert message.endswith("must be one of 'CartPole-v1', 'Acrobot-v1'.")
    with pytest.raises(ValueError) as info:
        EnvConfig(env_name="zzz")
    assert "did you mean" not in str(info.value)


def test_choices_from_the_environment_registry():
    from learnenv import envs

    @dataclasses.dataclass(frozen=True)
    class RealEnvConfig(Config):
        env_name: str = field("CartPole-v1", choices=envs.names)

    assert RealEnvConfig(env_name="Acrobot-v1").env_name == "Acrobot-v1"
    with pytest.raises(ValueError, match=r"'CartPol-v1' is not allowed \(did you mean 'CartPole-v1'"):
        RealEnvConfig(env_name="CartPol-v1")


def test_cross_field_validate_runs():
    with pytest.raises(ValueError, match="num_envs=2048"):
        ToyConfig(algo="dqn", num_envs=2048)


def test_replace_validates_and_rejects_unknown_fields():
    cfg = ToyConfig()
    assert cfg.replace(num_envs=16).num_envs == 16
    assert cfg.num_envs == 8  # unchanged
    with pytest.raises(ValueError, match="num_envs"):
        cfg.replace(num_envs=-1)
    with pytest.raises(TypeError) as info:
        cfg.replace(num_env=16)
    assert "no field(s) 'num_env' (did you mean 'num_envs'?); valid fields: lr, num_envs" in str(info.value)


def test_mutable_default_is_rejected():
    with pytest.raises(TypeError, match="immutable"):
        field([64, 64])


# --- round trips ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NestedConfig(Config):
    agent_variants: tuple = (((64,), 64), ((128,), 32))  # (hidden_sizes, batch_size) each
    hidden_sizes: tuple = (64, 64)
    lr: float = 1e-3


def test_deep_tuple_turns_nested_lists_into_tuples():
    assert deep_tuple([[[64], 64], ([128], 32)]) == (((64,), 64), ((128,), 32))
    assert deep_tuple([]) == ()
    assert deep_tuple("abc") == "abc" and deep_tuple(3) == 3


def test_dict_round_trip():
    cfg = ToyConfig(hidden=(32,))
    assert ToyConfig.from_dict(cfg.to_dict()) == cfg
    # JSON turns tuples into lists; from_dict turns them back.
    assert ToyConfig.from_dict({**cfg.to_dict(), "hidden": [32]}) == cfg
    with pytest.raises(TypeError, match="no field"):
        ToyConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    "cfg",
    [NestedConfig(), NestedConfig(agent_variants=(((64, 64), 128),), hidden_sizes=(), lr=1)],
)
def test_nested_tuples_survive_dict_and_json(cfg):
    assert NestedConfig.from_dict(cfg.to_dict()) == cfg
    from_json = NestedConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert from_json == cfg and hash(from_json) == hash(cfg)
    assert isinstance(from_json.agent_variants[0][0], tuple)


def test_from_dict_checks_types():
    with pytest.raises(TypeError, match=r"NestedConfig\.lr='fast' must be a number"):
        NestedConfig.from_dict({"lr": "fast"})
    with pytest.raises(TypeError, match=r"NestedConfig\.hidden_sizes=64 must be a tuple"):
        NestedConfig.from_dict({"hidden_sizes": 64})


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


def test_default_is_quick_even_on_a_gpu(monkeypatch, no_preset_env):
    """Full runs take hours: opt-in only, also on a Colab GPU runtime."""
    import jax

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert cfgmod.preset_name() == "quick"
    assert "full is opt-in" in cfgmod.describe_preset()


def test_empty_environment_variable_means_unset(monkeypatch):
    monkeypatch.setenv(cfgmod.PRESET_ENV_VAR, "")
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


def test_runs_dir_is_local_without_drive(monkeypatch, tmp_path):
    monkeypatch.setattr(cfgmod, "DRIVE_ROOT", tmp_path / "drive" / "MyDrive")
    assert cfgmod.runs_dir() == Path("runs")


def test_runs_dir_is_in_drive_when_mounted(monkeypatch, tmp_path):
    """A full run on Colab must checkpoint where a new runtime can resume it."""
    drive = tmp_path / "drive" / "MyDrive"
    drive.mkdir(parents=True)
    monkeypatch.setattr(cfgmod, "DRIVE_ROOT", drive)
    assert cfgmod.runs_dir() == drive / "learnenv-runs"


def test_chapter_header_states_its_cost_from_the_ledger():
    import json

    from learnenv import results

    ledger = json.loads(results.path("book/chapter-times.json").read_text())
    cap = ledger["chapters"]["introduction"]["cap_minutes"]
    line = cfgmod.describe_preset("quick", chapter="introduction")
    assert f"(cap {cap} min)" in line and line.startswith("learnenv preset: 'quick'")
    assert "No run time of 'no-such-chapter'" in cfgmod.describe_preset("quick", "no-such-chapter")


def test_runs_dir_follows_the_environment_variable_first(monkeypatch, tmp_path):
    monkeypatch.setattr(cfgmod, "DRIVE_ROOT", tmp_path)  # a mounted Drive...
    monkeypatch.setenv(cfgmod.RUNS_DIR_ENV_VAR, str(tmp_path / "book-runs"))
    assert cfgmod.runs_dir() == tmp_path / "book-runs"  # ...loses to the book build's choice
    monkeypatch.delenv(cfgmod.RUNS_DIR_ENV_VAR)
    assert cfgmod.runs_dir() == tmp_path / "learnenv-runs"
