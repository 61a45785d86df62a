"""An interactive simulator from action-conditioned diffusion, measured (DIAMOND/UniSim).

    python -m learnenv run interactive-simulators --preset quick --out runs/simulators

One run does what the chapter "Interactive simulators from action-conditioned
diffusion" reports:

1. **Data** from two MinAtar games with sticky actions (the original MinAtar's
   stochasticity; Breakout has 3 actions, Space Invaders 4): episodes of a random
   policy and of a PPO policy trained on the game's state, epsilon-greedy.
   Some PPO episodes are held out.
2. **Models** (:mod:`learnenv.worldmodels.diffusion`): the diffusion world
   model trained on both games at once; the same network trained with MSE as
   a deterministic predictor; and one diffusion model per game.
3. **Open-loop error against the horizon** on held-out episodes: PSNR of the
   diffusion model, the MSE model and copying the last frame, for horizons 1
   to ``horizon``; and the sharpness of what each predicts, of whole frames and
   of what moves.
4. **Denoising steps**: error, sharpness and world-model steps per second for
   each number of Euler steps.
5. **Two sources, one model**: each game's error for the mixed model and for
   the model of that game alone.
6. **Agents**: PPO trained only inside the world model (the first game),
   evaluated in the real game; PPO trained in the real game for as many steps
   as the world model saw; a random policy. All seeds vmapped in one call.
7. **Cost**: world-model steps per second against the real game's, vmapped,
   and the break-even a simulator would need.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register


@dataclasses.dataclass(frozen=True)
class InteractiveSimulators(Config):
    sources: tuple = field(("Breakout-MinAtar", "SpaceInvaders-MinAtar"),
                           doc="games the model learns; agents play the first")
    sticky: float = field(0.1, low=0.0, high=1.0, high_inclusive=False,
                          doc="probability that the previous action repeats (the original "
                              "MinAtar's)")
    num_seeds: int = field(4, low=1, doc="PPO agents per arm, vmapped")
    # data
    expert_steps: int = field(500_000, low=1, doc="PPO steps of the data policy, per game")
    random_episodes: int = field(200, low=1)
    expert_episodes: int = field(64, low=2, doc="episodes of the PPO policy, per game")
    epsilon: float = field(0.1, low=0.0, high=1.0, doc="random actions in the PPO episodes")
    heldout_episodes: int = field(16, low=1, doc="PPO episodes kept for evaluation")
    max_steps: int = field(500, low=1, doc="steps per recorded episode")
    # the world models (learnenv.worldmodels.diffusion.DiffusionConfig)
    frame_size: int = field(10, low=8)
    context: int = field(4, low=1)
    channels: tuple = field((32, 64))
    model_steps: int = field(4000, low=1, doc="gradient steps per model")
    batch_size: int = field(32, low=1)
    denoising_steps: int = field(3, low=1, doc="Euler steps when the model is an environment")
    # evaluation
    horizon: int = field(50, low=1, doc="open-loop steps")
    start: int = field(8, low=0, doc="the step of a held-out episode the rollouts start at")
    step_choices: tuple = field((1, 3, 10), doc="denoising steps compared")
    speed_envs: int = field(64, low=1, doc="environments vmapped when timing")
    # agents
    agent_timesteps: int = field(500_000, low=1, doc="PPO steps inside the world model")
    agent_episode_cap: int = field(500, low=1, doc="steps per episode inside the model")


PRESETS = {
    "quick": InteractiveSimulators(),
    "full": InteractiveSimulators(num_seeds=8, expert_steps=2_000_000, random_episodes=500,
                                  expert_episodes=256, heldout_episodes=32, max_steps=1000,
                                  channels=(64, 128, 256), frame_size=20, model_steps=50_000,
                                  batch_size=64, agent_timesteps=5_000_000,
                                  agent_episode_cap=1000),
}


def ppo_config(total_timesteps: int):
    """PPO for MinAtar: 64 environments, a wider ReLU network."""
    from learnenv.agents.ppo import PPOConfig

    return PPOConfig(total_timesteps=total_timesteps, num_envs=64, num_steps=128,
                     hidden_sizes=(128, 128), activation="relu", learning_rate=5e-4,
                     update_epochs=4, num_minibatches=8, ent_coef=0.01)


def model_config(config: InteractiveSimulators, sources=None, objective: str = "edm"):
    """The experiment's :class:`~learnenv.worldmodels.diffusion.DiffusionConfig`."""
    from learnenv.worldmodels import pixels
    from learnenv.worldmodels.diffusion import DiffusionConfig

    # Every model gets the action vectors of the data: the largest game's size.
    action_dim = max(pixels.action_size(s) for s in config.sources)
    return DiffusionConfig(sources=tuple(config.sources if sources is None else sources),
                           action_dim=action_dim,
                           frame_size=config.frame_size, context=config.context,
                           channels=tuple(config.channels), objective=objective,
                           denoising_steps=config.denoising_steps, steps=config.model_steps,
                           batch_size=config.batch_size)


