"""Exercises of the chapter "Generative interactive environments"
(chapters/genie.md)."""

from __future__ import annotations

import numpy as np

from learnenv.exercises import CheckFailed, Exercise, register


def _label_pairs():
    """Label arrays that tell the normalisations and the edge cases apart."""
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, 3000)
    split = np.where((actions == 0) & (rng.random(3000) < 0.5), 3, actions)
    noisy = np.where(rng.random(3000) < 0.2, rng.integers(0, 3, 3000), actions)
    return (("a relabelling", (actions + 1) % 3, actions),
            ("one action split over two codes", split, actions),
            ("20% noise", noisy, actions),
            ("independent labels", rng.integers(0, 8, 3000), actions),
            ("8 codes against 3 actions", (actions * 3 + rng.integers(0, 3, 3000)) % 8, actions))


def check_nmi(nmi) -> str:
    """The student's NMI matches the library's (arithmetic-mean normalisation)."""
    from learnenv.worldmodels.latent_actions import normalized_mutual_information

    for name, a, b in _label_pairs():
        want = normalized_mutual_information(a, b)
        got = float(nmi(a, b))
        if not np.isclose(got, want, atol=1e-6):
            raise CheckFailed(f"nmi on {name}: got {got:.4f}, expected {want:.4f} "
                              "(I(a; b) divided by the mean of H(a) and H(b)).")
        if not np.isclose(float(nmi(b, a)), got, atol=1e-9):
            raise CheckFailed(f"nmi on {name} is not symmetric: nmi(a, b) != nmi(b, a).")
    return "NMI matches the library's on 5 pairs of label arrays, and is symmetric"


register(Exercise(
    label="ex-genie-nmi", chapter="genie",
    objective="Compute normalised mutual information from a contingency table and say what "
              "it rewards.",
    minutes=15, difficulty="easy",
    grading="The check compares with the library on label arrays that tell the usual "
            "normalisations apart. A complete answer says that NMI is 1 for any relabelling "
            "(so no mapping is needed to compute it) and that splitting one action over two "
            "codes lowers it (H(latent) grows while I stays), which is why more latent "
            "actions than true ones cost NMI but not mapped accuracy.",
    names=("nmi",),
    stub='''\
import numpy as np


def nmi(a, b):
    """Normalised mutual information of two label arrays (arithmetic mean of entropies)."""
    raise NotImplementedError("Exercise {n}: write nmi (see the exercise text)")
''',
    check=check_nmi,
    mutants=(("(entropy(p_a) + entropy(p_b)) / 2", "max(entropy(p_a), entropy(p_b))"),
             ("joint / joint.sum()", "joint")),
))


def check_latent_map(latent_map) -> str:
    """The student's latent-to-true map is the library's majority map."""
    from learnenv.worldmodels.latent_actions import fit_mapping

    rng = np.random.default_rng(1)
    cases = [(np.array([0, 0, 0, 1, 1, 2]), np.array([2, 2, 1, 0, 0, 2]), 4)]
    for _ in range(20):
        n, k = int(rng.integers(5, 200)), int(rng.integers(2, 8))
        cases.append((rng.integers(0, k, n), rng.integers(0, 3, n), k + int(rng.integers(0, 3))))
    for latents, actions, k in cases:
        want = fit_mapping(latents, actions, k)
        got = np.asarray(latent_map(latents, actions, k)).reshape(-1)
        if got.shape != want.shape:
            raise CheckFailed(f"latent_map(..., num_latents={k}) has {got.size} entries; it "
                              f"needs one per latent action ({k}).")
        seen = np.isin(np.arange(k), latents)
        if not np.array_equal(got[seen], want[seen]):
            raise CheckFailed(f"latents {latents[:12].tolist()}..., actions "
                              f"{actions[:12].tolist()}...: got {got.tolist()}, expected "
                              f"{want.tolist()} (each latent to its most frequent action).")
        if not np.array_equal(got[~seen], want[~seen]):
            raise CheckFailed(f"a latent never seen in the labelled pairs should map to the "
                              f"most common action ({want[~seen][0]}); got "
                              f"{got[~seen].tolist()}.")
    return f"the map matches the majority map on {len(cases)} labelled sets"


register(Exercise(
    label="ex-genie-map", chapter="genie",
    objective="Fit the latent-to-true map from a few labelled pairs, as Genie's "
              "behaviour-cloning experiment does.",
    minutes=10, difficulty="easy",
    grading="The check compares with the library, including latents that never occur in the "
            "labelled pairs. A complete answer says how many labelled pairs the map needs "
            "when each latent means one action (a handful per latent), and why a latent that "
            "means 'paddle in column 3' cannot be mapped well by any number of pairs.",
    names=("latent_map",),
    stub='''\
import numpy as np


def latent_map(latents, actions, num_latents):
    """Each latent action to the true action it was seen with most often."""
    raise NotImplementedError("Exercise {n}: write latent_map (see the exercise text)")
''',
    check=check_latent_map,
    mutants=(("mapping[z] = np.bincount(seen).argmax()", "mapping[z] = np.bincount(seen).argmin()"),
             ("np.full(num_latents, np.bincount(actions).argmax())",
              "np.zeros(num_latents, dtype=int)")),
))

register(Exercise(
    label="ex-genie-codebook", chapter="genie",
    objective="Measure how the number of latent actions, fixed in advance, shapes what they "
              "mean.",
    minutes=40, difficulty="medium",
    grading="The chapter's small LAM trained with 2, 3, 4 and 8 latent actions (same steps "
            "and data), with codebook usage, NMI and mapped accuracy for each in one table. "
            "The answer reads its table: too few codes merge actions (accuracy falls), more "
            "codes than actions may split them (NMI falls, accuracy need not) or name events "
            "the player did not cause (a code used mostly when the ball reaches the paddle's "
            "rows, whatever the action: check by tabulating codes against such events), and "
            "it says what Genie's |A| = 8 would cost on a game with 3 actions, including for "
            "an agent that presses a code the real game has no action for.",
))

register(Exercise(
    label="ex-genie-counterexample", chapter="genie",
    objective="Explain why Delta_t PSNR cannot certify that latent actions mean actions.",
    minutes=30, difficulty="medium",
    grading="The answer explains that Delta_t PSNR rewards any latent that carries information "
            "about the next frame, whether the player caused it or not, so a latent that "
            "names where the paddle ends up (or the ball's next bounce) scores as high as one "
            "that names the move. It proposes a second counter-example (for example a LAM "
            "whose encoder sees only the next frame) and predicts its NMI and Delta_t PSNR "
            "before measuring them.",
))

register(Exercise(
    label="ex-genie-rounds", chapter="genie",
    objective="Find when MaskGIT's rounds matter.",
    minutes=40, difficulty="hard",
    grading="Rollouts of the shipped dynamics model with 1, 2 and 8 rounds at temperature 0 "
            "and 1, then the same on videos with sticky actions (envs.make(..., sticky=0.25)) "
            "after refitting. The answer measures that rounds change little where the next "
            "frame is determined (Breakout without sticky actions) and explains why they "
            "matter where it is not: one round samples every cell independently, so two "
            "possible futures can mix in one frame.",
))
