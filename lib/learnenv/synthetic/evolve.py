"""The bi-level loop of every meta-learned environment, written once.

SE learning (Ferreira et al., 2022) and SCB meta-training (Liesen et al., 2024)
are the same algorithm: an evolution strategy over an environment's network
weights outside, agents trained inside each candidate environment::

    es_state = strategy.init(mean = the networks' default initialisation)
    for generation g:
        population = strategy.ask()                    # candidate environments
        fitness    = fitness_fn(population, key, g)    # train agents inside each member,
                                                       # score them on the REAL env (vmapped)
        es_state   = strategy.tell(-fitness)           # evosax minimises
        every mean_eval_every generations:
            score the ES mean with fresh agents; stop early once it passes the test

What differs between the papers is only ``fitness_fn`` (which agents, which
hyperparameters, what is scored): :class:`Fitness` is that interface, and
:func:`evolve` is the loop. The loop keeps the population's shape fixed, runs
through :func:`learnenv.checkpoint.run_resumable` (progress bar, checkpoints,
exact resumption), treats NaN fitness (a diverged inner run) as the worst, and
shards the population over every visible device (:mod:`learnenv.parallel`).

Strategies: ``"mirrored_nes"`` (the paper's, :mod:`learnenv.synthetic.nes`) or
any evosax distribution-based strategy with a ``std_init`` parameter
(``"SNES"``, ``"xNES"``, ``"Sep_CMA_ES"``, ...).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from learnenv.config import Config, field

__all__ = ["EvolutionConfig", "EvolutionResult", "Fitness", "strategies", "make_strategy",
           "evolve", "fitness_figure"]


def strategies() -> tuple[str, ...]:
    """The strategy names a config accepts (evosax is imported only when asked)."""
    from evosax.algorithms import distribution_based_algorithms

    return ("mirrored_nes", *sorted(distribution_based_algorithms))


@dataclasses.dataclass(frozen=True)
class EvolutionConfig(Config):
    """The outer loop's settings, one vocabulary for SEs and SCBs."""

    strategy: str = field("SNES", choices=strategies, doc="'mirrored_nes' or an evosax strategy")
    population_size: int = field(64, low=2, doc="environments evaluated per generation")
    sigma_init: float = field(0.05, low=0.0, low_inclusive=False, doc="initial search radius")
    step_size: float = field(1.0, low=0.0, low_inclusive=False, doc="mirrored_nes only")
    num_generations: int = field(50, low=1)
    num_eval_episodes: int = field(16, low=1, doc="real episodes per agent's score")
    mean_eval_every: int = field(5, low=0, doc="test the ES mean every k generations; 0 = never")
    stop_after_solved: int = field(0, low=0, doc="stop after this many consecutive passed "
                                   "tests of the mean; 0 = run every generation")
    checkpoint_every: int = field(5, low=0)


class Fitness(Protocol):
    """What a paper contributes to the loop: how an environment is scored.

    ``metrics`` and ``mean_metrics`` declare what the two calls add to the
    history (name -> shape, and scalar names), so that a generation that does
    not test the mean, or one after an early stop, records NaN in their place.
    """

    metrics: dict[str, tuple]
    mean_metrics: tuple[str, ...]

    def __call__(self, population: Any, key: jax.Array, generation: int) -> tuple[jax.Array, dict]:
        """``(fitness[population], metrics)``: higher is better."""

    def evaluate_mean(self, mean: Any, key: jax.Array, generation: int) -> dict:
        """``mean_metrics`` of fresh agents trained on the ES mean (``mean_fitness``
        among them) and, for early stopping, ``solved`` (a bool)."""


@dataclasses.dataclass
class EvolutionResult:
    mean: Any  # the ES mean: the network parameters of the environment we keep
    history: dict  # per generation that ran (numpy), see evolve
    generations: int  # generations run (fewer than asked when stopped early)
    solved_generation: int | None  # after which generation the stop rule fired
    wall_clock_s: float  # over every session that worked on the run
    compile_s: float  # the first generation of this session, compilation included


def make_strategy(config: EvolutionConfig, template: Any):
    """``(strategy, strategy_params)``: the paper's NES or an evosax strategy by name."""
    if config.strategy == "mirrored_nes":
        from learnenv.synthetic.nes import MirroredNES

        strategy = MirroredNES(config.population_size, template)
        params = strategy.default_params.replace(
            std_init=jnp.asarray(config.sigma_init), step_size=jnp.asarray(config.step_size))
        return strategy, params
    from evosax.algorithms import distribution_based_algorithms

    strategy = distribution_based_algorithms[config.strategy](config.population_size, template)
    params = strategy.default_params
    if not hasattr(params, "std_init"):
        raise ValueError(f"evosax {config.strategy} has no std_init; pick another strategy.")
    return strategy, params.replace(std_init=jnp.asarray(config.sigma_init, jnp.float32))


