"""Two parts of an environment an agent can be handed, learned or designed: its
action set (options) and its observation (a state abstraction).

    python -m learnenv run options-mountaincar --preset quick --out runs/options
    python -m learnenv run abstraction-cartpole --preset quick --out runs/abstraction

``options-mountaincar``: PPO, unchanged, on MountainCar-v0 (-1 per step until
the goal, 200 steps) with primitive actions and with action repeats
(:func:`learnenv.envs.options.action_repeats`), every arm with the same
budget of *primitive* environment steps (an option step of length k counts k,
also when the episode ends earlier in it, so the options arms use at most the
budget). Scored by greedy returns on the real task, in primitive steps.

``abstraction-cartpole``: CartPole-v1 with loud distractor dimensions
(:class:`learnenv.envs.distractors.Distractors`). PPO, unchanged, on the raw
observation, on the raw observation with its own input normalisation, and on
two learned abstractions (:mod:`learnenv.worldmodels.abstraction`): a
reconstruction autoencoder and a predictive (bisimulation-style) encoder,
each fitted to random-policy transitions that count against the same budget
of environment steps. Also reported: how much of the true state and of the
distractors a linear probe recovers from each latent.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any

from learnenv.config import Config, field

from learnenv.experiments import register


# Options ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OptionsConfig(Config):
    """PPO with primitive actions vs action repeats, at equal primitive-step budgets."""

    env_name: str = "MountainCar-v0"
    repeats: tuple = field((1, 4, 16), doc="one arm per repeat length k (1: primitive actions)")
    num_seeds: int = field(8, low=1, doc="PPO agents per arm, vmapped")
    primitive_steps: int = field(400_000, low=1, doc="budget of every arm, in primitive steps")
    eval_every: int = field(50_000, low=1, doc="greedy evaluation interval, primitive steps")
    eval_episodes: int = field(16, low=1)
    # PPO settings shared by every arm (PPOConfig's defaults otherwise). MountainCar's
    # velocity is of order 0.01: without input normalisation no arm learns.
    num_envs: int = field(8, low=1)
    num_steps: int = field(32, low=1, doc="option steps per env per update")
    normalize_observations: bool = field(True, choices=(True, False))

    def validate(self) -> None:
        if not self.repeats or any(not isinstance(k, int) or isinstance(k, bool) or k < 1
                                   for k in self.repeats):
            raise ValueError(f"OptionsConfig.repeats={self.repeats!r} must be a non-empty tuple "
                             "of positive ints.")
        if len(set(self.repeats)) != len(self.repeats):
            raise ValueError(f"OptionsConfig.repeats={self.repeats!r} has duplicates.")
        smallest = self.primitive_steps // max(self.repeats)
        if smallest < self.num_envs * self.num_steps:
            raise ValueError(
                f"OptionsConfig: primitive_steps={self.primitive_steps} gives the repeat-"
                f"{max(self.repeats)} arm {smallest} option steps, less than one PPO update "
                f"of num_envs * num_steps = {self.num_envs * self.num_steps}.")


OPTIONS_PRESETS = {
    "quick": OptionsConfig(),
    "full": OptionsConfig(repeats=(1, 2, 4, 8, 16, 32), num_seeds=32, primitive_steps=2_000_000,
                          eval_every=100_000, eval_episodes=32),
}


def arm_name(repeat: int) -> str:
    return "primitive" if repeat == 1 else f"repeat-{repeat}"


def random_goal_rate(env_name: str, repeat: int, num_seeds: int, episodes: int,
                     key: Any) -> Any:
    """Share of a uniformly random option policy's episodes that end before the time
    limit (reach the goal), one number per seed: exploration with no learning."""
    import jax

    from learnenv import envs
    from learnenv.agents.base import evaluate
    from learnenv.envs.options import action_repeats

    base, params = envs.make(env_name)
    env = base if repeat == 1 else action_repeats(base, repeat, params)
    n = env.action_space(params).n
    uniform = lambda p, obs, key, greedy: jax.random.randint(key, (), 0, n)  # noqa: E731

    def one(key):
        returns = evaluate(uniform, None, env, params, key, episodes, greedy=False)
        return (returns > -float(params.max_steps_in_episode)).mean()

    return jax.jit(jax.vmap(one))(jax.random.split(key, num_seeds))


def train_options_arm(config: OptionsConfig, repeat: int, key: Any) -> dict[str, Any]:
    """``num_seeds`` PPO agents on ``repeat``-step action repeats; greedy real returns.

    Returns numpy arrays: ``returns`` (seeds,), ``success`` (seeds,: share of
    greedy episodes that reached the goal, i.e. ended before the time limit),
    ``curve_steps`` and ``curve`` (seeds, evaluations), the greedy return at
    each evaluation, against primitive steps.
    """
    import jax
    import numpy as np

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.envs.options import action_repeats

    base, params = envs.make(config.env_name)
    env = base if repeat == 1 else action_repeats(base, repeat, params)
    ppo_config = ppo.PPOConfig(total_timesteps=config.primitive_steps // repeat,
                               num_envs=config.num_envs, num_steps=config.num_steps,
                               normalize_observations=config.normalize_observations)
    policy = ppo.make_policy(ppo_config, env, params)

    def greedy_returns(policy_params, key):
        return evaluate(policy, policy_params, env, params, key, config.eval_episodes)

    train = ppo.make_train(ppo_config, env, params, eval_every=max(config.eval_every // repeat, 1),
                           eval_fn=lambda pp, k: greedy_returns(pp, k).mean())

    def one(key):
        train_key, eval_key = jax.random.split(key)
        result = train(train_key)
        return (greedy_returns(result.params, eval_key), result.metrics["timesteps"],
                result.metrics["eval_return"])

    returns, steps, curve = jax.jit(jax.vmap(one))(jax.random.split(key, config.num_seeds))
    returns, steps, curve = np.asarray(returns), np.asarray(steps)[0], np.asarray(curve)
    due = ~np.isnan(curve[0])
    limit = -float(params.max_steps_in_episode)  # the return of an episode that never arrives
    return {"returns": returns.mean(axis=1), "success": (returns > limit).mean(axis=1),
            "curve_steps": steps[due] * repeat, "curve": curve[:, due]}


def curves_figure(curves: dict, ylabel: str, title: str):
    """Mean over seeds per arm (band: min to max) against primitive steps."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for name, (steps, values) in curves.items():
        values = np.asarray(values, float)
        line, = ax.plot(steps, values.mean(axis=0), marker="o", markersize=3, label=name)
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.15,
                        color=line.get_color(), linewidth=0)
    ax.set_xlabel("primitive environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


def run_options(config: OptionsConfig, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax

    arms = {}
    for repeat, arm_key in zip(config.repeats, jax.random.split(key, len(config.repeats))):
        t0 = time.perf_counter()
        arm = train_options_arm(config, repeat, arm_key)
        arm["seconds"] = time.perf_counter() - t0
        arm["repeat"] = repeat
        arms[arm_name(repeat)] = arm
        print(f"{arm_name(repeat)}: greedy return {arm['returns'].mean():.1f}, "
              f"goal reached by {int((arm['success'] > 0).sum())}/{config.num_seeds} agents "
              f"({arm['seconds']:.0f} s)")
    fig = curves_figure({n: (a["curve_steps"], a["curve"]) for n, a in arms.items()},
                        "greedy return (real task)",
                        f"PPO on {config.env_name}, {config.num_seeds} seeds per arm")
    fig.savefig(Path(out_dir) / "options_curves.png", dpi=120)
    return {"env_name": config.env_name, "arms": arms}


register("options-mountaincar",
         "PPO on MountainCar-v0 with primitive actions vs action repeats, equal primitive steps.",
         presets=OPTIONS_PRESETS, run=run_options)


# State abstraction --------------------------------------------------------------
ABSTRACTION_ARMS = ("clean", "raw", "raw, normalised", "reconstruction", "predictive")


@dataclasses.dataclass(frozen=True)
class AbstractionConfig(Config):
    """PPO on raw observations with distractors vs on learned abstractions of them."""

    env_name: str = "CartPole-v1"
    distractors: int = field(32, low=0, doc="task-irrelevant dimensions appended")
    distractor_kind: str = field("iid", choices=("iid", "walk"))
    distractor_scale: float = field(10.0, low=0.0, low_inclusive=False)
    arms: tuple = field(ABSTRACTION_ARMS, doc="subset of ABSTRACTION_ARMS")
    num_seeds: int = field(8, low=1, doc="PPO agents (and encoders) per arm, vmapped")
    total_timesteps: int = field(100_000, low=1,
                                 doc="env steps per agent, the encoder's data included")
    collect_envs: int = field(16, low=1, doc="random-policy streams for the encoder's data")
    collect_steps: int = field(512, low=2, doc="steps per stream")
    latent_dim: int = field(8, low=1)
    horizon: int = field(5, low=1, doc="steps the predictive model is unrolled")
    fit_updates: int = field(2000, low=1, doc="encoder training updates")
    fit_batch: int = field(256, low=1, doc="windows per encoder update")
    probe_steps: int = field(256, low=4, doc="held-out steps per stream for the linear probes")
    eval_episodes: int = field(16, low=1)
    solved_return: float = field(475.0, doc="CartPole-v1's 'solved'")

    def validate(self) -> None:
        unknown = [a for a in self.arms if a not in ABSTRACTION_ARMS]
        if unknown or not self.arms:
            raise ValueError(f"AbstractionConfig.arms: unknown arm(s) {unknown}; choose from "
                             f"{', '.join(ABSTRACTION_ARMS)}.")
        if self.collect_envs * self.collect_steps >= self.total_timesteps:
            raise ValueError(
                f"AbstractionConfig: the encoder's data ({self.collect_envs} x "
                f"{self.collect_steps} steps) use up total_timesteps={self.total_timesteps}.")


ABSTRACTION_PRESETS = {
    "quick": AbstractionConfig(),
    "full": AbstractionConfig(distractors=64, num_seeds=32, total_timesteps=500_000,
                              fit_updates=10_000),
}


def noisy_env(config: AbstractionConfig):
    """``(base, env_params, noisy)``: the task, and the task with its distractors."""
    from learnenv import envs
    from learnenv.envs.distractors import Distractors

    base, params = envs.make(config.env_name)
    return base, params, Distractors(base, config.distractors, config.distractor_kind,
                                     config.distractor_scale)


def make_encoder_fit(config: AbstractionConfig, kind: str):
    """:func:`learnenv.worldmodels.abstraction.make_fit` with the config's sizes."""
    from learnenv.worldmodels import abstraction

    base, params, noisy = noisy_env(config)
    return abstraction.make_fit(kind, noisy.observation_space(params).shape[0],
                                base.action_space(params).n, latent_dim=config.latent_dim,
                                horizon=config.horizon, num_updates=config.fit_updates,
                                batch_size=config.fit_batch)


def train_abstraction_arm(config: AbstractionConfig, arm: str, key: Any) -> dict[str, Any]:
    """Greedy real returns of ``num_seeds`` PPO agents on one representation.

    For the learned abstractions each seed collects its own random-policy data
    (``collect_envs * collect_steps`` env steps, taken from the agent's budget),
    fits its own encoder and trains PPO on it; ``encoders`` are returned too.
    """
    import jax
    import numpy as np

    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.worldmodels import abstraction

    base, params, noisy = noisy_env(config)
    keys = jax.random.split(key, config.num_seeds)
    if arm in ("clean", "raw", "raw, normalised"):
        env = base if arm == "clean" else noisy
        ppo_config = ppo.PPOConfig(total_timesteps=config.total_timesteps,
                                   normalize_observations=arm == "raw, normalised")
        train, policy = ppo.make_train(ppo_config, env, params), ppo.make_policy(ppo_config, env,
                                                                                 params)

        def one(key):
            train_key, eval_key = jax.random.split(key)
            return evaluate(policy, train(train_key).params, env, params, eval_key,
                            config.eval_episodes).mean()

        return {"returns": np.asarray(jax.jit(jax.vmap(one))(keys))}

    data_steps = config.collect_envs * config.collect_steps
    fit = make_encoder_fit(config, arm)
    env = abstraction.Abstracted(noisy, config.latent_dim)
    ppo_config = ppo.PPOConfig(total_timesteps=config.total_timesteps - data_steps)

    def one(key):
        data_key, fit_key, train_key, eval_key = jax.random.split(key, 4)
        data = abstraction.collect(noisy, params, data_key, config.collect_envs,
                                   config.collect_steps)
        encoder, losses = fit(fit_key, data)
        env_params = abstraction.Abstracted.params(params, encoder)
        train = ppo.make_train(ppo_config, env, env_params)
        policy = ppo.make_policy(ppo_config, env, env_params)
        returns = evaluate(policy, train(train_key).params, env, env_params, eval_key,
                           config.eval_episodes)
        return returns.mean(), encoder, losses[-1]

    returns, encoders, final_loss = jax.jit(jax.vmap(one))(keys)
    return {"returns": np.asarray(returns), "encoders": encoders,
            "final_loss": np.asarray(final_loss), "data_steps": data_steps}


def probe(config: AbstractionConfig, obs: Any, encoders: Any = None) -> dict[str, Any]:
    """Linear-probe R^2 of the true state and of the distractors, per seed's latent
    (``encoders`` batched over seeds), or of the raw observation (``encoders=None``).

    ``obs`` are held-out observations, ``(rows, dims)``; each R^2 is the mean
    over the state's (or the distractors') columns.
    """
    import jax
    import numpy as np

    from learnenv.worldmodels import abstraction

    obs = np.asarray(obs)
    n_true = obs.shape[1] - config.distractors
    if encoders is None:
        latents = obs[None]
    else:
        # eager: a few matrix products, cheaper than compiling them
        latents = np.asarray(jax.vmap(
            lambda enc: abstraction.encode(enc, obs, config.latent_dim))(encoders))
    true_r2 = [abstraction.linear_probe_r2(z, obs[:, :n_true]).mean() for z in latents]
    noise_r2 = [abstraction.linear_probe_r2(z, obs[:, n_true:]).mean() for z in latents
                if config.distractors]
    return {"true_state_r2": np.asarray(true_r2),
            "distractor_r2": np.asarray(noise_r2) if noise_r2 else None}


def probe_demo(config: AbstractionConfig, key: Any) -> dict[str, Any]:
    """What each kind of encoder keeps, without training any agent.

    One random-policy dataset for fitting and one for probing (the same
    compiled collection); ``num_seeds`` encoders per kind, vmapped over seeds
    on the shared data. Returns :func:`probe`'s numbers per kind, and for the
    raw observation.
    """
    import jax
    import numpy as np

    from learnenv.worldmodels import abstraction

    _, params, noisy = noisy_env(config)
    collect = jax.jit(lambda k: abstraction.collect(noisy, params, k, config.collect_envs,
                                                    config.collect_steps))
    data_key, test_key, fit_key = jax.random.split(key, 3)
    data, test = collect(data_key), collect(test_key)
    obs = np.asarray(test.obs).reshape(-1, test.obs.shape[-1])
    found = {"raw observation": probe(config, obs)}
    for kind in abstraction.KINDS:
        fit = jax.jit(jax.vmap(make_encoder_fit(config, kind), in_axes=(0, None)))
        encoders, _ = fit(jax.random.split(fit_key, config.num_seeds), data)
        found[kind] = probe(config, obs, encoders)
    return found


def run_abstraction(config: AbstractionConfig, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import numpy as np

    from learnenv.worldmodels import abstraction

    probe_key, *arm_keys = jax.random.split(key, len(config.arms) + 1)
    _, params, noisy = noisy_env(config)
    test = abstraction.collect(noisy, params, probe_key, config.collect_envs, config.probe_steps)
    test_obs = np.asarray(test.obs).reshape(-1, test.obs.shape[-1])
    arms = {}
    for arm, arm_key in zip(config.arms, arm_keys):
        t0 = time.perf_counter()
        result = train_abstraction_arm(config, arm, arm_key)
        encoders = result.pop("encoders", None)
        if encoders is not None:
            result["probe"] = probe(config, test_obs, encoders)
        elif arm != "clean" and config.distractors:
            result["probe"] = probe(config, test_obs)
        result["solved"] = int((result["returns"] >= config.solved_return).sum())
        result["seconds"] = time.perf_counter() - t0
        arms[arm] = result
        print(f"{arm}: greedy return {result['returns'].mean():.1f}, solved "
              f"{result['solved']}/{config.num_seeds} ({result['seconds']:.0f} s)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = returns_figure(arms, config)
    fig.savefig(Path(out_dir) / "abstraction_returns.png", dpi=120)
    return {"env_name": config.env_name, "arms": arms}


def returns_figure(arms: dict, config: AbstractionConfig):
    """Every agent's greedy return per representation (dots), with the mean (bar)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.add_subplot()
    names = list(arms)
    for i, name in enumerate(names):
        r = np.asarray(arms[name]["returns"])
        ax.bar(i, r.mean(), color="tab:blue", alpha=0.3)
        ax.scatter(np.full(len(r), i) + np.linspace(-0.2, 0.2, len(r)), r, s=10,
                   color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=15)
    ax.set_ylabel("greedy return (real task)")
    ax.set_title(f"PPO on {config.env_name} + {config.distractors} {config.distractor_kind} "
                 f"distractors, {config.total_timesteps // 1000}k steps")
    ax.grid(alpha=0.3, axis="y")
    return fig


register("abstraction-cartpole",
         "PPO on CartPole with loud distractor dims: raw vs autoencoder vs predictive abstraction.",
         presets=ABSTRACTION_PRESETS, run=run_abstraction)
