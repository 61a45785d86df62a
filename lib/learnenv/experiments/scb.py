"""Discovering synthetic contextual bandits with SNES (Liesen et al., 2024).

    python -m learnenv run scb-cartpole --preset quick --out runs/scb-cartpole
    python -m learnenv run scb-pendulum --preset full --out runs/scb-pendulum

Each run meta-trains one SCB (resumable: generations are checkpointed in
``OUT/checkpoints``), saves it as ``OUT/scb.json`` + ``OUT/scb.msgpack``
(loadable with :func:`learnenv.synthetic.meta.load_scb`), tests transfer —
fresh agents of every algorithm, with hyperparameters sampled from the paper's
lists, trained 10k steps on the SCB and evaluated on the real environment — and
draws ``OUT/fitness.png``.

Quick presets differ from the paper in three measured ways, to fit minutes on a
CPU: PPO and DQN alternate as the meta-training algorithm, without SAC (SAC's
inner loop costs several times PPO's here), the inner agents collect their 10k
steps in 50 parallel environments (``inner_structure="fast"``: ~10x fewer
sequential gradient steps) and SNES starts with sigma 0.15 instead of 0.05
(with a population of 32 instead of 128, sigma 0.05 left every member's
fitness flat for the first generations). The transfer test always uses the
paper's agent layout. Continuous tasks score fitness with greedy actions.
Full presets are the paper's per-environment configurations (synthetic-gymnax),
including MountainCar's and brax's evaluation-length curricula (MountainCar's
quick preset has its curriculum too, scaled to 40 generations), Pendulum's
fitness averaged over eight agents per member, and each task's own agent layout
(``inner_structure="paper"``, see :data:`learnenv.synthetic.meta.PAPER_ENV_DIFFERENCES`).
For CartPole, results/scb/quick-ppo-only-60-generations.json and
quick-ppo-dqn-40-generations.json record the transfer of PPO-only against
PPO-and-DQN meta-training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from learnenv.config import field
from learnenv.experiments import register
from learnenv.synthetic.evolve import fitness_figure
from learnenv.synthetic.meta import CONTINUOUS_ALGORITHMS, DISCRETE_ALGORITHMS, SCBMetaConfig


@dataclasses.dataclass(frozen=True)
class SCBExperiment(SCBMetaConfig):
    transfer_configs: int = field(32, low=1, doc="test agents per algorithm")
    transfer_algorithms: tuple = ()  # () = every algorithm that can act in the env
    transfer_episodes: int = field(16, low=1, doc="real episodes per test agent")

    def meta_config(self) -> SCBMetaConfig:
        """The meta-training part alone (what the checkpoints are fingerprinted with)."""
        return SCBMetaConfig(**{f.name: getattr(self, f.name)
                                for f in dataclasses.fields(SCBMetaConfig)})


def _quick(env_name: str, **kw) -> SCBExperiment:
    discrete = env_name not in ("MountainCarContinuous-v0", "Pendulum-v1")
    base = dict(env_name=env_name, algorithms=("ppo", "dqn") if discrete else ("ppo", "ddpg"),
                population_size=32,
                num_generations=40, sigma_init=0.15, inner_structure="fast",
                # Continuous agents' sampled actions carry exploration noise of up to
                # 0.9 (DDPG), which would dominate the fitness: score them greedily.
                num_eval_episodes=8, eval_greedy=not discrete, mean_eval_every=0,
                transfer_configs=16)
    return SCBExperiment(**{**base, **kw})


def _full(env_name: str, discrete: bool, population: int, generations: int,
          **kw) -> SCBExperiment:
    """The paper's settings (synthetic-gymnax configs) for one GPU."""
    algorithms = DISCRETE_ALGORITHMS if discrete else CONTINUOUS_ALGORITHMS
    base = dict(env_name=env_name, algorithms=algorithms, population_size=population,
                num_generations=generations, sigma_init=0.05, inner_structure="paper",
                num_eval_episodes=16, eval_greedy=False, mean_eval_every=10)
    return SCBExperiment(**{**base, **kw})


# The paper's evaluation-length curricula (synthetic-gymnax's eval_config): fitness
# episodes of MountainCar-v0 last 1,000 steps for 200 generations and then shrink to
# the real 200 over 600; brax's grow from 100 steps to 1,000 from generation 200 on.
MOUNTAINCAR_CURRICULUM = dict(eval_steps_start=1000, eval_curriculum_begin=200,
                              eval_curriculum_generations=600)
BRAX_CURRICULUM = dict(eval_max_steps=1000, eval_steps_start=100, eval_curriculum_begin=200,
                       eval_curriculum_generations=1600)


# name -> (env, discrete, paper population, paper generations)
CLASSIC_CONTROL: dict[str, tuple] = {
    "scb-cartpole": ("CartPole-v1", True, 128, 300),
    "scb-acrobot": ("Acrobot-v1", True, 128, 100),
    "scb-mountaincar": ("MountainCar-v0", True, 128, 1000),
    "scb-mountaincar-continuous": ("MountainCarContinuous-v0", False, 128, 300),
    "scb-pendulum": ("Pendulum-v1", False, 64, 1000),
}


