"""The model-learning chapter's experiments: which world model, and is it worth it?

    python -m learnenv run world-model-families --preset quick --out runs/wm-families
    python -m learnenv run model-based-cartpole --preset quick --out runs/model-based

``world-model-families`` measures the lecture's four wishes for the three
families (:mod:`learnenv.worldmodels.compare`). ``model-based-cartpole`` trains
PPO only inside learned CartPole models (:mod:`learnenv.worldmodels.dyna`), with
and without re-collecting data with the improving agent and with and without an
ensemble, and counts the real steps it used against PPO trained on the real
environment with the benchmark's config (``benchmarks/ppo_cartpole.py``), in
the same run.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register

# name -> (recollect, ensemble): the 2 x 2 ablation of the model-based loop.
VARIANTS = {
    "ensemble, re-collect": (True, True),
    "ensemble, random data only": (False, True),
    "single model, re-collect": (True, False),
    "single model, random data only": (False, False),
}


@dataclasses.dataclass(frozen=True)
class ModelBasedExperiment(Config):
    num_seeds: int = field(8, low=1)
    family: str = "one-step"
    ensemble_size: int = field(5, low=2, doc="members of the ensemble variants")
    iterations: int = field(3, low=1)
    random_episodes: int = field(50, low=1)
    episodes_per_iteration: int = field(8, low=0)
    agent_timesteps: int = field(100_000, low=1, doc="PPO steps inside the model per iteration")
    variants: tuple = tuple(VARIANTS)
    baseline_timesteps: int = field(500_000, low=1, doc="real PPO, the benchmark's budget")
    baseline_eval_every: int = field(5_000, low=1)
    target_return: float = 400.0

    def validate(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"Unknown variants {unknown}; valid: {list(VARIANTS)}.")

    def dyna_config(self, variant: str):
        from learnenv.worldmodels.dyna import DynaConfig

        recollect, ensemble = VARIANTS[variant]
        return DynaConfig(family=self.family, ensemble_size=self.ensemble_size if ensemble else 1,
                          iterations=self.iterations, random_episodes=self.random_episodes,
                          episodes_per_iteration=self.episodes_per_iteration,
                          recollect=recollect, agent_timesteps=self.agent_timesteps)


def model_based(config: "DynaConfig", num_seeds: int, key) -> dict:
    """The Dyna loop of ``config`` over ``num_seeds`` seeds in one jitted call."""
    import jax
    import numpy as np

    from learnenv.worldmodels.dyna import make_train

    start = time.perf_counter()
    out = jax.jit(jax.vmap(make_train(config)))(jax.random.split(key, num_seeds))
    return {"real_steps": np.asarray(out["real_steps"]).tolist(),
            "real_return": np.asarray(out["real_return"]).tolist(),
            "model_return": np.asarray(out["model_return"]).tolist(),
            "seconds": time.perf_counter() - start}


def real_ppo(timesteps: int, eval_every: int, num_seeds: int, key) -> dict:
    """PPO with the benchmark's config (``PPOConfig()``) on real CartPole-v1, its
    greedy real return (16 episodes) every ``eval_every`` steps, per seed."""
    import jax
    import numpy as np

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate

    env, env_params = envs.make("CartPole-v1")
    cfg = ppo.PPOConfig(total_timesteps=timesteps)
    policy = ppo.make_policy(cfg, env, env_params)
    train = ppo.make_train(cfg, env, env_params, eval_every=eval_every,
                           eval_fn=lambda p, k: evaluate(policy, p, env, env_params, k, 16).mean())
    start = time.perf_counter()
    metrics = jax.jit(jax.vmap(train))(jax.random.split(key, num_seeds)).metrics
    curve = np.asarray(metrics["eval_return"])
    due = ~np.isnan(curve[0])
    return {"timesteps": np.asarray(metrics["timesteps"][0])[due].tolist(),
            "eval_return": curve[:, due].tolist(), "seconds": time.perf_counter() - start}


def first_reaching(steps, returns, target: float):
    """The first of ``steps`` at which the mean over seeds of ``returns`` (seeds x
    points) reaches ``target`` (None: never)."""
    import numpy as np

    mean = np.mean(np.asarray(returns), axis=0)
    hit = np.flatnonzero(mean >= target)
    return None if hit.size == 0 else float(np.asarray(steps)[hit[0]])


def run_model_based(config: ModelBasedExperiment, out_dir: Path, key: Any) -> dict:
    import jax
    import numpy as np

    results: dict[str, Any] = {"variants": {}}
    for i, name in enumerate(config.variants):
        res = model_based(config.dyna_config(name), config.num_seeds, jax.random.fold_in(key, i))
        steps = np.mean(res["real_steps"], axis=0)  # mean real steps per iteration
        res["first_reaching_target"] = first_reaching(steps, res["real_return"],
                                                      config.target_return)
        results["variants"][name] = res
    base = real_ppo(config.baseline_timesteps, config.baseline_eval_every, config.num_seeds,
                    jax.random.fold_in(key, 99))
    base["first_reaching_target"] = first_reaching(base["timesteps"], base["eval_return"],
                                                   config.target_return)
    results["real_ppo"] = base
    return results


@dataclasses.dataclass(frozen=True)
class FamiliesExperiment(Config):
    episodes: int = field(160, low=10)
    fit_steps: int = field(1_500, low=1)
    horizon: int = field(100, low=1)

    def families_config(self):
        from learnenv.worldmodels.compare import FamiliesConfig

        return FamiliesConfig(episodes=self.episodes, fit_steps=self.fit_steps,
                              horizon=self.horizon)


def run_families(config: FamiliesExperiment, out_dir: Path, key: Any) -> dict:
    from learnenv.worldmodels.compare import compare, curves_figure

    cfg = config.families_config()
    out = compare(cfg, key)
    out.pop("models")
    curves_figure(out["curves"], cfg.context).savefig(Path(out_dir) / "compounding-error.png",
                                                      dpi=120)
    return out


register(
    "world-model-families",
    "One-step MLP, GRU and separate transition/reward models on CartPole-v1 (also without "
    "velocities) and Acrobot-v1: one-step and open-loop error, data needed, inference speed.",
    presets={"quick": FamiliesExperiment(),
             "full": FamiliesExperiment(episodes=1000, fit_steps=20_000, horizon=200)},
    run=run_families,
)

register(
    "model-based-cartpole",
    "PPO trained only inside learned CartPole-v1 models (Dyna/MBPO loop: with and without "
    "re-collection and ensemble) against PPO on the real environment, real steps counted.",
    presets={"quick": ModelBasedExperiment(),
             "full": ModelBasedExperiment(num_seeds=32, iterations=5,
                                          agent_timesteps=500_000)},
    run=run_model_based,
)
