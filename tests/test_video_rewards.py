"""Video rewards (VIPER): JAX renderers, vector quantisation, the causal transformer,
the video model and its reward wrapper, and curiosity on rendered frames.

The most valuable check is :func:`test_env_reward_equals_offline_step_log_likelihoods`:
the wrapper scores each step from the history it keeps in its state, the offline
function from windows cut out of a recorded episode; both must give the same number
on the same trajectory, across an automatic reset. Everything runs on a tiny model
fitted once per module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs
from learnenv.agents import ppo
from learnenv.envs import render
from learnenv.io import (CheckpointError, load_environment,
                         save_environment)
from learnenv.nets import vq
from learnenv.nets.transformer import CausalTransformer, token_log_probs
from learnenv.rewards import video
from learnenv.rewards.curiosity import Curiosity
from learnenv.rewards.video import VideoConfig, VideoReward
from learnenv.worldmodels.data import Episodes, collect, random_policy

STEPS = 20  # a short Pendulum episode, so that rollouts cross an automatic reset
CONFIG = VideoConfig(tokenizer_steps=50, prior_steps=50, d_model=16, num_heads=2, num_layers=1,
                     num_codes=16, code_dim=8, tokenizer_hidden=32, batch_size=32,
                     learning_rate=3e-3, reset_every=10)  # resets keep several codes alive


def as_arrays(env_params):
    """``env_params`` with every Python number an array (of its default dtype, not weakly
    typed): what a checkpoint restores, and one signature for the jitted rollouts."""
    return jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), env_params)


def rand(seed, *shape, low=0.0, high=1.0):
    """Test inputs from numpy (an eager jax.random call compiles for every new shape)."""
    return jnp.asarray(np.random.default_rng(seed).uniform(low, high, shape), jnp.float32)


def pendulum_obs(theta, velocity=0.0):
    return jnp.array([jnp.cos(theta), jnp.sin(theta), velocity], jnp.float32)


# Renderers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def draw_batch():
    """Pendulum and CartPole renderers (size 16), vmapped and jitted once:
    ``draw_batch[name]`` plain, ``draw_batch[name, True]`` with the score display."""
    plain = {name: jax.jit(jax.vmap(render.renderer(name, 16))) for name in render.CLASSIC}
    scored = {(name, True): jax.jit(jax.vmap(render.renderer(name, 16, True)))
              for name in render.CLASSIC}
    return {**plain, **scored}


def test_renderers_are_vmappable_jittable_frames_in_unit_range(draw_batch):
    obs = {"Pendulum-v1": jax.vmap(pendulum_obs)(jnp.linspace(-3, 3, 5)),
           "CartPole-v1": jnp.array([[x, 0.0, th, 0.0] for x, th in
                                     [(-2, -0.2), (-1, 0.0), (0, 0.1), (1, 0.2), (2.4, 0.0)]])}
    for name in render.CLASSIC:
        for score in (False, True):
            frames = draw_batch[(name, True)] if score else draw_batch[name]
            out = frames(obs[name])
            assert out.shape == (5, 16, 16) and out.dtype == jnp.float32
            assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
            assert float(out.max()) == 1.0  # something is drawn at full intensity
            single = render.renderer(name, 16, score)(obs[name][2])
            np.testing.assert_allclose(out[2], single, atol=1e-6)  # vmap = one at a time
    assert render.renderer("Pendulum-v1", 24)(obs["Pendulum-v1"][0]).shape == (24, 24)


def test_pendulum_upright_up_hanging_down_and_mirror_images(draw_batch):
    up, down, left, right = draw_batch["Pendulum-v1"](jnp.stack(
        [pendulum_obs(0.0), pendulum_obs(jnp.pi), pendulum_obs(jnp.pi / 2),
         pendulum_obs(-jnp.pi / 2)]))
    usable = 16 - render.SCORE_ROWS
    half = usable // 2  # the pivot's row is 7 (centre 7.5)
    assert float(up[:half].sum()) > 3 * float(up[half + 1:].sum())
    assert float(down[half + 1:].sum()) > 3 * float(down[:half].sum())
    # Mirror images: about the pivot's row (up/down) and its column (left/right).
    np.testing.assert_allclose(up[:2 * half + 1], down[:2 * half + 1][::-1], atol=1e-5)
    np.testing.assert_allclose(left[:, 1:], right[:, :0:-1], atol=1e-5)
    assert float(jnp.abs(left - right).sum()) > 1.0
    # No score display requested: the bottom rows stay blank.
    for frame in (up, down, left, right):
        assert float(frame[-render.SCORE_ROWS:].max()) == 0.0


def test_nearby_angles_give_nearby_but_different_frames(draw_batch):
    a, b, c = draw_batch["Pendulum-v1"](jnp.stack(
        [pendulum_obs(0.5), pendulum_obs(0.55), pendulum_obs(1.5)]))
    small, large = float(jnp.abs(a - b).sum()), float(jnp.abs(a - c).sum())
    assert 0.0 < small < 0.5 * large
    # Velocity is not visible in one frame.
    np.testing.assert_array_equal(*draw_batch["Pendulum-v1"](
        jnp.stack([pendulum_obs(0.5, -3.0), pendulum_obs(0.5, 3.0)])))


def test_score_bar_longer_for_lower_cost_and_only_in_the_score_rows(draw_batch):
    obs = jnp.stack([pendulum_obs(0.0), pendulum_obs(0.0, 4.0), pendulum_obs(2.0),
                     pendulum_obs(jnp.pi)])  # costs: 0 < 1.6 < 4 < pi^2
    scored = draw_batch[("Pendulum-v1", True)](obs)
    plain = draw_batch["Pendulum-v1"](obs)
    rows = render.SCORE_ROWS
    np.testing.assert_array_equal(scored[:, :-rows], plain[:, :-rows])  # bar only at the bottom
    bars = scored[:, -rows:].sum(axis=(1, 2))
    assert np.all(np.diff(np.asarray(bars)) < 0), bars
    np.testing.assert_allclose(scored[0, -rows:], 1.0)  # zero cost: a full bar
    assert float(bars[-1]) > 0  # the worst state still shows a bar of 1 - pi^2/max_cost
    # mask_score blanks the display again: the plain frames come back.
    np.testing.assert_array_equal(render.mask_score(scored), plain)
    # CartPole's reward is 1 every step: always a full bar.
    cart = draw_batch[("CartPole-v1", True)](jnp.zeros((1, 4)))
    np.testing.assert_allclose(cart[0, -rows:], 1.0)


def test_mask_score_zeroes_exactly_the_bottom_rows():
    frames = rand(0, 2, 3, 10, 10, low=0.1)
    masked = render.mask_score(frames)
    assert masked.shape == frames.shape
    np.testing.assert_array_equal(masked[..., -render.SCORE_ROWS:, :], 0.0)
    np.testing.assert_array_equal(masked[..., :-render.SCORE_ROWS, :],
                                  frames[..., :-render.SCORE_ROWS, :])


def test_cartpole_cart_moves_right_with_x_and_pole_tilts_with_theta(draw_batch):
    xs = jnp.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    frames = draw_batch["CartPole-v1"](jnp.stack([xs, 0 * xs, 0 * xs, 0 * xs], axis=1))
    cols = jnp.arange(16) + 0.5
    centroid = (frames.sum(axis=1) * cols).sum(axis=1) / frames.sum(axis=(1, 2))
    assert np.all(np.diff(np.asarray(centroid)) > 0.5), centroid
    tilted = draw_batch["CartPole-v1"](jnp.array([[0.0, 0, 0.3, 0], [0.0, 0, -0.3, 0]]))
    upper = tilted[:, :6]  # the pole's top part, above the cart
    upper_centroid = (upper.sum(axis=1) * cols).sum(axis=1) / upper.sum(axis=(1, 2))
    assert float(upper_centroid[0]) > 8.5 > float(upper_centroid[1])  # theta > 0 leans right


def test_minatar_gray_levels_per_channel():
    obs = np.zeros((10, 10, 4), bool)
    obs[0, 0, 0] = True
    obs[1, 1, 3] = True
    obs[2, 2, [0, 2]] = True  # two objects in a cell: the higher channel shows
    frame = jax.jit(render.minatar)(jnp.asarray(obs))
    assert frame.shape == (10, 10) and frame.dtype == jnp.float32
    assert float(frame[0, 0]) == pytest.approx(0.25)
    assert float(frame[1, 1]) == pytest.approx(1.0)
    assert float(frame[2, 2]) == pytest.approx(0.75)
    assert float(frame.sum()) == pytest.approx(2.0)  # every other cell is empty


def test_renderer_rejects_unknown_env_and_bad_sizes():
    with pytest.raises(ValueError, match="No JAX renderer for 'Acrobot-v1'"):
        render.renderer("Acrobot-v1")
    for size in (4, 16.0, True, "16"):
        with pytest.raises(ValueError, match=f"size={size!r}"):
            render.renderer("Pendulum-v1", size)
    assert render.names() == sorted(render.CLASSIC + render.MINATAR)
    with pytest.raises(ValueError, match="multiple of 10"):
        render.renderer("Breakout-MinAtar", 16)


# Vector quantisation ----------------------------------------------------------------
def test_quantize_picks_the_nearest_code_and_its_loss():
    codebook, z = rand(0, 8, 3, low=-2, high=2), rand(1, 5, 7, 3, low=-2, high=2)
    z_q, codes, loss = vq.quantize(codebook, z, commitment=0.25)
    brute = np.argmin(np.linalg.norm(np.asarray(z)[..., None, :] - np.asarray(codebook),
                                     axis=-1), axis=-1)
    assert codes.shape == (5, 7)
    np.testing.assert_array_equal(codes, brute)
    np.testing.assert_allclose(z_q, codebook[brute], atol=1e-6)
    squared = np.mean(np.square(np.asarray(z) - np.asarray(codebook)[brute]))
    assert float(loss) == pytest.approx(1.25 * squared, rel=1e-5)


def test_quantize_straight_through_and_codebook_gradients():
    codebook = rand(2, 16, 2, low=-2, high=2)
    z = rand(3, 4, 2, low=-0.5, high=0.5)  # few inputs: some codes go unused
    g = jax.grad(lambda z: vq.quantize(codebook, z)[0].sum())(z)
    np.testing.assert_array_equal(g, jnp.ones_like(z))  # the identity's gradient
    _, codes, _ = vq.quantize(codebook, z)
    g_codebook = jax.grad(lambda cb: vq.quantize(cb, z)[2])(codebook)
    used = np.zeros(16, bool)
    used[np.asarray(codes)] = True
    assert 0 < used.sum() < 16
    assert np.all(np.abs(np.asarray(g_codebook))[~used] == 0)  # only chosen codes train
    assert np.all(np.abs(np.asarray(g_codebook)).sum(-1)[used] > 0)
    # The commitment term pulls z towards its code: the loss's z-gradient points away.
    g_z = jax.grad(lambda z: vq.quantize(codebook, z)[2])(z)
    assert float(jnp.sum(g_z * (z - codebook[codes]))) > 0


def test_usage_perplexity_and_reset_unused():
    codes = jnp.array([[0, 2, 2], [5, 0, 2]])
    counts = vq.usage(codes, 6)
    np.testing.assert_array_equal(counts, [2, 0, 3, 0, 0, 1])
    assert float(vq.perplexity(jnp.full(8, 5))) == pytest.approx(8.0, rel=1e-5)
    assert float(vq.perplexity(jnp.array([0, 7, 0, 0]))) == pytest.approx(1.0)
    assert 1.0 < float(vq.perplexity(counts)) < 3.0
    codebook = jnp.arange(12.0).reshape(6, 2)
    z = rand(4, 3, 5, 2, low=100.0, high=101.0)  # far from every code
    new = vq.reset_unused(codebook, counts, z, jax.random.key(1))
    unused = np.asarray(counts) == 0
    np.testing.assert_array_equal(new[~unused], codebook[~unused])
    flat = np.asarray(z).reshape(-1, 2)
    for row in np.asarray(new)[unused]:
        assert np.any(np.all(flat == row, axis=1)), row  # a row of z, not a code


# Causal transformer -----------------------------------------------------------------
@pytest.fixture(scope="module")
def transformer():
    model = CausalTransformer(vocab_size=5, length=8, d_model=16, num_layers=2, num_heads=2)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((8,), jnp.int32))
    return jax.jit(model.apply), params


def test_transformer_is_causal_and_shifted(transformer):
    apply, params = transformer
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, 5, 8), jnp.int32)
    # Row j of the batch changes token j only; row 8 is the original sequence.
    changed = jnp.concatenate([tokens + jnp.eye(8, dtype=tokens.dtype), tokens[None]]) % 5
    batch = apply(params, changed)
    assert batch.shape == (9, 8, 5)
    logits = batch[8]
    for j in range(8):
        # Logits at i predict token i from tokens < i: positions <= j cannot see token j.
        np.testing.assert_allclose(batch[j, : j + 1], logits[: j + 1], atol=1e-5)
        if j < 7:
            assert float(jnp.abs(batch[j, j + 1:] - logits[j + 1:]).max()) > 1e-4


def test_token_log_probs_are_the_log_softmax_of_the_target_tokens(transformer):
    apply, params = transformer
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, 5, (9, 8)), jnp.int32)
    logits = apply(params, tokens)
    lp = token_log_probs(logits, tokens)
    assert lp.shape == (9, 8) and bool(jnp.all(lp < 0))
    # A sequence gets the same log-probabilities alone as in a batch.
    np.testing.assert_allclose(token_log_probs(apply(params, tokens[0]), tokens[0]), lp[0],
                               atol=1e-5)
    manual = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)),
                                np.asarray(tokens)[..., None], -1)[..., 0]
    np.testing.assert_allclose(lp, manual, atol=1e-6)


# The video model --------------------------------------------------------------------
def test_video_config_validation():
    with pytest.raises(ValueError, match="patch=3 must divide frame_size=16"):
        VideoConfig(patch=3)
    with pytest.raises(ValueError, match="num_heads=3 must divide d_model=16"):
        VideoConfig(d_model=16, num_heads=3)
    with pytest.raises(ValueError, match="env_name='Acrobot-v1'"):
        VideoConfig(env_name="Acrobot-v1")
    with pytest.raises(ValueError, match="likelihood"):
        VideoConfig(likelihood="marginal")
    assert CONFIG.tokens_per_frame == 4 and CONFIG.history == 6 and CONFIG.pad == 16
    assert VideoConfig(patch=4).tokens_per_frame == 16


@pytest.fixture(scope="module")
def episodes():
    """Six random-policy Pendulum episodes of 40 steps."""
    env, env_params = envs.make("Pendulum-v1")
    return jax.jit(lambda key: collect(env, env_params, random_policy(env, env_params), None,
                                       key, num_episodes=6, max_steps=40))(jax.random.key(0))


@pytest.fixture(scope="module")
def fit():
    return jax.jit(video.make_fit(CONFIG))


@pytest.fixture(scope="module")
def fitted(fit, episodes):
    return fit(jax.random.key(1), episodes)


@pytest.fixture(scope="module")
def log_likelihoods():
    return jax.jit(lambda params, eps: video.step_log_likelihoods(CONFIG, params, eps))


def test_fit_lowers_both_losses_and_reports_usage(fitted, episodes):
    params, info = fitted
    assert info["prior_loss"].shape == (CONFIG.prior_steps,)
    assert info["tokenizer_loss"].shape == (CONFIG.tokenizer_steps,)
    for name in ("prior_loss", "tokenizer_loss"):
        loss = np.asarray(info[name])
        assert np.all(np.isfinite(loss))
        assert loss[-10:].mean() < 0.8 * loss[:5].mean(), (name, loss[:5], loss[-10:])
    # Usage counts every token of every real frame (x_0 .. x_T per episode).
    frames = episodes.num_steps() + episodes.num_episodes
    assert info["usage"].shape == (CONFIG.num_codes,)
    assert int(info["usage"].sum()) == frames * CONFIG.tokens_per_frame
    assert int((info["usage"] > 0).sum()) >= 4  # no collapse onto one code
    assert params["tokenizer"]["params"]["codebook"].shape == (CONFIG.num_codes, CONFIG.code_dim)


def test_fit_is_deterministic_in_its_key(fit, fitted, episodes):
    params, _ = fitted
    again, _ = fit(jax.random.key(1), episodes)
    jax.tree.map(np.testing.assert_array_equal, params, again)
    other, _ = fit(jax.random.key(2), episodes)
    assert not np.allclose(other["prior"]["params"]["Dense_0"]["kernel"],
                           params["prior"]["params"]["Dense_0"]["kernel"])


def test_tokenize_decode_round_trip(fitted, episodes):
    @jax.jit
    def round_trip(params, obs):
        images = video.frames(CONFIG, obs)
        codes = video.tokenize(CONFIG, params, images)
        untrained = video.init_params(CONFIG, jax.random.key(1))
        before = video.decode(CONFIG, untrained, video.tokenize(CONFIG, untrained, images))
        pad = jnp.full((2, CONFIG.tokens_per_frame), CONFIG.pad)
        return (images, codes, video.decode(CONFIG, params, codes), before,
                video.decode(CONFIG, params, pad))

    images, codes, recon, before, blank = round_trip(fitted[0], episodes.obs[0])
    assert images.shape == (40, 16, 16)
    assert codes.shape == (40, CONFIG.tokens_per_frame)
    assert int(codes.min()) >= 0 and int(codes.max()) < CONFIG.num_codes
    assert recon.shape == images.shape
    assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0
    # Fitting taught the tokenizer something; padding tokens decode as blank.
    error = float(jnp.mean((recon - images) ** 2))
    assert error < 0.5 * float(jnp.mean((before - images) ** 2)), error
    np.testing.assert_array_equal(blank, 0.0)


def test_step_log_likelihoods_shape_sign_and_mask(fitted, episodes, log_likelihoods):
    params, _ = fitted
    lls = log_likelihoods(params, episodes)
    assert lls.shape == episodes.mask.shape == (6, 40)
    assert bool(jnp.all(lls < 0))  # log-probabilities of real frames
    cut = episodes.replace(mask=episodes.mask.at[:, 25:].set(0.0).at[2, 10:].set(0.0))
    masked = log_likelihoods(params, cut)
    np.testing.assert_array_equal(masked[:, 25:], 0.0)
    np.testing.assert_array_equal(masked[2, 10:], 0.0)
    np.testing.assert_allclose(masked[:, :10], lls[:, :10], rtol=1e-5)
    # "joint": the first step scores one real frame, later steps a full window.
    assert float(lls[:, 0].mean()) > float(lls[:, 10:].mean())


def test_expert_range_quantiles_ignore_masked_steps(fitted, episodes, log_likelihoods):
    expert_range = jax.jit(video.expert_range)
    # The q-quantile is the smallest value v with P(value <= v) >= q (quantiles chosen
    # away from the steps of the cdf, which float rounding may put on either side).
    values = jnp.asarray(np.random.default_rng(0).permutation(100), jnp.float32)
    low, high = expert_range(values, jnp.ones(100), 0.105, 0.895)
    assert (float(low), float(high)) == (10.0, 89.0)
    # Masked steps do not count, even extreme ones.
    padded = jnp.concatenate([values, jnp.array([-1e6, 1e6, 50.5])])
    mask = jnp.concatenate([jnp.ones(100), jnp.zeros(3)])
    assert tuple(map(float, expert_range(padded, mask, 0.105, 0.895))) == (10.0, 89.0)
    # Any shape; the defaults are the 1% and 99% quantiles.
    values = jnp.arange(150.0).reshape(3, 50)
    assert tuple(map(float, expert_range(values, jnp.ones((3, 50))))) == (1.0, 148.0)
    # On the model's log-likelihoods: about 1% of real steps below low, 1% above high.
    lls = log_likelihoods(fitted[0], episodes)
    low, high = expert_range(lls, episodes.mask)
    assert float(low) < float(high)
    real = np.asarray(lls)[np.asarray(episodes.mask) > 0]
    assert np.mean(real < float(low)) <= 0.01 and np.mean(real > float(high)) <= 0.01
    assert np.mean(real <= float(high)) >= 0.99


def test_sample_frames_shapes_range_and_determinism(fitted, episodes):
    params, _ = fitted
    p, n = CONFIG.patch, CONFIG.num_codes
    every = jnp.repeat(jnp.arange(n)[:, None], CONFIG.tokens_per_frame, axis=1)

    @jax.jit
    def sample(obs, key):  # and every code's patch (all of a frame's patches are that one)
        return (video.sample_frames(CONFIG, params, obs, 3, key),
                video.decode(CONFIG, params, every)[:, :p, :p])

    context = episodes.obs[0, :CONFIG.history]
    a, candidates = sample(context, jax.random.key(0))
    assert a.shape == (3, 16, 16)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    # Every patch is a decoded code (never padding, which decodes blank): the decoder
    # maps each code to one patch wherever it stands.
    candidates = np.asarray(candidates).reshape(n, -1)
    patches = np.asarray(a).reshape(3, 2, p, 2, p).transpose(0, 1, 3, 2, 4).reshape(-1, p * p)
    distance = np.abs(patches[:, None] - candidates[None]).max(-1).min(-1)
    assert np.all(distance < 1e-5), distance
    np.testing.assert_array_equal(a, sample(context, jax.random.key(0))[0])
    draws = [sample(context, jax.random.key(i))[0] for i in range(1, 6)]
    assert any(not np.array_equal(a, d) for d in draws)


# The reward wrapper -----------------------------------------------------------------
@pytest.fixture(scope="module")
def viper():
    """A VideoReward on 20-step Pendulum episodes, its real twin, and jitted rollouts
    that step each with the same keys and actions."""
    env = VideoReward(CONFIG, max_steps_in_episode=STEPS)
    real_env, real_params = envs.make("Pendulum-v1", max_steps_in_episode=STEPS)

    def make_rollout(env):
        def rollout(env_params, key, actions):
            reset_key, step_key = jax.random.split(key)
            obs, state = env.reset(reset_key, env_params)

            def step(carry, inputs):
                obs, state = carry
                key, action = inputs
                next_obs, state, reward, terminated, truncated, info = env.step(
                    key, state, action, env_params)
                out = dict(obs=obs, action=action, reward=reward, next_obs=next_obs,
                           terminated=terminated, truncated=truncated,
                           final_observation=info["final_observation"],
                           extrinsic_reward=info.get("extrinsic_reward", reward),
                           learned_reward=info.get("learned_reward", reward))
                return (next_obs, state), out

            keys = jax.random.split(step_key, actions.shape[0])
            return jax.lax.scan(step, (obs, state), (keys, actions))[1]

        jitted = jax.jit(rollout)
        return lambda env_params, key, actions: jitted(as_arrays(env_params), key, actions)

    return env, make_rollout(env), real_params, make_rollout(real_env)


def actions(n, seed=3):
    return rand(seed, n, 1, low=-2.0, high=2.0)


def test_video_reward_keeps_the_real_environment_and_its_reward(viper, fitted):
    env, rollout, real_params, real_rollout = viper
    env_params = env.with_model(fitted[0], -60.0, -5.0)
    key, acts = jax.random.key(4), actions(30)
    ours, real = rollout(env_params, key, acts), real_rollout(real_params, key, acts)
    for name in ("obs", "next_obs", "final_observation", "terminated", "truncated"):
        np.testing.assert_array_equal(ours[name], real[name], err_msg=name)
    np.testing.assert_allclose(ours["extrinsic_reward"], real["reward"], rtol=1e-6)
    assert int(real["truncated"].sum()) == 1  # one automatic reset inside the rollout
    r = np.asarray(ours["reward"])
    assert np.all((r >= 0) & (r <= 1))
    np.testing.assert_array_equal(r, ours["learned_reward"])  # the learned reward alone
    assert np.unique(r).size > 5 and not np.allclose(r, np.asarray(real["reward"]))
    assert env.observation_space(env_params).shape == (3,)
    assert env.name == "VIPER[Pendulum-v1]"


def test_env_reward_equals_offline_step_log_likelihoods(viper, fitted, log_likelihoods):
    """The wrapper's history (in its state, reset on episode ends) and the offline
    windows (cut from a recorded episode, padded before its start) score the same
    transitions identically: reward_t = (log p_t - low) / (high - low)."""
    env, rollout, _, _ = viper
    params = fitted[0]
    key, acts = jax.random.key(5), actions(30, seed=6)
    first = rollout(env.with_model(params, -1e4, 1e4), key, acts)
    assert bool(first["truncated"][STEPS - 1]) and int(first["truncated"].sum()) == 1

    # The recorded trajectory as two episodes: steps 0..19, then 20..29 (padded).
    def split(x):
        tail = jnp.concatenate([x[STEPS:], jnp.zeros_like(x[: 2 * STEPS - x.shape[0]])])
        return jnp.stack([x[:STEPS], tail])

    mask = jnp.stack([jnp.ones(STEPS), (jnp.arange(STEPS) < 30 - STEPS).astype(jnp.float32)])
    eps = Episodes(obs=split(first["obs"]), action=split(first["action"]),
                   reward=split(first["extrinsic_reward"]),
                   next_obs=split(first["final_observation"]),
                   terminated=split(first["terminated"]), mask=mask)
    offline = log_likelihoods(params, eps)
    expected = jnp.concatenate([offline[0], offline[1, : 30 - STEPS]])

    # Low and high from the data, so that no step is clipped and every digit counts.
    low, high = float(expected.min()) - 1.0, float(expected.max()) + 1.0
    second = rollout(env.with_model(params, low, high), key, acts)
    np.testing.assert_array_equal(second["obs"], first["obs"])
    reward = np.asarray(second["reward"])
    assert np.all((reward > 0) & (reward < 1))
    np.testing.assert_allclose(reward * (high - low) + low, expected, atol=1e-3)
    np.testing.assert_allclose(reward, (np.asarray(expected) - low) / (high - low), atol=1e-4)

    # The comparison is sharp: offline windows with another frame spacing disagree.
    other = video.step_log_likelihoods(CONFIG.replace(subsample=1), params, eps)
    other = jnp.concatenate([other[0], other[1, : 30 - STEPS]])
    assert float(jnp.abs(other - expected).max()) > 0.1


def test_env_reward_is_clipped_to_floor_and_one(viper, fitted):
    env, rollout, _, _ = viper
    key, acts = jax.random.key(5), actions(30, seed=6)
    reward = lambda *range_: np.asarray(  # noqa: E731
        rollout(env.with_model(fitted[0], *range_), key, acts)["reward"])
    np.testing.assert_array_equal(reward(-1e4, -1e3), 1.0)  # above the range
    np.testing.assert_array_equal(reward(1e3, 1e4), 0.0)  # below it, floor 0 (viper_rl)
    # A lower floor keeps the slope below the range: (log p - low) / (high - low).
    sloped = reward(1e3, 1e4, -1.0)
    assert np.all((sloped > -1.0) & (sloped < 0.0)) and np.unique(sloped).size > 5
    np.testing.assert_array_equal(reward(1e3, 1e4, -0.05), np.float32(-0.05))  # all < -0.1


def test_video_reward_construction_errors(viper, fitted):
    env = viper[0]
    for low, high in ((0.0, 0.0), (1.0, -1.0)):
        with pytest.raises(ValueError, match="must be below high"):
            env.with_model(fitted[0], low, high)
    with pytest.raises(TypeError, match="VideoConfig"):
        VideoReward("Pendulum-v1")
    rebuilt = VideoReward(CONFIG.to_dict(), max_steps_in_episode=STEPS)
    assert rebuilt.config == CONFIG and rebuilt.spec() == env.spec()


def test_save_load_round_trip(viper, fitted, tmp_path):
    env, rollout, _, _ = viper
    env_params = as_arrays(env.with_model(fitted[0], -60.0, -5.0))
    path = save_environment(tmp_path / "viper", env, env_params, config=CONFIG)
    loaded, loaded_params = load_environment(path, expect_kind="video-reward")
    assert isinstance(loaded, VideoReward) and loaded.config == CONFIG
    assert loaded.spec() == env.spec()
    assert int(loaded_params.env_params.max_steps_in_episode) == STEPS
    jax.tree.map(np.testing.assert_array_equal, loaded_params, env_params)
    # The loaded parameters give the same rewards.
    key, acts = jax.random.key(7), actions(30)
    np.testing.assert_array_equal(rollout(loaded_params, key, acts)["reward"],
                                  rollout(env_params, key, acts)["reward"])
    with pytest.raises(CheckpointError, match="video-reward"):
        load_environment(path, expect_kind="world-model")


def test_with_model_params_save_as_they_are(viper, fitted, tmp_path):
    env = viper[0]
    env_params = env.with_model(fitted[0], -60.0, -5.0)
    path = save_environment(tmp_path / "viper", env, env_params)
    _, loaded_params = load_environment(path, expect_kind="video-reward")
    np.testing.assert_array_equal(loaded_params.reward_params["low"], -60.0)


def test_ppo_trains_on_the_video_reward_unchanged(viper, fitted):
    env = viper[0]
    env_params = env.with_model(fitted[0], -60.0, -5.0)
    config = ppo.PPOConfig(total_timesteps=96, num_envs=2, num_steps=16, update_epochs=1,
                           num_minibatches=1, hidden_sizes=(16,))
    result = jax.jit(ppo.make_train(config, env, env_params))(jax.random.key(0))
    metrics = jax.tree.map(np.asarray, result.metrics)
    assert metrics["timesteps"][-1] == 96
    assert np.all(np.isfinite(metrics["policy_loss"]))
    # Episodes of 20 steps finished: their return is a sum of VIPER rewards in [0, 1].
    ret = metrics["episode_return"][-1]
    assert np.isfinite(ret) and 0.0 < ret <= STEPS  # Pendulum's own would be < 0


# Curiosity on frames ----------------------------------------------------------------
def test_curiosity_view_sees_frames_while_the_agent_sees_states(viper, fitted):
    env, _, _, _ = viper
    env_params = env.with_model(fitted[0], -60.0, -5.0)
    draw = render.renderer("Pendulum-v1", 16)
    wrapped = Curiosity(env, env_params, kind="rnd", beta=0.5, hidden_sizes=(16,),
                        features=8, view=draw)
    plain = Curiosity(env, env_params, kind="rnd", beta=0.5, hidden_sizes=(16,), features=8)
    assert wrapped.obs_size == 256 and plain.obs_size == 3
    assert wrapped.observation_space(env_params).shape == (3,)
    real_env, real_params = envs.make("Pendulum-v1", max_steps_in_episode=STEPS)
    obs, state = wrapped.reset(jax.random.key(0), env_params)
    assert obs.shape == (3,)
    np.testing.assert_array_equal(obs, state.env_state.obs)  # what the VideoReward returned
    np.testing.assert_allclose(state.obs, jnp.ravel(draw(obs)), atol=1e-6)  # networks' input
    kernels = {x.shape for x in jax.tree.leaves(state.predictor) if x.ndim == 2}
    assert kernels == {(256, 16), (16, 8)}  # the first layer reads pixels, not states
    for i, action in enumerate(actions(4)):
        key = jax.random.key(10 + i)
        real = real_env.step(key, state.env_state.env_state, action, real_params)
        obs, state, reward, _, _, info = wrapped.step(key, state, action, env_params)
        np.testing.assert_array_equal(obs, real[0])  # the agent sees the real states
        np.testing.assert_allclose(state.obs, jnp.ravel(draw(obs)), atol=1e-6)
        # The task's reward is the Pendulum's, kept from VideoReward's info (not the
        # VIPER reward Curiosity received), and the agent's is VIPER's plus the bonus.
        np.testing.assert_allclose(info["extrinsic_reward"], real[2], rtol=1e-6)
        assert float(info["extrinsic_reward"]) < 0 <= float(info["learned_reward"]) <= 1
        np.testing.assert_allclose(reward, info["learned_reward"] + 0.5 * info["bonus"],
                                   rtol=1e-5)
        assert float(info["novelty"]) > 0


def test_curiosity_view_must_be_callable():
    env, env_params = envs.make("Pendulum-v1")
    with pytest.raises(TypeError, match="view must be a function"):
        Curiosity(env, env_params, view="pixels")


def test_scene_samples_cover_every_angle_and_reject_unknown_envs():
    states = np.asarray(render.scene_samples("Pendulum-v1", jax.random.key(0), 4000))
    assert states.shape == (4000, 3)
    np.testing.assert_allclose(states[:, 0] ** 2 + states[:, 1] ** 2, 1.0, atol=1e-5)
    angles = np.arctan2(states[:, 1], states[:, 0])
    counts, _ = np.histogram(angles, bins=8, range=(-np.pi, np.pi))
    assert counts.min() > 0.7 * counts.mean()  # uniform over the circle, not the expert's top
    cart = np.asarray(render.scene_samples("CartPole-v1", jax.random.key(1), 1000))
    assert np.abs(cart[:, 0]).max() <= 2.4 and np.abs(cart[:, 2]).max() <= 0.21
    with pytest.raises(ValueError, match="scene sampler"):
        render.scene_samples("Acrobot-v1", jax.random.key(0), 3)
