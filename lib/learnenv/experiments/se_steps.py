"""Steps until an agent solves the real task: trained on a learned SE (or RN) vs on the real env.

    python -m learnenv run se-steps-to-solve --preset quick --out runs/se-steps
    python -m learnenv run se-steps-to-solve --set eval_every=250

Agents (DDQN, which the SE was trained for; dueling DDQN and discrete SAC,
which it never saw during its training; optionally plain DQN with hard target
copies) with log-uniformly varied learning rates train
on each environment; every ``eval_every`` of their steps their greedy policy is
evaluated on the *real* env (``eval_episodes`` episodes). Reported per agent:
the step of the first evaluation at or above ``solved_return`` and whether all
later evaluations stay there. Both depend on the protocol, which is saved with
the numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register

AGENTS = {
    # name: (agent module, config changes)
    "DDQN": ("dqn", dict(double=True, dueling=False, target_update_interval=1, tau=0.01)),
    "dueling DDQN": ("dqn", dict(double=True, dueling=True, target_update_interval=1, tau=0.01)),
    "DQN (hard target)": ("dqn", dict(double=False, dueling=False, target_update_interval=100,
                                      tau=1.0)),
    # Discrete SAC: a categorical actor and twin critics, no epsilon schedule.
    "SAC (discrete)": ("sac", dict(tau=0.02)),
}
DEFAULT_AGENTS = ("DDQN", "dueling DDQN", "SAC (discrete)")


@dataclasses.dataclass(frozen=True)
class StepsToSolve(Config):
    env_name: str = "CartPole-v1"
    max_steps_in_episode: int = field(200, low=0)
    synthetic: tuple = ("se-cartpole",)  # pretrained names or checkpoint paths
    agents: tuple = DEFAULT_AGENTS
    num_agents: int = field(8, low=1, doc="per (agent type, environment)")
    synthetic_budget: int = field(10_000, low=1, doc="training steps on an SE")
    real_budget: int = field(30_000, low=1, doc="training steps on the real env (and an RN)")
    exploration_steps: int = field(2_000, low=1, doc="epsilon decay length (DQNs), same everywhere")
    eval_every: int = field(1_000, low=4)
    eval_episodes: int = field(10, low=1)
    solved_return: float = 195.0
    hidden_sizes: tuple = (64,)
    batch_size: int = field(64, low=1)
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False)
    lr_factor: float = field(3.0, low=1.0)


PRESETS = {
    "quick": StepsToSolve(),
    "full": StepsToSolve(num_agents=32, real_budget=50_000, eval_every=250),
}


def load_synthetic(name_or_path: str):
    from learnenv import io, pretrained

    return (pretrained.load if name_or_path in pretrained.names() else io.load_environment)(
        name_or_path)


def agent_module(agent: str):
    """The :mod:`learnenv.agents` module that trains ``agent`` (from the agent registry)."""
    from learnenv import agents

    if agent not in AGENTS:
        raise ValueError(f"Unknown agent {agent!r}; valid: {', '.join(AGENTS)}.")
    return agents.get(AGENTS[agent][0]).module


def agent_config(config: StepsToSolve, agent: str, budget: int):
    """One agent's config: the same loop settings (buffer, warm-up, update rate) for all."""
    kind, changes = AGENTS[agent]
    # Every loop setting pinned: the agents' defaults are tuned for other uses.
    common = dict(total_timesteps=budget, num_envs=1, buffer_size=budget,
                  batch_size=config.batch_size, gamma=0.99,
                  learning_starts=1_000, train_freq=4, gradient_steps=1, anneal_lr=False,
                  activation="relu", hidden_sizes=tuple(config.hidden_sizes),
                  learning_rate=config.learning_rate)
    if kind == "sac":
        from learnenv.agents.sac import SACConfig

        return SACConfig(**common, **changes)
    from learnenv.agents.dqn import DQNConfig

    return DQNConfig(**common, loss="huber", layer_norm=False, max_grad_norm=10.0,
                     eps_start=1.0, eps_end=0.05,
                     exploration_fraction=min(1.0, config.exploration_steps / budget), **changes)


