"""VIPER at laptop scale: a reward from a video model of an expert, measured.

    python -m learnenv run video-rewards --preset quick --out runs/video-rewards

One run does what the chapter "Rewards from video prediction" reports:

1. **The expert**: SAC on Pendulum-v1's true reward (the swing-up task; every
   episode lasts 200 steps, so a per-step reward cannot pay for survival).
2. **Videos**: the expert's episodes rendered in JAX (:mod:`learnenv.envs.render`);
   the video model sees frames only, never actions or rewards.
3. **The video model** (:mod:`learnenv.rewards.video`): a patch VQ-VAE and a
   causal transformer, fitted to the expert videos.
4. **The paper's diagnostic, made quantitative**: per-episode likelihood return
   against true return for policies from random through epsilon-expert to
   expert, with Spearman's rank correlation, for both ways of scoring a step.
5. **Agents**: PPO on the states, with the reward from the video model only,
   against PPO on the true reward; and the ablations: an exploration bonus on
   frames, no frame subsampling.
6. **Failure modes**: the reward of a video that stands still (with and
   without subsampling), and a displayed score that leaks the task reward
   into the video model (drawn, then masked).
7. **CartPole, the worked pitfall**: CartPole's reward is survival, so the
   sign of a per-step likelihood reward decides whether the agent learns to
   survive or to fall, whatever the video model knows.

All agents of an arm are vmapped over seeds in one jitted call.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register

# name -> (video model, floor: None for the config's, exploration bonus). "true reward"
# is PPO on Pendulum's own reward.
ARMS = {
    "true reward": (None, None, False),
    "VIPER": ("main", None, False),
    "VIPER, clipped at 0 (viper_rl)": ("main", 0.0, False),
    "VIPER + bonus": ("main", None, True),
    "VIPER, no subsampling": ("no subsampling", None, False),
    "VIPER, 4x more expert videos": ("more videos", None, False),
}
EPSILONS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclasses.dataclass(frozen=True)
class VideoRewards(Config):
    num_seeds: int = field(4, low=1, doc="PPO agents per arm, vmapped")
    # the expert and its videos
    expert_steps: int = field(20_000, low=1, doc="SAC steps on Pendulum's true reward")
    expert_episodes: int = field(64, low=1, doc="expert videos the video model learns from")
    eval_episodes: int = field(16, low=1, doc="episodes per policy in the diagnostic")
    # the video model (learnenv.rewards.video.VideoConfig)
    frame_size: int = field(16, low=8)
    patch: int = field(8, low=1)
    num_codes: int = field(64, low=2)
    context: int = field(3, low=1)
    subsample: int = field(2, low=1)
    d_model: int = field(64, low=1)
    num_layers: int = field(2, low=1)
    num_heads: int = field(4, low=1)
    tokenizer_steps: int = field(1500, low=1)
    prior_steps: int = field(2000, low=1)
    reset_every: int = field(100, low=1, doc="tokenizer steps between dead-code resets")
    tokenizer_frames: int = field(12_800, low=0,
                                  doc="frames of the scene the tokenizer learns from (0: the "
                                      "expert's frames)")
    # the reward and the agents
    floor: float = field(-10.0, high=1.0, high_inclusive=False,
                         doc="lowest rescaled reward (viper_rl clips at 0; -10 keeps a slope)")
    beta: float = field(0.5, low=0.0, doc="weight of the frame-curiosity bonus (bonus arm)")
    ppo_timesteps: int = field(1_000_000, low=1, doc="env steps per PPO agent")
    # CartPole, the pitfall
    cartpole_expert_steps: int = field(200_000, low=1, doc="PPO steps of the CartPole expert")
    cartpole_timesteps: int = field(100_000, low=1, doc="env steps per PPO agent, each sign")


PRESETS = {
    "quick": VideoRewards(),
    "full": VideoRewards(num_seeds=8, expert_steps=50_000, expert_episodes=256, frame_size=32,
                         patch=8, num_codes=256, context=4, d_model=128, num_layers=4,
                         num_heads=8, tokenizer_steps=5_000, prior_steps=20_000,
                         ppo_timesteps=5_000_000, cartpole_expert_steps=500_000,
                         cartpole_timesteps=500_000),
}


def video_config(config: VideoRewards, env_name: str = "Pendulum-v1", **changes):
    """The experiment's :class:`~learnenv.rewards.video.VideoConfig`, with ``changes``."""
    from learnenv.rewards.video import VideoConfig

    fields = dict(env_name=env_name, frame_size=config.frame_size, patch=config.patch,
                  num_codes=config.num_codes, context=config.context,
                  subsample=config.subsample, d_model=config.d_model,
                  num_layers=config.num_layers, num_heads=config.num_heads,
                  tokenizer_steps=config.tokenizer_steps, prior_steps=config.prior_steps,
                  reset_every=config.reset_every)
    return VideoConfig(**{**fields, **changes})


