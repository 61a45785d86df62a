"""python -m learnenv: list, run, and its errors (called through main(argv))."""

from __future__ import annotations

import dataclasses
import io as _stdio
import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from learnenv import experiments
from learnenv.__main__ import main, parse_value
from learnenv.checkpoint import run_resumable
from learnenv.config import Config, field


@dataclasses.dataclass(frozen=True)
class DummyConfig(Config):
    num_iterations: int = field(3, low=1)
    scale: float = field(1.0, low=0.0)
    hidden_sizes: tuple = (4, 4)
    agent_variants: tuple = (((64,), 64), ((128,), 32))  # (hidden_sizes, batch_size) each


def _run_dummy(config: DummyConfig, out_dir, key):
    from matplotlib.figure import Figure

    def step(state, i):
        key, x = state
        key, sub = jax.random.split(key)
        x = x + config.scale * jax.random.normal(sub, ())
        return (key, x), {"x": x}

    out = run_resumable(
        step, (key, jnp.zeros(())), config.num_iterations, out_dir / "checkpoints",
        config=config, desc="dummy",
    )
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot(out.metrics["x"])
    fig.savefig(out_dir / "curve.png")
    return {"final_x": float(out.state[1]), "curve": out.metrics["x"]}


experiments.register(
    "test-dummy",
    "A three-step random walk, registered by the tests.",
    presets={"quick": DummyConfig(), "full": DummyConfig(num_iterations=5)},
    run=_run_dummy,
)


def _main(argv):
    out = _stdio.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


def test_list_shows_experiments_with_descriptions():
    code, text = _main(["list"])
    assert code == 0
    assert "test-dummy" in text and "A three-step random walk" in text


def test_run_writes_results_and_figure(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, text = _main(["run", "test-dummy", "--preset", "full", "--out", str(out_dir), "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    assert "final_x" in text
    assert "dummy" in capsys.readouterr().err  # the progress bar
    results = json.loads((out_dir / "results.json").read_text())
    assert results["experiment"] == "test-dummy" and results["preset"] == "full"
    assert results["seed"] == 3
    assert results["config"]["values"] == {
        "num_iterations": 5, "scale": 1.0, "hidden_sizes": [4, 4],
        "agent_variants": [[[64], 64], [[128], 32]],
    }
    assert results["config"]["class"].endswith(":DummyConfig")
    assert len(results["results"]["curve"]) == 5
    assert results["figures"] == ["curve.png"]
    assert (out_dir / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert results["command"] == [
        "python", "-m", "learnenv", "run", "test-dummy", "--preset", "full",
        "--out", str(out_dir), "--seed", "3",
    ]
    assert results["wall_clock_s"] > 0
    prov = results["provenance"]
    assert prov["packages"]["jax"] == jax.__version__ and prov["device"]["platform"]
    assert "git" in prov

    # same command again: the finished run is reused from its checkpoint
    code, _ = _main(["run", "test-dummy", "--preset", "full", "--out", str(out_dir), "--seed", "3",
                     "--no-progress"])
    again = json.loads((out_dir / "results.json").read_text())
    assert code == 0 and again["results"] == results["results"]

    code, text = _main(["info", str(out_dir / "checkpoints" / "state-00000005")])
    assert code == 0 and "resume-state checkpoint" in text and "DummyConfig(num_iterations=5" in text


def test_set_overrides_config(tmp_path):
    code, _ = _main(["run", "test-dummy", "--preset", "quick", "--out", str(tmp_path),
                     "--set", "num_iterations=2", "--set", "scale=1", "--no-progress"])
    assert code == 0
    values = json.loads((tmp_path / "results.json").read_text())["config"]["values"]
    assert values["num_iterations"] == 2
    assert values["scale"] == 1.0 and isinstance(values["scale"], float)  # an int widened


@pytest.mark.parametrize(
    "text, value",
    [
        ("4", 4),
        ("1e-3", 1e-3),
        ("1_000", 1000),
        ("true", True),
        ("True", True),
        ("[64, 64]", (64, 64)),
        ("(64, 64)", (64, 64)),
        ("[[[64], 64], [[128], 32]]", (((64,), 64), ((128,), 32))),
        ("(((64,), 64), ((128,), 32))", (((64,), 64), ((128,), 32))),
        ('"SNES"', "SNES"),
        ("CartPole-v1", "CartPole-v1"),
        ("brax/ant", "brax/ant"),
        ("abc", "abc"),
    ],
)
def test_parse_value(text, value):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    "sets",
    [
        ["hidden_sizes=(8, 8)", "agent_variants=(((32, 32), 16), ((8,), 4))"],
        ["hidden_sizes=[8, 8]", "agent_variants=[[[32, 32], 16], [[8], 4]]"],
    ],
)
def test_set_nested_tuples_round_trip_through_results_json(sets, tmp_path):
    argv = ["run", "test-dummy", "--preset", "quick", "--out", str(tmp_path), "--no-progress"]
    code, text = _main(argv + [arg for s in sets for arg in ("--set", s)])
    assert code == 0
    expected = DummyConfig(hidden_sizes=(8, 8), agent_variants=(((32, 32), 16), ((8,), 4)))
    assert str(expected) in text  # the config that ran
    saved = json.loads((tmp_path / "results.json").read_text())["config"]
    assert saved["class"].endswith(":DummyConfig")
    assert DummyConfig.from_dict(saved["values"]) == expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no-such-thing"], r"Unknown experiment 'no-such-thing'. Valid experiments: .*test-dummy"),
        (["run", "test-dummy", "--preset", "medium"], r"Unknown preset 'medium'.*quick, full"),
        (["run", "test-dummy", "--set", "nope=1"], r"Bad --set for test-dummy: .*no field.*nope"),
        (["run", "test-dummy", "--set", "num_iteration=2"],
         r"no field\(s\) 'num_iteration' \(did you mean 'num_iterations'\?\)"),
        (["run", "test-dummy", "--set", "scale=-1"], r"Bad --set .*scale=-1\.0 is out of range"),
        (["run", "test-dummy", "--set", "scale=abc"],
         r"Bad --set for test-dummy: DummyConfig\.scale='abc' must be a number, not str"),
        (["run", "test-dummy", "--set", "num_iterations=2.5"], r"num_iterations=2\.5 must be an int"),
        (["run", "test-dummy", "--set", "num_iterations=true"], r"num_iterations=True must be an int"),
        (["run", "test-dummy", "--set", "hidden_sizes=64"], r"hidden_sizes=64 must be a tuple"),
        (["run", "test-dummy", "--set", "scale"], r"--set expects NAME=VALUE"),
        (["info"], r"No checkpoint at"),
    ],
)
def test_usage_errors(argv, message, capsys, tmp_path):
    argv = argv + ([str(tmp_path / "nothing")] if argv == ["info"] else ["--out", str(tmp_path)])
    code, _ = _main(argv)
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.startswith("learnenv: error: ") and err.count("\n") == 1, err  # one line
    assert not (tmp_path / "results.json").exists()


def test_module_entry_point_reports_bad_set_in_one_line(tmp_path):
    """The real command: a bad value is one line on stderr and exit status 2, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "learnenv", "run", "ppo-cartpole", "--preset", "quick",
         "--out", str(tmp_path), "--set", "num_seeds=abc"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "learnenv: error: Bad --set for ppo-cartpole: "
        "PPOCartPole.num_seeds='abc' must be an int, not str.\n"
    )
    assert not (tmp_path / "results.json").exists()


def test_module_entry_point_lists_without_brax():
    script = (
        "import runpy, sys\n"
        "sys.argv = ['learnenv', 'list']\n"
        "try:\n"
        "    runpy.run_module('learnenv', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "assert 'brax' not in sys.modules, 'listing experiments imported brax'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_ppo_cartpole_experiment_runs(tmp_path):
    pytest.importorskip("learnenv.agents.ppo")
    from learnenv import io

    code, _ = _main(["run", "ppo-cartpole", "--out", str(tmp_path), "--no-progress",
                     "--set", "num_seeds=2", "--set", "total_timesteps=4096", "--set", "eval_episodes=2"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert len(results["greedy_return_per_seed"]) == 2
    assert len(results["timesteps"]) == len(results["episode_return_mean"])
    assert (tmp_path / "learning_curve.png").is_file()
    from learnenv.agents.ppo import PPOConfig

    ckpt = io.load(tmp_path / "agents", expect_env="CartPole-v1", config_cls=PPOConfig)
    assert ckpt.kind == "agent" and isinstance(ckpt.config, PPOConfig)
