"""Exercises of the chapter "Why learn environments?" (chapters/introduction.md): open questions."""

from __future__ import annotations

from learnenv.exercises import Exercise, register

register(Exercise(
    label="ex-intro-preserve", chapter="introduction",
    objective="Say what a learned environment must preserve to train agents for the real one.",
    minutes=20, difficulty="easy",
    grading="Must preserve: the observation and action spaces, and whatever makes the optimal "
            "(or learnable) policy the same on the states real agents visit. May change: "
            "transitions, rewards, episode length and start states, as long as agents trained in "
            "it act well in the real one (SCBs drop dynamics entirely). For planning, the "
            "transitions and rewards themselves must be accurate over the planning horizon.",
))

register(Exercise(
    label="ex-intro-classify", chapter="introduction",
    objective="Contrast learning an environment with model-based RL.",
    minutes=15, difficulty="easy",
    grading="Agent's own model: Dyna (transition and reward model for planning), DreamerV3 "
            "(latent world model to imagine in), curiosity (forward model whose error is a "
            "bonus). Environment learned for other agents: synthetic environments (states, "
            "rewards, termination), Genie (a playable environment from video, with latent "
            "actions). Motif learns a reward from LLM preferences: a part of an environment.",
))

register(Exercise(
    label="ex-intro-throughput", chapter="introduction",
    objective="Predict where vectorised environment throughput saturates.",
    minutes=20, difficulty="easy",
    grading="(a) Acrobot's step does about four times the work, so throughput is lower and the "
            "curve flattens at a similar batch size on a CPU. (b) On a GPU the curve keeps "
            "rising to much larger batches before it flattens (thousands of parallel lanes), "
            "with a higher per-call overhead at small batches. The run's plot must support it.",
))