def ppo_config(total_timesteps: int, continuous: bool = True):
    """PPO for Pendulum (normalised observations, 32 envs, short horizon) or CartPole
    (the library's defaults, purejaxrl's)."""
    from learnenv.agents.ppo import PPOConfig

    if not continuous:
        return PPOConfig(total_timesteps=total_timesteps)
    return PPOConfig(total_timesteps=total_timesteps, num_envs=32, num_steps=128,
                     update_epochs=10, num_minibatches=16, learning_rate=1e-3,
                     normalize_observations=True, ent_coef=0.0, gamma=0.95, gae_lambda=0.9)


def train_expert(config: VideoRewards, key):
    """SAC on Pendulum-v1's true reward: ``(policy, params, greedy returns)``."""
    import jax

    from learnenv import envs
    from learnenv.agents import sac
    from learnenv.agents.base import evaluate

    env, env_params = envs.make("Pendulum-v1")
    cfg = sac.SACConfig(total_timesteps=config.expert_steps, hidden_sizes=(64, 64),
                        batch_size=128, learning_rate=1e-3)
    train_key, eval_key = jax.random.split(key)
    params = jax.jit(sac.make_train(cfg, env, env_params))(train_key).params
    policy = sac.make_policy(cfg, env, env_params)
    returns = evaluate(policy, params, env, env_params, eval_key, 32)
    return policy, params, returns


def policy_videos(env, env_params, policy, params, key, episodes: int,
                  epsilons=EPSILONS) -> list:
    """Episodes of the greedy expert taking a uniformly random action with probability
    ``epsilon``, for every ``epsilon`` (0 is the expert, 1 the random policy)."""
    import jax

    from learnenv.worldmodels.data import collect

    keys = jax.random.split(key, len(epsilons))
    return [collect(env, env_params, policy, params, k, num_episodes=episodes, greedy=True,
                    epsilon=e) for e, k in zip(epsilons, keys)]


def expert_videos(env, env_params, policy, params, key, episodes: int):
    """The videos the video model learns from: the expert's policy as trained, sampling
    its actions (SAC's Gaussian), so that no two takes of a swing-up are identical,
    as no two human demonstrations are. A greedy expert repeats one trajectory per
    start state, and the model then rates every small deviation as unlikely."""
    from learnenv.worldmodels.data import collect

    return collect(env, env_params, policy, params, key, num_episodes=episodes)


def fit_video_model(video, episodes, key, tokenizer_frames: int = 0):
    """``(params, info, low, high, seconds)``: the fitted model and its expert range.

    With ``tokenizer_frames > 0`` the tokenizer learns from that many frames of
    the scene (:func:`learnenv.envs.render.scene_samples`), not from the
    expert's frames: see the chapter's section on the tokenizer's data."""
    import jax

    from learnenv.envs.render import scene_samples
    from learnenv.rewards import video as viper

    t0 = time.perf_counter()
    scene = (scene_samples(video.env_name, jax.random.fold_in(key, 1), tokenizer_frames)
             if tokenizer_frames else None)
    params, info = jax.block_until_ready(jax.jit(viper.make_fit(video))(key, episodes, scene))
    seconds = time.perf_counter() - t0
    scores = jax.jit(lambda e: viper.step_log_likelihoods(video, params, e))(episodes)
    low, high = viper.expert_range(scores, episodes.mask)
    return params, info, float(low), float(high), seconds