def track_ball(params, obs, key, greedy=False):
    """A scripted Breakout-MinAtar player (the agents' policy signature): move the
    paddle (channel 0, bottom row) towards where the ball (channel 1) is heading,
    one column past it in the direction it moves (its trail, channel 2, is where
    it was). Test data from a policy that none of the world model's data came from."""
    import jax.numpy as jnp

    column = lambda channel: jnp.argmax(jnp.max(obs[:, :, channel], axis=0))  # noqa: E731
    paddle, ball, trail = jnp.argmax(obs[9, :, 0]), column(1), column(2)
    target = jnp.clip(ball + jnp.sign(ball - trail), 0, 9)
    return jnp.where(target < paddle, 1, jnp.where(target > paddle, 2, 0))


def datasets(config: InteractiveSimulators, key) -> dict:
    """Per game: the training and held-out :class:`~learnenv.worldmodels.pixels.FrameData`
    (action vectors sized for all the games), the real steps recorded, and the
    returns of the random and the PPO policy."""
    import jax

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.worldmodels import pixels
    from learnenv.worldmodels.data import collect, concatenate, random_policy

    action_dim = model_config(config).action_size
    out = {}
    for source, source_key in zip(config.sources, jax.random.split(key, len(config.sources))):
        env, env_params = envs.make(source, sticky=config.sticky)
        train_key, random_key, expert_key, eval_key = jax.random.split(source_key, 4)
        cfg = ppo_config(config.expert_steps)
        expert = jax.jit(ppo.make_train(cfg, env, env_params))(train_key).params
        policy = ppo.make_policy(cfg, env, env_params)
        random_eps = jax.jit(lambda k: collect(env, env_params, random_policy(env, env_params),
                                               None, k, config.random_episodes,
                                               config.max_steps))(random_key)
        expert_eps = jax.jit(lambda k: collect(env, env_params, policy, expert, k,
                                               config.expert_episodes, config.max_steps,
                                               epsilon=config.epsilon))(expert_key)
        cut = config.expert_episodes - config.heldout_episodes
        train = concatenate(random_eps, expert_eps.take(slice(0, cut)))
        test = expert_eps.take(slice(cut, None))
        out[source] = {
            "train": pixels.frame_data(source, train, config.frame_size, action_dim),
            "test": pixels.frame_data(source, test, config.frame_size, action_dim),
            "real_steps": train.num_steps(),
            "random_return": float(random_eps.returns().mean()),
            "expert_return": float(evaluate(policy, expert, env, env_params, eval_key, 32).mean()),
        }
        print(f"{source}: {train.num_steps()} training steps; random return "
              f"{out[source]['random_return']:.2f}, PPO {out[source]['expert_return']:.2f}")
    return out


