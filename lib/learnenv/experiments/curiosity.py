"""Does a curiosity bonus find DeepSea's treasure? PPO with and without it.

    python -m learnenv run curiosity-deepsea --preset quick --out runs/curiosity-deepsea

DeepSea (Osband et al., 2020; gymnax's ``DeepSea-bsuite``) is an N x N grid
that the agent descends one row per step, choosing left or right; the treasure
(+1) waits at the bottom right, and every step right costs 0.01 / N. A random
policy reaches the treasure once in 2^N episodes, and the move cost teaches an
agent that has not yet seen the treasure to stay left: the standard probe of
deep exploration. Both arms run the same PPO for the same number of env steps,
``num_seeds`` seeds vmapped in one jitted call per arm; the curious arm trains
on :class:`learnenv.rewards.curiosity.Curiosity`'s shaped reward.

The metric is the fraction of evaluation episodes of the final *greedy* policy
that reach the treasure. The curious agent is kept stochastic on purpose while
it learns (entropy and bonus both push it to explore); what it has learned
about the treasure is the mode of its policy. gymnax's DeepSea is deterministic
with a fixed start, so greedy episodes are all the same and the rate is 0 or 1
per seed; the rate of sampled episodes is reported next to it. A seed has
solved the task when the rate is at least one half.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register

ARMS = ("PPO", "PPO + curiosity")


@dataclasses.dataclass(frozen=True)
class CuriosityDeepSea(Config):
    size: int = field(12, low=2, doc="DeepSea's N: N x N grid, episodes of N steps")
    num_seeds: int = field(8, low=1, doc="agents per arm, vmapped in one call")
    total_timesteps: int = field(100_000, low=1, doc="env steps per agent, both arms")
    num_envs: int = field(16, low=1)
    num_steps: int = field(32, low=1, doc="PPO rollout length per env")
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False, doc="PPO's")
    ent_coef: float = field(0.01, low=0.0, doc="PPO's entropy bonus, both arms")
    kind: str = field("rnd", choices=("rnd", "forward"), doc="the novelty's predictor")
    beta: float = field(0.5, low=0.0, doc="weight of the scaled bonus")
    predictor_learning_rate: float = field(1e-3, low=0.0, low_inclusive=False)
    eval_episodes: int = field(32, low=1, doc="episodes per evaluation")
    eval_points: int = field(10, low=1, doc="evaluations during training (learning curve)")


PRESETS = {
    "quick": CuriosityDeepSea(),
    "full": CuriosityDeepSea(size=20, num_seeds=32, total_timesteps=2_000_000, num_envs=8,
                             num_steps=64),
}


def ppo_config(config: CuriosityDeepSea):
    from learnenv.agents.ppo import PPOConfig

    return PPOConfig(total_timesteps=config.total_timesteps, num_envs=config.num_envs,
                     num_steps=config.num_steps, learning_rate=config.learning_rate,
                     ent_coef=config.ent_coef)


def treasure_rate(policy, params, env, env_params, key, episodes: int, greedy: bool):
    """Fraction of episodes that reach the treasure (return > 1/2: only it pays)."""
    from learnenv.agents.base import evaluate

    return (evaluate(policy, params, env, env_params, key, episodes, greedy) > 0.5).mean()


def make_arm(config: CuriosityDeepSea, curious: bool):
    """``(fn, ppo_config)``: ``fn(keys)``, jitted once, trains one arm's agents and
    returns per-seed arrays (final greedy and sampled treasure rates, and the
    greedy rate at the evaluations during training, NaN between them)."""
    import jax

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.rewards.curiosity import Curiosity

    env, env_params = envs.make("DeepSea-bsuite", size=config.size)
    train_env = (Curiosity(env, env_params, kind=config.kind, beta=config.beta,
                           learning_rate=config.predictor_learning_rate) if curious else env)
    cfg = ppo_config(config)
    policy = ppo.make_policy(cfg, env, env_params)

    def greedy_rate(params, key):
        return treasure_rate(policy, params, env, env_params, key, config.eval_episodes, True)

    eval_every = max(cfg.num_updates // config.eval_points, 1) * cfg.batch_size
    train = ppo.make_train(cfg, train_env, env_params, eval_every=eval_every,
                           eval_fn=greedy_rate)

    def one(key):
        train_key, eval_key = jax.random.split(key)
        result = train(train_key)
        curve = result.metrics["eval_return"]
        return {"greedy": greedy_rate(result.params, eval_key),
                "sampled": treasure_rate(policy, result.params, env, env_params, eval_key,
                                         config.eval_episodes, False),
                "curve": curve, "timesteps": result.metrics["timesteps"]}

    return jax.jit(jax.vmap(one)), cfg


def novelty_map(size: int, num_steps: int, key: Any) -> dict[str, Any]:
    """What the bonus has learned after ``num_steps`` steps of a uniformly random policy.

    Returns, per cell of the DeepSea grid, how often the walk entered it
    (``visits``) and the scaled bonus the wrapper would now pay for entering
    it (``bonus``, RND: it depends on the next observation alone). The walk
    runs as one jitted scan; the environment is built outside it.
    """
    import jax
    import jax.numpy as jnp

    from learnenv import envs
    from learnenv.rewards.curiosity import Curiosity

    env, env_params = envs.make("DeepSea-bsuite", size=size)
    wrapped = Curiosity(env, env_params, kind="rnd")

    def step(state, key):
        action_key, step_key = jax.random.split(key)
        action = jax.random.randint(action_key, (), 0, 2)
        _, state, _, _, _, info = wrapped.step(step_key, state, action, env_params)
        return state, info["final_observation"]  # one-hot of the cell entered

    @jax.jit
    def walk(key):
        reset_key, walk_key = jax.random.split(key)
        _, state = wrapped.reset(reset_key, env_params)
        state, entered = jax.lax.scan(step, state, jax.random.split(walk_key, num_steps))
        cells = jnp.eye(size * size)
        novelty = jax.vmap(
            lambda x: wrapped.novelty(state.predictor, state.target, x, 0, x))(cells)
        return {"visits": entered.sum(axis=0),
                "bonus": (novelty / jnp.sqrt(state.mean_sq)).reshape(size, size)}

    return walk(key)


def effect_shown(fraction_plain: float, fraction_curious: float) -> bool:
    """The quick preset's claim: curiosity solves in a clear majority (>= 3/4) of
    seeds, plain PPO in at most a quarter."""
    return fraction_curious >= 0.75 and fraction_plain <= 0.25


def plot_curves(results: dict, ax=None):
    """Fraction of seeds whose greedy policy reaches the treasure, per arm, vs env steps."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    for name, arm in results["arms"].items():
        ax.plot(arm["curve_timesteps"], arm["curve_fraction_solved"], marker="o", label=name)
    ax.set(xlabel="env steps per agent", ylabel="fraction of seeds solved", ylim=(-0.05, 1.05),
           title=f"DeepSea {results['size']}x{results['size']}")
    ax.legend()
    return ax


