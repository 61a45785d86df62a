"""A generative interactive environment learned from unlabelled video, measured (Genie).

    python -m learnenv run genie --preset quick --out runs/genie

One run does what the chapter "Generative interactive environments" reports:

1. **Videos** of a MinAtar game: episodes of a random policy and of a scripted
   player (Breakout's ball tracker) with random actions mixed in. The true actions
   are recorded but only evaluation reads them. Some episodes are held out.
2. **Latent action models** (:mod:`learnenv.worldmodels.latent_actions`),
   trained on the random policy's episodes (:func:`videos` says why):
   the translation-equivariant convolutional LAM, and the same bottleneck with
   dense layers (the counter-example). Each: codebook usage, normalised mutual
   information (NMI) with the true actions, and accuracy after a latent-to-true
   map fitted on ``labelled_pairs`` labelled transitions, on held-out episodes,
   during training and at the end; the best any map from the paddle's visible
   move could reach.
3. **Dynamics models** (:mod:`learnenv.worldmodels.genie`, MaskGIT over cell
   tokens) trained on the convolutional LAM's latent actions, on the true actions (the
   upper bound) and, for Breakout, on the paddle's new column (a labelling
   that controls the model but is not an action: the counter-example).
4. **Controllability**: Delta_t PSNR at ``horizon`` (PSNR with the inferred
   actions minus PSNR with random ones), per model.
5. **Agents**: PPO trained only inside the learned environment (latent
   actions), evaluated in the real game through the fitted map; a random
   policy. All seeds vmapped in one call.
6. **Cost**: learned-environment steps per second against the real game's,
   vmapped, and each part's training time.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register


@dataclasses.dataclass(frozen=True)
class Genie(Config):
    source: str = field("Breakout-MinAtar", doc="the game the videos show")
    num_seeds: int = field(4, low=1, doc="PPO agents, vmapped")
    # videos
    random_episodes: int = field(2048, low=1, doc="episodes of a random policy (short)")
    scripted_episodes: int = field(256, low=0, doc="episodes of Breakout's ball tracker")
    epsilon: float = field(0.05, low=0.0, high=1.0, doc="random actions in scripted episodes")
    heldout_episodes: int = field(256, low=1, doc="episodes of each player kept for "
                                                     "evaluation (at most half)")
    max_steps: int = field(300, low=1, doc="steps per recorded episode")
    # latent action models (LAMConfig)
    num_latents: int = field(3, low=2, doc="|A|, fixed in advance (Breakout has 3 actions)")
    lam_width: int = field(32, low=1)
    lam_steps: int = field(5000, low=1)
    lam_batch: int = field(64, low=1)
    lam_chunk: int = field(500, low=1, doc="steps between evaluations of the LAM")
    # dynamics (DynamicsConfig)
    backbone: str = field("conv", choices=("transformer", "conv"))
    d_model: int = field(32, low=8)
    num_layers: int = field(4, low=1)
    num_heads: int = field(2, low=1, doc="attention heads (transformer backbone)")
    dynamics_steps: int = field(3000, low=1)
    dynamics_batch: int = field(32, low=1)
    # evaluation
    labelled_pairs: int = field(200, low=1, doc="labelled transitions for the latent-to-true map")
    eval_transitions: int = field(4000, low=1, doc="held-out transitions for NMI and accuracy")
    horizon: int = field(4, low=1, doc="t of Delta_t PSNR")
    speed_envs: int = field(64, low=1, doc="environments vmapped when timing")
    # agents
    agent_timesteps: int = field(200_000, low=1, doc="PPO steps inside the learned environment")
    agent_episode_cap: int = field(500, low=1)


PRESETS = {
    "quick": Genie(),
    "full": Genie(source="Asterix-MinAtar", num_seeds=8, random_episodes=8192,
                  scripted_episodes=0, heldout_episodes=512, max_steps=500, num_latents=8,
                  lam_width=64, lam_steps=30_000, lam_batch=256, lam_chunk=2000,
                  backbone="transformer", d_model=256, num_layers=6, num_heads=8,
                  dynamics_steps=30_000, dynamics_batch=256, agent_timesteps=5_000_000,
                  agent_episode_cap=1000),
}


def lam_config(config: Genie, network: str = "conv"):
    """The experiment's :class:`~learnenv.worldmodels.latent_actions.LAMConfig`."""
    from learnenv import envs
    from learnenv.worldmodels.latent_actions import LAMConfig

    grid, _, channels = envs.observation_shape(*envs.make(config.source))
    return LAMConfig(channels=channels, grid=grid, num_latents=config.num_latents,
                     network=network, width=config.lam_width, steps=config.lam_steps,
                     batch_size=config.lam_batch, chunk=config.lam_chunk)