def measure(config: StepsToSolve, train_env, train_params, agent: str, budget: int, key) -> dict:
    """Evaluation curves and steps to solve of ``num_agents`` agents of one type on one env."""
    import jax
    import numpy as np

    from learnenv import envs
    from learnenv.synthetic.se_analysis import (evaluation_curves, make_train_with_eval,
                                                 steps_to_solve)
    from learnenv.synthetic.se_training import real_env_kwargs, sample_learning_rates

    real_env, real_params = envs.make(config.env_name, **real_env_kwargs(config))
    cfg = agent_config(config, agent, budget)
    train = make_train_with_eval(cfg, train_env, train_params, real_env, real_params,
                                 config.eval_every, config.eval_episodes,
                                 agent=agent_module(agent))
    k_seed, k_lr = jax.random.split(key)
    lrs = sample_learning_rates(k_lr, config.num_agents, config.learning_rate, config.lr_factor)
    hps = jax.vmap(lambda lr: cfg.hyperparams().replace(learning_rate=lr))(lrs)
    out = jax.jit(jax.vmap(train))(jax.random.split(k_seed, config.num_agents), hps)
    steps, curves = evaluation_curves(out.metrics, cfg.learning_starts)
    result = steps_to_solve(curves, steps, config.solved_return)
    result["learning_rates"] = np.asarray(lrs)
    return result


def run(config: StepsToSolve, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax

    from learnenv import envs
    from learnenv.synthetic.reward_network import RewardNetworkEnvironment
    from learnenv.synthetic.se_analysis import summarise_steps
    from learnenv.synthetic.se_training import real_env_kwargs

    out_dir = Path(out_dir)
    real_env, real_params = envs.make(config.env_name, **real_env_kwargs(config))
    environments = {"real": (real_env, real_params, config.real_budget)}
    for name in config.synthetic:
        env, params = load_synthetic(name)
        # A reward network keeps the real dynamics: it gets the real env's budget.
        rn = isinstance(env, RewardNetworkEnvironment)
        environments[name] = (env, params, config.real_budget if rn else config.synthetic_budget)
    results: dict[str, Any] = {"protocol": {
        "eval_every": config.eval_every, "eval_episodes": config.eval_episodes,
        "solved_return": config.solved_return,
        "budgets": {name: b for name, (_, _, b) in environments.items()},
        "exploration_steps": config.exploration_steps,
        "first_solve": "first evaluation with mean greedy return >= solved_return",
        "stays_solved": "every later evaluation up to the end of the budget also solved",
    }}
    table = []
    for i, agent in enumerate(config.agents):
        for j, (env_name, (env, params, budget)) in enumerate(environments.items()):
            k = jax.random.fold_in(jax.random.fold_in(key, i), j)
            res = measure(config, env, params, agent, budget, k)
            table.append({"agent": agent, "trained_on": env_name, "budget": budget,
                          **summarise_steps(res), "first_solve": res["first_solve"],
                          "stays_solved_per_agent": res["stays_solved"]})
    results["table"] = table
    steps_figure(table, config).savefig(out_dir / "steps_to_solve.png", dpi=120)
    return results


def steps_figure(table, config: StepsToSolve):
    """Bars: mean first-solve step per (agent, env) with the spread; text: solved and stayed."""
    import numpy as np
    from matplotlib.figure import Figure

    agents = list(dict.fromkeys(r["agent"] for r in table))
    envs_ = list(dict.fromkeys(r["trained_on"] for r in table))
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(envs_)
    for j, env_name in enumerate(envs_):
        for i, agent in enumerate(agents):
            row = next(r for r in table if r["agent"] == agent and r["trained_on"] == env_name)
            first = np.asarray(row["first_solve"], float)
            ok = first[~np.isnan(first)]
            x = i + (j - (len(envs_) - 1) / 2) * width
            mean = ok.mean() if len(ok) else np.nan
            ax.bar(x, mean, width, color=f"C{j}", label=env_name if i == 0 else None, alpha=0.8)
            ax.scatter(np.full(len(ok), x), ok, color="k", s=6, zorder=3)
            ax.text(x, (mean if np.isfinite(mean) else 0) + 200,
                    f"{row['solved']}/{row['agents']}\n{row['stays_solved']} stay", ha="center",
                    fontsize=7)
    ax.set_xticks(range(len(agents)), agents)
    ax.set_ylabel("training steps to first solve")
    ax.set_title(f"Evaluated every {config.eval_every} steps on the real env "
                 f"({config.eval_episodes} episodes, solved >= {config.solved_return:g})", fontsize=9)
    ax.legend(title="trained on", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


register(
    "se-steps-to-solve",
    "Training steps until DDQN, dueling DDQN and discrete SAC solve real CartPole-200, trained "
    "on the learned SE vs on the real env (first solve and stays solved).",
    presets=PRESETS,
    run=run,
)
