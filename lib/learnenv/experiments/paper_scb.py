"""Our agents trained on the SCB paper's own SCBs, evaluated in the real environments.

    python -m learnenv run paper-scb-transfer --preset quick --out runs/paper-scb-transfer
    python -m learnenv run paper-scb-transfer-brax --preset quick --out runs/paper-scb-transfer-brax
    python -m learnenv run paper-scb-transfer-brax --set 'tasks=["hopper"]' \\
        --set 'algorithms=["ppo"]' --set num_agents=2 --set eval_episodes=2   # one small row

The SCBs are the ones Liesen et al. (2024) published in ``synthetic-gymnax``
0.0.1 (:mod:`learnenv.synthetic.paper_scb`; ``pip install "learnenv[paper]"``).
For every task and algorithm, ``num_agents`` fresh agents, each with its own
hyperparameters drawn from the paper's lists and its own seed, train for 10k
steps on the paper's SCB (the paper's agent layout, ``inner_structure="paper"``)
and are evaluated on the real environment over ``eval_episodes`` episodes
(:func:`learnenv.synthetic.scb_eval.transfer`), acting as the paper's rejax
agents did there (PPO and SAC sample, DQN is epsilon-greedy with 0.05, DDPG and
TD3 deterministic; ``eval_policy="greedy"`` for greedy actions throughout). Reported as the paper
does: the IQM over agents of each agent's mean return, with every agent's
return, its hyperparameters, a uniform-random policy's return, and the paper's
numbers side by side (the synthetic-gymnax README's and, for brax, the
lecture's S column; the two differ), with whether the IQM reaches the paper's
number minus 10% of its distance to random.

Brax tasks run on the paper's physics backend by default, ``"generalized"``
(rejax's wrapper called ``brax.envs.create`` without a backend); learnenv's
adapter defaults to ``"positional"`` elsewhere because it is faster on a CPU,
and swimmer supports only ``"generalized"``.

Each finished (task, algorithm) cell is written to ``OUT/cells/`` at once, and a
rerun with the same arguments reuses it, so a long run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register

# The paper's tasks, in a fixed order (a task's random key depends on its place here,
# so a subset gives the same numbers as a run over all of them).
CLASSIC_TASKS = ("cartpole", "acrobot", "mountaincar", "mountaincar-continuous", "pendulum")
BRAX_TASKS = ("hopper", "swimmer", "halfcheetah", "walker2d", "humanoidstandup")
ALL_TASKS = CLASSIC_TASKS + BRAX_TASKS
ALGORITHMS = ("ppo", "sac", "dqn", "ddpg", "td3")
DISCRETE_TASKS = ("cartpole", "acrobot", "mountaincar")

# What the paper reports after 10k synthetic steps (IQM of 20 agents with random
# hyperparameters, evaluated in the real environment).
# synthetic-gymnax 0.0.1's README (its PyPI description), "Synthetic" columns:
README_SYNTHETIC: dict[str, dict[str, float]] = {
    "acrobot": {"ppo": -84.1, "sac": -85.3, "dqn": -82.6},
    "cartpole": {"ppo": 500.0, "sac": 500.0, "dqn": 500.0},
    "mountaincar": {"ppo": -181.8, "sac": -170.1, "dqn": -118.4},
    "mountaincar-continuous": {"ppo": 66.9, "sac": 91.1, "ddpg": 97.6, "td3": 97.5},
    "pendulum": {"ppo": -205.4, "sac": -188.3, "ddpg": -164.3, "td3": -168.5},
    "halfcheetah": {"ppo": 1657.4, "sac": 5810.4, "ddpg": 6162.4, "td3": 6555.8},
    "hopper": {"ppo": 853.5, "sac": 2738.8, "ddpg": 3012.4, "td3": 2985.3},
    "humanoidstandup": {"ppo": 13356.1, "sac": 21105.2, "ddpg": 21039.0, "td3": 20372.0},
    "swimmer": {"ppo": 348.5, "sac": 361.6, "ddpg": 365.1, "td3": 365.4},
    "walker2d": {"ppo": 858.3, "sac": 1323.1, "ddpg": 1304.3, "td3": 1321.8},
}
# ... and its "Real" columns (tuned hyperparameters, 5M steps, IQM of 5 runs):
README_REAL: dict[str, dict[str, float]] = {
    "halfcheetah": {"ppo": 3487.1, "sac": 7735.5, "ddpg": 3263.3, "td3": 13213.5},
    "hopper": {"ppo": 2521.9, "sac": 3119.4, "ddpg": 1536.0, "td3": 3325.8},
    "humanoidstandup": {"ppo": 17243.5, "sac": 23808.1, "ddpg": 24944.8, "td3": 28376.2},
    "swimmer": {"ppo": 83.6, "sac": 124.8, "ddpg": 348.5, "td3": 232.2},
    "walker2d": {"ppo": 2039.6, "sac": 4140.1, "ddpg": 698.3, "td3": 4605.8},
}
# The lecture's brax table, columns S (10k steps on the SCB, random hyperparameters,
# IQM of 20 runs) and R (real env, tuned, 5M steps, IQM of 5 runs), per algorithm.
LECTURE_S: dict[str, dict[str, float]] = {
    "hopper": {"ppo": 916.3, "sac": 2718.0, "ddpg": 3002.7},
    "swimmer": {"ppo": 351.6, "sac": 360.8, "ddpg": 365.6},
    "halfcheetah": {"ppo": 1207.9, "sac": 5784.1, "ddpg": 6082.7},
}
LECTURE_R: dict[str, dict[str, float]] = {
    "hopper": {"ppo": 2521.9, "sac": 3119.4, "ddpg": 1465.8},
    "swimmer": {"ppo": 83.6, "sac": 124.8, "ddpg": 345.0},
    "halfcheetah": {"ppo": 8696.7, "sac": 7735.5, "ddpg": 3966.8},
}


@dataclasses.dataclass(frozen=True)
class PaperSCBTransfer(Config):
    """Which cells to run and how many agents and episodes each."""

    tasks: tuple = CLASSIC_TASKS
    algorithms: tuple = ()  # () = the paper's per task; each task runs those of these that can act in it
    num_agents: int = field(20, low=1, doc="agents per task and algorithm, each with its own "
                            "hyperparameters (from the paper's lists) and seed")
    eval_episodes: int = field(16, low=1, doc="greedy real-environment episodes per agent")
    inner_timesteps: int = field(10_000, low=1, doc="steps on the SCB per agent (the paper's 10k)")
    inner_structure: str = field("paper", choices=("paper", "fast"),
                                 doc="agents' batch layout (learnenv.synthetic.meta.inner_config)")
    brax_backend: str = field("generalized", choices=("generalized", "positional", "spring"),
                              doc="physics of the real brax environments (the paper's: "
                                  "generalized; swimmer supports no other)")
    random_episodes: int = field(16, low=0, doc="episodes of a uniform random policy per task "
                                 "(the baseline of the 10% criterion); 0 = none")
    eval_policy: str = field("paper", choices=("paper", "greedy"),
                             doc="how agents act in the evaluation episodes: 'paper' as the "
                                 "paper's rejax agents' act() did (PPO and SAC sample, DQN is "
                                 "epsilon-greedy with 0.05, DDPG and TD3 deterministic); "
                                 "'greedy': every agent's greedy action")

    def validate(self) -> None:
        unknown = [t for t in self.tasks if t not in ALL_TASKS]
        if not self.tasks or unknown or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"PaperSCBTransfer.tasks={self.tasks!r}: choose distinct tasks from "
                             f"{', '.join(ALL_TASKS)}.")
        bad = [a for a in self.algorithms if a not in ALGORITHMS]
        if bad:
            raise ValueError(f"PaperSCBTransfer.algorithms has {bad}; choose from {ALGORITHMS}.")


def task_algorithms(task: str, algorithms: tuple = ()) -> tuple[str, ...]:
    """The algorithms run on ``task``: the paper's (brax: PPO, SAC, DDPG, TD3), or those
    of ``algorithms`` that can act in it (DQN needs discrete actions, DDPG/TD3 continuous)."""
    valid = ("ppo", "sac", "dqn") if task in DISCRETE_TASKS else ("ppo", "sac", "ddpg", "td3")
    return tuple(a for a in (algorithms or valid) if a in valid)


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle half (25% trimmed from each end, as
    ``scipy.stats.trim_mean(x, 0.25)`` and rliable's IQM)."""
    import numpy as np

    x = np.sort(np.asarray(values, dtype=float))
    k = int(len(x) * 0.25)
    return float(x[k:len(x) - k].mean())