def evolve(config: EvolutionConfig, template: Any, fitness_fn: Fitness, key: jax.Array, *,
           checkpoint_dir: str | Path | None = None, progress: bool | None = None,
           desc: str | None = None, extendable: tuple[str, ...] = ("num_generations",),
           ) -> EvolutionResult:
    """Evolve ``template`` (a pytree of network parameters) with ``fitness_fn``.

    History per generation: ``fitness`` (every member), ``fitness_mean``,
    ``fitness_max``, ``fitness_min``, ``mean_fitness`` (NaN where the mean was
    not tested), ``seconds`` and ``fitness_fn``'s own metrics. Resumable and
    extendable through ``checkpoint_dir`` (see :func:`learnenv.checkpoint.run_resumable`).
    """
    from learnenv.checkpoint import run_resumable

    strategy, es_params = make_strategy(config, template)
    init_key, loop_key = jax.random.split(key)
    es_state = strategy.init(init_key, template, es_params)
    init_state = {"es_state": es_state, "key": loop_key,
                  "solved_at": jnp.asarray(-1, jnp.int32), "streak": jnp.asarray(0, jnp.int32)}
    timing = {"compile_s": 0.0}
    shapes = {"fitness": (config.population_size,), "fitness_mean": (), "fitness_max": (),
              "fitness_min": (), **dict(fitness_fn.metrics),
              **{name: () for name in fitness_fn.mean_metrics}, "seconds": ()}
    not_run = {name: np.full(shape, np.nan, np.float32) for name, shape in shapes.items()}
    not_run["ran"] = np.bool_(False)

    def generation(state, g):
        if config.stop_after_solved and int(state["solved_at"]) >= 0:
            return state, not_run
        t0 = time.perf_counter()
        key, ask_key, fit_key, tell_key, mean_key = jax.random.split(state["key"], 5)
        population, es_state = strategy.ask(ask_key, state["es_state"], es_params)
        fitness, extra = fitness_fn(population, fit_key, g)
        fitness = jnp.where(jnp.isnan(fitness), -jnp.inf, fitness)  # diverged = worst
        es_state, _ = strategy.tell(tell_key, population, -fitness, es_state, es_params)
        shown = jnp.where(jnp.isinf(fitness), jnp.nan, fitness)
        metrics = {**not_run, "fitness": shown, "fitness_mean": jnp.nanmean(shown),
                   "fitness_max": jnp.nanmax(shown), "fitness_min": jnp.nanmin(shown), **extra}
        solved_at, streak = state["solved_at"], state["streak"]
        every = config.mean_eval_every
        regular = every and (g + 1) % every == 0
        if regular or (every and g + 1 == config.num_generations):
            tested = dict(fitness_fn.evaluate_mean(strategy.get_mean(es_state), mean_key, g))
            solved = bool(tested.pop("solved", False))
            # Only the regular tests count towards the stop: the extra test of the last
            # generation must not change a run that is later extended.
            if regular:
                streak = jnp.where(solved, streak + 1, 0).astype(jnp.int32)
            if (config.stop_after_solved and int(streak) >= config.stop_after_solved
                    and int(solved_at) < 0):
                solved_at = jnp.asarray(g + 1, jnp.int32)
            metrics.update(tested)
        metrics = jax.device_get(metrics)
        metrics["seconds"] = np.float32(time.perf_counter() - t0)
        metrics["ran"] = np.bool_(True)
        if timing["compile_s"] == 0.0:  # this session's first generation
            timing["compile_s"] = float(metrics["seconds"])
        return {"es_state": es_state, "key": key, "solved_at": solved_at, "streak": streak}, metrics

    run = run_resumable(generation, init_state, config.num_generations, checkpoint_dir,
                        every=config.checkpoint_every, config=config, progress=progress,
                        desc=desc, extendable=extendable)
    history = run.metrics or {}
    ran = np.asarray(history.pop("ran", np.zeros(0, bool)), bool)
    history = {k: np.asarray(v)[ran] for k, v in history.items()}
    solved_at = int(run.state["solved_at"])
    return EvolutionResult(
        mean=strategy.get_mean(run.state["es_state"]),
        history=history,
        generations=int(ran.sum()),
        solved_generation=solved_at if solved_at >= 0 else None,
        wall_clock_s=run.wall_clock_s,
        compile_s=timing["compile_s"],
    )


def fitness_figure(history: dict, title: str, solved_return: float | None = None,
                   colour_by_learning_rate: bool = False):
    """Members (dots), population mean, and the tested ES mean, per generation.

    One figure for every meta-learned environment (SE, SCB, RN); with
    ``colour_by_learning_rate`` the population mean's dots show each generation's
    sampled learning rate (SCB meta-training shares one per generation). Returns
    a matplotlib ``Figure`` (not a pyplot figure, so nothing leaks into notebooks).
    """
    from matplotlib.figure import Figure

    members = np.asarray(history["fitness"], float)
    gens = np.arange(1, len(members) + 1)
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if len(members):
        ax.scatter(np.repeat(gens, members.shape[1]), members.ravel(), s=4, alpha=0.2,
                   color="tab:gray", label="members (one agent each)")
        ax.plot(gens, np.nanmean(members, axis=1), color="tab:blue", label="population mean")
        if colour_by_learning_rate:
            dots = ax.scatter(gens, np.nanmean(members, axis=1), s=14, zorder=3,
                              c=np.log10(np.asarray(history["learning_rate"], float)),
                              cmap="viridis", vmin=-4, vmax=-2)
            fig.colorbar(dots, ax=ax, label="log10 learning rate")
    mean = np.asarray(history.get("mean_fitness", np.full(len(gens), np.nan)), float)
    tested = np.isfinite(mean)
    if tested.any():
        ax.plot(gens[tested], mean[tested], "o-", color="tab:orange",
                label="ES mean (fresh agents)")
    if solved_return is not None:
        ax.axhline(solved_return, color="k", linestyle="--", linewidth=1, label="solved")
    ax.set_xlabel("generation")
    ax.set_ylabel("real-environment return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig
