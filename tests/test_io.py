"""learnenv.io: save/load round trips, templates, refusals with clear messages."""

from __future__ import annotations

import collections
import dataclasses
import json
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from learnenv import envs, io
from learnenv.config import Config, field

from checkpoint_converter import io_v1


@dataclasses.dataclass(frozen=True)
class TinyConfig(Config):
    learning_rate: float = field(3e-4, low=0.0)
    hidden: tuple = (8, 8)
    activation: str = field("tanh", choices=("tanh", "relu"))


Pair = collections.namedtuple("Pair", "first second")


def _mlp_params(hidden=8, seed=0):
    model = nn.Sequential([nn.Dense(hidden), nn.tanh, nn.Dense(2)])
    return model.init(jax.random.key(seed), jnp.ones((1, 4)))


def _assert_identical(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        if io.is_prng_key(x):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert type(x) is type(y) or isinstance(x, jax.Array) and isinstance(y, jax.Array)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


def test_round_trip_params_config_env_params(tmp_path, cartpole):
    _, env_params = cartpole
    params = _mlp_params()
    config = TinyConfig(learning_rate=1e-3)
    metrics = {"episode_return": np.linspace(0, 1, 7, dtype=np.float32), "timesteps": np.arange(7)}
    path = io.save(
        tmp_path / "agent",
        params=params,
        config=config,
        env_name="CartPole-v1",
        env_params=env_params,
        metrics=metrics,
        extra={"note": "test", "score": np.float32(0.5)},
        wall_clock_s=1.25,
    )
    assert (tmp_path / "agent.msgpack").is_file() and (tmp_path / "agent.json").is_file()

    ckpt = io.load(path, expect_env="CartPole-v1", env_params_like=env_params, config_cls=TinyConfig)
    _assert_identical(ckpt.params, params)  # no template: the same plain nested dicts
    assert all(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(ckpt.params))
    assert ckpt.config == config and isinstance(ckpt.config, TinyConfig)
    assert type(ckpt.env_params) is type(env_params) and ckpt.env_params == env_params
    assert ckpt.metrics.keys() == metrics.keys()
    for k in metrics:
        np.testing.assert_array_equal(ckpt.metrics[k], metrics[k])
    assert ckpt.env_name == "CartPole-v1" and ckpt.kind == "agent"
    assert ckpt.extra == {"note": "test", "score": 0.5}

    prov = ckpt.provenance
    assert prov["wall_clock_s"] == 1.25
    assert prov["packages"]["jax"] == jax.__version__
    assert {"flax", "optax", "evosax", "gymnax", "brax", "learnenv"} <= set(prov["packages"])
    assert prov["device"]["platform"] == jax.devices()[0].platform
    assert "timestamp" in prov and "python" in prov
    assert prov["git"] is None or set(prov["git"]) == {"commit", "dirty"}

    # the suffix is optional; without a template or class, trees and config are plain data
    plain = io.load(tmp_path / "agent.json")
    assert plain.config == config.to_dict() | {"hidden": [8, 8]}
    assert isinstance(plain.env_params, dict) and set(plain.env_params) == {
        f.name for f in dataclasses.fields(env_params)}


def test_metadata_is_readable_json(tmp_path):
    io.save(tmp_path / "p", params=_mlp_params(), config=TinyConfig(), kind="agent")
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["format"] == io.FORMAT and meta["format_version"] == io.FORMAT_VERSION == 2
    assert meta["kind"] == "agent" and meta["spec"] is None
    assert meta["config"]["class"].endswith(":TinyConfig")  # a label; never imported
    assert meta["config"]["values"]["hidden"] == [8, 8]
    assert meta["trees"]["params"] == {
        "params/layers_0/bias": "float32[8]",
        "params/layers_0/kernel": "float32[4, 8]",
        "params/layers_2/bias": "float32[2]",
        "params/layers_2/kernel": "float32[8, 2]",
    }
    assert meta["summary"]["params"] == {"leaves": 4, "values": 4 * 8 + 8 + 8 * 2 + 2}
    # the arrays file is a plain flax msgpack state dict
    raw = serialization.msgpack_restore((tmp_path / "p.msgpack").read_bytes())
    assert raw["params"]["params"]["layers_0"]["kernel"].shape == (4, 8)


def _awkward_state():
    return {
        "typed_key": jax.random.key(1),
        "typed_keys": jax.random.split(jax.random.key(2), 3),
        "rbg_key": jax.random.key(4, impl="rbg"),
        "raw_key": jax.random.PRNGKey(3),
        "pair": Pair(jnp.arange(3, dtype=jnp.int32), jnp.array(0.5)),
        "tuple": (1, 2.5, True, None, "label"),
        "list": [jnp.zeros((2, 2), jnp.bfloat16), np.float64(3.0), np.arange(2.0)],
        "empty": {},
    }


def test_any_pytree_with_keys_round_trips_into_its_template(tmp_path):
    state = _awkward_state()
    io.save(tmp_path / "s", params=state, kind="es-state")
    restored = io.load(tmp_path / "s", like=state).params
    _assert_identical(restored, state)
    assert isinstance(restored["pair"], Pair) and restored["tuple"][4] == "label"
    assert isinstance(restored["tuple"][0], int) and isinstance(restored["tuple"][2], bool)
    assert isinstance(restored["list"][1], np.float64)  # float64 stays numpy without x64
    assert str(jax.random.key_impl(restored["rbg_key"])) == "rbg"

    # without a template: nested dicts of arrays, keys as their key_data, nothing rebuilt
    plain = io.load(tmp_path / "s").params
    assert isinstance(plain["pair"], dict) and set(plain["pair"]) == {"first", "second"}
    np.testing.assert_array_equal(plain["typed_keys"], jax.random.key_data(state["typed_keys"]))
    assert plain["tuple"] == {"0": 1, "1": 2.5, "2": True, "3": None, "4": "label"}


def test_flax_struct_dataclass_params(tmp_path, cartpole):
    _, env_params = cartpole
    batch = jax.tree_util.tree_map(lambda x: jnp.full((4,), x), env_params)  # a population
    io.save(tmp_path / "envs", params=batch, env_name="CartPole-v1")
    loaded = io.load(tmp_path / "envs", like=batch).params
    assert type(loaded) is type(env_params)
    _assert_identical(loaded, batch)


def test_abstract_template(tmp_path):
    state = {"params": _mlp_params(), "key": jax.random.key(7)}
    io.save(tmp_path / "a", params=state)
    abstract = jax.eval_shape(lambda: state)
    _assert_identical(io.load(tmp_path / "a", like=abstract).params, state)


def test_wrong_environment_is_refused(tmp_path):
    io.save(tmp_path / "a", params=_mlp_params(), env_name="CartPole-v1")
    with pytest.raises(io.CheckpointError, match=r"saved for environment 'CartPole-v1', not 'Acrobot-v1'"):
        io.load(tmp_path / "a", expect_env="Acrobot-v1")
    io.save(tmp_path / "b", params=_mlp_params())
    with pytest.raises(io.CheckpointError, match="records no environment"):
        io.load(tmp_path / "b", expect_env="Acrobot-v1")


def test_template_mismatch_names_the_leaf(tmp_path):
    io.save(tmp_path / "a", params=_mlp_params(hidden=8))
    with pytest.raises(io.TemplateMismatchError,
                       match=r"leaf 'params/params/layers_0/bias' is float32\[8\] in the checkpoint "
                             r"but float32\[16\] in the template"):
        io.load(tmp_path / "a", like=_mlp_params(hidden=16))
    half = jax.tree_util.tree_map(lambda x: x.astype(jnp.float16), _mlp_params())
    with pytest.raises(io.TemplateMismatchError, match=r"float32\[8\] in the checkpoint but float16\[8\]"):
        io.load(tmp_path / "a", like=half)
    template = _mlp_params()
    template["params"]["layers_2"]["extra"] = jnp.zeros(3)
    with pytest.raises(io.TemplateMismatchError, match="template has a leaf 'params/params/layers_2/extra'"):
        io.load(tmp_path / "a", like=template)
    del template["params"]["layers_2"]
    with pytest.raises(io.TemplateMismatchError,
                       match=r"checkpoint has a leaf 'params/params/layers_2/bias'.*2 extra leaves"):
        io.load(tmp_path / "a", like=template)
    io.save(tmp_path / "k", params={"key": jax.random.key(0)})
    with pytest.raises(io.TemplateMismatchError,
                       match=r"'params/key' is key<fry>\[\] in the checkpoint but uint32\[2\]"):
        io.load(tmp_path / "k", like={"key": jax.random.PRNGKey(0)})


def test_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        io.load(tmp_path / "missing")
    io.save(tmp_path / "a", params=_mlp_params())
    blob = (tmp_path / "a.msgpack").read_bytes()
    (tmp_path / "a.msgpack").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(io.CheckpointError, match="corrupt: a.msgpack does not match the hash"):
        io.load(tmp_path / "a")

    # one number changed, same length: still caught by the hash
    params = {"w": np.arange(4, dtype=np.float32)}
    io.save(tmp_path / "m", params=params)
    blob = bytearray((tmp_path / "m.msgpack").read_bytes())
    at = bytes(blob).index(np.float32(3.0).tobytes())
    blob[at : at + 4] = np.float32(-3.0).tobytes()
    (tmp_path / "m.msgpack").write_bytes(bytes(blob))
    assert serialization.msgpack_restore(bytes(blob))["params"]["w"][3] == -3.0  # decodes fine
    with pytest.raises(io.CheckpointError, match="corrupt"):
        io.load(tmp_path / "m", like=params)

    # arrays replaced and the hash updated to match: the arrays are still checked
    import hashlib

    blob = serialization.msgpack_serialize({"params": {"w": np.zeros(5, np.float32)}})
    (tmp_path / "m.msgpack").write_bytes(blob)
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(io.TemplateMismatchError, match=r"'params/w' is float32\[5\] in the checkpoint"):
        io.load(tmp_path / "m", like=params)

    io.save(tmp_path / "b", params=_mlp_params())
    meta = json.loads((tmp_path / "b.json").read_text())
    meta["format_version"] = io.FORMAT_VERSION + 1
    (tmp_path / "b.json").write_text(json.dumps(meta))
    with pytest.raises(io.CheckpointError, match="format version 3.*upgrade learnenv"):
        io.load(tmp_path / "b")

    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(io.CheckpointError, match="not valid JSON"):
        io.load(tmp_path / "c")
    (tmp_path / "d.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(io.CheckpointError, match="not a learnenv checkpoint"):
        io.load(tmp_path / "d")


def test_config_is_data_unless_the_caller_names_its_class(tmp_path):
    io.save(tmp_path / "a", params={"w": jnp.ones(2)}, config=TinyConfig(learning_rate=0.5))
    assert io.load(tmp_path / "a").config["learning_rate"] == 0.5
    assert io.load(tmp_path / "a", config_cls=TinyConfig).config == TinyConfig(learning_rate=0.5)
    with pytest.raises(io.CheckpointError, match="config of class .*TinyConfig.*not LoopConfig"):
        io.load(tmp_path / "a", config_cls=type("LoopConfig", (TinyConfig,), {}))


# --------------------------------------------------------------------------- environments


def _environments():
    from learnenv.synthetic.bandit import SyntheticContextualBandit, SyntheticMDP
    from learnenv.synthetic.environment import SyntheticEnvironment
    from learnenv.synthetic.reward_network import RewardNetworkEnvironment

    return [
        SyntheticContextualBandit("CartPole-v1", hidden_sizes=(8,)),
        SyntheticMDP("Pendulum-v1", hidden_sizes=(4, 4), max_steps_in_episode=30),
        SyntheticEnvironment("CartPole-v1", hidden_sizes=(8,), max_steps_in_episode=50, state_clip=5.0),
        RewardNetworkEnvironment("Acrobot-v1", hidden_sizes=(6,), activation="tanh", gamma=0.9),
    ]


@pytest.mark.parametrize("index", range(4), ids=["scb", "synthetic-mdp", "se", "reward-network"])
def test_environment_round_trip(tmp_path, index):
    env = _environments()[index]
    params = env.init_params(jax.random.key(index))
    path = io.save_environment(tmp_path / "env", env, params, config=TinyConfig(),
                               metrics={"fitness": np.arange(3.0)}, extra={"note": "x"},
                               wall_clock_s=2.0)
    meta = io.read_meta(path)
    assert meta["kind"] == env.kind and meta["spec"] == env.spec()
    assert meta["summary"]["env_params"]["values"] == env.num_parameters(params)
    loaded_env, loaded = io.load_environment(path)
    assert type(loaded_env) is type(env) and loaded_env.spec() == env.spec()
    assert loaded_env.name == env.name and loaded.max_steps_in_episode == params.max_steps_in_episode
    _assert_identical(loaded, params)
    obs, state = loaded_env.reset(jax.random.key(0), loaded)
    assert obs.shape == env.obs_shape
    ckpt = io.load(path)
    assert ckpt.extra == {"note": "x"} and ckpt.provenance["wall_clock_s"] == 2.0
    with pytest.raises(io.CheckpointError, match=r"holds kind .*, not 'other'"):
        io.load_environment(path, expect_kind="other")


def test_save_environment_checks_params_fit():
    from learnenv.synthetic.environment import SyntheticEnvironment

    small = SyntheticEnvironment("CartPole-v1", hidden_sizes=(8,))
    big = SyntheticEnvironment("CartPole-v1", hidden_sizes=(16,))
    with pytest.raises(io.TemplateMismatchError, match=r"network_params/done/Dense_0/bias' is float32\[16\]"):
        io.save_environment("unused", small, big.default_params)
    with pytest.raises(TypeError, match="no registered kind"):
        io.save_environment("unused", envs.make("CartPole-v1")[0], {})


def test_agent_checkpoint_is_not_an_environment(tmp_path):
    io.save(tmp_path / "agent", params={"w": jnp.zeros(3)}, env_name="CartPole-v1")
    with pytest.raises(io.CheckpointError, match="no spec"):
        io.load_environment(tmp_path / "agent")


# --------------------------------------------------------------------------- safety


@pytest.fixture()
def trap_module(tmp_path, monkeypatch):
    """A module that records being imported: proof that loading imported nothing."""
    name = "learnenv_tamper_trap"
    record = tmp_path / "imported.txt"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(record)!r}, 'w').write('imported')\n"
        "def load(path):\n    return 'pwned'\n"
        "class Config:\n    def __init__(self, **kw): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert name not in sys.modules
    return name, record