def paper_numbers(task: str, algorithm: str) -> dict[str, float]:
    """The paper's numbers for one cell, by source."""
    out = {"readme_synthetic": README_SYNTHETIC.get(task, {}).get(algorithm),
           "readme_real": README_REAL.get(task, {}).get(algorithm),
           "lecture_s": LECTURE_S.get(task, {}).get(algorithm),
           "lecture_r": LECTURE_R.get(task, {}).get(algorithm)}
    return {k: v for k, v in out.items() if v is not None}


def criterion(value: float, paper: float | None, random: float | None) -> dict | None:
    """Does ``value`` reach ``paper - 0.1 * (paper - random)``? (None without both numbers.)"""
    if paper is None or random is None:
        return None
    threshold = paper - 0.1 * (paper - random)
    return {"threshold": threshold, "reached": bool(value >= threshold)}


def _cell_key(key, task: str, algorithm: str):
    import jax

    return jax.random.fold_in(jax.random.fold_in(key, ALL_TASKS.index(task)),
                              ALGORITHMS.index(algorithm))


def _cell_settings(config: PaperSCBTransfer, task: str, algorithm: str, key) -> dict:
    """What a saved cell must match to be reused."""
    import jax
    import numpy as np

    return {"task": task, "algorithm": algorithm, "num_agents": config.num_agents,
            "eval_episodes": config.eval_episodes, "inner_timesteps": config.inner_timesteps,
            "inner_structure": config.inner_structure,
            "greedy": greedy_evaluation(config, algorithm),
            "brax_backend": config.brax_backend if task in BRAX_TASKS else None,
            "key": np.asarray(jax.random.key_data(key)).tolist()}


