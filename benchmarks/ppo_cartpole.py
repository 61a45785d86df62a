"""Benchmark: PPO on CartPole-v1, many seeds vmapped in one jitted call.

Times compilation (``jax.jit(...).lower(...).compile()``) apart from the run,
and the run returns the trained parameters, so the compiler cannot prune the
training away (see "Timing trap" in the project notes). The final greedy policy
of every seed is then evaluated on the real environment with ``base.evaluate``.

    .venv/bin/python benchmarks/ppo_cartpole.py            # 16 seeds x 500k steps
    .venv/bin/python benchmarks/ppo_cartpole.py --seeds 4 --total-timesteps 100000

Writes results/benchmarks/ppo_cartpole.json (pass --out to change it). On a
shared machine the load average is recorded with the timings: read them together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from learnenv.agents import ppo
from learnenv.agents.base import evaluate
from learnenv.envs import make

ROOT = Path(__file__).resolve().parents[1]
SOLVED = 475.0


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None  # no repository, or no commit yet


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (the numbers are then not the commit's)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        return bool(out.stdout.strip())
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


def hardware() -> dict:
    info = {
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "results/benchmarks/ppo_cartpole.json"))
    args = parser.parse_args(argv)

    env, env_params = make("CartPole-v1")
    config = ppo.PPOConfig(total_timesteps=args.total_timesteps)
    train = ppo.make_train(config, env, env_params)
    policy = ppo.make_policy(config, env, env_params)
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    load_before = load_average()

    # The timed function returns the trained parameters (and the curves).
    train_all = jax.jit(jax.vmap(train))
    t0, c0 = time.perf_counter(), time.process_time()
    compiled = train_all.lower(keys).compile()
    compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    result = jax.block_until_ready(compiled(keys))
    run_s, run_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    load_after = load_average()

    steps_per_seed = config.num_updates * config.batch_size
    total_steps = steps_per_seed * args.seeds

    evaluate_all = jax.jit(jax.vmap(
        lambda params, key: evaluate(policy, params, env, env_params, key,
                                     args.eval_episodes, greedy=True)
    ))
    eval_keys = jax.random.split(jax.random.key(args.seed + 1), args.seeds)
    returns = np.asarray(evaluate_all(result.params, eval_keys), np.float64)  # (seeds, episodes)
    per_seed = returns.mean(axis=1)
    solved = int((per_seed >= SOLVED).sum())
    train_curve = np.asarray(result.metrics["episode_return"], np.float64)  # (seeds, updates)

    print(f"PPO CartPole-v1: {args.seeds} seeds x {steps_per_seed:,} steps "
          f"({config.num_updates} updates), one jitted vmapped call")
    print(f"  compile     {compile_s:7.2f} s  (CPU {compile_cpu_s:.2f} s)")
    print(f"  run         {run_s:7.2f} s  (CPU {run_cpu_s:.2f} s)")
    print(f"  steps/s     {total_steps / run_s:,.0f}  (all seeds together)")
    print(f"  load avg    {load_before} -> {load_after} on {os.cpu_count()} cores")
    print(f"  greedy return per seed ({args.eval_episodes} episodes each): "
          f"{np.round(per_seed, 1).tolist()}")
    print(f"  solved (mean >= {SOLVED:g}): {solved}/{args.seeds}")

    record = {
        "benchmark": "ppo_cartpole",
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": hardware(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "config": config.to_dict(),
        "seeds": args.seeds,
        "steps_per_seed": steps_per_seed,
        "compile_s": round(compile_s, 3),
        "compile_cpu_s": round(compile_cpu_s, 3),
        "run_s": round(run_s, 3),
        "run_cpu_s": round(run_cpu_s, 3),
        "wall_clock_s": round(compile_s + run_s, 3),
        "steps_per_s": round(total_steps / run_s),
        "eval_episodes": args.eval_episodes,
        "greedy_return_per_seed": np.round(per_seed, 2).tolist(),
        "greedy_return_min_episode_per_seed": returns.min(axis=1).round(1).tolist(),
        "final_train_episode_return_per_seed": np.round(train_curve[:, -1], 1).tolist(),
        "solved_threshold": SOLVED,
        "solved": solved,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"  wrote {out}")
    return record


if __name__ == "__main__":
    main()
