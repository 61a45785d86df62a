"""The VIPER experiment (learnenv.experiments.video_rewards) and its shipped results.

The library pieces (renderers, VQ, transformer, the reward wrapper) are tested in
tests/test_video_rewards.py; here: the presets, the full preset's first training
step on a CPU, the paper's diagnostic on the quick preset's scale, the whole run
end to end at toy size, and the shipped model and results the chapter reads.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from learnenv import experiments, pretrained, results
from learnenv.agents import ppo
from learnenv.experiments import video_rewards as vr
from learnenv.rewards import video as viper
from learnenv.worldmodels.data import collect, random_policy


def test_experiment_is_registered_and_its_presets_are_ordered():
    exp = experiments.get("video-rewards")
    quick, full = exp.config("quick"), exp.config("full")
    assert quick.num_seeds >= 4 and full.num_seeds >= quick.num_seeds
    assert full.frame_size > quick.frame_size and full.d_model > quick.d_model
    assert full.ppo_timesteps > quick.ppo_timesteps
    assert vr.video_config(full).tokens_per_frame > vr.video_config(quick).tokens_per_frame
    with pytest.raises(ValueError, match="num_seeds"):
        vr.VideoRewards(num_seeds=0)
    with pytest.raises(ValueError, match="patch"):
        vr.video_config(quick, patch=5)


def test_full_preset_first_training_step_runs_on_cpu():
    full = vr.PRESETS["full"]
    video = vr.video_config(full, tokenizer_steps=1, prior_steps=1)
    env, env_params = viper.make("Pendulum-v1")
    episodes = collect(env, env_params, random_policy(env, env_params), None,
                       jax.random.key(0), num_episodes=2)
    params, info = jax.jit(viper.make_fit(video))(jax.random.key(1), episodes)
    assert np.isfinite(np.asarray(info["tokenizer_loss"])).all()
    assert np.isfinite(np.asarray(info["prior_loss"])).all()
    # One PPO update of the full preset's agent on the full preset's reward.
    cfg = vr.ppo_config(full.ppo_timesteps)
    cfg = cfg.replace(total_timesteps=cfg.batch_size)
    reward_env = viper.VideoReward(video)
    result = jax.jit(ppo.make_train(cfg, reward_env, reward_env.with_model(params, -200.0, -1.0)))(
        jax.random.key(2))
    assert np.asarray(result.metrics["timesteps"])[-1] == cfg.batch_size
    assert np.isfinite(np.asarray(result.metrics["policy_loss"])).all()


@pytest.mark.slow
def test_quick_preset_reward_ranks_episodes_like_the_true_return():
    """The chapter's diagnostic at the quick preset's scale: Spearman >= 0.8."""
    config = vr.PRESETS["quick"]
    env, env_params = viper.make("Pendulum-v1")
    policy, params, returns = vr.train_expert(config, jax.random.key(0))
    assert float(returns.mean()) >= -200.0  # the expert the issue asks for
    videos = vr.expert_videos(env, env_params, policy, params, jax.random.key(1),
                              config.expert_episodes)
    video = vr.video_config(config)
    model, _, low, high, _ = vr.fit_video_model(video, videos, jax.random.key(2),
                                                config.tokenizer_frames)
    evaluation = vr.policy_videos(env, env_params, policy, params, jax.random.key(3),
                                  config.eval_episodes)
    d = vr.diagnostic(video, model, low, high, evaluation, config.floor)
    assert d["spearman_reward"] >= 0.8, d["spearman_reward"]
    # The expert's episodes earn more reward than the random policy's.
    assert np.mean(d["reward_return"][0]) > np.mean(d["reward_return"][-1])


@pytest.mark.slow
def test_the_whole_run_at_toy_size(tmp_path):
    config = vr.VideoRewards(num_seeds=1, expert_steps=2_000, expert_episodes=8,
                             eval_episodes=2, tokenizer_steps=20, prior_steps=20,
                             reset_every=10, ppo_timesteps=4_096, cartpole_expert_steps=512,
                             cartpole_timesteps=512)
    out = experiments.get("video-rewards").run(config, tmp_path, jax.random.key(0))
    assert set(out["arms"]) == set(vr.ARMS)
    for arm in out["arms"].values():
        assert np.shape(arm["greedy_return"]) == (1,) and np.isfinite(arm["normalised_mean"])
    assert set(out["cartpole"]["signs"]) == {"r in [0, 1]", "r - 1 in [-1, 0]"}
    assert np.shape(out["static_reward"]["main"]) == (5,)
    env, env_params = pretrained.io.load_environment(tmp_path / "viper-pendulum",
                                                     expect_kind="video-reward")
    assert env.config == vr.video_config(config)


def test_shipped_model_loads_and_scores_like_its_record():
    env, env_params = pretrained.load("viper-pendulum")
    assert isinstance(env, viper.VideoReward)
    meta = json.loads(pretrained.path("viper-pendulum").with_suffix(".json").read_text())
    shipped = json.loads(results.path("video-rewards/video-rewards-quick.json").read_text())
    # The shipped model is the one the shipped run saved: same config, same range.
    assert env.config.to_dict() == shipped["results"]["models"]["main"]["video"]
    np.testing.assert_allclose(float(env_params.reward_params["low"]),
                               shipped["results"]["models"]["main"]["low"], rtol=1e-6)
    assert meta["provenance"]["git"]["commit"] == shipped["provenance"]["git"]["commit"]
    obs, state = env.reset(jax.random.key(0), env_params)
    _, _, reward, _, _, info = env.step(jax.random.key(1), state, np.zeros(1), env_params)
    assert 0.0 <= float(reward) <= 1.0 and "extrinsic_reward" in info