def random_returns(env, key, episodes: int):
    """Real-environment returns of a uniform random policy on ``env``'s real environment."""
    import jax
    import numpy as np

    from learnenv.agents.base import evaluate

    real, real_params = env.real_env, env.real_env_params
    space = real.action_space(real_params)
    policy = lambda params, obs, k, greedy: space.sample(k)  # noqa: E731
    fn = jax.jit(lambda k: evaluate(policy, None, real, real_params, k, episodes, False))
    return np.asarray(fn(key))


def _plain(values) -> list:
    """Sampled hyperparameters as JSON numbers: float32 draws rounded (1e-4, not
    9.9999997e-05), flags as booleans."""
    import numpy as np

    a = np.asarray(values)
    return a.tolist() if a.dtype == bool else [float(f"{x:.7g}") for x in a.astype(float)]


def greedy_evaluation(config: PaperSCBTransfer, algorithm: str) -> bool:
    """Whether ``algorithm``'s agents act greedily in the evaluation episodes.

    The paper's numbers come from rejax's ``evaluate`` with each agent's ``act``
    (rejax at ef6f231, rejax/algos/networks.py): PPO's and SAC's policies
    sample, DQN's is epsilon-greedy with epsilon 0.05, DDPG's and TD3's actors
    are deterministic. Our agents' non-greedy policies are the same for PPO, SAC
    and DQN (whose ``eps_end`` is 0.05 in the transfer test's base config)."""
    return config.eval_policy == "greedy" or algorithm in ("ddpg", "td3")


