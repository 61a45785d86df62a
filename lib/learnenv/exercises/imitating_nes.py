"""Exercises of the chapter "Imitating environments with NES" (chapters/imitating-nes.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learnenv.exercises import Exercise, assert_close, register, rounded


def check_nes_step(nes_step) -> str:
    """The student's update against :class:`~learnenv.synthetic.nes.MirroredNES`'s
    ask/tell on random centres and fitness, for several population sizes."""
    from learnenv.synthetic.nes import MirroredNES

    for trial, pairs in enumerate((2, 3, 5, 8)):
        key = jax.random.key(trial)
        mean = jax.random.normal(key, (6,))
        es = MirroredNES(population_size=2 * pairs, solution=mean)
        params = es.default_params.replace(step_size=jnp.asarray(0.7))
        state = es.init(key, mean, params)
        population, state = es.ask(jax.random.key(10 + trial), state, params)
        fitness = jax.random.uniform(jax.random.key(20 + trial), (2 * pairs,))  # higher is better
        state, _ = es.tell(key, population, -fitness, state, params)  # evosax minimises
        eps, f_plus, f_minus = population[:pairs] - mean, fitness[:pairs], fitness[pairs:]
        assert_close("the new centre", nes_step(mean, eps, f_plus, f_minus, 0.7), es.get_mean(state),
                     f"{pairs} pairs, f_plus={rounded(f_plus, 2)}, "
                     f"f_minus={rounded(f_minus, 2)}")
    return "4 population sizes against MirroredNES.ask/tell"


register(Exercise(
    label="ex-nes-update", chapter="imitating-nes",
    objective="Implement the outer loop's search step: the paper's mirrored NES update.",
    minutes=30, difficulty="medium",
    grading="The check covers the update. A complete answer says why the worse half gets zero "
            "weight (a greedy, hill-climbing step on noisy fitness).",
    names=("nes_step",),
    stub='''\
import jax.numpy as jnp


def nes_step(mean, eps, f_plus, f_minus, step_size):
    """The new centre from the n perturbations `eps` (n, d) and the fitness (higher is
    better) of mean + eps (`f_plus`) and mean - eps (`f_minus`)."""
    raise NotImplementedError("Exercise {n}: write nes_step")
''',
    check=check_nes_step,
    mutants=(("minus_won = f_minus > f_plus", "minus_won = f_minus < f_plus"),
             ("jnp.maximum(0.0, jnp.log(n / 2 + 1) - jnp.log(ranks))",
              "jnp.log(n / 2 + 1) - jnp.log(ranks)"),
             ("argsort(-kept)", "argsort(kept)")),
))

register(Exercise(
    label="ex-nes-snes", chapter="imitating-nes",
    objective="Compare two evolution strategies in the outer loop, and explain how each spends "
              "its population.",
    minutes=30, difficulty="easy",
    grading="Reports, for both strategies and the same number of generations, the centre's "
            "fitness curve and the seconds per generation from the run's history (numbers vary "
            "per run and machine). Explains that the mirrored NES evaluates each direction "
            "twice, keeps the better sign and ignores the worse half (a greedy step), while "
            "SNES samples members independently and adapts a per-parameter sigma, which moves "
            "the mean slowly with thousands of parameters and 16 noisy fitness values. Says "
            "that one seed is not enough to rank them.",
))

register(Exercise(
    label="ex-nes-cap", chapter="imitating-nes",
    objective="Predict how the fitness definition (the step cap) shapes what an SE learns.",
    minutes=20, difficulty="medium",
    grading="(a) inner training cost barely changes (fixed steps); evaluation cost scales with "
            "the real cap. (b) with cap 50 the SE only needs to teach the first 50 steps; it can "
            "end episodes early. (c) agents trained on it need not balance for 200 steps: the SE "
            "optimises exactly the fitness. Credit a run that checks one prediction.",
))

register(Exercise(
    label="ex-nes-protocol", chapter="imitating-nes",
    objective="Understand how an evaluation protocol changes a measured speed-up.",
    minutes=25, difficulty="medium",
    grading="First-solve steps can only come earlier on the finer grid (it contains the coarse "
            "one), most where learning is slow and noisy; 'stays solved' counts can only drop "
            "(more chances to fall below 195 once). Names the stability column as the more "
            "robust measure. Credit a run of the given command that checks the prediction.",
))
