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
from learnenv.__main__ import main
from learnenv.checkpoint import run_resumable
from learnenv.config import Config, field


@dataclasses.dataclass(frozen=True)
class DummyConfig(Config):
    num_iterations: int = field(3, low=1)
    scale: float = field(1.0, low=0.0)


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
    assert results["config"]["values"] == {"num_iterations": 5, "scale": 1.0}
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
                     "--set", "num_iterations=2", "--set", "scale=0.5", "--no-progress"])
    assert code == 0
    values = json.loads((tmp_path / "results.json").read_text())["config"]["values"]
    assert values == {"num_iterations": 2, "scale": 0.5}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no-such-thing"], r"Unknown experiment 'no-such-thing'. Valid experiments: .*test-dummy"),
        (["run", "test-dummy", "--preset", "medium"], r"Unknown preset 'medium'.*quick, full"),
        (["run", "test-dummy", "--set", "nope=1"], r"Bad --set for test-dummy: .*no field.*nope"),
        (["run", "test-dummy", "--set", "scale=-1"], r"Bad --set .*scale=-1 is out of range"),
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
    ckpt = io.load(tmp_path / "agents", expect_env="CartPole-v1")
    assert ckpt.kind == "agent" and type(ckpt.config).__name__ == "PPOConfig"
