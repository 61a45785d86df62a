"""Learning synthetic environments with NES (Ferreira et al., 2022).

    python -m learnenv run se-cartpole --preset quick --out runs/se-cartpole
    python -m learnenv run se-acrobot --preset full --out runs/se-acrobot
    python -m learnenv run se-cartpole --set strategy='"SNES"'   # an evosax strategy instead
    python -m learnenv run rn-cartpole --preset quick              # reward network variant

Each run learns one SE (resumable: its generations are checkpointed in
``OUT/checkpoints``), tests the ES centre with ``test_agents`` fresh DDQN agents
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
from learnenv.synthetic.se_training import SETrainingConfig


@dataclasses.dataclass(frozen=True)
class SEExperiment(SETrainingConfig):
    test_agents: int = field(20, low=1, doc="fresh agents trained on the final SE and tested")


CARTPOLE = {
    # 8 mirrored pairs, two agent variants; at most 30 generations (stopping
    # earlier once the centre's test agents solve): about 5 minutes on one CPU core.
    "quick": SEExperiment(num_generations=30),
    # The paper's "varied HP" scale: 16 workers, up to 50 iterations... and beyond.
    "full": SEExperiment(
        num_workers=16, num_generations=200,
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
                         num_workers=16, num_generations=50),
}


def fitness_figure(metrics, solved_return: float, title: str):
    """Member returns (dots), their mean, and the ES centre's test return per generation."""
    import numpy as np
    from matplotlib.figure import Figure

    members = np.asarray(metrics["member_return"], float)
    centre = np.asarray(metrics["centre_return"], float)
    gens = np.arange(1, len(members) + 1)
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if len(members):
        ax.scatter(np.repeat(gens, members.shape[1]), members.ravel(), s=4, alpha=0.25,
                   color="tab:gray", label="members (one agent each)")
        ax.plot(gens, members.mean(axis=1), color="tab:blue", label="member mean")
    tested = ~np.isnan(centre)
    ax.plot(gens[tested], centre[tested], "o-", color="tab:orange", label="ES centre (fresh agents)")
    ax.axhline(solved_return, color="k", linestyle="--", linewidth=1, label="solved")
    ax.set_xlabel("generation")
    ax.set_ylabel("greedy return on the real env")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def run(config: SEExperiment, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import numpy as np

    from learnenv.synthetic import se_training as st

    out_dir = Path(out_dir)
    train_key, test_key = jax.random.split(key)
    result = st.train_se(config, train_key, checkpoint_dir=out_dir / "checkpoints")
    test = st.test_se(config, result.env, result.env_params, test_key, config.test_agents)
    m = result.metrics
    summary = {
        "generations": result.generations,
        "solved_generation": result.solved_generation,
        "se_training_seconds": result.wall_clock_s,
        "first_generation_seconds_incl_compile": result.compile_s,
        "se_parameters": result.env.num_parameters(result.env_params),
        "test_success_rate": test["success_rate"],
        "test_agents": config.test_agents,
        "test_returns": test["returns"],
        "test_mean_return": float(np.mean(test["returns"])),
        "centre_return": m.get("centre_return"),
        "member_return_mean": np.asarray(m.get("member_return")).mean(axis=1)
        if len(m.get("member_return", [])) else [],
    }
    st.save_se(out_dir / "se", result, extra={"test": {k: summary[k] for k in (
        "test_success_rate", "test_agents", "test_mean_return", "test_returns")},
        "solved_generation": result.solved_generation, "generations": result.generations})
    title = f"SE for {config.env_name} ({config.strategy}, {config.population_size} members)"
    fitness_figure(m, config.solved_return, title).savefig(out_dir / "fitness.png", dpi=120)
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
