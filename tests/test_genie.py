"""Genie at laptop scale: videos, the latent action model, the MaskGIT dynamics model,
the environment, the play panel and the experiment's presets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs, io
from learnenv.envs.wrappers import MappedActions
from learnenv.worldmodels import genie
from learnenv.worldmodels import latent_actions as la
from learnenv.worldmodels.data import collect, random_policy

GAME = "Breakout-MinAtar"
TINY_LAM = la.LAMConfig(num_latents=4, width=8, code_dim=8, steps=60, batch_size=16, chunk=30)
TINY_DYN = genie.DynamicsConfig(num_actions=4, d_model=16, num_layers=1, num_heads=2,
                                head_hidden=16, steps=60, batch_size=16, chunk=30)


@pytest.fixture(scope="module")
def video():
    env, env_params = envs.make(GAME)
    episodes = jax.jit(lambda k: collect(env, env_params, random_policy(env, env_params), None,
                                         k, 32, max_steps=60))(jax.random.key(0))
    return la.video(episodes)


@pytest.fixture(scope="module")
def tiny(video):
    lam_params, lam_metrics = la.fit(TINY_LAM, jax.random.key(1), video, progress=False)
    dyn_params, dyn_metrics = genie.fit(TINY_DYN, jax.random.key(2), video,
                                        label=la.Labels(TINY_LAM), labeller=lam_params,
                                        progress=False)
    return lam_params, lam_metrics, dyn_params, dyn_metrics


# Videos and tokens -----------------------------------------------------------------------
def test_video_keeps_frames_in_order_and_the_true_actions_aside(video):
    assert video.frames.shape[2:] == (10, 10, 4)
    assert video.frames.shape[1] == video.mask.shape[1] + 1
    assert set(np.unique(np.asarray(video.frames))) <= {0.0, 1.0}
    batch = la.sample_transitions(video, jax.random.key(3), 256, 2)
    assert batch["context"].shape == (256, 2, 10, 10, 4)
    assert set(np.unique(np.asarray(batch["true_action"]))) <= {0, 1, 2}
    with pytest.raises(ValueError, match="grid frames"):
        env, env_params = envs.make("CartPole-v1")
        la.video(collect(env, env_params, random_policy(env, env_params), None,
                         jax.random.key(0), 2, max_steps=5))


def test_tokens_are_the_cells_bits_and_invert_exactly(video):
    frames = video.frames[:4, :5]
    tokens = genie.tokens(frames)
    assert tokens.shape == (4, 5, 100) and int(tokens.max()) < 16
    np.testing.assert_array_equal(genie.grids(tokens, 10, 4), frames)
    one = jnp.zeros((10, 10, 4)).at[2, 3, 1].set(1.0).at[2, 3, 3].set(1.0)
    assert int(genie.tokens(one)[23]) == 2 + 8


# Evaluation of latent actions ----------------------------------------------------------------
def test_nmi_is_one_for_a_relabelling_and_near_zero_for_independent_labels():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, 5000)
    assert la.normalized_mutual_information((actions + 1) % 3, actions) == pytest.approx(1.0)
    assert la.normalized_mutual_information(rng.integers(0, 4, 5000), actions) < 0.01
    # one action split over two codes: still informative, but below 1
    split = np.where((actions == 0) & (rng.random(5000) < 0.5), 3, actions)
    assert 0.7 < la.normalized_mutual_information(split, actions) < 1.0


def test_mapping_takes_the_majority_and_unseen_latents_the_commonest_action():
    latents = np.array([0, 0, 0, 1, 1, 2])
    actions = np.array([2, 2, 1, 0, 0, 2])
    mapping = la.fit_mapping(latents, actions, 4)
    assert mapping.tolist() == [2, 0, 2, 2]  # latent 3 unseen: action 2, the commonest
    assert la.mapped_accuracy(mapping, latents, actions) == pytest.approx(5 / 6)


# Fitting ----------------------------------------------------------------------------------------
def test_lam_fit_learns_resets_dead_codes_and_is_deterministic(video, tiny):
    lam_params, metrics, _, _ = tiny
    recon = np.asarray(metrics["reconstruction"])
    assert recon[-10:].mean() < 0.5 * recon[:10].mean()
    again, _ = la.fit(TINY_LAM, jax.random.key(1), video, progress=False)
    np.testing.assert_array_equal(again["codebook"], lam_params["codebook"])
    # The reset moves codes nobody chose onto encoder outputs; chosen codes stay.
    codebook = jnp.arange(12.0).reshape(4, 3)
    z = jnp.full((5, 3), -1.0)
    reset = la.vq.reset_unused(codebook, jnp.array([3, 0, 1, 0]), z, jax.random.key(0))
    np.testing.assert_array_equal(reset[jnp.array([0, 2])], codebook[jnp.array([0, 2])])
    np.testing.assert_array_equal(reset[jnp.array([1, 3])], -jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="frames of shape"):
        la.fit(TINY_LAM.replace(channels=6), jax.random.key(0), video, progress=False)


def test_lam_fit_reports_an_evaluation_per_chunk_and_resumes(tmp_path, video):
    calls = []

    def evaluate(params):
        calls.append(1)
        return {"norm": float(jnp.linalg.norm(params["codebook"]))}

    params, metrics = la.fit(TINY_LAM, jax.random.key(4), video, tmp_path, progress=False,
                             evaluate=evaluate)
    assert np.asarray(metrics["evaluation"]["norm"]).shape == (2,)
    resumed, again = la.fit(TINY_LAM, jax.random.key(4), video, tmp_path, progress=False,
                            evaluate=evaluate)
    assert len(calls) == 2  # the finished fit was loaded, not run again
    np.testing.assert_array_equal(resumed["codebook"], params["codebook"])


def test_dynamics_fit_learns_and_one_round_is_the_argmax_of_a_masked_frame(video, tiny):
    _, _, dyn_params, metrics = tiny
    loss = np.asarray(metrics["token_loss"])
    assert loss[-10:].mean() < 0.5 * loss[:10].mean()
    context = genie.tokens(video.frames[:3, :1])
    action = jnp.array([0, 1, 2])
    nxt = genie.sample_next(TINY_DYN, dyn_params, context, action, jax.random.key(0), steps=1)
    masked = jnp.full((3, 100), TINY_DYN.vocab_size)
    logits = genie.Dynamics(TINY_DYN).apply(dyn_params["dynamics"], context, masked, action)
    np.testing.assert_array_equal(nxt, jnp.argmax(logits, -1))
    several = genie.sample_next(TINY_DYN, dyn_params, context, action, jax.random.key(0), steps=4)
    assert int(several.max()) < TINY_DYN.vocab_size  # every cell unmasked at the end
    with pytest.raises(ValueError, match="num_heads"):
        genie.DynamicsConfig(d_model=10, num_heads=4)


# The environment ---------------------------------------------------------------------------------
def test_environment_contract_vmap_save_load_and_errors(tmp_path, tiny):
    lam_params, _, dyn_params, _ = tiny
    env = genie.GenieEnvironment(TINY_DYN, TINY_LAM, latent_to_real=(0, 1, 2, 0),
                                 max_steps_in_episode=30)
    env_params = env.with_model(dyn_params, lam_params)
    assert env.action_space(env_params).n == 4
    obs, state = env.reset(jax.random.key(0), env_params)
    assert obs.shape == (10, 10, 4) == env.observation_space(env_params).shape
    keys = jax.random.split(jax.random.key(1), 5)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
    out = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(
        keys, states, jnp.array([0, 1, 2, 3, 0]), env_params)
    assert out[0].shape == (5, 10, 10, 4) and out[2].shape == (5,) and out[3].dtype == jnp.bool_
    assert set(np.unique(np.asarray(out[0]))) <= {0.0, 1.0}
    assert int(env.real_action(jnp.array(2))) == 2

    io.save_environment(tmp_path / "genie", env, env_params, config=TINY_DYN)
    loaded, loaded_params = io.load_environment(tmp_path / "genie")
    assert isinstance(loaded, genie.GenieEnvironment) and loaded.latent_to_real == (0, 1, 2, 0)
    again = jax.jit(jax.vmap(loaded.step, in_axes=(0, 0, 0, None)))(
        keys, states, jnp.array([0, 1, 2, 3, 0]), loaded_params)
    np.testing.assert_array_equal(again[0], out[0])
    frames = jnp.stack([obs, out[0][0]])
    np.testing.assert_array_equal(loaded.infer(loaded_params, frames[:1], frames[1:]),
                                  la.infer(TINY_LAM, lam_params, frames[:1], frames[1:]))

    with pytest.raises(ValueError, match="latent_to_real"):
        genie.GenieEnvironment(TINY_DYN, TINY_LAM, latent_to_real=(0, 1, 5, 0))
    with pytest.raises(ValueError, match="3 latent actions"):
        genie.GenieEnvironment(TINY_DYN, TINY_LAM.replace(num_latents=3))
    with pytest.raises(ValueError, match="frames"):
        genie.GenieEnvironment(TINY_DYN.replace(source="SpaceInvaders-MinAtar"), TINY_LAM)
    with pytest.raises(ValueError, match="shape"):
        env.prompt(jnp.zeros((10, 10)))
    with pytest.raises(ValueError, match="no latent_to_real"):
        genie.GenieEnvironment(TINY_DYN, TINY_LAM).real_action(0)


def test_an_agent_trains_inside_unchanged_and_acts_in_the_real_game_through_the_map(tiny):
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate

    lam_params, _, dyn_params, _ = tiny
    env = genie.GenieEnvironment(TINY_DYN, TINY_LAM, latent_to_real=(0, 1, 2, 0),
                                 max_steps_in_episode=20)
    env_params = env.with_model(dyn_params, lam_params)
    cfg = ppo.PPOConfig(total_timesteps=2 * 4 * 16, num_envs=4, num_steps=16)
    result = jax.jit(ppo.make_train(cfg, env, env_params))(jax.random.key(0))
    real, real_params = envs.make(GAME)
    mapped = MappedActions(real, env.latent_to_real)
    returns = evaluate(ppo.make_policy(cfg, env, env_params), result.params, mapped, real_params,
                       jax.random.key(1), 4)
    assert returns.shape == (4,) and bool(jnp.all(jnp.isfinite(returns)))


def test_mapped_actions_play_the_mapped_real_action():
    real, real_params = envs.make(GAME)
    mapped = MappedActions(real, (2, 1, 1, 0))
    assert mapped.action_space(real_params).n == 4
    _, state = real.reset(jax.random.key(0), real_params)
    for latent, action in ((0, 2), (1, 1), (3, 0)):
        a = mapped.step(jax.random.key(1), state, latent, real_params)
        b = real.step(jax.random.key(1), state, action, real_params)
        np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="mapping"):
        MappedActions(real, (0, 3))


# The experiment and the shipped run ----------------------------------------------------------
def test_full_preset_runs_its_first_training_steps_on_cpu():
    from learnenv.experiments.genie import PRESETS, dynamics_config, lam_config

    full = PRESETS["full"]
    env, env_params = envs.make(full.source)
    data = la.video(collect(env, env_params, random_policy(env, env_params), None,
                            jax.random.key(0), 2, max_steps=12))
    lam_cfg, dyn_cfg = lam_config(full), dynamics_config(full)
    init, update = la.make_fit(lam_cfg)
    state, metrics = jax.jit(update)(init(jax.random.key(0)), data)
    assert np.isfinite(float(metrics["reconstruction"]))
    assert state["params"]["codebook"].shape[0] == full.num_latents
    init, update = genie.make_fit(dyn_cfg, la.Labels(lam_cfg))
    state, metrics = jax.jit(update)(init(jax.random.key(1)), data, state["params"])
    assert np.isfinite(float(metrics["token_loss"]))


def test_panel_moves_the_shipped_paddle_the_way_its_mapped_action_does_in_the_real_game():
    """Press the latent action most often seen with "left", or with "right", three
    times from the same real first frame: the learned environment's paddle ends
    where the real game's does after that real action, and the fitted map sends
    each of these latents to the action it was chosen for."""
    from learnenv import pretrained
    from learnenv.experiments import genie as gx
    from learnenv.play import Panel

    env, env_params = pretrained.load("genie-breakout")
    config = gx.PRESETS["quick"]
    fresh = gx.videos(config.replace(random_episodes=512, scripted_episodes=0,
                                     heldout_episodes=128), jax.random.key(77))["random"][1]
    batch = la.sample_transitions(fresh, jax.random.key(78), 2000, 1)
    latents = env.infer(env_params, batch["context"][:, -1], batch["next"])
    preferred = la.preferred_latents(latents, batch["true_action"], 3)
    real, real_params = envs.make(GAME)
    obs, real_state = real.reset(jax.random.key(11), real_params)
    labels = [f"z={z}" for z in range(env.config.num_actions)]
    ends = {}
    for action in (1, 2):  # the real game's left and right
        latent = int(preferred[action])
        assert env.latent_to_real[latent] == action
        panel = Panel(env, env_params, jax.random.key(5), labels, start=env.prompt(obs),
                      frame_of=genie.draw)
        state = real_state
        for _ in range(3):
            panel.buttons[latent].click()
            real_obs, state, *_ = real.step(jax.random.key(0), state, action, real_params)
        model_paddle = int(np.argmax(np.asarray(panel.obs)[9, :, 0]))
        real_paddle = int(np.argmax(np.asarray(real_obs)[9, :, 0]))
        ends[action] = (model_paddle, real_paddle)
    assert ends[1][1] < ends[2][1]  # the real game: left ends left of right
    assert ends[1][0] == ends[1][1] and ends[2][0] == ends[2][1], ends


def test_shipped_model_is_the_shipped_runs_and_meets_its_claims():
    """The shipped environment comes from the shipped quick run; that run shows the
    chapter's claims; and the shipped LAM finds the actions in fresh video."""
    import json

    from learnenv import pretrained, results
    from learnenv.experiments import genie as gx

    shipped = json.loads(results.path("genie/genie-quick.json").read_text())
    config = gx.Genie.from_dict(shipped["config"]["values"])
    res = shipped["results"]
    env, env_params = pretrained.load("genie-breakout")
    meta = json.loads(pretrained.path("genie-breakout").with_suffix(".json").read_text())
    assert env.config == gx.dynamics_config(config) and env.lam == gx.lam_config(config)
    assert list(env.latent_to_real) == list(res["lam_conv"]["mapping"])
    assert meta["provenance"]["git"]["commit"] == shipped["provenance"]["git"]["commit"]
    assert res["lam_conv"]["nmi"] >= 0.8 and res["lam_conv"]["accuracy"] >= 0.95
    control = res["dynamics"]
    assert control["conv"]["delta_psnr"] > 0 and np.isfinite(control["conv"]["delta_psnr"])
    assert control["conv"]["psnr"] <= control["conv"]["psnr_cap"]
    # the counter-example: controllable by Delta PSNR, but its labels are not actions
    assert control["column"]["delta_psnr"] > 0 and res["column_nmi"] < 0.5
    inside = np.asarray(res["agents"]["inside_model"])
    assert inside.size >= 4 and inside.mean() > res["agents"]["random"]

    fresh = gx.videos(config.replace(random_episodes=512, scripted_episodes=0,
                                     heldout_episodes=128), jax.random.key(77))["random"][1]
    batch = la.sample_transitions(fresh, jax.random.key(78), 2000, 1)
    metrics = gx.action_metrics(env.lam, env_params.network_params["lam"], batch,
                                config.labelled_pairs)
    assert metrics["nmi"] > 0.7 and metrics["accuracy"] > 0.9, metrics