# The lecture's brax table. Population/generations from the paper where it states
# them (hopper 256/2000; halfcheetah and swimmer 128/2000), else 128/2000.
BRAX = {
    "scb-brax-hopper": ("brax/hopper", 256, 2000),
    "scb-brax-halfcheetah": ("brax/halfcheetah", 128, 2000),
    "scb-brax-swimmer": ("brax/swimmer", 128, 2000),
    "scb-brax-reacher": ("brax/reacher", 128, 2000),
    "scb-brax-pusher": ("brax/pusher", 128, 2000),
    "scb-brax-ant": ("brax/ant", 128, 2000),
}


def _brax_smoke(env_name: str) -> SCBExperiment:
    """A smoke run that a CPU finishes: 4 members, 2 generations of short PPO, 100-step
    evaluation episodes. It shows the pipeline works; it does not learn anything."""
    return SCBExperiment(env_name=env_name, algorithms=("ppo",), population_size=4,
                         num_generations=2, inner_timesteps=2_000, inner_structure="fast",
                         num_eval_episodes=2, eval_max_steps=100, mean_eval_every=0,
                         transfer_configs=2, transfer_episodes=2, transfer_algorithms=("ppo",))


def _brax_cpu(env_name: str, generations: int, eval_episodes: int) -> SCBExperiment:
    """What a 2-core CPU can meta-train for a cheap brax task in minutes: PPO and DDPG
    alternating with the fast inner layout, 32 members, sigma 0.15, fitness over
    200-step greedy episodes (the paper's curriculum also starts at 100-200 steps);
    the transfer test runs every algorithm on full 1,000-step episodes."""
    return SCBExperiment(env_name=env_name, algorithms=("ppo", "ddpg"), population_size=32,
                         num_generations=generations, sigma_init=0.15, inner_structure="fast",
                         num_eval_episodes=eval_episodes, eval_max_steps=200, eval_greedy=True,
                         mean_eval_every=0, transfer_configs=16, transfer_episodes=4,
                         transfer_algorithms=CONTINUOUS_ALGORITHMS)


def run(config: SCBExperiment, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax

    from learnenv.synthetic import meta, scb_eval

    out_dir = Path(out_dir)
    meta_cfg = config.meta_config()
    scb, scb_params, result = meta.meta_train(meta_cfg, checkpoint_dir=out_dir / "checkpoints")
    history = result.history
    tests = scb_eval.transfer(
        config.env_name, scb_params, jax.random.fold_in(key, 1),
        algorithms=config.transfer_algorithms or None, num_configs=config.transfer_configs,
        num_eval_episodes=config.transfer_episodes, kind=config.kind,
    )
    summary = {
        "env_name": config.env_name,
        "meta_training_seconds": result.wall_clock_s,
        "num_parameters": scb.num_parameters(scb_params),
        "fitness_mean": history["fitness_mean"],
        "fitness_max": history["fitness_max"],
        "transfer": {alg: {"mean_return": float(row["returns"].mean()),
                           "returns": row["returns"].tolist()} for alg, row in tests.items()},
    }
    meta.save_scb(out_dir / "scb", meta_cfg, scb_params, metrics=history,
                  wall_clock_s=result.wall_clock_s,
                  extra={"transfer": summary["transfer"]})
    title = f"SCB for {config.env_name} ({config.strategy}, {config.population_size} members)"
    fitness_figure(history, title, colour_by_learning_rate=True).savefig(
        out_dir / "fitness.png", dpi=120)
    return summary


def _scaled_curriculum(curriculum: dict, generations: int, paper_generations: int) -> dict:
    """The paper's curriculum with its generations scaled to a shorter run."""
    scale = generations / paper_generations
    return {**curriculum,
            "eval_curriculum_begin": round(curriculum["eval_curriculum_begin"] * scale),
            "eval_curriculum_generations": round(curriculum["eval_curriculum_generations"] * scale)}


for _name, (_env, _discrete, _pop, _gens) in CLASSIC_CONTROL.items():
    _paper_extras = {"MountainCar-v0": MOUNTAINCAR_CURRICULUM,
                     "Pendulum-v1": dict(rollouts_per_member=8)}.get(_env, {})
    _quick_extras = (_scaled_curriculum(_paper_extras, _quick(_env).num_generations, _gens)
                     if "eval_steps_start" in _paper_extras else {})
    register(
        _name,
        f"Meta-train a synthetic contextual bandit for {_env} with SNES and test transfer "
        "of fresh agents with sampled hyperparameters to the real environment.",
        presets={"quick": _quick(_env, **_quick_extras),
                 "full": _full(_env, _discrete, _pop, _gens, **_paper_extras)},
        run=run,
    )

for _name, (_env, _pop, _gens) in BRAX.items():
    register(
        _name,
        f"Meta-train a synthetic contextual bandit for {_env} (full: paper scale, one GPU; "
        "quick: a CPU smoke run) and test transfer to the real environment.",
        presets={"quick": _brax_smoke(_env),
                 "full": _full(_env, False, _pop, _gens, **BRAX_CURRICULUM)},
        run=run,
    )

register(
    "scb-brax-inverted-pendulum",
    "Meta-train a synthetic contextual bandit for brax's inverted pendulum (not in the "
    "paper: the brax task a CPU meta-trains in minutes) and test transfer to the real task.",
    presets={"quick": _brax_cpu("brax/inverted_pendulum", generations=60, eval_episodes=8),
             "full": _full("brax/inverted_pendulum", False, 128, 300, eval_max_steps=1000)},
    run=run,
)
