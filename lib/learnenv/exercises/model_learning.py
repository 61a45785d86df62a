"""Exercises of the chapter "Learning the parts of an environment" (chapters/model-learning.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from learnenv.exercises import CheckFailed, Exercise, register


def check_linear_family(LinearModel) -> str:
    """The student's family keeps the interface and, fitted like the others on
    CartPole data, predicts the next state to within 0.02 standard deviations."""
    from learnenv.worldmodels import compare, horizon
    from learnenv.worldmodels.fit import FitConfig, make_fit

    model = LinearModel(4, 2, True)
    net = model.init(jax.random.key(0))
    carry, pred = model.step(net, model.initial_carry(), jnp.zeros(4), jnp.int32(1))
    shapes = (np.shape(pred.delta), np.shape(pred.reward), np.shape(pred.done_logit))
    if shapes != ((4,), (), ()):
        raise CheckFailed(f"step's Prediction has shapes (delta, reward, done_logit) = {shapes}; "
                          "expected ((4,), (), ()) for CartPole's 4 observation components.")
    data = compare.dataset("CartPole-v1", 40, jax.random.key(0))
    train, test = data.split(0.8)
    fit = make_fit(model, FitConfig(steps=1000, batch_size=256, window=1, learning_rate=1e-2))
    nets, stats, _ = jax.jit(fit)(jax.random.key(1), train)
    error = float(horizon.one_step_error(model, nets, stats, test)["state_rmse"])
    if not error < 0.02:
        raise CheckFailed(f"fitted on CartPole, the one-step state error is {error:.3f} standard "
                          "deviations (a correct linear model reaches about 0.001; predicting "
                          "no change gives about 0.4). Does step use the action?")
    return f"one-step state error {error:.4f} stds on held-out CartPole episodes"


register(Exercise(
    label="ex-ml-linear-family", chapter="model-learning",
    objective="Add a fourth world-model family behind the shared interface, and judge it on "
              "the same measurements as the others.",
    minutes=30, difficulty="medium",
    grading="The check fits the model. A complete answer also reports the terminal-step "
            "recall (about 0) and explains it: CartPole ends when |angle| or |position| "
            "passes a threshold, a region no single linear logit can describe, while the "
            "dynamics near upright are almost linear, so the state error is lower than the "
            "MLP's.",
    names=("LinearModel",),
    stub='''\
import flax.linen as nn
import jax.numpy as jnp

from learnenv.worldmodels.base import Prediction, WorldModel


class LinearModel(WorldModel):
    """(s' - s, r, done logit) as one linear function of [normalised s, one-hot a]."""

    family = "linear"

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Exercise {n}: write LinearModel (see the exercise text)")
''',
    check=check_linear_family,
    mutants=(("jnp.concatenate([obs_n, self.action_input(action)])",
              "jnp.concatenate([obs_n, self.action_input(0 * action)])"),
             ("Prediction(out[:-2], out[-2], out[-1])",
              "Prediction(0 * out[:-2], out[-2], out[-1])")),
))

register(Exercise(
    label="ex-ml-exploitation", chapter="model-learning",
    objective="Measure model exploitation: the gap between an agent's return inside a learned "
              "model and in the real environment, as the training budget grows.",
    minutes=30, difficulty="medium",
    grading="A table of model and real return per budget (30k, 100k, 300k) for one model and "
            "for an ensemble of 5, 4 seeds each. The answer names both sources of a gap: the "
            "agent exploiting states where the model is wrong in its favour (model return "
            "above real), and the model's termination head ending episodes early (model return "
            "below real). It states what its own runs show about the ensemble without claiming "
            "more than they measure.",
))


def check_count_bonus(count_bonus) -> str:
    """Scanned over random one-hot 6x6 grids (some all-zero, DeepSea's exit), under
    jit: bonuses and final counts against 1/sqrt(n) counted in NumPy."""
    from learnenv.exercises import assert_close

    steps, size = 200, 6
    key_cell, key_exit = jax.random.split(jax.random.key(0))
    cells = jax.random.randint(key_cell, (steps,), 0, 6)  # few cells: many repeat visits
    grids = jax.nn.one_hot(cells, size * size).reshape(steps, size, size)
    grids = grids * (jax.random.uniform(key_exit, (steps, 1, 1)) > 0.1)

    def scan(counts, grid):
        bonus, counts = count_bonus(counts, grid)
        return counts, bonus

    counts, bonuses = jax.jit(lambda g: jax.lax.scan(scan, jnp.zeros((size, size)), g))(grids)
    want_counts, want = np.zeros((size, size)), []
    for grid in np.asarray(grids):
        want_counts += grid
        n = float((want_counts * grid).sum())
        want.append(1.0 / np.sqrt(n) if grid.any() else 0.0)
    assert_close("the bonuses", bonuses, want, "200 random DeepSea-like observations", atol=1e-6)
    assert_close("the final counts", counts, want_counts, "the same observations")
    return f"{steps} observations scanned under jax.jit, {int((~np.asarray(grids).any((1, 2))).sum())} of them the exit"


register(Exercise(
    label="ex-ml-count-bonus", chapter="model-learning",
    objective="Write the count-based bonus that a learned novelty (RND) approximates.",
    minutes=15, difficulty="easy",
    grading="The check covers the function. A complete answer says why a count needs discrete, "
            "repeatable observations (DeepSea's one-hot grid) and why RND's learned error is "
            "used where observations are images or continuous.",
    names=("count_bonus",),
    stub='''\
import jax.numpy as jnp


def count_bonus(counts, next_obs):
    """Bonus 1/sqrt(N(s')) after counting s'; 0 for the all-zero exit observation."""
    raise NotImplementedError("Exercise {n}: write count_bonus (see the exercise text)")
''',
    check=check_count_bonus,
    mutants=(("new_counts = counts + next_obs", "new_counts = counts + 0 * next_obs"),
             ("1.0 / jnp.sqrt(jnp.maximum(n, 1.0))", "1.0 / jnp.maximum(n, 1.0)"),
             ("jnp.where(next_obs.sum() > 0,", "jnp.where(True,")),
))


def check_bradley_terry(bradley_terry_loss) -> str:
    """Against the library's loss on random returns and soft preferences, plus the
    values that catch the usual slips (equal returns, large margins, float32 overflow)."""
    from learnenv.exercises import assert_close
    from learnenv.rewards import preferences

    ka, kb, kp = jax.random.split(jax.random.key(0), 3)
    ra, rb = 5 * jax.random.normal(ka, (64,)), 5 * jax.random.normal(kb, (64,))
    p = jax.random.uniform(kp, (64,))
    assert_close("the loss", bradley_terry_loss(ra, rb, p),
                 preferences.bradley_terry_loss(ra, rb, p), "random returns (scale 5), soft p")
    for pref in (0.0, 0.5, 1.0):
        assert_close("the loss", bradley_terry_loss(jnp.ones(3), jnp.ones(3), jnp.full(3, pref)),
                     np.log(2.0), f"equal returns, p = {pref}")
    assert_close("the loss", bradley_terry_loss(jnp.array([-200.0]), jnp.array([0.0]),
                                                jnp.array([1.0])), 200.0,
                 "R_a - R_b = -200, p = 1 (float32: use log_sigmoid)", rtol=1e-5)
    grad = jax.grad(lambda r: bradley_terry_loss(r, jnp.zeros(2), jnp.ones(2)))(jnp.zeros(2))
    if not bool((grad < 0).all()):
        raise CheckFailed("with p = 1 the loss must fall as R_a grows (negative gradient); "
                          f"got {np.asarray(grad).round(3).tolist()}.")
    return "random soft preferences, ties, a margin of 200 in float32, the gradient's sign"


register(Exercise(
    label="ex-ml-bradley-terry", chapter="model-learning",
    objective="Write the Bradley-Terry loss that turns pairwise preferences into a reward model.",
    minutes=15, difficulty="easy",
    grading="The check covers the function. A complete answer says why log_sigmoid (not "
            "log of sigmoid) is needed, and that a tie (p = 0.5) asks for equal returns.",
    names=("bradley_terry_loss",),
    stub='''\
import jax
import jax.numpy as jnp


def bradley_terry_loss(return_a, return_b, preference):
    """Mean over pairs of -[p log sigmoid(Ra - Rb) + (1 - p) log sigmoid(Rb - Ra)]."""
    raise NotImplementedError("Exercise {n}: write bradley_terry_loss (see the exercise text)")
''',
    check=check_bradley_terry,
    mutants=(("jax.nn.log_sigmoid(return_a - return_b)", "jax.nn.log_sigmoid(return_b - return_a)"),
             ("+ (1 - preference) * jax.nn.log_sigmoid(return_b - return_a)", ""),
             ("jax.nn.log_sigmoid(return_a - return_b)",
              "jnp.log(jax.nn.sigmoid(return_a - return_b))")),
))

register(Exercise(
    label="ex-ml-noisy-tv", chapter="model-learning",
    objective="Explain which learned novelty keeps paying for randomness it cannot predict.",
    minutes=25, difficulty="medium",
    grading="Full marks: the forward model regresses s' from (s, a); where the outcome is random "
            "its best prediction is the mean, so its error stays at the outcome's variance "
            "however often the transition was seen, while RND regresses g(s'), a deterministic "
            "function of the observed s', whose error falls with visits. Half marks for 'the "
            "forward model is fooled' without the reason. Extra credit for noting DeepSea's "
            "noise is small (1/N) and for naming Pathak et al.'s fix (predict in features that "
            "ignore what the agent cannot influence).",
))

register(Exercise(
    label="ex-ml-segment-length", chapter="model-learning",
    objective="Judge how the length of the compared segments changes what a preference reward "
              "learns.",
    minutes=30, difficulty="medium",
    grading="Reports the normalised score and the rule correlation at segment length 9 next to "
            "length 1. Explains with the Bradley-Terry sum that a label on T frames constrains "
            "only the sum of T rewards (credit assignment), so each frame gets less information "
            "for the same number of labels; notes that held-out agreement is measured on "
            "different pairs at the two lengths. Strong answers propose a test (more labels, "
            "length 3) and a task where single frames cannot express the preference (a gait).",
))


def check_probe_r2(probe_r2) -> str:
    """Against the library's probe on a linear target with an offset and on pure noise."""
    from learnenv.exercises import assert_close
    from learnenv.worldmodels.abstraction import linear_probe_r2

    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 36))
    linear = features @ rng.normal(size=(36, 1)) + 5.0
    targets = np.concatenate([linear, rng.normal(size=(64, 2))], axis=1)
    got = np.asarray(probe_r2(features, targets), float)
    assert_close("R² per target column", got, linear_probe_r2(features, targets),
                 "a linear target with offset 5 and two noise columns (64 rows, 36 features)",
                 atol=0.02, rtol=0.0)
    return f"R² {np.round(got, 2).tolist()} (linear target, then two noise columns)"


register(Exercise(
    label="ex-ml-probe", chapter="model-learning",
    objective="Measure what a learned abstraction keeps with a held-out linear probe.",
    minutes=20, difficulty="easy",
    grading="The check covers the function. A complete answer says why R² must be measured on "
            "held-out rows (with 36 features and 32 training rows, noise targets fit almost "
            "perfectly in-sample).",
    names=("probe_r2",),
    stub='''\
import numpy as np


def probe_r2(features, targets):
    """R² of a ridge fit (with bias) on the first half of the rows, per target column,
    measured on the second half."""
    raise NotImplementedError("Exercise {n}: write probe_r2 (see the exercise text)")
''',
    check=check_probe_r2,
    mutants=(("residual = targets[split:] - x[split:] @ w",
              "residual = targets[:split] - x[:split] @ w"),
             ("x[:split].T @ targets[:split])", "x[:split].T @ targets[split:])")),
))

register(Exercise(
    label="ex-ml-option-discount", chapter="model-learning",
    objective="Work out what an agent's discount means once its actions last several steps.",
    minutes=20, difficulty="medium",
    grading="Full marks: 0.99 per 16-step option is 0.99^(1/16) ≈ 0.9994 per primitive step, a "
            "horizon of about 1/(1-0.99) = 100 options = 1,600 primitive steps, longer than the "
            "200-step episode. The semi-MDP discount gamma^16 per option restores the primitive "
            "horizon but changes neither the exploration effect (it comes from the action set) "
            "nor the resolution limit (coarser control); it mainly changes how strongly the "
            "value prefers arriving sooner. Partial credit for the horizon computation alone.",
))

register(Exercise(
    label="ex-ml-standardise", chapter="model-learning",
    objective="Decide whether the autoencoder's failure is one of units or of the objective.",
    minutes=30, difficulty="hard",
    grading="A linear autoencoder keeps the top principal components. After standardisation "
            "the 32 independent distractors have variance 1 each; CartPole's components are "
            "correlated under a random policy, so two principal components of the state have "
            "variance 1 + rho (kept) and two 1 - rho (lost to the noise): standardising should "
            "save part of the state, not all of it. Full marks need the test's numbers next to "
            "this expectation, and note that correlated distractors would defeat "
            "standardisation while the predictive objective does not depend on units.",
))