def test_tampered_checkpoint_imports_nothing(tmp_path, trap_module):
    from learnenv.synthetic.environment import SyntheticEnvironment

    name, record = trap_module
    env = SyntheticEnvironment("CartPole-v1", hidden_sizes=(8,))
    path = io.save_environment(tmp_path / "env", env, env.default_params, config=TinyConfig())
    meta = json.loads((tmp_path / "env.json").read_text())
    meta["config"]["class"] = f"{name}:Config"
    meta["extra"] = {"loader": f"{name}:load", "env_class": "subprocess:Popen"}
    modules_before = set(sys.modules)
    for kind in (f"{name}:load", "os:system", "subprocess:Popen", ["not", "a", "name"]):
        meta["kind"] = kind
        (tmp_path / "env.json").write_text(json.dumps(meta))
        with pytest.raises(io.CheckpointError, match="Unknown kind"):
            io.load_environment(path)
    meta["kind"] = "se"
    meta["spec"] = {"real_env_name": "CartPole-v1", "hidden_sizes": [8], "loader": f"{name}:load"}
    (tmp_path / "env.json").write_text(json.dumps(meta))
    with pytest.raises(io.CheckpointError, match="spec does not fit kind 'se'"):
        io.load_environment(path)
    ckpt = io.load(path)  # the config is returned as data
    assert ckpt.config == TinyConfig().to_dict() | {"hidden": [8, 8]}
    with pytest.raises(io.CheckpointError, match="not TinyConfig"):
        io.load(path, config_cls=TinyConfig)
    assert name not in sys.modules and not record.exists()
    assert not {"subprocess", "os"} & (set(sys.modules) - modules_before)
    assert set(sys.modules) - modules_before <= {m for m in sys.modules if m.startswith("learnenv")}