def run_cell(env, env_params, config: PaperSCBTransfer, task: str, algorithm: str, key) -> dict:
    """One (task, algorithm) cell: train ``num_agents`` agents on the SCB, evaluate them."""
    import numpy as np

    from learnenv.synthetic import scb_eval

    t0 = time.perf_counter()
    rows = scb_eval.transfer(env.real_env_name, env_params, key, algorithms=(algorithm,),
                             num_configs=config.num_agents, inner_structure=config.inner_structure,
                             inner_timesteps=config.inner_timesteps,
                             num_eval_episodes=config.eval_episodes,
                             greedy=greedy_evaluation(config, algorithm), env=env)
    row = rows[algorithm]
    returns = np.asarray(row["returns"], dtype=float)
    return {"iqm": iqm(returns), "mean": float(returns.mean()),
            "median": float(np.median(returns)), "min": float(returns.min()),
            "max": float(returns.max()), "returns": returns.tolist(),
            "hyperparameters": {k: _plain(v) for k, v in row.items() if k != "returns"},
            "seconds": time.perf_counter() - t0}


def transfer_figure(cells: dict, title: str):
    """Per task: every agent's return (dots), the IQM (bar) and the paper's number (star)."""
    import numpy as np
    from matplotlib.figure import Figure

    tasks = list(cells)
    fig = Figure(figsize=(max(3.2 * len(tasks), 6.0), 3.6), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        algs = list(cells[task]["algorithms"])
        for i, alg in enumerate(algs):
            cell = cells[task]["algorithms"][alg]
            r = np.asarray(cell["returns"])
            jitter = np.linspace(-0.15, 0.15, len(r)) if len(r) > 1 else np.zeros(1)
            ax.scatter(i + jitter, r, s=8, color="tab:blue", alpha=0.5)
            ax.hlines(cell["iqm"], i - 0.3, i + 0.3, color="tab:blue", linewidth=2)
            paper = cell["paper"].get("readme_synthetic")
            if paper is not None:
                ax.scatter([i], [paper], marker="*", s=90, color="tab:red", zorder=3)
        if cells[task].get("random_return") is not None:
            ax.axhline(cells[task]["random_return"], color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(range(len(algs)), [a.upper() for a in algs])
        ax.set_xlim(-0.6, len(algs) - 0.4)
        ax.set_title(task, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("real return (agent's mean)")
    fig.suptitle(title + "\nbar: IQM, star: the paper (synthetic-gymnax README), "
                 "dotted: uniform random policy", fontsize=9)
    return fig


def run(config: PaperSCBTransfer, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import numpy as np
    from tqdm.auto import tqdm

    from learnenv import io, provenance
    from learnenv.checkpoint import progress_enabled
    from learnenv.synthetic import paper_scb

    out_dir = Path(out_dir)
    cell_dir = out_dir / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    plan = [(t, a) for t in config.tasks for a in task_algorithms(t, config.algorithms)]
    cells: dict[str, dict] = {}
    sources: dict[str, dict] = {}
    bar = tqdm(total=len(plan), desc="paper-scb-transfer", disable=not progress_enabled())
    try:
        for task in config.tasks:
            spec = paper_scb.TASKS[task]
            backend = config.brax_backend if spec.is_brax else None
            env, env_params = paper_scb.load(task, backend=backend)
            prov = paper_scb.provenance(task)
            sources[task] = {k: prov[k] for k in ("package_version", "file", "sha256",
                                                  "sha256_matches_published", "num_parameters")}
            entry = {"env_name": spec.env_name, "brax_backend": backend,
                     "random_return": None, "random_returns": None, "algorithms": {}}
            if config.random_episodes:
                rr = random_returns(env, jax.random.fold_in(key, 1000 + ALL_TASKS.index(task)),
                                    config.random_episodes)
                entry["random_return"], entry["random_returns"] = float(rr.mean()), rr.tolist()
            for algorithm in task_algorithms(task, config.algorithms):
                bar.set_postfix_str(f"{task} {algorithm}")
                cell_key = _cell_key(key, task, algorithm)
                settings = _cell_settings(config, task, algorithm, cell_key)
                path = cell_dir / f"{task}-{algorithm}.json"
                saved = json.loads(path.read_text()) if path.is_file() else None
                if saved is not None and saved.get("settings") == settings:
                    cell = saved["cell"]
                else:
                    cell = run_cell(env, env_params, config, task, algorithm, cell_key)
                    io.write_json(path, {"settings": settings, "cell": cell,
                                         "provenance": provenance.collect(
                                             wall_clock_s=cell["seconds"])})
                paper = paper_numbers(task, algorithm)
                cell = {**cell, "paper": paper,
                        "criterion_readme": criterion(cell["iqm"], paper.get("readme_synthetic"),
                                                      entry["random_return"]),
                        "criterion_lecture": criterion(cell["iqm"], paper.get("lecture_s"),
                                                       entry["random_return"])}
                entry["algorithms"][algorithm] = cell
                bar.update(1)
            cells[task] = entry
    finally:
        bar.close()

    table = [[task, alg, round(c["iqm"], 1), c["paper"].get("readme_synthetic"),
              c["paper"].get("lecture_s"),
              None if c["criterion_readme"] is None else c["criterion_readme"]["reached"]]
             for task, e in cells.items() for alg, c in e["algorithms"].items()]
    title = f"Agents trained 10k steps on the paper's SCBs ({config.num_agents} per cell)"
    transfer_figure(cells, title).savefig(out_dir / "transfer.png", dpi=110)
    from importlib import metadata

    return {
        "protocol": (f"{config.num_agents} agents per cell, hyperparameters sampled from the "
                     f"paper's lists, {config.inner_timesteps} steps on the paper's SCB "
                     f"(inner_structure={config.inner_structure!r}), mean return over "
                     f"{config.eval_episodes} real episodes per agent (eval_policy="
                     f"{config.eval_policy!r}: " + ("greedy actions" if config.eval_policy ==
                     "greedy" else "PPO and SAC sample, DQN epsilon 0.05, DDPG/TD3 "
                     "deterministic, as the paper's rejax agents") + "); IQM over agents. "
                     "Criterion: IQM >= paper - 0.1 * (paper - random)."),
        "brax": {"backend": config.brax_backend, "version": metadata.version("brax")}
        if any(t in BRAX_TASKS for t in config.tasks) else None,
        "paper_scb_files": sources,
        "table_columns": ["task", "algorithm", "iqm", "paper_readme", "paper_lecture_s",
                          "reaches_readme_minus_10pct_to_random"],
        "table": table,
        "cells": cells,
        "seconds_per_cell": {f"{t}/{a}": c["seconds"] for t, e in cells.items()
                             for a, c in e["algorithms"].items()},
        "num_cells": int(np.sum([len(e["algorithms"]) for e in cells.values()])),
    }


register(
    "paper-scb-transfer",
    "Agents with sampled hyperparameters trained 10k steps on the SCB paper's own published "
    "SCBs (synthetic-gymnax) for the five classic-control tasks, evaluated in the real "
    "environments (IQM, per-agent returns, the paper's numbers).",
    presets={"quick": PaperSCBTransfer(tasks=CLASSIC_TASKS, num_agents=20, eval_episodes=16),
             "full": PaperSCBTransfer(tasks=CLASSIC_TASKS, num_agents=50, eval_episodes=50,
                                      random_episodes=50)},
    run=run,
)

register(
    "paper-scb-transfer-brax",
    "PPO, SAC and DDPG trained 10k steps on the SCB paper's published brax SCBs (hopper, "
    "swimmer, halfcheetah, walker2d, humanoidstandup), evaluated in real brax on the paper's "
    "generalized backend: the lecture's S column, measured.",
    presets={"quick": PaperSCBTransfer(tasks=BRAX_TASKS, algorithms=("ppo", "sac", "ddpg"),
                                       num_agents=5, eval_episodes=4, random_episodes=4),
             "full": PaperSCBTransfer(tasks=BRAX_TASKS, algorithms=("ppo", "sac", "ddpg", "td3"),
                                      num_agents=20, eval_episodes=16)},
    run=run,
)
