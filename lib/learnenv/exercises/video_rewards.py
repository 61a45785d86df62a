"""Exercises of the chapter "Rewards from video prediction" (chapters/video-rewards.md)."""

from __future__ import annotations

import numpy as np

from learnenv.exercises import CheckFailed, Exercise, register


def check_rescale(rescale) -> str:
    """The student's rescaling matches viper_rl's on random log-likelihoods."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        low, high = sorted(rng.uniform(-40.0, 0.0, 2))
        log_p = rng.uniform(low - 20.0, high + 20.0, (7, 11))
        got = np.asarray(rescale(log_p, low, high), np.float64)
        want = np.clip((log_p - low) / (high - low), 0.0, 1.0)
        if got.shape != want.shape:
            raise CheckFailed(f"rescale returned shape {got.shape} for log_p of shape "
                              f"{want.shape}; it must work elementwise.")
        if not np.allclose(got, want, atol=1e-5):
            i = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
            raise CheckFailed(f"rescale({log_p[i]:.2f}, low={low:.2f}, high={high:.2f}) = "
                              f"{got[i]:.4f}; expected {want[i]:.4f}. Is the log-likelihood "
                              "mapped so that low -> 0 and high -> 1, and clipped to [0, 1]?")
    return "rescale matches clip((log p - low) / (high - low), 0, 1) on 5 random ranges"


register(Exercise(
    label="ex-vr-rescale", chapter="video-rewards",
    objective="Write the VIPER reward's rescaling and say what the clip does to an agent "
              "far from the expert.",
    minutes=10, difficulty="easy",
    grading="The check tests the formula. A complete answer adds that below `low` every "
            "step pays 0, so an agent whose video looks nothing like the expert's gets no "
            "signal about which way is better; this is why an exploration bonus, or a lower "
            "floor, matters early in training.",
    names=("rescale",),
    stub='''\
import jax.numpy as jnp


def rescale(log_p, low, high):
    """VIPER's reward: the log-likelihood mapped so that low -> 0 and high -> 1, clipped."""
    raise NotImplementedError("Exercise {n}: write rescale (see the exercise text)")
''',
    check=check_rescale,
    mutants=(("(log_p - low) / (high - low)", "(log_p - low) / high"),
             ("0.0, 1.0)", "-1.0, 1.0)")),
))


def check_context_indices(context_indices) -> str:
    """The student's indices are the frames the library's reward scores."""
    import jax.numpy as jnp

    from learnenv.rewards import video as viper

    checked = 0
    for context in (1, 2, 3, 4):
        for subsample in (1, 2, 3, 4):
            config = viper.VideoConfig(context=context, subsample=subsample)
            frame_index = jnp.arange(40)[:, None]  # "tokens" that are each frame's index
            for t in (0, 1, 2, 5, 11, 30):
                window = np.asarray(viper._window(config, frame_index, t + 1))
                want = np.where(window == config.pad, -1, window)
                got = np.asarray(context_indices(t, context, subsample)).reshape(-1)
                if got.shape != want.shape or not np.array_equal(got, want):
                    raise CheckFailed(
                        f"context_indices(t={t}, context={context}, subsample={subsample}) = "
                        f"{got.tolist()}; the reward for step t scores the frames "
                        f"{want.tolist()} (oldest first, the next frame x_(t+1) last, -1 "
                        "before the episode's start).")
                checked += 1
    return f"the frame indices of {checked} (t, context, subsample) cases match the library's"


register(Exercise(
    label="ex-vr-context", chapter="video-rewards",
    objective="Say exactly which frames the reward of one step looks at, with frame "
              "subsampling and at the start of an episode.",
    minutes=15, difficulty="easy",
    grading="The check compares with the library. A complete answer also says how many "
            "past observations the wrapper must keep (context * subsample) and why the "
            "first steps of an episode are scored with padding.",
    names=("context_indices",),
    stub='''\
import numpy as np


def context_indices(t, context, subsample):
    """Indices of the frames scored at step t (-1 before the episode's start)."""
    raise NotImplementedError("Exercise {n}: write context_indices (see the exercise text)")
''',
    check=check_context_indices,
    mutants=(("np.arange(context, -1, -1)", "np.arange(context, 0, -1)"),
             ("t + 1 - subsample", "t - subsample")),
))

register(Exercise(
    label="ex-vr-still", chapter="video-rewards",
    objective="Measure how the reward of a still video depends on frame subsampling.",
    minutes=30, difficulty="medium",
    grading="A table or plot of the reward of a still hanging pendulum, and of the random "
            "policy's mean reward, for s = 1, 2, 4 (one fitted model each, same data and "
            "key). The answer reads the trend off its own numbers and explains it: with "
            "frames further apart the expert's frames change more between context and "
            "target, so 'nothing changes' becomes a less likely prediction. It leaves "
            "upright out (still and upright is the expert's behaviour at any s) and notes that "
            "the static reward also depends on how often the expert videos show a slow "
            "pendulum near the bottom (the starts of episodes).",
))

register(Exercise(
    label="ex-vr-bonus", chapter="video-rewards",
    objective="Trade the likelihood against exploration: the bonus weight beta.",
    minutes=45, difficulty="medium",
    grading="PPO on the VIPER reward plus the frame-RND bonus for beta in {0, 0.1, 0.5, 2}, "
            "4 seeds each, with `make_arm` and the quick preset's settings, reporting the "
            "normalised return and where the pendulum ends up. The answer states what its "
            "runs show (not what they should show) and names the two ways a large beta "
            "fails: the bonus dominates and the agent explores forever, or the bonus pays "
            "for visiting new frames after the agent has found the expert's.",
))

register(Exercise(
    label="ex-vr-cartpole", chapter="video-rewards",
    objective="Design a video reward for CartPole that the sign cannot decide.",
    minutes=30, difficulty="hard",
    grading="Any of: score a fixed-length window of frames regardless of termination "
            "(pad a fallen pole's episode with its last frame, so falling early is scored, "
            "not skipped); subtract the log-likelihood under a model of random videos "
            "(a likelihood ratio, zero for behaviour both models find equally likely); or "
            "evaluate only on episodes of the same length. The answer explains why a "
            "constant offset cannot fix it (the agent controls the episode's length) and "
            "says which of its proposals it tested and what the test showed.",
))

register(Exercise(
    label="ex-vr-reversed", chapter="video-rewards",
    objective="Test whether the video model knows the direction of time.",
    minutes=20, difficulty="medium",
    grading="The likelihood return of the expert videos played forwards and backwards "
            "(reverse the observation arrays along time and score them with "
            "`step_log_likelihoods`), with the numbers. A frictionless pendulum's motion "
            "reversed is a valid motion, so the difference comes from the expert: a "
            "reversed swing-up is a swing-down, which the expert never does. The answer "
            "says whether a VIPER agent could be paid for a behaviour that is the expert's "
            "played backwards, from the measured gap.",
))