def test_no_private_jax_api_in_the_library():
    from pathlib import Path

    import learnenv

    root = Path(learnenv.__file__).parent
    offenders = [p for p in root.rglob("*.py") if "jax._src" in p.read_text(encoding="utf-8")]
    assert offenders == []


# --------------------------------------------------------------------------- kinds


def test_kinds_registry():
    from learnenv import kinds
    from learnenv.synthetic.environment import SyntheticEnvironment

    assert {"scb", "synthetic-mdp", "se", "reward-network"} <= set(kinds.names())
    assert kinds.builder("se") is SyntheticEnvironment and SyntheticEnvironment.kind == "se"

    class VideoRewardModel:  # not an environment: a kind is anything built from JSON kwargs
        def __init__(self, frames):
            self.frames = frames

    builder = kinds.register("test-video-reward", lambda frames=16: VideoRewardModel(frames))
    assert kinds.build("test-video-reward", {"frames": 8}).frames == 8
    kinds.register("test-video-reward", builder)  # the same builder again: fine
    with pytest.raises(ValueError, match="already registered"):
        kinds.register("test-video-reward", VideoRewardModel)
    with pytest.raises(kinds.UnknownKindError, match="Unknown kind 'nope'; registered kinds: .*se"):
        kinds.build("nope", {})