def open_loop(model_cfg, params, test, source_index: int, key, horizon: int, start: int,
              steps: int | None = None) -> dict:
    """Roll the model out ``horizon`` steps from step ``start`` of every held-out episode
    with the recorded actions; PSNR and sharpness per horizon (averaged over the
    episodes still running), and the same for copying the last frame.

    ``motion_sharpness`` is the sharpness of what changed since the previous frame
    (:func:`~learnenv.worldmodels.pixels.sharpness` of ``x_t - x_{t-1}``): a static
    background (Breakout's bricks) is sharp in every model and would hide a blur
    of the moving objects, which is where the future is uncertain."""
    import jax
    import jax.numpy as jnp

    from learnenv.worldmodels import diffusion, pixels

    context = jax.vmap(lambda f: pixels.window(f, start, model_cfg.context))(test.frames)
    actions = test.action[:, start:start + horizon]
    truth = test.frames[:, start + 1:start + 1 + horizon]
    valid = test.mask[:, start:start + horizon]
    source = jnp.full((context.shape[0],), source_index)
    predicted = diffusion.rollout(model_cfg, params, context, actions, source, key, steps)
    copy = jnp.broadcast_to(context[:, -1:], truth.shape)
    mean = lambda x: (x * valid).sum(0) / jnp.maximum(valid.sum(0), 1.0)  # noqa: E731
    motion = lambda frames: pixels.sharpness(  # noqa: E731
        frames - jnp.concatenate([context[:, -1:], frames[:, :-1]], axis=1))
    return {"psnr": mean(pixels.psnr(predicted, truth)),
            "copy_psnr": mean(pixels.psnr(copy, truth)),
            "sharpness": mean(pixels.sharpness(predicted)),
            "true_sharpness": mean(pixels.sharpness(truth)),
            "motion_sharpness": mean(motion(predicted)),
            "true_motion_sharpness": mean(motion(truth)),
            "episodes": valid.sum(0), "predicted": predicted[:4], "truth": truth[:4]}


def steps_per_second(env, env_params, key, num_envs: int, num_steps: int = 64) -> float:
    """Steps per second of ``env``, ``num_envs`` vmapped (the fastest of three timed runs):
    :func:`learnenv.worldmodels.compare.steps_per_second`."""
    from learnenv.worldmodels.compare import steps_per_second as timed

    return timed(env, env_params, num_envs, num_steps, key, repeats=3)


def agents(config: InteractiveSimulators, model_cfg, params, real_steps: int, key) -> dict:
    """PPO inside the world model, PPO in the real game with ``real_steps`` steps, and a
    random policy; all evaluated in the real game (frames, sticky actions)."""
    import jax
    import numpy as np

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.envs import render
    from learnenv.envs.wrappers import FrameStack
    from learnenv.worldmodels.data import random_policy
    from learnenv.worldmodels.diffusion import DiffusionEnvironment

    game = config.sources[0]
    real, real_params = envs.make(game, sticky=config.sticky)
    real = FrameStack(real, render.renderer(game, config.frame_size), config.context)
    model_env = DiffusionEnvironment(model_cfg, source=game,
                                     max_steps_in_episode=config.agent_episode_cap)
    model_params = model_env.with_model(params)
    train_key, real_key, eval_key = jax.random.split(key, 3)
    seeds = lambda k: jax.random.split(k, config.num_seeds)  # noqa: E731
    cfg = ppo_config(config.agent_timesteps)
    policy = ppo.make_policy(cfg, real, real_params)
    evaluate_all = jax.jit(jax.vmap(lambda p, k: evaluate(policy, p, real, real_params, k, 32)))
    t0 = time.perf_counter()
    inside = jax.block_until_ready(
        jax.jit(jax.vmap(ppo.make_train(cfg, model_env, model_params)))(seeds(train_key)))
    inside_seconds = time.perf_counter() - t0
    inside_returns = np.asarray(evaluate_all(inside.params, seeds(eval_key)))
    # PPO's smallest run is one update of num_envs x num_steps steps.
    real_cfg = ppo_config(max(real_steps, 64 * 128))
    outside = jax.jit(jax.vmap(ppo.make_train(real_cfg, real, real_params)))(seeds(real_key))
    outside_returns = np.asarray(evaluate_all(outside.params, seeds(eval_key)))
    random_returns = np.asarray(evaluate(random_policy(real, real_params), None, real,
                                         real_params, eval_key, 32 * config.num_seeds))
    print(f"{game}: inside the model {inside_returns.mean(1)}, real data "
          f"{outside_returns.mean(1)}, random {random_returns.mean():.2f}")
    return {"inside_model": inside_returns.mean(1), "real_data": outside_returns.mean(1),
            "random": float(random_returns.mean()), "inside_seconds": inside_seconds,
            "real_data_steps": int(real_cfg.total_timesteps),
            "inside_steps": int(cfg.total_timesteps)}


def save_model(path, model_cfg, source: str, params, seconds: float):
    """Save a fitted model as the learned environment of ``source`` (one call to load)."""
    from learnenv import io
    from learnenv.worldmodels.diffusion import DiffusionEnvironment

    env = DiffusionEnvironment(model_cfg, source=source)
    env_params = env.with_model(params)
    return io.save_environment(path, env, env_params, config=model_cfg, wall_clock_s=seconds,
                               extra={"num_parameters": env.num_parameters(env_params),
                                      "max_steps_in_episode": env.episode_cap})


