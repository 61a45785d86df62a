"""Why is a MountainCar-v0 SCB hard to discover? A probe of random SCBs.

To leave the valley the car must push *with its velocity*, and the real
velocity never exceeds 0.07, while a freshly initialised SCB's contexts have
velocities of order 1. This script trains agents (the quick preset's layout,
sampled hyperparameters) on 48 random SCBs and scores them on the real task
with 1,000-step episodes (the start of the paper's curriculum), in three
variants of the same SCBs:

- ``as initialised``;
- ``velocity x0.05``: the context network's velocity output shrunk to the
  real scale;
- ``velocity x0.05, reward x20``: shrunk contexts, and the reward network's
  velocity weights grown by the same factor, so the reward is the same
  function of "velocity in SCB units" but the agent sees real-sized inputs.

Usage (about 3 minutes on one CPU core)::

    python scripts/mountaincar_context_probe.py --out results/scb/mountaincar-context-probe.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from learnenv import provenance
from learnenv.synthetic import meta

VELOCITY = 1  # MountainCar's observation is (position, velocity)


def scale_context_velocity(population: dict, factor: float) -> dict:
    """Multiply the context network's velocity output (last layer) by ``factor``."""
    last = sorted(population["context"])[-1]
    layer = dict(population["context"][last])
    layer["kernel"] = layer["kernel"].at[..., VELOCITY].multiply(factor)
    layer["bias"] = layer["bias"].at[..., VELOCITY].multiply(factor)
    return {**population, "context": {**population["context"], last: layer}}


def scale_reward_velocity_input(population: dict, factor: float) -> dict:
    """Multiply the reward network's first-layer weights on the velocity input."""
    first = sorted(population["reward"])[0]
    layer = dict(population["reward"][first])
    layer["kernel"] = layer["kernel"].at[..., VELOCITY, :].multiply(factor)
    return {**population, "reward": {**population["reward"], first: layer}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-scbs", type=int, default=48)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    config = meta.SCBMetaConfig(
        env_name="MountainCar-v0", algorithms=("ppo", "dqn"), population_size=2,
        inner_structure="fast", num_eval_episodes=8, eval_greedy=False,
        eval_steps_start=1000, eval_curriculum_begin=10**6, mean_eval_every=0)
    trainer = meta.SCBFitness(config)
    env = trainer.synthetic_env
    keys = jax.random.split(jax.random.key(args.seed), args.num_scbs)
    population = jax.vmap(env.init_network_params)(keys)
    contexts = jax.vmap(lambda p, k: jax.vmap(
        lambda kk: env.context(p, jax.random.normal(kk, (env.obs_dim,))))(
        jax.random.split(k, 256)))(population, keys)

    variants = {
        "as initialised": population,
        "velocity x0.05": scale_context_velocity(population, 0.05),
        "velocity x0.05, reward x20": scale_reward_velocity_input(
            scale_context_velocity(population, 0.05), 20.0),
    }
    rows = []
    for name, members in variants.items():
        for algorithm in ("ppo", "dqn"):
            double = True if algorithm == "dqn" else None
            fitness, _ = trainer.score(members, jax.random.key(5), algorithm, double,
                                       shared=False, generation=0)
            fitness = np.asarray(fitness)
            rows.append({"variant": name, "algorithm": algorithm,
                         "reached_flag_fraction": float(np.mean(fitness > -1000)),
                         "mean_return": float(fitness.mean()), "best_return": float(fitness.max())})
            print(rows[-1], flush=True)
    wall_clock = time.perf_counter() - start
    result = {
        "what": __doc__.split("\n\n")[1].replace("\n", " "),
        "command": "python scripts/mountaincar_context_probe.py --out " + str(args.out),
        "num_scbs": args.num_scbs, "eval_episode_steps": 1000,
        "context_std": {"position": float(contexts[..., 0].std()),
                        "velocity": float(contexts[..., VELOCITY].std())},
        "rows": rows,
        "provenance": provenance.collect(wall_clock_s=wall_clock),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