def diagnostic(video, params, low: float, high: float, datasets, floor: float = 0.0) -> dict:
    """The paper's plot as numbers: per-episode true return and likelihood return of
    every dataset (one per policy), and Spearman's rank correlation over all
    episodes, for the raw log-likelihood and for the rescaled reward."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.stats import spearmanr

    from learnenv.rewards import video as viper

    score = jax.jit(lambda e: viper.step_log_likelihoods(video, params, e))
    true, raw, reward = [], [], []
    for episodes in datasets:
        s = score(episodes)
        true.append(np.asarray(episodes.returns()))
        raw.append(np.asarray(s.sum(1)))
        scaled = jnp.clip((s - low) / (high - low), floor, 1.0) * episodes.mask
        reward.append(np.asarray(scaled.sum(1)))
    all_true = np.concatenate(true)
    return {"true_return": true, "log_likelihood_return": raw, "reward_return": reward,
            "spearman_log_likelihood": float(spearmanr(all_true, np.concatenate(raw))[0]),
            "spearman_reward": float(spearmanr(all_true, np.concatenate(reward))[0])}


def static_video_reward(video, params, low: float, high: float, angles,
                        floor: float = 0.0) -> Any:
    """Per-step reward of a video in which nothing moves: the pendulum held at each
    of ``angles`` (0 is upright, pi hangs) for a whole window."""
    import jax
    import jax.numpy as jnp

    from learnenv.rewards import video as viper

    def one(theta):
        obs = jnp.array([jnp.cos(theta), jnp.sin(theta), 0.0])
        codes = viper.tokenize(video, params, viper.frames(video, obs))
        window = jnp.tile(codes, video.context + 1)
        log_p = viper.window_log_prob(video, params, window)
        return jnp.clip((log_p - low) / (high - low), floor, 1.0)

    return jax.jit(jax.vmap(one))(jnp.asarray(angles, jnp.float32))


def score_leak(video, params, episodes) -> Any:
    """How much of the likelihood is the score display: the change of each episode's
    log-likelihood return when only the display changes. The display shows the
    cost ``theta^2 + 0.1 theta_dot^2``; the rod does not show the velocity, so
    zeroing it in the observations redraws the display alone (a better score)."""
    import jax

    from learnenv.rewards import video as viper

    score = jax.jit(lambda e: viper.step_log_likelihoods(video, params, e).sum(1))
    still = lambda x: x.at[..., 2].set(0.0)  # noqa: E731
    tampered = episodes.replace(obs=still(episodes.obs), next_obs=still(episodes.next_obs))
    return score(tampered) - score(episodes)


def make_arm(train_env, train_params, eval_env, eval_params, cfg, episodes: int = 16):
    """``fn(keys) -> Episodes (seeds, episodes, T, ...)``, jitted once: PPO trained on
    ``train_env``, then its greedy policy's episodes in the real environment (their
    ``returns()`` are the true returns; their observations show the behaviour)."""
    import jax

    from learnenv.agents import ppo
    from learnenv.worldmodels.data import collect

    train = ppo.make_train(cfg, train_env, train_params)
    policy = ppo.make_policy(cfg, eval_env, eval_params)

    def one(key):
        train_key, eval_key = jax.random.split(key)
        params = train(train_key).params
        return collect(eval_env, eval_params, policy, params, eval_key, episodes, greedy=True)

    return jax.jit(jax.vmap(one))


def pendulum_behaviour(episodes) -> dict:
    """Where the pendulum is in the second half of each episode, per seed: the mean
    absolute angle from upright (rad) and angular speed (rad/s)."""
    import numpy as np

    obs = np.asarray(episodes.obs)
    half = obs[..., obs.shape[-2] // 2:, :]
    angle = np.abs(np.arctan2(half[..., 1], half[..., 0]))
    return {"abs_angle": angle.mean(axis=(-1, -2)),
            "abs_speed": np.abs(half[..., 2]).mean(axis=(-1, -2))}


def normalised(returns, random_return: float, expert_return: float):
    """0 for the random policy, 1 for the expert."""
    return (returns - random_return) / (expert_return - random_return)


def pendulum_arms(config: VideoRewards, models: dict, key) -> dict:
    """The PPO arms of :data:`ARMS` on Pendulum-v1, the same seeds each."""
    import jax
    import numpy as np

    from learnenv import envs
    from learnenv.rewards.curiosity import Curiosity
    from learnenv.rewards.replace import LearnedReward
    from learnenv.rewards.video import VideoReward, frames

    env, env_params = envs.make("Pendulum-v1")
    cfg = ppo_config(config.ppo_timesteps)
    keys = jax.random.split(key, config.num_seeds)
    arms = {}
    for name, (model, floor, bonus) in ARMS.items():
        if model is None:
            # Pendulum's reward scaled by 0.1 (about -16 per step at worst), the same
            # PPO otherwise; the agent is scored on the unscaled true return.
            train_env = LearnedReward(env, lambda p, t: 0.0, None, extrinsic_weight=0.1,
                                      learned_weight=0.0)
            train_params = train_env.default_params
        else:
            m = models[model]
            train_env = VideoReward(m["video"])
            train_params = train_env.with_model(m["params"], m["low"], m["high"],
                                                config.floor if floor is None else floor)
            if bonus:
                video = m["video"]
                train_env = Curiosity(train_env, train_params, kind="rnd", beta=config.beta,
                                      view=lambda obs: frames(video, obs))
        t0 = time.perf_counter()
        episodes = jax.block_until_ready(
            make_arm(train_env, train_params, env, env_params, cfg)(keys))
        returns = np.asarray(episodes.returns())  # (seeds, episodes)
        arms[name] = {"greedy_return": returns.mean(1), **pendulum_behaviour(episodes),
                      "seconds": time.perf_counter() - t0}
        print(f"{name}: greedy true return per seed {np.round(returns.mean(1), 1)}, "
              f"{arms[name]['seconds']:.0f} s")
    return arms


def cartpole_pitfall(config: VideoRewards, key) -> dict:
    """CartPole with a VIPER reward of either sign: ``r`` in [0, 1] and ``r - 1`` in
    [-1, 0]. The same video model and the same PPO; only the offset differs."""
    import jax
    import numpy as np
    from scipy.stats import spearmanr

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.rewards.video import VideoReward

    env, env_params = envs.make("CartPole-v1")
    expert_key, video_key, eval_key, fit_key, arm_key = jax.random.split(key, 5)
    expert_cfg = ppo_config(config.cartpole_expert_steps, continuous=False)
    expert = jax.jit(ppo.make_train(expert_cfg, env, env_params))(expert_key).params
    policy = ppo.make_policy(expert_cfg, env, env_params)
    expert_returns = evaluate(policy, expert, env, env_params, video_key, 32)
    videos = expert_videos(env, env_params, policy, expert, video_key,
                           max(config.expert_episodes // 4, 8))
    video = video_config(config, "CartPole-v1")
    params, _, low, high, _ = fit_video_model(video, videos, fit_key, config.tokenizer_frames)
    # The diagnostic on CartPole: episodes of different lengths, so the sign matters.
    evaluation = policy_videos(env, env_params, policy, expert, eval_key, config.eval_episodes)
    d = diagnostic(video, params, low, high, evaluation)
    lengths = np.concatenate([np.asarray(e.lengths()) for e in evaluation])
    true = np.concatenate(d["true_return"])
    negative = np.concatenate(d["reward_return"]) - lengths  # the sum of r - 1
    d["spearman_negative"] = float(spearmanr(true, negative)[0])
    viper_env = VideoReward(video)
    cfg = ppo_config(config.cartpole_timesteps, continuous=False)
    keys = jax.random.split(arm_key, config.num_seeds)
    signs = {}
    for name, offset in (("r in [0, 1]", 0.0), ("r - 1 in [-1, 0]", -1.0)):
        train_params = viper_env.with_model(params, low, high).replace(offset=offset)
        episodes = make_arm(viper_env, train_params, env, env_params, cfg)(keys)
        returns = np.asarray(episodes.returns())  # (seeds, episodes)
        signs[name] = {"greedy_return": returns.mean(1), "offset": offset}
        print(f"CartPole, {name}: greedy true return per seed {np.round(returns.mean(1), 1)}")
    return {"expert_return": float(expert_returns.mean()), "signs": signs,
            "spearman_log_likelihood": d["spearman_log_likelihood"],
            "spearman_reward": d["spearman_reward"], "spearman_negative": d["spearman_negative"],
            "true_return": d["true_return"], "log_likelihood_return": d["log_likelihood_return"]}


def run(config: VideoRewards, out_dir: Path, key: Any) -> dict[str, Any]:
    import jax
    import numpy as np

    from learnenv import envs
    from learnenv.rewards import video as viper

    t_start = time.perf_counter()
    expert_key, video_key, eval_key, fit_key, arm_key, cart_key = jax.random.split(key, 6)
    env, env_params = envs.make("Pendulum-v1")
    policy, expert_params, expert_returns = train_expert(config, expert_key)
    print(f"expert (SAC, {config.expert_steps} steps): greedy return "
          f"{float(expert_returns.mean()):.1f}")
    videos = expert_videos(env, env_params, policy, expert_params, video_key,
                           config.expert_episodes)
    evaluation = policy_videos(env, env_params, policy, expert_params, eval_key,
                               config.eval_episodes)

    more_videos = expert_videos(env, env_params, policy, expert_params, video_key,
                                4 * config.expert_episodes)
    models = {}
    for name, changes, videos in (
            ("main", {}, videos), ("no subsampling", {"subsample": 1}, videos),
            ("more videos", {}, more_videos), ("score shown", {"score": True}, videos),
            ("score masked", {"score": True, "mask_score": True}, videos),
            ("tokenizer on expert frames", {}, videos)):
        video = video_config(config, **changes)
        scene = 0 if name == "tokenizer on expert frames" else config.tokenizer_frames
        params, info, low, high, seconds = fit_video_model(video, videos, fit_key, scene)
        models[name] = {"video": video, "params": params, "low": low, "high": high,
                        "fit_seconds": seconds,
                        "codes_used": int((np.asarray(info["usage"]) > 0).sum())}
        print(f"video model ({name}): fitted in {seconds:.0f} s, "
              f"{models[name]['codes_used']} codes used")

    diagnostics = {}
    for name in models:
        m = models[name]
        for likelihood in ("joint", "conditional"):
            video = m["video"].replace(likelihood=likelihood)
            if likelihood != "joint" and name != "main":
                continue
            low, high = m["low"], m["high"]
            if likelihood != m["video"].likelihood:  # another score needs its own expert range
                scores = viper.step_log_likelihoods(video, m["params"], videos)
                low, high = map(float, viper.expert_range(scores, videos.mask))
            d = diagnostic(video, m["params"], low, high, evaluation, config.floor)
            diagnostics[f"{name}, {likelihood}"] = d
            print(f"diagnostic ({name}, {likelihood}): Spearman {d['spearman_reward']:.3f}")

    angles = np.linspace(0.0, np.pi, 5)
    static = {name: np.asarray(static_video_reward(models[name]["video"], models[name]["params"],
                                                   models[name]["low"], models[name]["high"],
                                                   angles, config.floor))
              for name in ("main", "no subsampling", "more videos")}
    leak = {name: np.asarray(score_leak(models[name]["video"], models[name]["params"],
                                        evaluation[-1]))
            for name in ("score shown", "score masked")}

    arms = pendulum_arms(config, models, arm_key)
    random_return = float(np.mean(evaluation[-1].returns()))
    expert_return = float(np.mean(expert_returns))
    for arm in arms.values():
        arm["normalised"] = normalised(arm["greedy_return"], random_return, expert_return)
        arm["normalised_mean"] = float(np.mean(arm["normalised"]))
    cartpole = cartpole_pitfall(config, cart_key)

    from learnenv.rewards.video import VideoReward
    viper_env = VideoReward(models["main"]["video"])
    from learnenv import io
    io.save_environment(out_dir / "viper-pendulum", viper_env,
                        viper_env.with_model(models["main"]["params"], models["main"]["low"],
                                             models["main"]["high"], config.floor),
                        config=config, metrics={"expert_return": expert_return,
                                                "spearman": diagnostics["main, joint"][
                                                    "spearman_reward"]})
    return {
        "expert_return": expert_return, "random_return": random_return,
        "expert_returns": np.asarray(expert_returns),
        "epsilons": list(EPSILONS),
        "models": {k: {kk: v for kk, v in m.items() if kk not in ("params", "video")}
                   | {"video": m["video"].to_dict()} for k, m in models.items()},
        "diagnostics": diagnostics,
        "static_angles": angles, "static_reward": static,
        "score_leak": leak,
        "arms": arms,
        "cartpole": cartpole,
        "seconds": time.perf_counter() - t_start,
    }


register("video-rewards",
         "VIPER on Pendulum-v1: a video model of an expert as the only reward; diagnostic, "
         "PPO arms, failure modes, and the CartPole sign pitfall.",
         presets=PRESETS, run=run)