# --------------------------------------------------------------------------- format 1


def _v1_spec(tree):
    """The nested tree description of format 1 (written by hand, as the old io wrote it)."""
    if isinstance(tree, dict):
        return {"t": "dict", "c": {k: _v1_spec(v) for k, v in tree.items()}}
    return f"{np.asarray(tree).dtype.name}[{', '.join(map(str, np.shape(tree)))}]"


def _write_v1(stem, params, metrics, extra, kind="environment", env_name=None):
    import hashlib

    data = {"params": serialization.to_state_dict(params), "metrics": metrics}
    blob = serialization.msgpack_serialize(data)
    (stem.parent / (stem.name + ".msgpack")).write_bytes(blob)
    meta = {"format": io.FORMAT, "format_version": 1, "kind": kind, "env_name": env_name,
            "config": {"class": "learnenv.synthetic.meta:SCBMetaConfig", "values": {"seed": 1}},
            "arrays_sha256": hashlib.sha256(blob).hexdigest(),
            "trees": {"params": _v1_spec(params), "metrics": _v1_spec(metrics)},
            "provenance": {"timestamp": "then"}, "extra": extra}
    (stem.parent / (stem.name + ".json")).write_text(json.dumps(meta))


def test_format_1_is_refused_with_how_to_convert_and_converts(tmp_path):
    from learnenv.synthetic.bandit import SyntheticMDP

    env = SyntheticMDP("CartPole-v1", hidden_sizes=(4,))
    params = env.init_params(jax.random.key(5))
    metrics = {"fitness_mean": np.linspace(0, 1, 5, dtype=np.float32)}
    extra = {"loader": "learnenv.synthetic.meta:load_scb", "kind": "mdp", "real_env": "CartPole-v1",
             "hidden_size": 4, "num_parameters": env.num_parameters(params)}
    _write_v1(tmp_path / "old", params.network_params, metrics, extra, env_name=env.name)
    with pytest.raises(io.OldFormatError, match=r"format version 1.*scripts/convert_checkpoint_v1.py"):
        io.load_environment(tmp_path / "old")

    io_v1.convert(tmp_path / "old")
    loaded_env, loaded = io.load_environment(tmp_path / "old")
    assert type(loaded_env) is SyntheticMDP and loaded_env.spec() == env.spec()
    _assert_identical(loaded, params)
    ckpt = io.load(tmp_path / "old")
    np.testing.assert_array_equal(ckpt.metrics["fitness_mean"], metrics["fitness_mean"])
    assert "loader" not in ckpt.extra and ckpt.extra["num_parameters"] == env.num_parameters(params)
    assert ckpt.provenance == {"timestamp": "then"} and ckpt.config == {"seed": 1}

    _write_v1(tmp_path / "bad", params.network_params, metrics, {"loader": "os:system"})
    with pytest.raises(io.CheckpointError, match="names loader 'os:system'"):
        io_v1.convert(tmp_path / "bad")


