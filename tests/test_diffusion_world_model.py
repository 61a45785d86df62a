"""The diffusion world model of the interactive-simulators chapter: frames, wrappers,
EDM, fitting, the environment, the play panel and the experiment's presets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs, io
from learnenv.envs import render
from learnenv.envs.wrappers import FrameStack, StickyActions
from learnenv.worldmodels import diffusion, pixels
from learnenv.worldmodels.data import collect, random_policy

GAME = "Breakout-MinAtar"
# A tiny model: compiles and trains in seconds on a CPU.
TINY = diffusion.DiffusionConfig(sources=(GAME,), channels=(8, 16), embed_dim=16,
                                 head_hidden=32, steps=150, batch_size=16, chunk=50,
                                 learning_rate=2e-3)


@pytest.fixture(scope="module")
def breakout_data():
    env, env_params = envs.make(GAME)
    episodes = jax.jit(lambda k: collect(env, env_params, random_policy(env, env_params), None,
                                         k, 24, max_steps=60))(jax.random.key(0))
    return pixels.frame_data(GAME, episodes, 10, TINY.action_size)


@pytest.fixture(scope="module")
def tiny_model(breakout_data):
    return diffusion.fit(TINY, jax.random.key(1), (breakout_data,), progress=False)


# Frames and wrappers ----------------------------------------------------------------
def test_minatar_renderer_is_the_gray_grid_upsampled_by_whole_cells():
    env, env_params = envs.make(GAME)
    obs, _ = env.reset(jax.random.key(3), env_params)
    frame = render.renderer(GAME, 10)(obs)
    np.testing.assert_array_equal(frame, render.minatar(obs))
    big = render.renderer(GAME, 20)(obs)
    np.testing.assert_array_equal(big[::2, ::2], frame)
    np.testing.assert_array_equal(big[1::2, 1::2], frame)


def test_sticky_actions_repeat_the_previous_action_with_probability_p():
    env, env_params = envs.make(GAME)
    never, always = StickyActions(env, 0.0), StickyActions(env, 0.999)
    _, state = never.reset(jax.random.key(0), env_params)
    _, state, *_ = never.step(jax.random.key(1), state, 2, env_params)
    assert int(state.last_action) == 2
    _, state = always.reset(jax.random.key(0), env_params)
    _, state, *_ = always.step(jax.random.key(1), state, 2, env_params)
    assert int(state.last_action) == 0  # the start's action 0 stuck

    # The frequency of sticking is p, over many steps.
    sticky, _ = envs.make(GAME, sticky=0.3)
    assert isinstance(sticky, StickyActions)
    _, state = sticky.reset(jax.random.key(0), env_params)
    states = jax.vmap(lambda k: sticky.step(k, state, 1, env_params)[1].last_action)(
        jax.random.split(jax.random.key(2), 4000))
    assert abs(float(jnp.mean(states == 0)) - 0.3) < 0.03
    with pytest.raises(ValueError, match="p=1.5"):
        StickyActions(env, 1.5)
    with pytest.raises(ValueError, match="continuous"):
        envs.make("Pendulum-v1", sticky=0.1)


def test_frame_stack_shifts_frames_and_restarts_with_the_first_frame_repeated():
    env, env_params = envs.make("CartPole-v1")
    draw = render.renderer("CartPole-v1", 16)
    stacked = FrameStack(env, draw, 3)
    assert stacked.observation_space(env_params).shape == (3, 16, 16)
    obs, state = stacked.reset(jax.random.key(0), env_params)
    assert obs.shape == (3, 16, 16)
    np.testing.assert_array_equal(obs[0], obs[2])
    new, state, *_, info = stacked.step(jax.random.key(1), state, 1, env_params)
    np.testing.assert_array_equal(new[:2], obs[1:])
    assert not np.array_equal(new[2], obs[2])
    # Push one way until the pole falls: the next observation is a fresh episode's.
    for t in range(200):
        before = state.frames
        new, state, _, terminated, truncated, info = stacked.step(jax.random.key(t), state, 1,
                                                                   env_params)
        if bool(terminated):
            break
    assert bool(terminated)
    np.testing.assert_array_equal(info["final_observation"][:2], before[1:])
    np.testing.assert_array_equal(new[0], new[2])
    with pytest.raises(ValueError, match="num_frames=0"):
        FrameStack(env, draw, 0)


# Pixels ------------------------------------------------------------------------------
def test_action_vectors_one_hot_or_scaled_and_padded():
    v = pixels.action_vector(GAME, jnp.array([0, 2]), 5)
    np.testing.assert_array_equal(v, [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]])
    torque = pixels.action_vector("Pendulum-v1", jnp.array([[1.0], [-2.0]]), 3)
    np.testing.assert_allclose(torque, [[0.5, 0, 0], [-1.0, 0, 0]])
    with pytest.raises(ValueError, match="action_dim=2"):
        pixels.action_vector("Asterix-MinAtar", jnp.array(4), 2)


def test_window_repeats_the_first_frame_and_sampling_takes_real_steps_only(breakout_data):
    frames = jnp.arange(6.0)[:, None, None] * jnp.ones((6, 2, 2))
    np.testing.assert_array_equal(pixels.window(frames, 1, 4)[:, 0, 0], [0, 0, 0, 1])
    np.testing.assert_array_equal(pixels.window(frames, 5, 3)[:, 0, 0], [3, 4, 5])
    batch = pixels.sample_windows(breakout_data, jax.random.key(0), 512, 4)
    assert batch["context"].shape == (512, 4, 10, 10) and batch["next"].shape == (512, 10, 10)
    # Every drawn step is a real one: the batch's terminations are the data's rate.
    rate = float(breakout_data.terminated.sum() / breakout_data.mask.sum())
    assert abs(float(batch["terminated"].mean()) - rate) < 0.05


def test_psnr_and_sharpness():
    rng = np.random.default_rng(0)
    target = jnp.asarray(rng.uniform(size=(3, 8, 8)), jnp.float32)
    assert float(pixels.psnr(target, target).min()) == pytest.approx(100.0)
    noisy = target + 0.1
    np.testing.assert_allclose(pixels.psnr(noisy, target), 20.0, atol=1e-3)
    edge = jnp.zeros((8, 8)).at[:, 4:].set(1.0)
    blurred = jnp.zeros((8, 8)).at[:, 3].set(1 / 3).at[:, 4].set(2 / 3).at[:, 5:].set(1.0)
    assert float(pixels.sharpness(blurred)) < float(pixels.sharpness(edge))


# EDM -----------------------------------------------------------------------------------
def test_config_rejects_bad_values_with_the_field_named():
    for bad, match in (({"sources": ("Acrobot-v1",)}, "no renderer"),
                       ({"sources": (GAME, GAME)}, "distinct"),
                       ({"channels": ()}, "channels"),
                       ({"frame_size": 15}, "multiple of 10"),
                       ({"sources": ("CartPole-v1",), "frame_size": 18, "channels": (8, 8, 8)},
                        "halve"),
                       ({"sources": ("Asterix-MinAtar",), "action_dim": 3}, "action_dim=3"),
                       ({"sigma_min": 6.0}, "sigma_min"),
                       ({"objective": "l1"}, "objective")):
        with pytest.raises(ValueError, match=match):
            diffusion.DiffusionConfig(**bad)


def test_karras_schedule_runs_from_sigma_max_down_to_zero():
    levels = np.asarray(diffusion.sigmas(TINY, 5))
    assert levels.shape == (6,)
    assert levels[0] == pytest.approx(TINY.sigma_max) and levels[-2] == pytest.approx(
        TINY.sigma_min, rel=1e-4)
    assert levels[-1] == 0.0 and np.all(np.diff(levels) < 0)
    np.testing.assert_allclose(diffusion.sigmas(TINY, 1), [TINY.sigma_max, 0.0], rtol=1e-5)


def test_one_euler_step_is_the_denoiser_applied_to_pure_noise(breakout_data):
    params = diffusion.init_params(TINY, jax.random.key(0))
    batch = pixels.sample_windows(breakout_data, jax.random.key(1), 4, TINY.context)
    source = jnp.zeros((4,), jnp.int32)
    key = jax.random.key(2)
    sampled = diffusion.sample_next(TINY, params, batch["context"], batch["action"], source, key,
                                    steps=1)
    noise = TINY.sigma_max * jax.random.normal(key, (4, 10, 10))
    direct = diffusion.denoise(TINY, params, noise, jnp.full((4,), TINY.sigma_max),
                               batch["context"], batch["action"], source)
    np.testing.assert_allclose(sampled, jnp.clip((direct + 1) / 2, 0, 1), atol=1e-5)
    assert sampled.shape == (4, 10, 10)


def test_fit_learns_deterministically_and_the_sampler_uses_it(tiny_model, breakout_data):
    params, metrics = tiny_model
    loss = np.asarray(metrics["frame_loss"])
    assert loss.shape == (TINY.steps,)
    assert loss[-30:].mean() < 0.5 * loss[:10].mean()
    again, _ = diffusion.fit(TINY.replace(steps=20), jax.random.key(1), (breakout_data,),
                             progress=False)
    twice, _ = diffusion.fit(TINY.replace(steps=20), jax.random.key(1), (breakout_data,),
                             progress=False)
    jax.tree.map(np.testing.assert_array_equal, again, twice)
    # The trained model predicts the next frame better than the untrained one.
    batch = pixels.sample_windows(breakout_data, jax.random.key(5), 64, TINY.context)
    source = jnp.zeros((64,), jnp.int32)

    def error(p):
        frames = diffusion.sample_next(TINY, p, batch["context"], batch["action"], source,
                                       jax.random.key(6))
        return float(jnp.mean(jnp.square(frames - batch["next"])))

    assert error(params) < 0.5 * error(diffusion.init_params(TINY, jax.random.key(0)))


def test_fit_resumes_from_its_checkpoint_without_recomputing(tmp_path, breakout_data):
    config = TINY.replace(steps=20, chunk=10)
    first, m1 = diffusion.fit(config, jax.random.key(4), (breakout_data,),
                              checkpoint_dir=tmp_path, progress=False)
    second, m2 = diffusion.fit(config, jax.random.key(4), (breakout_data,),
                               checkpoint_dir=tmp_path, progress=False)
    jax.tree.map(np.testing.assert_array_equal, first, second)
    np.testing.assert_array_equal(m1["frame_loss"], m2["frame_loss"])
    with pytest.raises(ValueError, match="weights"):
        diffusion.fit(config, jax.random.key(4), (breakout_data,), weights=[0.0])
    with pytest.raises(ValueError, match="1 datasets for 2 sources"):
        diffusion.fit(config.replace(sources=(GAME, "Asterix-MinAtar")), jax.random.key(4),
                      (breakout_data,))


def test_mse_objective_is_deterministic(breakout_data):
    config = TINY.replace(objective="mse")
    params = diffusion.init_params(config, jax.random.key(0))
    batch = pixels.sample_windows(breakout_data, jax.random.key(1), 4, config.context)
    source = jnp.zeros((4,), jnp.int32)
    a = diffusion.sample_next(config, params, batch["context"], batch["action"], source,
                              jax.random.key(2))
    b = diffusion.sample_next(config, params, batch["context"], batch["action"], source,
                              jax.random.key(3))
    np.testing.assert_array_equal(a, b)


def test_two_sources_with_different_action_spaces_train_one_model():
    config = TINY.replace(sources=(GAME, "Asterix-MinAtar"), steps=2)
    data = []
    for game in config.sources:
        env, env_params = envs.make(game)
        episodes = collect(env, env_params, random_policy(env, env_params), None,
                           jax.random.key(0), 4, max_steps=20)
        data.append(pixels.frame_data(game, episodes, 10, config.action_size))
    params, metrics = diffusion.fit(config, jax.random.key(0), data, progress=False)
    assert params["denoiser"]["params"]["action_map"].shape == (2, 5, config.embed_dim)
    assert np.isfinite(np.asarray(metrics["frame_loss"])).all()


# The environment -------------------------------------------------------------------------
def test_environment_contract_vmap_and_save_load(tmp_path, tiny_model):
    params, _ = tiny_model
    env = diffusion.DiffusionEnvironment(TINY, source=GAME, max_steps_in_episode=30)
    env_params = env.with_model(params)
    obs, state = env.reset(jax.random.key(0), env_params)
    assert obs.shape == (4, 10, 10) and env.observation_space(env_params).shape == (4, 10, 10)
    assert env.action_space(env_params).n == 3
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    keys = jax.random.split(jax.random.key(1), 5)
    obs5, state5 = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
    out = step(keys, state5, jnp.array([0, 1, 2, 0, 1]), env_params)
    assert out[0].shape == (5, 4, 10, 10)
    assert float(out[0].min()) >= 0.0 and float(out[0].max()) <= 1.0
    assert out[2].shape == (5,) and out[3].dtype == jnp.bool_

    io.save_environment(tmp_path / "model", env, env_params, config=TINY)
    loaded, loaded_params = io.load_environment(tmp_path / "model")
    assert isinstance(loaded, diffusion.DiffusionEnvironment)
    again = jax.jit(jax.vmap(loaded.step, in_axes=(0, 0, 0, None)))(
        keys, state5, jnp.array([0, 1, 2, 0, 1]), loaded_params)
    np.testing.assert_allclose(again[0], out[0], atol=1e-6)

    with pytest.raises(ValueError, match="not a source"):
        diffusion.DiffusionEnvironment(TINY, source="Asterix-MinAtar")
    with pytest.raises(ValueError, match="denoising_steps=0"):
        diffusion.DiffusionEnvironment(TINY, denoising_steps=0)
    with pytest.raises(ValueError, match=r"shape \(16, 16\)"):
        env.prompt(jnp.zeros((16, 16)))
    with pytest.raises(TypeError, match="DiffusionConfig"):
        diffusion.DiffusionEnvironment(config=3)


def test_an_agent_trains_in_the_model_unchanged(tiny_model):
    from learnenv.agents import ppo

    params, _ = tiny_model
    env = diffusion.DiffusionEnvironment(TINY, max_steps_in_episode=20)
    cfg = ppo.PPOConfig(total_timesteps=2 * 4 * 16, num_envs=4, num_steps=16)
    result = jax.jit(ppo.make_train(cfg, env, env.with_model(params)))(jax.random.key(0))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(result.params))


# The play panel ----------------------------------------------------------------------------
def test_panel_buttons_step_the_environment_and_restart_at_the_end(tiny_model):
    from learnenv.play import Panel, animation

    params, _ = tiny_model
    env = diffusion.DiffusionEnvironment(TINY, max_steps_in_episode=3)
    panel = Panel(env, env.with_model(params), jax.random.key(0), ["no-op", "left", "right"])
    first = panel.image.value
    panel.buttons[1].click()
    panel.buttons[2].click()
    assert len(panel.history) == 3 and len(panel.rewards) == 2
    assert panel.image.value != first or not np.array_equal(panel.history[0], panel.history[2])
    panel.press(0)  # the third step reaches the cap: the episode starts again
    np.testing.assert_array_equal(panel.history[-1], panel.history[0])
    assert "episode ended" in panel.status.value
    with pytest.raises(ValueError, match="2 action names for 3"):
        Panel(env, env.with_model(params), jax.random.key(0), ["a", "b"])
    html = animation({"model": np.stack(panel.history)}).data
    assert "<img" in html or "animation" in html.lower()


# The experiment's presets ----------------------------------------------------------------
def test_full_preset_runs_its_first_training_step_on_cpu():
    from learnenv.experiments.interactive_simulators import PRESETS, model_config

    full = PRESETS["full"]
    config = model_config(full)
    data = []
    for game in full.sources:
        env, env_params = envs.make(game, sticky=full.sticky)
        episodes = collect(env, env_params, random_policy(env, env_params), None,
                           jax.random.key(0), 2, max_steps=12)
        data.append(pixels.frame_data(game, episodes, full.frame_size, config.action_size))
    init, update = diffusion.make_fit(config)
    state, metrics = jax.jit(update)(init(jax.random.key(0)), tuple(data),
                                     jnp.ones(2) / len(data))
    assert np.isfinite(float(metrics["frame_loss"]))
    assert state["params"]["denoiser"]["params"]["action_map"].shape[0] == 2


def _paddle_column(frame) -> int:
    """The paddle's column in a Breakout frame: the bottom-row cell closest to the
    paddle's gray level (channel 0 of 4: 0.25)."""
    return int(np.argmin(np.abs(np.asarray(frame)[9] - 0.25)))