def run(config: CuriosityDeepSea, out_dir: Path, key: Any) -> dict[str, Any]:
    import time

    import jax
    import matplotlib.pyplot as plt
    import numpy as np

    keys = jax.random.split(key, config.num_seeds)  # the same seeds for both arms
    arms = {}
    for name, curious in zip(ARMS, (False, True)):
        t0, c0 = time.perf_counter(), time.process_time()
        fn, cfg = make_arm(config, curious)
        compiled = fn.lower(keys).compile()
        t1 = time.perf_counter()
        out = jax.tree.map(np.asarray, jax.block_until_ready(compiled(keys)))
        t2 = time.perf_counter()
        evaluated = ~np.isnan(out["curve"][0])
        solved = out["greedy"] >= 0.5
        arms[name] = {
            "greedy_treasure_rate": out["greedy"],
            "sampled_treasure_rate": out["sampled"],
            "solved": solved,
            "fraction_solved": float(solved.mean()),
            "curve_timesteps": out["timesteps"][0][evaluated],
            "curve_fraction_solved": (out["curve"][:, evaluated] >= 0.5).mean(axis=0),
            "env_steps_per_seed": cfg.num_updates * cfg.batch_size,
            "compile_s": t1 - t0,
            "run_s": t2 - t1,
            "cpu_s": time.process_time() - c0,  # compile and run, all threads
        }
        print(f"{name}: solved {int(solved.sum())}/{config.num_seeds} "
              f"(greedy {np.round(out['greedy'], 2)}, sampled {np.round(out['sampled'], 2)}), "
              f"compile {t1 - t0:.1f} s, run {t2 - t1:.1f} s")
    results = {"size": config.size, "arms": arms,
               "effect_shown": effect_shown(*(arms[a]["fraction_solved"] for a in ARMS))}
    plot_curves(results).figure.savefig(out_dir / "curves.png", dpi=120, bbox_inches="tight")
    plt.close("all")
    return results


register("curiosity-deepsea",
         "PPO with and without a curiosity bonus (RND or forward model) on DeepSea.",
         presets=PRESETS, run=run)