def test_convert_command_line(tmp_path, capsys):
    _write_v1(tmp_path / "agent", {"w": np.ones(3, np.float32)}, {"m": np.zeros(2)}, {}, kind="agent")
    assert io_v1.main([str(tmp_path / "agent")]) == 0
    assert "converted" in capsys.readouterr().out
    np.testing.assert_array_equal(io.load(tmp_path / "agent").params["w"], np.ones(3))
    assert io_v1.main([]) == 2


# --------------------------------------------------------------------------- shipped


def test_every_shipped_environment_loads_with_its_parameters_and_provenance():
    from learnenv import kinds, pretrained

    assert {"se-cartpole", "se-acrobot", "scb-cartpole-v1", "mdp-cartpole-quick"} <= set(pretrained.names())
    # names() also lists the paper's SCBs, read from synthetic-gymnax (tests/test_paper_scb.py)
    for name in pretrained.shipped_names():
        env, params = pretrained.load(name)
        ckpt = pretrained.load_checkpoint(name)
        assert ckpt.kind in kinds.names() and type(env) is kinds.builder(ckpt.kind)
        if ckpt.kind == "video-reward":
            # A real environment with a learned reward: no network_params of its own, its
            # video model in reward_params; the run's record is the shipped result file.
            assert env.name == ckpt.env_name and env.spec() == ckpt.spec
            assert ckpt.provenance["git"]["commit"]
            raw = serialization.msgpack_restore(
                io.checkpoint_files(pretrained.path(name))[1].read_bytes())
            _assert_identical(jax.tree.map(jnp.asarray, raw["env_params"]["reward_params"]),
                              params.reward_params)
            continue
        assert env.num_parameters(params) == ckpt.extra["num_parameters"]
        # Recorded in extra (SCBs, older SEs) or in the spec (SEs saved by save_se).
        record = ckpt.extra if "max_steps_in_episode" in ckpt.extra else ckpt.spec
        assert params.max_steps_in_episode == record["max_steps_in_episode"]
        assert env.name == ckpt.env_name and env.spec() == ckpt.spec
        assert ckpt.provenance["git"]["commit"] and ckpt.provenance["wall_clock_s"] > 0
        raw = serialization.msgpack_restore(io.checkpoint_files(pretrained.path(name))[1].read_bytes())
        _assert_identical(jax.tree.map(jnp.asarray, raw["env_params"]["network_params"]),
                          params.network_params)
        assert "loader" not in ckpt.extra and "env_class" not in ckpt.extra


# --------------------------------------------------------------------------- JSON results


def test_to_jsonable():
    out = io.to_jsonable(
        {"a": jnp.arange(3), "b": np.float32(np.nan), "c": TinyConfig(), "d": (1, np.int64(2))}
    )
    assert out == {
        "a": [0, 1, 2],
        "b": None,
        "c": {"learning_rate": 3e-4, "hidden": [8, 8], "activation": "tanh"},
        "d": [1, 2],
    }
    json.dumps(out, allow_nan=False)


def test_results_json_keeps_curves_on_one_line(tmp_path):
    io.write_json(tmp_path / "r.json", {"curve": np.arange(100.0), "nested": {"m": np.ones((2, 2))}})
    text = (tmp_path / "r.json").read_text()
    assert len(text.splitlines()) == 9
    assert json.loads(text)["curve"][-1] == 99.0
