"""Learning synthetic environments with NES (Ferreira et al., 2022).

    python -m learnenv run se-cartpole --preset quick --out runs/se-cartpole
    python -m learnenv run se-acrobot --preset full --out runs/se-acrobot
    python -m learnenv run se-cartpole --set strategy='"SNES"'   # an evosax strategy instead
    python -m learnenv run rn-cartpole --preset quick              # reward network variant

Each run learns one SE (resumable: its generations are checkpointed in
``OUT/checkpoints``), tests the ES mean with ``test_agents`` fresh DDQN agents
with varied hyperparameters on fresh seeds, and writes ``OUT/se.json`` +
``OUT/se.msgpack`` (the SE, loadable with
:func:`learnenv.synthetic.se_training.load_se`) and ``OUT/fitness.png``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from learnenv.config import field
from learnenv.experiments import register
from learnenv.synthetic.evolve import fitness_figure
from learnenv.synthetic.se_training import SETrainingConfig


@dataclasses.dataclass(frozen=True)
class SEExperiment(SETrainingConfig):
    test_agents: int = field(20, low=1, doc="fresh agents trained on the final SE and tested")


CARTPOLE = {
    # 8 mirrored pairs, two agent variants, stopping once the mean's test agents
    # solve. At most 120 generations: the cap that lets 4 of 5 seeds pass the test
    # (results/se/se-cartpole-reliability-quick.json; 30 generations: 2 of 5,
    # results/se/se-cartpole-reliability-30-generations.json).
    "quick": SEExperiment(num_generations=120),
    # The paper's "varied HP" scale: 16 workers, up to 50 iterations... and beyond.
    "full": SEExperiment(
        population_size=32, num_generations=200,
        agent_variants=(((64,), 64), ((128,), 32), ((64, 64), 128), ((128, 128), 64)),
    ),
}

ACROBOT = {
    # Acrobot's angular velocities reach 4 pi and 9 pi: a wider state clip.
    "quick": SEExperiment(env_name="Acrobot-v1", max_steps_in_episode=0, solved_return=-100.0,
                          state_clip=30.0, num_generations=20),
    "full": SEExperiment(env_name="Acrobot-v1", max_steps_in_episode=0, solved_return=-100.0,
                         state_clip=30.0, num_generations=150),
}

# Reward network on the real CartPole-200 dynamics: a short inner budget, so
# that fitness rewards potentials that make DDQN learn *faster*.
RN_CARTPOLE = {
    "quick": SEExperiment(env_kind="rn_additive", se_hidden_size=64, inner_timesteps=5_000,
                          num_generations=10),
    "full": SEExperiment(env_kind="rn_additive", se_hidden_size=64, inner_timesteps=5_000,
                         population_size=32, num_generations=50),
}


def run(config: SEExperiment, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import numpy as np

    from learnenv.synthetic import se_training as st

    out_dir = Path(out_dir)
    train_key, test_key = jax.random.split(key)
    se, se_params, result = st.train_se(config, train_key, checkpoint_dir=out_dir / "checkpoints")
    test = st.test_se(config, se_params, test_key, config.test_agents)
    m = result.history
    summary = {
        "generations": result.generations,
        "solved_generation": result.solved_generation,
        "se_training_seconds": result.wall_clock_s,
        "first_generation_seconds_incl_compile": result.compile_s,
        "se_parameters": se.num_parameters(se_params),
        "test_success_rate": test["success_rate"],
        "test_agents": config.test_agents,
        "test_returns": test["returns"],
        "test_mean_return": float(np.mean(test["returns"])),
        "mean_fitness": m.get("mean_fitness"),
        "fitness_mean": m.get("fitness_mean"),
    }
    st.save_se(out_dir / "se", se, se_params, config=config, metrics=m,
               wall_clock_s=result.wall_clock_s,
               extra={"test": {k: summary[k] for k in (
                   "test_success_rate", "test_agents", "test_mean_return", "test_returns")},
                   "solved_generation": result.solved_generation,
                   "generations": result.generations})
    title = f"SE for {config.env_name} ({config.strategy}, {config.population_size} members)"
    fitness_figure(m, title, config.solved_return).savefig(out_dir / "fitness.png", dpi=120)
    return summary


register(
    "se-cartpole",
    "Learn a synthetic CartPole (200-step cap) with the paper's mirrored NES and a DDQN inner "
    "loop; test 20 fresh DDQN agents on the real env.",
    presets=CARTPOLE,
    run=run,
)
register(
    "rn-cartpole",
    "Learn an additive potential-based reward network for CartPole-200 (real dynamics) with "
    "the same NES loop and a 5k-step DDQN inner loop.",
    presets=RN_CARTPOLE,
    run=run,
)
register(
    "se-acrobot",
    "Learn a synthetic Acrobot-v1 with the paper's mirrored NES and a DDQN inner loop; test "
    "fresh DDQN agents on the real env (solved at -100).",
    presets=ACROBOT,
    run=run,
)


@dataclasses.dataclass(frozen=True)
class SEReliability(SEExperiment):
    """The quick SE run repeated over seeds: seeds stand in for machines, since runs
    are not bit-identical across machines."""

    num_seeds: int = field(5, low=1, doc="seeds 0 .. num_seeds-1, each a whole SE run")


def run_reliability(config: SEReliability, out_dir: Path, key: Any) -> dict[str, Any]:
    """Learn one SE per seed (as ``se-cartpole --seed s``) and test each with fresh agents;
    success = the ES mean passes the chapter's test (``solved_fraction`` of them solve)."""
    import time

    import jax

    from learnenv.synthetic import se_training as st

    rows = []
    for seed in range(config.num_seeds):
        start = time.perf_counter()
        train_key, test_key = jax.random.split(jax.random.key(seed))
        _, params, result = st.train_se(config, train_key, progress=False)
        test = st.test_se(config, params, test_key, config.test_agents)
        rows.append({"seed": seed, "generations": result.generations,
                     "stopped_early": result.solved_generation is not None,
                     "test_success_rate": test["success_rate"],
                     "success": test["success_rate"] >= config.solved_fraction,
                     "seconds": time.perf_counter() - start})
        print(f"seed {seed}: {rows[-1]}")
    return {"seeds": rows, "successes": sum(r["success"] for r in rows),
            "num_seeds": config.num_seeds}


register(
    "se-cartpole-reliability",
    "The quick se-cartpole run over several seeds: how often does the live SE learning of "
    "the NES chapter pass its test (>= 80% of 20 fresh agents solve)?",
    presets={name: SEReliability(**config.to_dict()) for name, config in CARTPOLE.items()},
    run=run_reliability,
)