def run(config: InteractiveSimulators, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from learnenv import envs
    from learnenv.envs import render
    from learnenv.worldmodels import diffusion

    out_dir = Path(out_dir)
    data_key, fit_key, eval_key, agent_key, speed_key = jax.random.split(key, 5)
    data = datasets(config, data_key)
    train = tuple(data[s]["train"] for s in config.sources)
    results: dict[str, Any] = {"data": {s: {k: v for k, v in d.items()
                                            if k not in ("train", "test")}
                                        for s, d in data.items()}}

    def fitted(name, model_cfg, sources_data, key):
        params, metrics = diffusion.fit(model_cfg, key, sources_data,
                                        checkpoint_dir=out_dir / "checkpoints" / name)
        seconds = metrics["wall_clock_s"]  # the whole fit's, also when it resumed
        print(f"model {name}: {seconds:.0f} s, final frame loss "
              f"{float(metrics['frame_loss'][-100:].mean()):.4f}")
        return params, {"seconds": seconds, "frame_loss": metrics["frame_loss"]}

    keys = jax.random.split(fit_key, 2 + len(config.sources))
    main_cfg, mse_cfg = model_config(config), model_config(config, objective="mse")
    main, results["fit_main"] = fitted("main", main_cfg, train, keys[0])
    mse, results["fit_mse"] = fitted("mse", mse_cfg, train, keys[1])
    for name, cfg, params, fit in (("diffusion-world-model", main_cfg, main, results["fit_main"]),
                                   ("mse-world-model", mse_cfg, mse, results["fit_mse"])):
        save_model(out_dir / name, cfg, config.sources[0], params, fit["seconds"])

    # Open loop on held-out episodes: diffusion, MSE, copy, per game.
    horizons = {}
    for i, source in enumerate(config.sources):
        test = data[source]["test"]
        row = {}
        for steps in config.step_choices:
            row[f"edm-{steps}"] = open_loop(main_cfg, main, test, i, eval_key, config.horizon,
                                            config.start, steps)
        row["mse"] = open_loop(mse_cfg, mse, test, i, eval_key, config.horizon, config.start)
        horizons[source] = row
    results["horizon"] = horizons

    # One model per game, against the mixed model.
    single = {}
    for i, source in enumerate(config.sources):
        cfg_i = model_config(config, sources=(source,))
        params_i, fit_i = fitted(f"only-{source}", cfg_i, (data[source]["train"],), keys[2 + i])
        single[source] = {"fit": fit_i, "horizon": open_loop(
            cfg_i, params_i, data[source]["test"], 0, eval_key, config.horizon, config.start)}
    results["single_source"] = single

    # Speed: the world model at each number of steps, against the real game.
    game = config.sources[0]
    real, real_params = envs.make(game, sticky=config.sticky)
    framed = envs.FrameStack(real, render.renderer(game, config.frame_size), config.context)
    speed = {"real": steps_per_second(real, real_params, speed_key, config.speed_envs),
             "real_frames": steps_per_second(framed, real_params, speed_key, config.speed_envs)}
    for steps in config.step_choices:
        model_env = diffusion.DiffusionEnvironment(main_cfg, source=game, denoising_steps=steps)
        speed[f"edm-{steps}"] = steps_per_second(model_env, model_env.with_model(main),
                                                 speed_key, config.speed_envs)
    mse_env = diffusion.DiffusionEnvironment(mse_cfg, source=game)
    speed["mse"] = steps_per_second(mse_env, mse_env.with_model(mse), speed_key, config.speed_envs)
    results["speed"] = speed
    results["devices"] = [str(d) for d in jax.devices()]

    results["agents"] = agents(config, main_cfg, main, data[game]["real_steps"], agent_key)
    for row in horizons.values():
        for entry in row.values():
            entry.pop("predicted"), entry.pop("truth")
    single_h = [v["horizon"] for v in single.values()]
    for entry in single_h:
        entry.pop("predicted"), entry.pop("truth")
    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jnp.ndarray) else x, results)


register("interactive-simulators",
         "A diffusion world model of two MinAtar games: error against horizon, denoising "
         "steps, mixed sources, an agent trained inside it, and its cost.",
         presets=PRESETS, run=run)
