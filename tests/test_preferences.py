"""Rewards learned from preferences, and the wrapper that puts a learned reward in place."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs
from learnenv.rewards import preferences as prefs
from learnenv.rewards.replace import LearnedReward, LearnedRewardParams
from learnenv.worldmodels.data import random_policy


@pytest.fixture(scope="module")
def catch():
    return envs.make("Catch-bsuite")


@pytest.fixture(scope="module")
def catch_pairs(catch):
    """2000 pairs of random-play Catch segments of 3 steps, compiled once for every test."""
    env, env_params = catch

    @jax.jit
    def pairs(key):
        segs = prefs.collect_segments(env, env_params, [(random_policy(env, env_params), None)],
                                      key, 4000, 3, max_steps=9)
        return prefs.split_pairs(segs, jax.random.fold_in(key, 1))

    return pairs(jax.random.key(0))


def frame(ball, paddle, row):
    """A Catch frame (10 x 5): ball at (row, ball), paddle at (9, paddle)."""
    f = np.zeros((10, 5), np.float32)
    f[row, ball] = f[9, paddle] = 1.0
    return f


# Bradley-Terry ------------------------------------------------------------------
def test_bradley_terry_loss_values_and_direction():
    loss = prefs.bradley_terry_loss
    # Equal returns: log 2 whatever the preference; a confident right answer: ~0.
    for p in (0.0, 0.5, 1.0):
        assert float(loss(jnp.zeros(3), jnp.zeros(3), jnp.full(3, p))) == pytest.approx(np.log(2))
    assert float(loss(jnp.array([20.0]), jnp.array([0.0]), jnp.array([1.0]))) < 1e-8
    assert float(loss(jnp.array([0.0]), jnp.array([20.0]), jnp.array([1.0]))) == pytest.approx(20.0)
    # Preferring a pushes R(a) up and R(b) down; a tie pulls them together.
    g_a, g_b = jax.grad(lambda a, b: loss(a, b, jnp.array([1.0])), argnums=(0, 1))(
        jnp.array([0.3]), jnp.array([0.1]))
    assert float(g_a[0]) < 0 < float(g_b[0])
    tie = jax.grad(lambda a: loss(a, jnp.array([0.0]), jnp.array([0.5])))
    assert float(tie(jnp.array([1.0]))[0]) > 0 > float(tie(jnp.array([-1.0]))[0])
    # Weights: a pair with weight 0 does not count.
    weighted = loss(jnp.array([0.0, 20.0]), jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]),
                    jnp.array([1.0, 0.0]))
    assert float(weighted) == pytest.approx(np.log(2))


def test_fit_recovers_the_order_of_a_toy_preference():
    """Five one-hot 'observations' whose hidden worth is their index: a reward model fitted
    to noise-free pairwise labels ranks all five in the right order."""
    key = jax.random.key(0)
    eye = jnp.eye(5)
    idx = jax.random.randint(key, (2, 400), 0, 5)
    obs_a, obs_b = eye[idx[0]][:, None], eye[idx[1]][:, None]  # segments of one frame
    labeller = prefs.RuleLabeller(lambda f: jnp.argmax(f).astype(jnp.float32), frame_ndim=1)
    ones = jnp.ones(400)
    seg = lambda o: prefs.Segments(obs=o, action=jnp.zeros(o.shape[:2]),  # noqa: E731
                                   reward=jnp.zeros(o.shape[:2]), valid=ones)
    labels = prefs.label(seg(obs_a), seg(obs_b), labeller)
    config = prefs.RewardModelConfig(hidden_sizes=(16,), num_steps=300, batch_size=64,
                                     learning_rate=3e-3)
    model, fit = prefs.make_fit(config, (5,))
    result = jax.jit(fit)(jax.random.key(1), labels)
    r = np.asarray(model.apply(result.params, eye))
    assert np.all(np.diff(r) > 0), r
    assert float(result.losses[-20:].mean()) < 0.5 * float(result.losses[:5].mean())


def test_fit_is_deterministic_and_depends_on_the_key(catch_pairs):
    a, b = (s.take(slice(0, 32)) for s in catch_pairs)
    labeller = prefs.RuleLabeller(prefs.catch_rule, 2, noise=0.1)
    labels = prefs.label(a, b, labeller, jax.random.key(2))
    again = prefs.label(a, b, labeller, jax.random.key(2))
    np.testing.assert_array_equal(labels.preference, again.preference)
    _, fit = prefs.make_fit(prefs.RewardModelConfig(hidden_sizes=(8,), num_steps=20), (10, 5))
    fit = jax.jit(fit)
    p1, p2, p3 = (fit(jax.random.key(k), labels).params for k in (3, 3, 4))
    for x, y in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(p1), jax.tree.leaves(p3)))


# Segments -----------------------------------------------------------------------
def test_segments_are_contiguous_steps_of_one_episode():
    env, env_params = envs.make("CartPole-v1", max_steps_in_episode=40)
    policy = random_policy(env, env_params)
    collect = jax.jit(lambda key: prefs.collect_segments(
        env, env_params, [(policy, None), (policy, None)], key, 64, 12))
    segs = collect(jax.random.key(0))
    assert segs.obs.shape == (64, 12, 4) and segs.reward.shape == (64, 12)
    valid = np.asarray(segs.valid) > 0
    assert 0 < valid.sum() < 64  # random CartPole episodes: some shorter than 12 steps
    # CartPole pays 1 per real step: a valid segment holds 12 real steps.
    np.testing.assert_array_equal(np.asarray(segs.returns())[valid], 12.0)
    np.testing.assert_array_equal(segs.obs, collect(jax.random.key(0)).obs)
    assert not np.array_equal(segs.obs, collect(jax.random.key(1)).obs)
    with pytest.raises(ValueError, match="multiple of the 2 policies"):
        prefs.collect_segments(env, env_params, [(policy, None)] * 2, jax.random.key(0), 5, 3)
    with pytest.raises(ValueError, match="segment length=50"):
        prefs.collect_segments(env, env_params, [(policy, None)], jax.random.key(0), 4, 50)
    with pytest.raises(ValueError, match="even number"):
        prefs.split_pairs(segs.take(slice(0, 3)), jax.random.key(0))


# Labellers ----------------------------------------------------------------------
def test_catch_rule_prefers_the_paddle_under_the_ball():
    rule = lambda f: float(prefs.catch_rule(jnp.asarray(f)))  # noqa: E731
    caught = np.zeros((10, 5), np.float32)
    caught[9, 2] = 1.0
    assert rule(caught) == 0.0
    assert rule(frame(2, 2, 4)) == 0.0
    assert rule(frame(0, 3, 9)) < rule(frame(0, 1, 9)) < rule(caught)  # missed, by 3 and by 1
    assert rule(frame(0, 3, 8)) < rule(frame(0, 3, 2)) < 0  # a gap counts more when low


def test_rule_labeller_shape_range_and_symmetry(catch_pairs):
    a, b = catch_pairs
    labeller = prefs.RuleLabeller(prefs.catch_rule, frame_ndim=2)
    p = np.asarray(labeller(a.obs, b.obs))
    assert p.shape == (2000,) and set(np.unique(p)) <= {0.0, 0.5, 1.0}
    assert {0.0, 1.0} <= set(np.unique(p))
    np.testing.assert_array_equal(np.asarray(labeller(b.obs, a.obs)), 1.0 - p)
    # It agrees with the true return ordering more often than not (but is no oracle).
    agree = float(prefs.agreement(p, a.returns(), b.returns()))
    assert 0.6 < agree < 1.0


def test_label_noise_flips_the_stated_share(catch_pairs):
    a, b = catch_pairs
    clean = np.asarray(prefs.RuleLabeller(prefs.catch_rule, 2)(a.obs, b.obs))
    noisy = np.asarray(prefs.RuleLabeller(prefs.catch_rule, 2, noise=0.2)(
        a.obs, b.obs, jax.random.key(2)))
    decided = clean != 0.5
    assert np.all(noisy[~decided] == 0.5)  # a tie stays a tie
    assert np.mean(noisy[decided] != clean[decided]) == pytest.approx(0.2, abs=0.03)


def test_labellers_reject_bad_input():
    labeller = prefs.RuleLabeller(prefs.catch_rule, frame_ndim=2, noise=0.1)
    batch = jnp.zeros((4, 3, 10, 5))
    with pytest.raises(ValueError, match="differ in shape"):
        labeller(batch, jnp.zeros((4, 2, 10, 5)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"batched segments .* got shape \(3, 10, 5\)"):
        labeller(batch[0], batch[0], jax.random.key(0))
    with pytest.raises(ValueError, match="needs a key"):
        labeller(batch, batch)
    with pytest.raises(ValueError, match="noise=0.7"):
        prefs.RuleLabeller(prefs.catch_rule, 2, noise=0.7)
    with pytest.raises(ValueError, match="frame_ndim"):
        prefs.RuleLabeller(prefs.catch_rule, -1)
    assert isinstance(labeller, prefs.Labeller)


def test_llm_labeller_plumbing_without_a_network():
    segment_a = np.stack([frame(1, 2, 7), _caught(1)])
    segment_b = np.stack([frame(1, 2, 7), frame(4, 0, 9)])
    obs_a, obs_b = segment_a[None], segment_b[None]
    text = prefs.catch_caption(segment_a)
    assert "Frame 1: ball in column 1, 2 rows above the paddle, which is in column 2." in text
    assert "the ball lands on the paddle in column 1" in text
    assert "columns 0 and 4" in prefs.catch_caption(segment_b)

    with pytest.raises(NotImplementedError, match="complete"):
        prefs.LLMLabeller(prefs.catch_caption, prefs.CATCH_TASK)(obs_a, obs_b)
    prompts = []

    def fake_llm(prompt):  # stands in for a model: prefers the clip with a catch
        prompts.append(prompt)
        clip_1 = prompt.split("Clip 2:")[0]
        return "Clip 1 catches the ball.\nPreferred: 1" if "lands" in clip_1 else "Preferred: 2"

    llm = prefs.LLMLabeller(prefs.catch_caption, prefs.CATCH_TASK, complete=fake_llm)
    assert np.asarray(llm(obs_a, obs_b)).tolist() == [1.0]
    assert np.asarray(llm(obs_b, obs_a)).tolist() == [0.0]
    assert prefs.CATCH_TASK in prompts[0]
    with pytest.raises(ValueError, match="differ in shape"):
        llm(obs_a, obs_b[:, :1])


def _caught(column):
    f = np.zeros((10, 5), np.float32)
    f[9, column] = 1.0
    return f


@pytest.mark.parametrize("answer, value", [
    ("Preferred: 1", 1.0), ("I think so.\npreferred : 2", 0.0), ("Preferred: none", 0.5),
    ("Preferred: 2 ... on reflection, Preferred: 1", 1.0), ("Clip 1 is better.", None),
])
def test_parse_preference(answer, value):
    got = prefs.parse_preference(answer)
    assert (np.isnan(got) if value is None else got == value)


def test_label_drops_unreadable_answers_and_invalid_segments():
    n = 4
    seg = prefs.Segments(obs=jnp.zeros((n, 1, 2)), action=jnp.zeros((n, 1)),
                         reward=jnp.zeros((n, 1)), valid=jnp.array([1.0, 1.0, 0.0, 1.0]))
    answers = lambda a, b, key=None: jnp.array([1.0, jnp.nan, 1.0, 0.5])  # noqa: E731
    labels = prefs.label(seg, seg, answers)
    np.testing.assert_array_equal(labels.weight, [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(labels.preference, [1.0, 0.5, 1.0, 0.5])


def test_agreement_counts_ties_as_half_and_skips_equal_returns():
    p = jnp.array([1.0, 0.0, 0.5, 1.0])
    ra, rb = jnp.array([1.0, 1.0, 1.0, 0.0]), jnp.array([0.0, 0.0, 0.0, 0.0])
    assert float(prefs.agreement(p, ra, rb)) == pytest.approx((1 + 0 + 0.5) / 3)


# The wrapper --------------------------------------------------------------------
def side_by_side(env, wrapped, params, key, num_steps):
    """Steps of the raw and the wrapped environment with the same keys and actions."""
    inner = params.env_params
    reset_key, key = jax.random.split(key)
    _, raw_state = env.reset(reset_key, inner)
    _, state = wrapped.reset(reset_key, params)
    space = env.action_space(inner)
    for step_key in jax.random.split(key, num_steps):
        act_key, step_key = jax.random.split(step_key)
        action = space.sample(act_key)
        raw = env.step(step_key, raw_state, action, inner)
        out = wrapped.step(step_key, state, action, params)
        raw_state, state = raw[1], out[1]
        yield raw, out


@pytest.mark.parametrize("name", ["Catch-bsuite", "Pendulum-v1"])
def test_wrapper_keeps_spaces_dynamics_and_the_extrinsic_reward(name):
    env, env_params = envs.make(name)
    scale = jnp.float32(0.5)
    wrapped = LearnedReward(env, lambda p, t: p * jnp.sum(t.next_obs), scale,
                            env_params=env_params, mean=1.0, std=2.0, offset=0.25)
    params = wrapped.default_params
    assert isinstance(params, LearnedRewardParams)
    assert wrapped.observation_space(params).shape == env.observation_space(env_params).shape
    assert wrapped.action_space(params).shape == env.action_space(env_params).shape
    assert type(wrapped.action_space()) is type(env.action_space(env_params))
    assert params.max_steps_in_episode == env_params.max_steps_in_episode
    for raw, out in side_by_side(env, wrapped, params, jax.random.key(0), 30):
        obs, _, reward, terminated, truncated, info = out
        np.testing.assert_allclose(obs, raw[0], atol=1e-6)
        assert bool(terminated) == bool(raw[3]) and bool(truncated) == bool(raw[4])
        assert float(info["extrinsic_reward"]) == pytest.approx(float(raw[2]), abs=1e-5)
        learned = 0.5 * float(np.sum(raw[5]["final_observation"]))
        assert float(info["learned_reward"]) == pytest.approx(learned, rel=1e-5, abs=1e-5)
        assert float(reward) == pytest.approx((learned - 1.0) / 2.0 + 0.25, rel=1e-5, abs=1e-5)


def test_wrapper_mixes_rewards_from_its_params_batched(catch):
    env, env_params = catch
    wrapped = LearnedReward(env, lambda p, t: jnp.float32(3.0), None)
    # true reward, learned reward, constant: one batch of params, one compiled step.
    batch = wrapped.default_params.replace(
        extrinsic_weight=jnp.array([1.0, 0.0, 0.0]), learned_weight=jnp.array([0.0, 1.0, 0.0]),
        offset=jnp.array([0.0, 0.0, -1.0]))
    in_axes = LearnedRewardParams(None, None, None, None, 0, 0, 0)
    obs, state = wrapped.reset(jax.random.key(0))
    step = jax.vmap(wrapped.step, in_axes=(None, None, None, in_axes))
    for t in range(9):
        _, states, reward, *_, info = step(jax.random.key(t), state, 2, batch)
        state = jax.tree.map(lambda x: x[0], states)
    extrinsic = float(info["extrinsic_reward"][0])
    assert extrinsic in (-1.0, 1.0)  # the ninth step ends a Catch episode
    np.testing.assert_allclose(reward, [extrinsic, 3.0, -1.0])


def test_wrapper_history_covers_the_current_episode_only(catch):
    env, env_params = catch

    def reward_fn(_, t):  # how many real frames the history holds, if it ends with obs
        return jnp.where(jnp.all(t.history[-1] == t.obs), t.history_mask.sum(), -100.0)

    wrapped = LearnedReward(env, reward_fn, None, context=3)
    _, state = wrapped.reset(jax.random.key(0))
    assert state.history.shape == (3, 10, 5)
    rewards = []
    for t in range(20):
        _, state, reward, *_ = wrapped.step(jax.random.key(t), state, 1)
        rewards.append(float(reward))
    assert rewards == [1.0, 2.0] + [3.0] * 7 + [1.0, 2.0] + [3.0] * 7 + [1.0, 2.0]


def test_wrapper_rejects_bad_input(catch):
    env, env_params = catch
    with pytest.raises(ValueError, match="std=0"):
        LearnedReward(env, lambda p, t: 0.0, None, std=0.0)
    with pytest.raises(ValueError, match="context=-1"):
        LearnedReward(env, lambda p, t: 0.0, None, context=-1)
    with pytest.raises(TypeError, match="reward_fn must be callable"):
        LearnedReward(env, None, None)
    wrapped = LearnedReward(env, lambda p, t: jnp.zeros(2), None)
    with pytest.raises(TypeError, match="takes LearnedRewardParams, not EnvParams"):
        wrapped.reset(jax.random.key(0), env_params)
    _, state = wrapped.reset(jax.random.key(0))
    with pytest.raises(ValueError, match="must return a scalar"):
        wrapped.step(jax.random.key(0), state, 1)


def test_normalised_standardises_the_learned_reward(catch):
    env, _ = catch
    params = LearnedReward(env, lambda p, t: 0.0, None).default_params
    samples = jnp.array([1.0, 3.0, 5.0, 7.0])
    fixed = params.normalised(samples)
    assert float(fixed.mean) == pytest.approx(4.0)
    assert float(fixed.std) == pytest.approx(float(np.std([1, 3, 5, 7])))


# The experiment -----------------------------------------------------------------
def test_experiment_config_checks_its_fields():
    from learnenv.experiments.preferences import PRESETS, PreferenceReward

    with pytest.raises(ValueError, match="label_noise=0.7"):
        PreferenceReward(label_noise=0.7)
    with pytest.raises(ValueError, match="env_name='CartPole-v1'"):
        PreferenceReward(env_name="CartPole-v1")
    assert PRESETS["quick"].num_seeds >= 8


@pytest.mark.slow
def test_quick_preset_learns_from_preferences(tmp_path):
    """The chapter's claim: PPO on the learned reward gets at least 80% of the way from a
    random policy to PPO on the true reward; a constant reward does not."""
    from learnenv.experiments.preferences import PRESETS, run

    results = run(PRESETS["quick"], tmp_path, jax.random.key(0))
    score = results["normalised_score"]
    assert results["mean_return"]["true reward"] > results["mean_return"]["random policy"] + 1.0
    assert score["learned reward"] >= 0.8
    assert score["constant reward"] < 0.5
    assert results["labeller_agreement_clean"] < 1.0  # a stand-in, not the true reward
    assert (tmp_path / "preference-reward.png").is_file()
