"""learnenv.checkpoint.run_resumable: an interrupted run resumes to the same result."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import io
from learnenv.checkpoint import RunMismatchError, latest_checkpoint, run_resumable
from learnenv.config import Config, field

from checkpoint_converter import io_v1


@dataclasses.dataclass(frozen=True)
class LoopConfig(Config):
    population: int = field(8, low=1)
    lr: float = field(0.1, low=0.0)


CONFIG = LoopConfig()
N = 12


@jax.jit
def _es_like_step(state):
    """A tiny stochastic optimiser: enough state (mean, typed key, raw key, counter)."""
    mean, key, raw_key, count = state["mean"], state["key"], state["raw_key"], state["count"]
    key, sub = jax.random.split(key)
    raw_key, raw_sub = jax.random.split(raw_key)
    noise = jax.random.normal(sub, (CONFIG.population,) + mean.shape)
    fitness = -jnp.sum((mean + noise - 3.0) ** 2, axis=-1) + jax.random.uniform(raw_sub)
    weights = jax.nn.softmax(fitness)
    mean = mean + CONFIG.lr * jnp.einsum("p,pd->d", weights, noise)
    new = {"mean": mean, "key": key, "raw_key": raw_key, "count": count + 1}
    return new, {"best": fitness.max(), "fitness": fitness}


def _step(state, i):
    return _es_like_step(state)


def _init(seed=0):
    return {
        "mean": jnp.zeros(3),
        "key": jax.random.key(seed),
        "raw_key": jax.random.PRNGKey(seed + 100),
        "count": jnp.array(0),
    }


def _identical(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if getattr(x, "weak_type", False) != getattr(y, "weak_type", False):
            return False
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            return False
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


@pytest.fixture(scope="module")
def reference():
    return run_resumable(_step, _init(), N, progress=False)


def test_plain_loop_without_checkpoints(reference):
    assert reference.metrics["best"].shape == (N,)
    assert reference.metrics["fitness"].shape == (N, CONFIG.population)
    assert int(reference.state["count"]) == N and reference.checkpoint is None


def test_interrupted_run_resumes_bit_identically(tmp_path, reference):
    calls = {"n": 0}

    def flaky(state, i):
        if i == 7 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt
        return _step(state, i)

    with pytest.raises(KeyboardInterrupt) as err:
        run_resumable(flaky, _init(), N, tmp_path, every=5, config=CONFIG, progress=False)
    assert any("resume" in note for note in getattr(err.value, "__notes__", []))
    assert latest_checkpoint(tmp_path).name == "state-00000007"  # saved on interrupt

    out = run_resumable(flaky, _init(), N, tmp_path, every=5, config=CONFIG, progress=False)
    assert out.start_iteration == 7
    assert _identical(out.state, reference.state)
    assert _identical(out.metrics, reference.metrics)
    assert jax.random.key_impl(out.state["key"]) == jax.random.key_impl(reference.state["key"])
    # only the newest `keep` checkpoints remain, the last one at N
    names = sorted(p.name for p in tmp_path.glob("state-*.json"))
    assert names == ["state-00000010.json", f"state-{N:08d}.json"]

    again = run_resumable(_step, _init(), N, tmp_path, config=CONFIG, progress=False)
    assert again.start_iteration == N  # finished runs are returned, not recomputed
    assert again.wall_clock_s == io.read_meta(again.checkpoint)["extra"]["wall_clock_s"]
    assert _identical(again.state, reference.state) and _identical(again.metrics, reference.metrics)


def test_run_in_two_calls_equals_one(tmp_path, reference):
    first = run_resumable(_step, _init(), 5, tmp_path, every=2, config=CONFIG, progress=False)
    assert first.metrics["best"].shape == (5,)
    out = run_resumable(_step, _init(), N, tmp_path, every=2, config=CONFIG, progress=False)
    assert out.start_iteration == 5
    assert _identical(out.state, reference.state) and _identical(out.metrics, reference.metrics)
    ckpt = io.load(out.checkpoint, config_cls=LoopConfig)
    assert ckpt.kind == "resume-state" and ckpt.extra["iteration"] == N
    assert ckpt.config == CONFIG
    assert io.load(out.checkpoint).config == CONFIG.to_dict()  # without a class: data


@dataclasses.dataclass(frozen=True)
class LengthConfig(Config):
    lr: float = field(0.1, low=0.0)
    iterations: int = field(5, low=1)


def test_extendable_field_lets_a_finished_run_go_on(tmp_path, reference):
    """A config field that only says how far to run (``extendable``) is left out of
    the fingerprint, so asking for more iterations continues the same run."""
    short, long = LengthConfig(iterations=5), LengthConfig(iterations=N)
    run_resumable(_step, _init(), 5, tmp_path, config=short, extendable=("iterations",),
                  progress=False)
    with pytest.raises(RunMismatchError, match="iterations"):
        run_resumable(_step, _init(), N, tmp_path, config=long, progress=False)
    out = run_resumable(_step, _init(), N, tmp_path, config=long, extendable=("iterations",),
                        progress=False)
    assert out.start_iteration == 5
    assert _identical(out.state, reference.state) and _identical(out.metrics, reference.metrics)
    with pytest.raises(RunMismatchError, match="lr"):  # other fields still count
        run_resumable(_step, _init(), N + 2, tmp_path, config=LengthConfig(lr=0.2, iterations=N),
                      extendable=("iterations",), progress=False)


def test_crash_inside_step_is_saved(tmp_path, reference):
    def crash(state, i):
        if i == 3:
            raise RuntimeError("boom")
        return _step(state, i)

    with pytest.raises(RuntimeError, match="boom"):
        run_resumable(crash, _init(), N, tmp_path, every=100, config=CONFIG, progress=False)
    out = run_resumable(_step, _init(), N, tmp_path, every=100, config=CONFIG, progress=False)
    assert out.start_iteration == 3
    assert _identical(out.state, reference.state) and _identical(out.metrics, reference.metrics)


def test_other_run_is_refused(tmp_path):
    run_resumable(_step, _init(), 3, tmp_path, config=CONFIG, progress=False)
    with pytest.raises(RunMismatchError, match=r"config differs \(values.lr: 0.1 in the checkpoint, 0.2 now\)"):
        run_resumable(_step, _init(), N, tmp_path, config=CONFIG.replace(lr=0.2), progress=False)
    with pytest.raises(RunMismatchError, match="initial state has different values"):
        run_resumable(_step, _init(seed=1), N, tmp_path, config=CONFIG, progress=False)
    with pytest.raises(RunMismatchError, match="structure"):
        bigger = dict(_init(), mean=jnp.zeros(4))
        run_resumable(_step, bigger, N, tmp_path, config=CONFIG, progress=False)
    with pytest.raises(io.CheckpointError, match="past the num_iterations=2"):
        run_resumable(_step, _init(), 2, tmp_path, config=CONFIG, progress=False)


def _init_weights(seed=0, ulp=False):
    """``_init`` with its float leaf drawn from ``seed`` as a network's weights are (the
    keys stay): ``ulp`` moves every weight to the next float, as another machine's
    initialisation from the same seed may."""
    mean = np.asarray(jax.random.normal(jax.random.key(seed), (3,)))
    if ulp:
        mean = np.nextafter(mean, np.float32(np.inf))
    return dict(_init(), mean=jnp.asarray(mean))


def test_run_moved_to_another_machine_resumes(tmp_path):
    """Floats one ulp apart (a GPU's initialisation resumed on a CPU) pass the check;
    the state then continues from the checkpoint, bit for bit."""
    whole = run_resumable(_step, _init_weights(), N, progress=False)
    run_resumable(_step, _init_weights(), 5, tmp_path, config=CONFIG, progress=False)
    out = run_resumable(_step, _init_weights(ulp=True), N, tmp_path, config=CONFIG, progress=False)
    assert out.start_iteration == 5
    assert _identical(out.state, whole.state) and _identical(out.metrics, whole.metrics)


def test_other_seeds_weights_are_refused(tmp_path):
    run_resumable(_step, _init_weights(), 3, tmp_path, config=CONFIG, progress=False)
    with pytest.raises(RunMismatchError, match="initial state has different values"):
        run_resumable(_step, _init_weights(seed=1), N, tmp_path, config=CONFIG, progress=False)
    far = dict(_init_weights(), mean=_init_weights()["mean"] * 1.001)  # 1e-3: not rounding
    with pytest.raises(RunMismatchError, match="initial state has different values"):
        run_resumable(_step, far, N, tmp_path, config=CONFIG, progress=False)
    with pytest.raises(RunMismatchError, match="initial state has different values"):
        run_resumable(_step, _init(seed=1), N, tmp_path, config=CONFIG, progress=False)


def test_checkpoint_without_summary_is_checked_exactly(tmp_path):
    """Checkpoints written before the tolerant summary existed keep the exact check."""
    import json

    first = run_resumable(_step, _init_weights(), 5, tmp_path, config=CONFIG, progress=False)
    meta_file = first.checkpoint.with_suffix(".json")
    meta = json.loads(meta_file.read_text())
    del meta["extra"]["fingerprint"]["init_state_summary"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(RunMismatchError, match="initial state has different values"):
        run_resumable(_step, _init_weights(ulp=True), N, tmp_path, config=CONFIG, progress=False)
    out = run_resumable(_step, _init_weights(), N, tmp_path, config=CONFIG, progress=False)
    whole = run_resumable(_step, _init_weights(), N, progress=False)
    assert out.start_iteration == 5
    assert _identical(out.state, whole.state) and _identical(out.metrics, whole.metrics)


def test_corrupt_latest_falls_back_to_previous(tmp_path, reference):
    run_resumable(_step, _init(), 6, tmp_path, every=3, config=CONFIG, progress=False)
    newest = tmp_path / "state-00000006.msgpack"
    newest.write_bytes(newest.read_bytes()[:10])  # e.g. a disk filled up mid-write
    with pytest.warns(UserWarning, match="Skipping unreadable checkpoint"):
        out = run_resumable(_step, _init(), N, tmp_path, every=3, config=CONFIG, progress=False)
    assert out.start_iteration == 3
    assert _identical(out.state, reference.state) and _identical(out.metrics, reference.metrics)


def test_progress_bar_runs(tmp_path, capsys):
    out = run_resumable(_step, _init(), 3, progress=True, desc="toy")
    assert out.metrics["best"].shape == (3,)
    assert "toy" in capsys.readouterr().err


def test_step_must_keep_state_types(tmp_path):
    def widening(state, i):
        return {**state, "mean": jnp.zeros(4)}, None

    with pytest.raises(TypeError, match="differ from init_state .*mean"):
        run_resumable(widening, _init(), 3, tmp_path, progress=False)
    assert latest_checkpoint(tmp_path) is None  # nothing written for a broken loop


Metrics = __import__("collections").namedtuple("Metrics", "best fitness")


def test_resumed_metrics_keep_step_fns_structure(tmp_path, reference):
    def step(state, i):
        new, metrics = _step(state, i)
        return new, Metrics(**metrics)

    run_resumable(step, _init(), 5, tmp_path, config=CONFIG, progress=False)
    out = run_resumable(step, _init(), N, tmp_path, config=CONFIG, progress=False)
    assert out.start_iteration == 5 and isinstance(out.metrics, Metrics)
    np.testing.assert_array_equal(out.metrics.fitness, reference.metrics["fitness"])


def _nest(flat):
    """A flat tree description as the nested one of checkpoint format 1."""
    root = {"t": "dict", "c": {}}
    for path, leaf in flat.items():
        node = root
        *parents, last = path.split("/")
        for p in parents:
            node = node["c"].setdefault(p, {"t": "dict", "c": {}})
        node["c"][last] = leaf.replace("key<fry>", "key<threefry2x32>")
    return root


def test_format_1_run_folder_is_refused_then_converted_and_resumed(tmp_path, reference):
    import json

    first = run_resumable(_step, _init(), 5, tmp_path, config=CONFIG, progress=False)
    meta_file = first.checkpoint.with_suffix(".json")
    meta = json.loads(meta_file.read_text())
    # write it back as format 1 did: nested trees, weak types marked, the same arrays
    meta["format_version"] = 1
    meta["trees"] = {name: _nest(flat) for name, flat in meta["trees"].items()}
    meta["trees"]["params"]["c"]["count"] = "weak int32[]"
    prints = meta["extra"]["fingerprint"]
    prints["state_structure"] = _nest(prints["state_structure"])
    for key in ("spec", "summary"):
        del meta[key]
    meta_file.write_text(json.dumps(meta))

    with pytest.raises(io.OldFormatError, match="convert_checkpoint_v1.py"):
        run_resumable(_step, _init(), N, tmp_path, config=CONFIG, progress=False)
    assert latest_checkpoint(tmp_path) == first.checkpoint  # nothing deleted or overwritten

    io_v1.convert(first.checkpoint)
    out = run_resumable(_step, _init(), N, tmp_path, config=CONFIG, progress=False)
    assert out.start_iteration == 5
    assert _identical(out.state, reference.state) and _identical(out.metrics, reference.metrics)
