"""The lecture's four wishes for a learned environment, measured per family.

"What we want: incorporating temporal dependencies; as easy to learn as
possible; able to generate complex transitions; fast inference for RL
training." Each wish becomes one number per family:

- temporal dependencies: one-step error on CartPole observed without its
  velocities (``observe=(0, 2)``), where only a history predicts the next step;
- ease of learning: the fewest training transitions (of nested subsets) that
  reach a fixed one-step error, and the seconds the fit took;
- complex transitions: error on a task with richer dynamics (Acrobot's two
  coupled links), one step and open loop;
- fast inference: learned-environment steps per second, vmapped, against the
  real environment.

The data: CartPole episodes of a hand-written balancing controller with a share
of random actions (long episodes, so 100-step horizons exist, and a random
policy's short ones), and random-policy episodes elsewhere (Acrobot's last
their 500 steps anyway).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from learnenv import envs
from learnenv.config import Config, field
from learnenv.synthetic.reward_probe import cartpole_controller
from learnenv.worldmodels import horizon as H
from learnenv.worldmodels.data import Episodes, collect, concatenate, random_policy
from learnenv.worldmodels.environment import WorldModelEnvironment
from learnenv.worldmodels.families import FAMILIES
from learnenv.worldmodels.fit import FitConfig, make_fit

__all__ = ["FamiliesConfig", "dataset", "observe", "prefix", "fit_config", "compare",
           "steps_per_second"]


@dataclasses.dataclass(frozen=True)
class FamiliesConfig(Config):
    families: tuple = tuple(FAMILIES)
    tasks: tuple = ("CartPole-v1", "Acrobot-v1")
    partial_observe: tuple = (0, 2)  # CartPole's positions without velocities
    episodes: int = field(160, low=10, doc="episodes per task (a fifth held out)")
    hidden_sizes: tuple = (64, 64)
    fit_steps: int = field(1_500, low=1)
    horizon: int = field(100, low=1)
    context: int = field(8, low=1, doc="real observations before going open loop")
    ease_fractions: tuple = (0.05, 0.2, 1.0)
    ease_threshold: float = field(0.01, low=0.0, low_inclusive=False,
                                  doc="one-step error (stds) that counts as learned")
    speed_envs: int = field(1024, low=1)
    speed_steps: int = field(100, low=1)


def _controller(params, obs, key, greedy=False):
    return cartpole_controller(obs)


def dataset(task: str, episodes: int, key: jax.Array, epsilon: float = 0.3) -> Episodes:
    """Training data for ``task``: for CartPole half controller (with ``epsilon``
    random actions), half random episodes; elsewhere random episodes."""
    env, env_params = envs.make(task)
    if task.startswith("CartPole"):
        k1, k2 = jax.random.split(key)
        good = collect(env, env_params, _controller, None, k1, episodes // 2, epsilon=epsilon)
        rand = collect(env, env_params, random_policy(env, env_params), None, k2,
                       episodes - episodes // 2)
        # Interleave, so that any prefix (and the held-out fifth) has both kinds.
        both = concatenate(good, rand)
        order = jnp.stack([jnp.arange(episodes // 2), episodes // 2 + jnp.arange(episodes // 2)],
                          1).reshape(-1)
        order = jnp.concatenate([order, jnp.arange(2 * (episodes // 2), episodes)])
        return both.take(order)
    return collect(env, env_params, random_policy(env, env_params), None, key, episodes)


def observe(episodes: Episodes, indices) -> Episodes:
    """The same episodes seen through fewer observation components."""
    idx = jnp.asarray(indices)
    return episodes.replace(obs=episodes.obs[..., idx], next_obs=episodes.next_obs[..., idx])


def fit_config(family: str, steps: int) -> FitConfig:
    """Feed-forward families learn from single transitions; the recurrent one from
    windows of 16 steps whose first 4 only warm its memory up (the same number of
    scored transitions per step: 256 against 32 x 12)."""
    if FAMILIES[family].recurrent:
        return FitConfig(steps=steps, batch_size=32, window=16, burn_in=4)
    return FitConfig(steps=steps, batch_size=256, window=1)


def steps_per_second(env, env_params, num_envs: int, num_steps: int, key: jax.Array,
                     repeats: int = 1) -> float:
    """Environment steps per second, ``num_envs`` vmapped, random actions, compiled
    first. The returned observations' sum is read, so nothing is pruned. With
    ``repeats``, the fastest of that many timed runs (the least disturbed by other work)."""
    policy = random_policy(env, env_params)

    @jax.jit
    def run(key):
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, num_envs), env_params)

        def step(carry, key):
            obs, state, total = carry
            keys = jax.random.split(key, num_envs)
            action = jax.vmap(lambda k, o: policy(None, o, k))(keys, obs)
            obs, state, reward, *_ = jax.vmap(env.step, (0, 0, 0, None))(keys, state, action,
                                                                         env_params)
            return (obs, state, total + reward.sum() + obs.sum()), None

        return jax.lax.scan(step, (obs, state, 0.0), jax.random.split(key, num_steps))[0][2]

    run(key).block_until_ready()
    seconds = []
    for repeat in range(repeats):
        start = time.perf_counter()
        run(jax.random.fold_in(key, 1 + repeat)).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return num_envs * num_steps / min(seconds)


def _fit(task, family, config, train, key, cache, **env_kwargs):
    """Fit one model; its fit and its error measurements compile once per (task,
    family, observation, data shape) and are reused, so the nested subsets of
    the ease test cost no compilation. Returns the seconds of the fit alone and
    its jitted ``errors(nets, stats, episodes) -> (one-step errors, open-loop curve)``."""
    name = (task, family, str(env_kwargs), train.obs.shape)
    if name not in cache:
        model_env = WorldModelEnvironment(task, family=family, hidden_sizes=config.hidden_sizes,
                                          **env_kwargs)
        model = model_env.model
        fit = jax.jit(make_fit(model, fit_config(family, config.fit_steps))).lower(key, train)
        errors = jax.jit(lambda nets, stats, eps: (
            H.one_step_error(model, nets, stats, eps),
            H.open_loop_error(model, nets, stats, eps, config.horizon, config.context)))
        cache[name] = (model_env, fit.compile(), errors)
    model_env, fit, errors = cache[name]
    start = time.perf_counter()
    nets, stats, losses = fit(key, train)
    losses.block_until_ready()
    return model_env, nets, stats, time.perf_counter() - start, errors


def prefix(episodes: Episodes, n: int) -> Episodes:
    """The first ``n`` episodes, the others masked out (same shapes: no recompilation)."""
    keep = (jnp.arange(episodes.num_episodes) < n)[:, None]
    return episodes.replace(mask=episodes.mask * keep,
                            terminated=episodes.terminated & keep)


def compare(config: FamiliesConfig, key: jax.Array, progress=None) -> dict:
    """Every measurement of the module docstring, as plain numbers and lists."""
    out = {"curves": {}, "one_step": {}, "partial": {}, "ease": {}, "fit_seconds": {},
           "speed": {}, "models": {}}
    tick = progress or (lambda label: None)
    cache: dict = {}
    for t, task in enumerate(config.tasks):
        data = dataset(task, config.episodes, jax.random.fold_in(key, t))
        train, test = data.split(0.8)
        out["curves"][task], out["one_step"][task] = {}, {}
        for f, family in enumerate(config.families):
            tick(f"{task}: {family}")
            model_env, nets, stats, seconds, errors = _fit(
                task, family, config, train, jax.random.fold_in(key, 100 * t + f), cache)
            one_step, curve = errors(nets, stats, test)
            out["one_step"][task][family] = {k: float(v) for k, v in one_step.items()}
            out["curves"][task][family] = np.asarray(curve).tolist()
            if t == 0:
                out["fit_seconds"][family] = seconds
                out["models"][family] = (model_env, model_env.fitted_params(nets, stats))
        if t == 0:
            # Temporal dependencies: the same CartPole data without velocities.
            part_train, part_test = observe(train, config.partial_observe), observe(
                test, config.partial_observe)
            # Ease of learning: nested prefixes of the training episodes.
            for f, family in enumerate(config.families):
                tick(f"{task} without velocities: {family}")
                _, nets, stats, _, errors = _fit(task, family, config, part_train,
                                                 jax.random.fold_in(key, 500 + f), cache,
                                                 observe=list(config.partial_observe))
                out["partial"][family] = float(errors(nets, stats, part_test)[0]["state_rmse"])
                ease = []
                for fraction in config.ease_fractions:
                    subset = prefix(train, max(1, int(round(fraction * train.num_episodes))))
                    _, nets, stats, _, errors = _fit(task, family, config, subset,
                                                     jax.random.fold_in(key, 900 + f), cache)
                    ease.append((subset.num_steps(),
                                 float(errors(nets, stats, test)[0]["state_rmse"])))
                out["ease"][family] = ease
    task = config.tasks[0]
    real_env, real_params = envs.make(task)
    out["speed"]["real"] = steps_per_second(real_env, real_params, config.speed_envs,
                                            config.speed_steps, key)
    for family, (model_env, params) in out["models"].items():
        out["speed"][family] = steps_per_second(model_env, params, config.speed_envs,
                                                config.speed_steps, key)
    return out


def curves_figure(curves: dict, context: int):
    """Open-loop error against horizon, one panel per task, one line per family."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.4), squeeze=False)
    for ax, (task, by_family) in zip(axes[0], curves.items()):
        for family, curve in by_family.items():
            ax.plot(np.arange(1, len(curve) + 1), curve, label=family)
        ax.set(yscale="log", xlabel="steps open loop (recorded actions)",
               ylabel="state error (stds)", title=f"{task}, after {context} real steps")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def wishes_table(out: dict, config: FamiliesConfig) -> list[dict]:
    """One row per family, one column per wish (the numbers of :func:`compare`)."""
    task, rich = config.tasks[0], config.tasks[-1]
    rows = []
    for family in config.families:
        reached = [n for n, err in out["ease"][family] if err <= config.ease_threshold]
        rows.append({
            "family": family,
            "temporal: error w/o velocities": f"{out['partial'][family]:.3f}",
            f"easy: transitions to {config.ease_threshold}": (f"{reached[0]:,}" if reached
                                                              else "not reached"),
            "easy: fit s": f"{out['fit_seconds'][family]:.1f}",
            f"complex: {rich} 1 / 50 steps": (
                f"{out['one_step'][rich][family]['state_rmse']:.3f} / "
                f"{out['curves'][rich][family][min(49, config.horizon - 1)]:.3f}"),
            "fast: x real": f"{out['speed'][family] / out['speed']['real']:.2f}",
        })
    return rows