def test_panel_moves_the_shipped_models_paddle_the_way_the_real_game_does():
    """Press left, or right, three times from the same real first frame: the learned
    simulator's paddle ends on the same side as the real game's."""
    from learnenv import pretrained
    from learnenv.play import Panel

    model_env, model_params = pretrained.load("diffusion-minatar")
    real, real_params = envs.make(GAME)
    obs, real_state = real.reset(jax.random.key(11), real_params)
    frame = render.renderer(GAME, 10)(obs)
    ends = {}
    for name, action in (("left", 1), ("right", 2)):
        panel = Panel(model_env, model_params, jax.random.key(5), ["no-op", "left", "right"],
                      start=model_env.prompt(frame))
        state = real_state
        for _ in range(3):
            panel.buttons[action].click()
            obs, state, *_ = real.step(jax.random.key(0), state, action, real_params)
        ends[name] = (_paddle_column(panel.history[-1]), _paddle_column(render.minatar(obs)))
    (model_left, real_left), (model_right, real_right) = ends["left"], ends["right"]
    assert real_right > real_left
    assert model_right > model_left, ends


@pytest.mark.slow
def test_toy_run_of_the_experiment_reports_every_section(tmp_path):
    from learnenv.experiments import run_experiment
    from learnenv.experiments.interactive_simulators import PRESETS

    config = PRESETS["quick"].replace(
        expert_steps=20_000, random_episodes=16, expert_episodes=6, heldout_episodes=2,
        max_steps=60, model_steps=20, channels=(8, 16), agent_timesteps=64 * 128,
        horizon=6, start=2, speed_envs=4, num_seeds=2, step_choices=(1, 2))
    record = run_experiment("interactive-simulators", tmp_path, config=config)
    res = record["results"]
    for game in config.sources:
        for arm in ("edm-1", "edm-2", "mse"):
            curve = res["horizon"][game][arm]
            assert len(curve["psnr"]) == 6 and np.isfinite(curve["psnr"]).all()
        assert len(res["single_source"][game]["horizon"]["psnr"]) == 6
    assert {"real", "real_frames", "edm-1", "edm-2", "mse"} <= set(res["speed"])
    assert all(v > 0 for v in res["speed"].values())
    assert len(res["agents"]["inside_model"]) == 2 and len(res["agents"]["real_data"]) == 2
    loaded, _ = io.load_environment(tmp_path / "diffusion-world-model")
    assert isinstance(loaded, diffusion.DiffusionEnvironment)


