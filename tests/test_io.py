"""learnenv.io: save/load round trips, refusals with clear messages."""

from __future__ import annotations

import collections
import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs, io
from learnenv.config import Config, field


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
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
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

    ckpt = io.load(path, expect_env="CartPole-v1")
    _assert_identical(ckpt.params, params)  # plain nested dicts of jnp arrays
    assert isinstance(ckpt.params["params"], dict)
    assert all(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(ckpt.params))
    assert ckpt.config == config and isinstance(ckpt.config, TinyConfig)
    assert type(ckpt.env_params) is type(env_params) and ckpt.env_params == env_params
    _assert_identical(ckpt.metrics, metrics)
    assert ckpt.env_name == "CartPole-v1" and ckpt.kind == "agent"
    assert ckpt.extra == {"note": "test", "score": 0.5}

    prov = ckpt.provenance
    assert prov["wall_clock_s"] == 1.25
    assert prov["packages"]["jax"] == jax.__version__
    assert {"flax", "optax", "evosax", "gymnax", "brax", "learnenv"} <= set(prov["packages"])
    assert prov["device"]["platform"] == jax.devices()[0].platform
    assert "timestamp" in prov and "python" in prov
    assert prov["git"] is None or set(prov["git"]) == {"commit", "dirty"}

    # the suffix is optional on load; with a template the structure is the template's
    ckpt2 = io.load(tmp_path / "agent.json", like=jax.tree_util.tree_map(jnp.zeros_like, params))
    _assert_identical(ckpt2.params, params)


def test_metadata_is_readable_json(tmp_path):
    io.save(tmp_path / "p", params=_mlp_params(), config=TinyConfig(), kind="environment")
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["format"] == io.FORMAT and meta["format_version"] == io.FORMAT_VERSION
    assert meta["kind"] == "environment"
    assert meta["config"]["class"].endswith(":TinyConfig")
    assert meta["config"]["values"]["hidden"] == [8, 8]
    layer = meta["trees"]["params"]["c"]["params"]["c"]["layers_0"]["c"]
    assert layer == {"bias": "float32[8]", "kernel": "float32[4, 8]"}
    assert meta["summary"]["params"] == {"leaves": 4, "values": 4 * 8 + 8 + 8 * 2 + 2}
    # the arrays file is a plain flax msgpack state dict
    from flax import serialization

    raw = serialization.msgpack_restore((tmp_path / "p.msgpack").read_bytes())
    assert raw["params"]["params"]["layers_0"]["kernel"].shape == (4, 8)


def test_any_pytree_with_keys_round_trips(tmp_path):
    state = {
        "typed_key": jax.random.key(1),
        "typed_keys": jax.random.split(jax.random.key(2), 3),
        "raw_key": jax.random.PRNGKey(3),
        "pair": Pair(jnp.arange(3, dtype=jnp.int32), jnp.array(0.5)),  # weakly typed leaf
        "tuple": (1, 2.5, True, None, "label"),
        "list": [jnp.zeros((2, 2), jnp.bfloat16), np.float64(3.0)],
        "empty": {},
    }
    io.save(tmp_path / "s", params=state, kind="es-state")
    rebuilt = io.load(tmp_path / "s").params  # no template: classes rebuilt from metadata
    _assert_identical(rebuilt, state)
    assert isinstance(rebuilt["pair"], Pair) and rebuilt["tuple"][4] == "label"
    assert rebuilt["pair"].second.weak_type
    restored = io.load(tmp_path / "s", like=state).params
    _assert_identical(restored, state)
    assert isinstance(restored["tuple"][0], int) and isinstance(restored["tuple"][2], bool)


def test_flax_struct_dataclass_params(tmp_path, cartpole):
    _, env_params = cartpole
    batch = jax.tree_util.tree_map(lambda x: jnp.full((4,), x), env_params)  # a population
    io.save(tmp_path / "envs", params=batch, kind="environment", env_name="CartPole-v1")
    loaded = io.load(tmp_path / "envs").params
    assert type(loaded) is type(env_params)
    _assert_identical(loaded, batch)


def test_wrong_environment_is_refused(tmp_path):
    io.save(tmp_path / "a", params=_mlp_params(), env_name="CartPole-v1")
    with pytest.raises(io.CheckpointError, match=r"saved for environment 'CartPole-v1', not 'Acrobot-v1'"):
        io.load(tmp_path / "a", expect_env="Acrobot-v1")
    io.save(tmp_path / "b", params=_mlp_params())
    with pytest.raises(io.CheckpointError, match="records no environment"):
        io.load(tmp_path / "b", expect_env="Acrobot-v1")


def test_shape_mismatch_names_the_leaf(tmp_path):
    io.save(tmp_path / "a", params=_mlp_params(hidden=8))
    with pytest.raises(io.CheckpointError) as err:
        io.load(tmp_path / "a", like=_mlp_params(hidden=16))
    msg = str(err.value)
    assert "params/params/layers_0/bias" in msg
    assert "(8,)" in msg and "(16,)" in msg
    with pytest.raises(io.CheckpointError, match="dtype float32 in the checkpoint but .*float16"):
        io.load(tmp_path / "a", like=jax.tree_util.tree_map(lambda x: x.astype(jnp.float16), _mlp_params()))
    template = _mlp_params()
    template["params"]["layers_2"]["extra"] = jnp.zeros(3)
    with pytest.raises(io.CheckpointError, match="template has a leaf 'params/params/layers_2/extra'"):
        io.load(tmp_path / "a", like=template)
    del template["params"]["layers_2"]
    with pytest.raises(io.CheckpointError, match="checkpoint has a leaf 'params/params/layers_2/bias'"):
        io.load(tmp_path / "a", like=template)


def test_abstract_template(tmp_path):
    params = _mlp_params()
    io.save(tmp_path / "a", params=params)
    abstract = jax.eval_shape(lambda: params)
    _assert_identical(io.load(tmp_path / "a", like=abstract).params, params)


def test_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        io.load(tmp_path / "missing")
    io.save(tmp_path / "a", params=_mlp_params())
    blob = (tmp_path / "a.msgpack").read_bytes()
    (tmp_path / "a.msgpack").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(io.CheckpointError, match="corrupt"):
        io.load(tmp_path / "a")

    io.save(tmp_path / "b", params=_mlp_params())
    meta = json.loads((tmp_path / "b.json").read_text())
    meta["format_version"] = io.FORMAT_VERSION + 1
    (tmp_path / "b.json").write_text(json.dumps(meta))
    with pytest.raises(io.CheckpointError, match="format version 2.*upgrade learnenv"):
        io.load(tmp_path / "b")

    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(io.CheckpointError, match="not valid JSON"):
        io.load(tmp_path / "c")
    (tmp_path / "d.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(io.CheckpointError, match="not a learnenv checkpoint"):
        io.load(tmp_path / "d")


def test_unbuildable_config_comes_back_as_dict(tmp_path):
    io.save(tmp_path / "a", params={"w": jnp.ones(2)}, config=TinyConfig())
    meta = json.loads((tmp_path / "a.json").read_text())
    meta["config"]["values"]["removed_field"] = 1
    (tmp_path / "a.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="Could not rebuild config"):
        ckpt = io.load(tmp_path / "a")
    assert ckpt.config["removed_field"] == 1


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