def dynamics_config(config: Genie, num_actions: int | None = None):
    """The experiment's :class:`~learnenv.worldmodels.genie.DynamicsConfig` (latent
    actions, or ``num_actions`` true ones for the upper bound)."""
    from learnenv import envs
    from learnenv.worldmodels.genie import DynamicsConfig

    grid, _, channels = envs.observation_shape(*envs.make(config.source))
    return DynamicsConfig(source=config.source, channels=channels, grid=grid,
                          num_actions=num_actions or config.num_latents, d_model=config.d_model,
                          backbone=config.backbone, num_layers=config.num_layers,
                          num_heads=config.num_heads,
                          steps=config.dynamics_steps, batch_size=config.dynamics_batch)


def videos(config: Genie, key) -> dict:
    """Training and held-out :class:`~learnenv.worldmodels.latent_actions.Video`:
    ``random`` (the random policy's episodes), ``train`` and ``test`` (those and the
    scripted player's, for the dynamics model), and the random policy's return.

    The latent action model learns from the random episodes only: there the
    action is independent of the frame. The scripted player's action follows
    from the frame (it tracks the ball), so its paddle move can be predicted
    from the past without any latent, and a LAM trained on its video need not
    spend its code on the move. The dynamics model needs the scripted player's
    long episodes: only there does the ball often meet the paddle."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from learnenv import envs
    from learnenv.experiments.interactive_simulators import track_ball
    from learnenv.worldmodels import latent_actions
    from learnenv.worldmodels.data import collect, concatenate, random_policy

    env, env_params = envs.make(config.source)
    random_key, scripted_key, split_key = jax.random.split(key, 3)
    random_eps = jax.jit(lambda k: collect(env, env_params, random_policy(env, env_params), None,
                                           k, config.random_episodes, config.max_steps))(random_key)

    def split(episodes, key):
        video = latent_actions.video(episodes)
        order = np.asarray(jax.random.permutation(key, video.mask.shape[0]))
        cut = min(config.heldout_episodes, video.mask.shape[0] // 2)
        return video.take(order[cut:]), video.take(order[:cut])

    random_train, random_test = split(random_eps, split_key)
    out = {"random": (random_train, random_test), "train": random_train, "test": random_test,
           "random_return": float(random_eps.returns().mean())}
    if config.scripted_episodes and config.source == "Breakout-MinAtar":
        scripted = jax.jit(lambda k: collect(env, env_params, track_ball, None, k,
                                             config.scripted_episodes, config.max_steps,
                                             epsilon=config.epsilon))(scripted_key)
        train, test = split(scripted, jax.random.fold_in(split_key, 1))
        out["scripted"] = (train, test)
        both = lambda a, b: jax.tree.map(lambda x, y: jnp.concatenate([x, y]), a, b)  # noqa: E731
        out["train"], out["test"] = both(random_train, train), both(random_test, test)
    return out


def paddle_move_ceiling(batch) -> float:
    """Breakout only: the accuracy of the best map from the paddle's visible move
    (left, none, right) to the true action. A move blocked by a wall looks like a
    no-op, so no model of the frames can do better."""
    import numpy as np

    before = np.argmax(np.asarray(batch["context"][:, -1, -1, :, 0]), axis=-1)
    after = np.argmax(np.asarray(batch["next"][:, -1, :, 0]), axis=-1)
    move = np.sign(after - before) + 1
    actions = np.asarray(batch["true_action"])
    best = sum(np.bincount(actions[move == m]).max() for m in range(3) if np.any(move == m))
    return float(best / actions.size)


def paddle_column(_, batch):
    """Breakout only, the counter-example's "latent action": the paddle's column
    after the step. It tells a dynamics model everything about the next frame
    that the player decides, yet it is not an action (a labeller for
    :func:`learnenv.worldmodels.genie.fit`)."""
    import jax.numpy as jnp

    return jnp.argmax(batch["next"][..., -1, :, 0], axis=-1)


def action_metrics(lam_cfg, lam_params, batch, labelled_pairs: int) -> dict:
    """NMI, codebook usage and mapped accuracy of a LAM on held-out transitions: the
    map is fitted on the first ``labelled_pairs``, scored on the rest."""
    import numpy as np

    from learnenv.worldmodels import latent_actions as la

    latents = np.asarray(la.infer(lam_cfg, lam_params, batch["context"][:, -1], batch["next"]))
    actions = np.asarray(batch["true_action"])
    mapping = la.fit_mapping(latents[:labelled_pairs], actions[:labelled_pairs],
                             lam_cfg.num_latents)
    return {"nmi": la.normalized_mutual_information(latents, actions),
            "accuracy": la.mapped_accuracy(mapping, latents[labelled_pairs:],
                                           actions[labelled_pairs:]),
            "usage": np.bincount(latents, minlength=lam_cfg.num_latents),
            "mapping": mapping}


def controllability(dyn_cfg, params, test, actions, num_actions: int, horizon: int,
                    key) -> dict:
    """Delta_t PSNR: PSNR of frame ``horizon`` of open-loop rollouts from each held-out
    episode's first frame with ``actions`` ``(N, horizon)`` (inferred or true), minus
    the same with uniformly random actions; episodes shorter than ``horizon`` are
    left out.

    A frame predicted exactly has an infinite PSNR, and here many are, so the
    per-frame PSNRs cannot be averaged: the PSNR is that of the mean squared
    error over the episodes. If every frame is exact that is infinite too, so
    the mean squared error is floored at the measurement's resolution, one
    wrong pixel in all the frames compared (``psnr_cap``); a Delta_t PSNR from
    a capped PSNR is a lower bound. ``exact`` is the fraction of frames
    predicted without a single wrong cell."""
    import jax
    import jax.numpy as jnp

    from learnenv.worldmodels import genie

    valid = test.mask[:, horizon - 1] > 0
    context = genie.tokens(test.frames[:, :1])
    context = jnp.broadcast_to(context, (context.shape[0], dyn_cfg.context, context.shape[-1]))
    truth = test.frames[:, horizon]
    rollout_key, random_key = jax.random.split(key)
    random_actions = jax.random.randint(random_key, actions.shape, 0, num_actions)
    target = genie.draw(truth)
    resolution = 1.0 / (valid.sum() * target.shape[-2] * target.shape[-1])
    scores = {}
    for name, acts in (("inferred", actions), ("random", random_actions)):
        predicted = genie.rollout(dyn_cfg, params, context, acts, rollout_key)[:, -1]
        frames = genie.draw(genie.grids(predicted, dyn_cfg.grid, dyn_cfg.channels))
        mse = jnp.mean(jnp.square(frames - target), axis=(-2, -1))
        mean_mse = jnp.maximum(jnp.sum(mse * valid) / valid.sum(), resolution)
        scores[name] = (float(10.0 * jnp.log10(1.0 / mean_mse)),
                        float(jnp.sum((mse == 0) * valid) / valid.sum()))
    return {"psnr": scores["inferred"][0], "random_psnr": scores["random"][0],
            "delta_psnr": scores["inferred"][0] - scores["random"][0],
            "exact": scores["inferred"][1], "random_exact": scores["random"][1],
            "psnr_cap": float(10.0 * jnp.log10(1.0 / resolution)),
            "episodes": int(valid.sum())}


def scripted_return(dyn_cfg, params, to_model, source: str, key, num_episodes: int = 32,
                    max_steps: int = 500) -> float:
    """The model as an environment, closed loop: the mean return of Breakout's ball
    tracker playing *inside* the dynamics model (its actions given to the model as
    ``to_model[action]``), from real first frames, until the heads say the
    episode ended. The same player scores far more in the real game; the gap
    is what the model gets wrong where it matters."""
    import jax
    import jax.numpy as jnp

    from learnenv import envs
    from learnenv.experiments.interactive_simulators import track_ball
    from learnenv.worldmodels import genie

    real, real_params = envs.make(source)
    to_model = jnp.asarray(to_model, jnp.int32)

    def episode(key):
        reset_key, loop_key = jax.random.split(key)
        obs, _ = real.reset(reset_key, real_params)
        context = jnp.broadcast_to(genie.tokens(obs), (dyn_cfg.context, dyn_cfg.num_cells))

        def step(carry, key):
            context, alive, total = carry
            grid = genie.grids(context[-1], dyn_cfg.grid, dyn_cfg.channels)
            action = to_model[track_ball(None, grid, key)][None]
            nxt = genie.sample_next(dyn_cfg, params, context[None], action, key)
            reward, done_logit = genie.predict_heads(dyn_cfg, params, grid[None], nxt, action)
            total = total + alive * reward[0]
            alive = alive * (done_logit[0] <= 0.0)
            return (jnp.concatenate([context[1:], nxt]), alive, total), None

        (_, _, total), _ = jax.lax.scan(step, (context, jnp.ones(()), jnp.zeros(())),
                                        jax.random.split(loop_key, max_steps))
        return total

    return float(jnp.mean(jax.jit(jax.vmap(episode))(jax.random.split(key, num_episodes))))


def agents(config: Genie, env, env_params, key) -> dict:
    """PPO inside the learned environment (latent actions), evaluated in the real game
    through the environment's latent-to-true map; a random policy in the real game."""
    import jax
    import numpy as np

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.experiments.interactive_simulators import ppo_config
    from learnenv.worldmodels.data import random_policy

    real, real_params = envs.make(config.source)
    mapped = envs.MappedActions(real, env.latent_to_real)
    train_key, eval_key = jax.random.split(key)
    seeds = lambda k: jax.random.split(k, config.num_seeds)  # noqa: E731
    cfg = ppo_config(config.agent_timesteps)
    policy = ppo.make_policy(cfg, env, env_params)
    t0 = time.perf_counter()
    trained = jax.block_until_ready(
        jax.jit(jax.vmap(ppo.make_train(cfg, env, env_params)))(seeds(train_key)))
    seconds = time.perf_counter() - t0
    returns = np.asarray(jax.jit(jax.vmap(
        lambda p, k: evaluate(policy, p, mapped, real_params, k, 32)))(trained.params,
                                                                      seeds(eval_key)))
    random_returns = np.asarray(evaluate(random_policy(real, real_params), None, real,
                                         real_params, eval_key, 32 * config.num_seeds))
    print(f"agents inside the learned environment: {returns.mean(1)} in the real game; "
          f"random {random_returns.mean():.2f}")
    return {"inside_model": returns.mean(1), "random": float(random_returns.mean()),
            "seconds": seconds, "steps": int(cfg.total_timesteps)}


