"""Exercises of the chapter "Interactive simulators from action-conditioned diffusion"
(chapters/interactive-simulators.md)."""

from __future__ import annotations

import numpy as np

from learnenv.exercises import CheckFailed, Exercise, register


def check_preconditioning(preconditioning) -> str:
    """The student's EDM scalings match the library's at noise levels of every scale."""
    import jax.numpy as jnp

    from learnenv.worldmodels import diffusion

    sigma = jnp.asarray(np.geomspace(2e-3, 80.0, 9), jnp.float32)
    names = ("c_in", "c_skip", "c_out", "c_noise")
    for sigma_data in (0.5, 1.0):
        config = diffusion.DiffusionConfig(sigma_data=sigma_data)
        want = diffusion._preconditioning(config, sigma)
        got = preconditioning(sigma, sigma_data)
        if not isinstance(got, (tuple, list)) or len(got) != 4:
            raise CheckFailed("preconditioning must return four arrays: (c_in, c_skip, c_out, "
                              "c_noise).")
        for name, g, w in zip(names, got, want):
            g = np.asarray(g, np.float64)
            if g.shape != w.shape or not np.allclose(g, w, rtol=1e-4, atol=1e-6):
                i = int(np.argmax(np.abs(np.broadcast_to(g, w.shape) - w))) if g.size else 0
                raise CheckFailed(f"{name} at sigma={float(sigma[i]):.4g}, sigma_data="
                                  f"{sigma_data}: got {np.ravel(g)[i] if g.size else g}, "
                                  f"expected {float(w[i]):.6g} (Karras et al. 2022, Table 1).")
    return "c_in, c_skip, c_out and c_noise match EDM's at 9 noise levels and 2 data scales"


register(Exercise(
    label="ex-is-precondition", chapter="interactive-simulators",
    objective="Write EDM's preconditioning and say what the skip connection does at low "
              "and high noise.",
    minutes=10, difficulty="easy",
    grading="The check tests the formulas. A complete answer adds that c_skip -> 1 at "
            "small sigma (the network predicts a correction to an almost clean frame) and "
            "-> 0 at large sigma (it predicts the frame), which keeps the target's scale "
            "near 1 at every noise level.",
    names=("preconditioning",),
    stub='''\
import jax.numpy as jnp


def preconditioning(sigma, sigma_data):
    """EDM: the input, skip and output scalings and the noise input of the network."""
    raise NotImplementedError("Exercise {n}: write preconditioning (see the exercise text)")
''',
    check=check_preconditioning,
    mutants=(("sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)",
              "sigma ** 2 / (sigma ** 2 + sigma_data ** 2)"),
             ("jnp.log(sigma) / 4.0", "jnp.log(sigma)")),
))


def check_karras_sigmas(karras_sigmas) -> str:
    """The student's schedule is the library's for several step counts."""
    from learnenv.worldmodels import diffusion

    checked = 0
    for steps in (1, 2, 3, 10):
        for rho in (1.0, 7.0):
            config = diffusion.DiffusionConfig(rho=rho)
            want = np.asarray(diffusion.sigmas(config, steps))
            got = np.asarray(karras_sigmas(steps, config.sigma_min, config.sigma_max, rho),
                             np.float64).reshape(-1)
            if got.shape != want.shape:
                raise CheckFailed(f"karras_sigmas({steps}, ...) has {got.size} levels; the "
                                  f"sampler needs {want.size}: {steps} noise levels and a "
                                  "final 0.")
            if not np.allclose(got, want, rtol=1e-4, atol=1e-7):
                raise CheckFailed(f"karras_sigmas({steps}, sigma_min={config.sigma_min}, "
                                  f"sigma_max={config.sigma_max}, rho={rho}) = "
                                  f"{np.round(got, 4).tolist()}; expected "
                                  f"{np.round(want, 4).tolist()}.")
            checked += 1
    return f"the schedule matches the sampler's in {checked} cases"


register(Exercise(
    label="ex-is-schedule", chapter="interactive-simulators",
    objective="Write the sampler's noise schedule and say why it crowds the small noise "
              "levels.",
    minutes=10, difficulty="easy",
    grading="The check compares with the library. A complete answer says that even spacing "
            "in sigma^(1/rho) with rho = 7 puts most steps at small sigma, where fine detail "
            "is decided, and few at large sigma, where only the coarse layout is.",
    names=("karras_sigmas",),
    stub='''\
import jax.numpy as jnp


def karras_sigmas(steps, sigma_min, sigma_max, rho):
    """Noise levels for the sampler: sigma_max ... sigma_min, then 0."""
    raise NotImplementedError("Exercise {n}: write karras_sigmas (see the exercise text)")
''',
    check=check_karras_sigmas,
    mutants=(("jnp.append((hi + ramp * (lo - hi)) ** rho, 0.0)",
              "(hi + ramp * (lo - hi)) ** rho"),
             ("lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)",
              "lo, hi = sigma_min, sigma_max")),
))

register(Exercise(
    label="ex-is-sticky", chapter="interactive-simulators",
    objective="Measure how the uncertainty of the game decides the MSE model's blur.",
    minutes=40, difficulty="medium",
    grading="Six fits of the chapter's small model (sticky 0, 0.1, 0.3; edm and mse), same "
            "steps and data size, and the sharpness ratio of each over open-loop steps 1 to "
            "10. The answer states what its runs show and explains the mechanism: the MSE "
            "model outputs the mean of the possible next frames, so its blur grows with the "
            "probability that the paddle's move differs from the chosen action; it names the "
            "uncertainty left at sticky 0 (the ball's random first direction).",
))

register(Exercise(
    label="ex-is-breakeven", chapter="interactive-simulators",
    objective="Compute the break-even of a learned simulator on your own hardware.",
    minutes=30, difficulty="medium",
    grading="A table of steps per second (model with 1, 3, 10 denoising steps; real game) "
            "for 8, 64 and 512 parallel environments, with the machine named. The answer "
            "reads the best ratio off its table, converts the model's speed into the slowest "
            "real step that still makes imagination cheaper, and compares it with a 10 Hz "
            "robot.",
))

register(Exercise(
    label="ex-is-context", chapter="interactive-simulators",
    objective="Find what a world model needs past frames for.",
    minutes=40, difficulty="hard",
    grading="Fits with context 1, 2 and 4, rollouts shown side by side and PSNR at +1 and +10 "
            "for each. The answer identifies the errors that more context removes (motion "
            "that one frame cannot show: the paddle's previous action under sticky actions, "
            "bounces) and notes that MinAtar's trail channel already shows the ball's "
            "direction in a single frame.",
))
