"""PPO on CartPole-v1: many seeds trained in one vmapped call.

The book's first experiment and the command line's smoke test::

    python -m learnenv run ppo-cartpole --preset quick --out runs/ppo-cartpole

Writes ``agents.msgpack``/``agents.json`` (the trained parameters of every
seed, a :mod:`learnenv.io` checkpoint), ``learning_curve.png`` and, through
the command line, ``results.json``.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register


@dataclasses.dataclass(frozen=True)
class PPOCartPole(Config):
    """The experiment; PPO's own hyperparameters are ``PPOConfig``'s defaults."""

    env_name: str = "CartPole-v1"
    num_seeds: int = field(8, low=1, doc="independent runs, vmapped")
    total_timesteps: int = field(100_000, low=1, doc="environment steps per seed")
    eval_episodes: int = field(16, low=1, doc="greedy evaluation episodes per seed")


PRESETS = {
    "quick": PPOCartPole(num_seeds=8, total_timesteps=100_000),
    "full": PPOCartPole(num_seeds=16, total_timesteps=500_000),
}


def learning_curve_figure(timesteps, returns, title: str):
    """Mean episode return over seeds (band: min to max), per-seed curves thin."""
    import numpy as np
    from matplotlib.figure import Figure

    steps = np.asarray(timesteps)
    steps = steps[0] if steps.ndim == 2 else steps
    returns = np.asarray(returns, dtype=float)
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for curve in returns:
        ax.plot(steps, curve, color="tab:blue", alpha=0.15, linewidth=0.8)
    with warnings.catch_warnings():  # updates in which no episode ended are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(returns, axis=0)
        ax.fill_between(steps, np.nanmin(returns, axis=0), np.nanmax(returns, axis=0),
                        color="tab:blue", alpha=0.15, linewidth=0)
    ax.plot(steps, mean, color="tab:blue", linewidth=2, label=f"mean of {len(returns)} seeds")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (training)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def run(config: PPOCartPole, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import numpy as np
    from tqdm.auto import tqdm

    from learnenv import envs, io
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.checkpoint import progress_enabled

    out_dir = Path(out_dir)
    env, env_params = envs.make(config.env_name)
    ppo_config = ppo.PPOConfig(total_timesteps=config.total_timesteps)
    train = ppo.make_train(ppo_config, env, env_params)
    policy = ppo.make_policy(ppo_config, env, env_params)
    train_key, eval_key = jax.random.split(key)
    seeds = jax.random.split(train_key, config.num_seeds)

    bar = tqdm(total=4, desc="ppo-cartpole", disable=not progress_enabled())
    try:
        bar.set_postfix_str("compiling")
        t0 = time.perf_counter()
        train_all = jax.jit(jax.vmap(train)).lower(seeds).compile()
        compile_s = time.perf_counter() - t0
        bar.update(1)

        bar.set_postfix_str(f"training {config.num_seeds} seeds x {config.total_timesteps} steps")
        t0 = time.perf_counter()
        result = jax.block_until_ready(train_all(seeds))
        train_s = time.perf_counter() - t0
        bar.update(1)

        bar.set_postfix_str("evaluating")

        def greedy_returns(params, key):
            return evaluate(policy, params, env, env_params, key, config.eval_episodes, greedy=True)

        eval_keys = jax.random.split(eval_key, config.num_seeds)
        returns = np.asarray(jax.jit(jax.vmap(greedy_returns))(result.params, eval_keys))
        bar.update(1)

        bar.set_postfix_str("saving")
        metrics = jax.device_get(result.metrics)
        io.save(
            out_dir / "agents",
            params=result.params,
            config=ppo_config,
            env_name=config.env_name,
            env_params=env_params,
            metrics=metrics,
            kind="agent",
            extra={"experiment": "ppo-cartpole", "vmapped_seeds": config.num_seeds,
                   "greedy_return_per_seed": returns.mean(axis=1)},
            wall_clock_s=compile_s + train_s,
        )
        title = f"PPO on {config.env_name}, {config.num_seeds} seeds"
        fig = learning_curve_figure(metrics["timesteps"], metrics["episode_return"], title)
        fig.savefig(out_dir / "learning_curve.png", dpi=120)
        bar.update(1)
    finally:
        bar.close()

    curve = np.asarray(metrics["episode_return"], dtype=float)
    steps = np.asarray(metrics["timesteps"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        curve_mean = np.nanmean(curve, axis=0)
    per_seed = returns.mean(axis=1)
    return {
        "greedy_return_mean": float(per_seed.mean()),
        "greedy_return_std": float(per_seed.std()),
        "greedy_return_per_seed": per_seed,
        "seeds_solved": int((per_seed >= 475.0).sum()),
        "final_training_return_mean": float(curve_mean[-1]),
        "compile_seconds": compile_s,
        "train_seconds": train_s,
        "steps_per_second": config.num_seeds * config.total_timesteps / train_s,
        "timesteps": steps[0] if steps.ndim == 2 else steps,
        "episode_return_mean": curve_mean,
        "ppo_config": ppo_config.to_dict(),
    }


register(
    "ppo-cartpole",
    "PPO on CartPole-v1, all seeds in one vmapped call; greedy returns and a learning curve.",
    presets=PRESETS,
    run=run,
)