def run(config: Genie, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from learnenv import envs, io
    from learnenv.agents.base import evaluate
    from learnenv.experiments.interactive_simulators import track_ball
    from learnenv.worldmodels import genie
    from learnenv.worldmodels import latent_actions as la
    from learnenv.worldmodels.compare import steps_per_second

    out_dir = Path(out_dir)
    data_key, lam_key, dyn_key, eval_key, agent_key, speed_key = jax.random.split(key, 6)
    t0 = time.perf_counter()
    data = videos(config, data_key)
    train, test = data["train"], data["test"]
    lam_train, lam_test = data["random"]
    batch = la.sample_transitions(lam_test, eval_key, config.eval_transitions, 1)
    results: dict[str, Any] = {
        "data": {"train_steps": train.num_steps, "test_steps": test.num_steps,
                 "lam_train_steps": lam_train.num_steps, "lam_test_steps": lam_test.num_steps,
                 "random_return": data["random_return"], "seconds": time.perf_counter() - t0}}
    if config.source == "Breakout-MinAtar":
        results["paddle_move_ceiling"] = paddle_move_ceiling(batch)
        results["scripted_real_return"] = float(evaluate(
            track_ball, None, *envs.make(config.source), eval_key, 32).mean())

    lams = {}
    for network, k in zip(("conv", "mlp"), jax.random.split(lam_key)):
        cfg = lam_config(config, network)
        params, metrics = la.fit(
            cfg, k, lam_train, out_dir / "checkpoints" / f"lam-{network}",
            evaluate=lambda p, cfg=cfg: action_metrics(cfg, p, batch, config.labelled_pairs))
        seconds = metrics["wall_clock_s"]
        final = action_metrics(cfg, params, batch, config.labelled_pairs)
        if "scripted" in data:  # the same LAM labelling the scripted player's transitions
            final["on_scripted"] = action_metrics(
                cfg, params, la.sample_transitions(data["scripted"][1], eval_key,
                                                   config.eval_transitions, 1),
                config.labelled_pairs)
        lams[network] = (cfg, params)
        results[f"lam_{network}"] = {**final, "seconds": seconds,
                                     "reconstruction": metrics["reconstruction"],
                                     "curve": metrics["evaluation"]}
        print(f"LAM {network}: NMI {final['nmi']:.3f}, accuracy {final['accuracy']:.3f}, "
              f"usage {final['usage']}, {seconds:.0f} s")

    # Dynamics on each LAM's latent actions, and on the true actions (the upper bound).
    num_true = envs.action_dim(*envs.make(config.source))
    test_pairs = (test.frames[:, :config.horizon], test.frames[:, 1:config.horizon + 1])
    dynamics, control = {}, {}
    breakout = config.source == "Breakout-MinAtar"
    other = "transformer" if config.backbone == "conv" else "conv"
    arms = ["conv", "true"] + ([f"true-{other}", "column"] if breakout else [])
    identity = np.arange(num_true)
    to_model = {"true": identity, f"true-{other}": identity}
    for name, k in zip(arms, jax.random.split(dyn_key, len(arms))):
        where = out_dir / "checkpoints" / f"dynamics-{name}"
        if name.startswith("true"):
            cfg = dynamics_config(config, num_true)
            if name != "true":  # the same data and actions, the other backbone
                cfg = cfg.replace(backbone=other)
            params, metrics = genie.fit(cfg, k, train, checkpoint_dir=where)
            actions = test.true_action[:, :config.horizon]
            n = num_true
        elif name == "column":
            n = lam_config(config).grid
            cfg = dynamics_config(config, n)
            params, metrics = genie.fit(cfg, k, train, label=paddle_column, checkpoint_dir=where)
            actions = paddle_column(None, {"next": test.frames[:, 1:config.horizon + 1]})
            results["column_nmi"] = la.normalized_mutual_information(
                paddle_column(None, batch), batch["true_action"])
        else:
            lam_cfg, lam_params = lams[name]
            cfg = dynamics_config(config)
            params, metrics = genie.fit(cfg, k, train, label=la.Labels(lam_cfg),
                                        labeller=lam_params, checkpoint_dir=where)
            actions = jax.vmap(lambda b, a: la.infer(lam_cfg, lam_params, b, a))(*test_pairs)
            n = config.num_latents
            latents = la.infer(lam_cfg, lam_params, batch["context"][:, -1], batch["next"])
            to_model[name] = la.preferred_latents(latents, batch["true_action"], num_true)
        dynamics[name] = (cfg, params)
        control[name] = {**controllability(cfg, params, test, actions, n, config.horizon,
                                           eval_key),
                         "seconds": metrics["wall_clock_s"],
                         "token_loss": metrics["token_loss"], "backbone": cfg.backbone}
        if name in to_model and breakout:
            control[name]["scripted_return"] = scripted_return(
                cfg, params, to_model[name], config.source, eval_key)
        print(f"dynamics ({name}): Delta PSNR {control[name]['delta_psnr']:.2f} dB, scripted "
              f"player inside {control[name].get('scripted_return', float('nan')):.2f}, "
              f"{metrics['wall_clock_s']:.0f} s")
    results["dynamics"] = control

    # The learned environment: the convolutional LAM, its dynamics model and its map.
    lam_cfg, lam_params = lams["conv"]
    dyn_cfg, dyn_params = dynamics["conv"]
    env = genie.GenieEnvironment(dyn_cfg, lam_cfg, latent_to_real=results["lam_conv"]["mapping"],
                                 max_steps_in_episode=config.agent_episode_cap)
    env_params = env.with_model(dyn_params, lam_params)
    io.save_environment(out_dir / "genie-world-model", env, env_params, config=dyn_cfg,
                        wall_clock_s=results["lam_conv"]["seconds"] + control["conv"]["seconds"],
                        extra={"num_parameters": env.num_parameters(env_params)})

    real, real_params = envs.make(config.source)
    results["speed"] = {
        "real": steps_per_second(real, real_params, config.speed_envs, 64, speed_key, repeats=3),
        "learned": steps_per_second(env, env_params, config.speed_envs, 64, speed_key, repeats=3)}
    results["agents"] = agents(config, env, env_params, agent_key)
    results["devices"] = [str(d) for d in jax.devices()]
    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jnp.ndarray) else x, results)


register("genie",
         "Genie at laptop scale: latent actions from unlabelled MinAtar video, a MaskGIT "
         "dynamics model, controllability, an agent trained inside it, and its cost.",
         presets=PRESETS, run=run)