def test_reward_head_classifies_the_sign_of_the_reward(tiny_model, breakout_data):
    """The head's reward is exactly -1, 0 or 1, and after fitting it finds the data's
    brick rewards more often than on ordinary steps."""
    params, _ = tiny_model
    batch = pixels.sample_windows(breakout_data, jax.random.key(9), 512, TINY.context)
    reward, logit = diffusion.predict_heads(TINY, params, batch["context"][:, -1], batch["next"],
                                            batch["action"], jnp.zeros((512,), jnp.int32))
    assert set(np.unique(np.asarray(reward))) <= {-1.0, 0.0, 1.0}
    assert logit.shape == (512,)
    assert float(jnp.mean(reward == 0.0)) > 0.8  # most steps pay nothing, as in the data


def test_shipped_models_are_the_shipped_runs_and_predict_like_it():
    """The shipped models come from the shipped quick run (same commit, same configs);
    the diffusion model beats copying the last frame at step 10 on the scripted
    player's episodes, as the run measured on its held-out episodes."""
    import json

    from learnenv import pretrained, results
    from learnenv.experiments import interactive_simulators as sim

    shipped = json.loads(results.path(
        "interactive-simulators/interactive-simulators-quick.json").read_text())
    config = sim.InteractiveSimulators.from_dict(shipped["config"]["values"])
    for name, objective in (("diffusion-minatar", "edm"), ("mse-minatar", "mse")):
        env, env_params = pretrained.load(name)
        meta = json.loads(pretrained.path(name).with_suffix(".json").read_text())
        assert env.config == sim.model_config(config, objective=objective)
        assert meta["provenance"]["git"]["commit"] == shipped["provenance"]["git"]["commit"]
    res = shipped["results"]
    breakout = res["horizon"][GAME]["edm-3"]
    assert breakout["psnr"][9] > breakout["copy_psnr"][9]
    assert len(res["agents"]["inside_model"]) >= 4

    env, env_params = pretrained.load("diffusion-minatar")
    real, real_params = envs.make(GAME, sticky=config.sticky)
    episodes = collect(real, real_params, sim.track_ball, None, jax.random.key(20), 32,
                       max_steps=100, epsilon=0.1)
    data = pixels.frame_data(GAME, episodes, config.frame_size, env.config.action_size)
    longest = np.argsort(-np.asarray(data.mask.sum(1)))[:8]
    test = jax.tree.map(lambda x: x[longest], data)
    r = sim.open_loop(env.config, env_params.network_params, test, 0, jax.random.key(1), 10, 4)
    assert float(r["psnr"][9]) > float(r["copy_psnr"][9])
