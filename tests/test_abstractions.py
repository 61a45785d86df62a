"""Options (learnenv.envs.options), distractors (learnenv.envs.distractors) and learned
state abstractions (learnenv.worldmodels.abstraction)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from learnenv import envs
from learnenv.agents.base import evaluate
from learnenv.envs.distractors import Distractors
from learnenv.envs.options import Options, action_repeats, discover_macros, macro_actions
from learnenv.worldmodels import abstraction


def _trees_equal(a, b):
    return all(bool(jnp.array_equal(x, y)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _manual(env, params, state, key, sequence, max_length):
    """Step ``sequence`` by hand with the keys Options uses, stopping at the episode's end."""
    keys = jax.random.split(key, max_length)
    total = 0.0
    for i, a in enumerate(sequence):
        obs, state, reward, term, trunc, info = env.step(keys[i], state, a, params)
        total += float(reward)
        if term or trunc:
            return obs, state, total, bool(term), bool(trunc), info, i + 1
    return obs, state, total, False, False, info, len(sequence)


# Options ----------------------------------------------------------------------
def test_options_spaces():
    base, params = envs.make("CartPole-v1")
    env = macro_actions(base, [[0, 0, 1], [1]], env_params=params)
    space = env.action_space(params)
    assert isinstance(space, spaces.Discrete) and space.n == 4
    assert env.num_actions == 4 and env.max_length == 3
    assert env.observation_space(params).shape == base.observation_space(params).shape
    assert env.options == ((0,), (1,), (0, 0, 1), (1,))


def test_an_option_of_length_k_advances_k_primitive_steps_and_sums_reward():
    base, params = envs.make("MountainCar-v0")
    env = action_repeats(base, 5, params)
    obs, state = env.reset(jax.random.key(0), params)
    key = jax.random.key(1)
    obs2, state2, reward, term, trunc, info = env.step(key, state, 2, params)
    m_obs, m_state, m_total, *_ = _manual(base, params, state, key, [2] * 5, 5)
    assert int(state2.time) == 5 and int(info["primitive_steps"]) == 5
    assert float(reward) == m_total == -5.0
    assert _trees_equal(obs2, m_obs) and _trees_equal(state2, m_state)
    assert not bool(term) and not bool(trunc)
    assert jnp.array_equal(info["final_observation"], obs2)


def test_a_macro_runs_its_sequence_in_order():
    base, params = envs.make("CartPole-v1")
    env = macro_actions(base, [[0, 1, 1, 0]], env_params=params)
    _, state = env.reset(jax.random.key(0), params)
    key = jax.random.key(3)
    obs, state2, reward, *_ = env.step(key, state, 2, params)
    m_obs, m_state, m_total, *_ = _manual(base, params, state, key, [0, 1, 1, 0], 4)
    assert float(reward) == m_total == 4.0
    assert _trees_equal(obs, m_obs) and _trees_equal(state2, m_state)
    # a primitive option, padded to the longest, is one step
    obs1, state1, reward1, *_ , info = env.step(key, state, 1, params)
    one = base.step(jax.random.split(key, 4)[0], state, 1, params)
    assert float(reward1) == 1.0 and int(info["primitive_steps"]) == 1
    assert _trees_equal(obs1, one[0]) and _trees_equal(state1, one[1])


def test_an_option_stops_at_termination_and_auto_resets():
    base, params = envs.make("CartPole-v1")
    env = action_repeats(base, 60, params)
    _, state = env.reset(jax.random.key(0), params)
    key = jax.random.key(1)
    obs, state2, reward, term, trunc, info = env.step(key, state, 1, params)
    m_obs, m_state, m_total, m_term, _, m_info, n = _manual(base, params, state, key, [1] * 60, 60)
    assert m_term and n < 60  # always pushing right tips the pole within 60 steps
    assert bool(term) and not bool(trunc)
    assert int(info["primitive_steps"]) == n and float(reward) == m_total == n
    assert int(state2.time) == 0  # the next episode has begun
    assert _trees_equal(obs, m_obs)
    assert jnp.array_equal(info["final_observation"], m_info["final_observation"])


def test_an_option_stops_at_truncation():
    base, params = envs.make("MountainCar-v0", max_steps_in_episode=10)
    env = action_repeats(base, 4, params)
    _, state = env.reset(jax.random.key(0), params)
    for i in range(2):
        _, state, reward, term, trunc, info = env.step(jax.random.key(i), state, 1, params)
        assert not bool(trunc) and int(info["primitive_steps"]) == 4
    _, state, reward, term, trunc, info = env.step(jax.random.key(9), state, 1, params)
    assert bool(trunc) and not bool(term)
    assert int(info["primitive_steps"]) == 2 and float(reward) == -2.0
    assert int(state.time) == 0


def test_options_are_deterministic_jittable_and_vmappable():
    base, params = envs.make("CartPole-v1")
    env = action_repeats(base, 3, params)
    keys = jax.random.split(jax.random.key(0), 5)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    actions = jnp.array([0, 1, 0, 1, 1])
    a = step(keys, state, actions, params)
    b = step(keys, state, actions, params)
    assert _trees_equal(a, b)
    assert a[0].shape == (5, 4) and a[2].shape == (5,)


def test_option_returns_are_the_real_tasks_returns():
    """Always-right as 10-step repeats scores exactly what always-right scores."""
    base, params = envs.make("MountainCar-v0")
    env = action_repeats(base, 10, params)
    right = lambda p, obs, key, greedy: jnp.asarray(2)  # noqa: E731
    key = jax.random.key(0)
    primitive = evaluate(right, None, base, params, key, 4)
    options = evaluate(right, None, env, params, key, 4)
    assert jnp.allclose(primitive, -200.0) and jnp.allclose(options, -200.0)


def test_action_repeats_let_random_exploration_reach_mountaincars_goal():
    """The effect the options section builds on: dithering never arrives, persistence does."""
    from learnenv.experiments.abstractions import random_goal_rate

    primitive = random_goal_rate("MountainCar-v0", 1, 2, 128, jax.random.key(0))
    repeats = random_goal_rate("MountainCar-v0", 25, 2, 128, jax.random.key(0))
    assert primitive.shape == repeats.shape == (2,)
    assert float(primitive.max()) == 0.0
    assert float(repeats.min()) > 0.03


def test_options_refuse_bad_configurations():
    base, params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="at least one option"):
        Options(base, [])
    with pytest.raises(ValueError, match=r"option\(s\) \[1\] are empty"):
        Options(base, [[0], []])
    with pytest.raises(ValueError, match=r"action\(s\) \[2, 5\] are outside 0..1"):
        Options(base, [[0, 2], [5]])
    with pytest.raises(ValueError, match="repeat=0 must be a positive int"):
        action_repeats(base, 0)
    pendulum, _ = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="discrete primitive actions"):
        action_repeats(pendulum, 4)


def test_discover_macros_counts_successful_within_episode_sequences():
    actions = np.array([2, 2, 2, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    starts = np.zeros(12, bool)
    starts[[0, 5]] = True  # episodes: steps 0-4 (succeeds), 5-11 (fails)
    successful = np.array([True] * 5 + [False] * 7)
    assert discover_macros(actions, starts, successful, 2, 3) == [(2, 2), (0, 0), (2, 0)]
    assert discover_macros(actions, starts, ~successful, 3, 1) == [(1, 1, 1)]
    # no window crosses the start of an episode
    everything = np.ones(12, bool)
    assert (0, 1) not in discover_macros(actions, starts, everything, 2, 10)
    # columns are separate streams
    both = discover_macros(np.stack([actions, actions], 1), np.stack([starts, starts], 1),
                           np.stack([successful, successful], 1), 2, 1)
    assert both == [(2, 2)]
    with pytest.raises(ValueError, match="same shape"):
        discover_macros(actions, starts[:5], successful, 2, 1)
    with pytest.raises(ValueError, match="length=0"):
        discover_macros(actions, starts, successful, 0, 1)


# Distractors --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["iid", "walk"])
def test_distractors_keep_the_original_dimensions_intact(kind):
    base, params = envs.make("CartPole-v1")
    env = Distractors(base, 6, kind, scale=10.0)
    assert env.observation_space(params).shape == (10,)
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    inner_obs, inner_state = base.reset(jax.random.split(key)[0], params)
    assert jnp.array_equal(obs[:4], inner_obs) and obs.shape == (10,)
    for i in range(30):
        key = jax.random.key(i + 1)
        obs, state, reward, term, trunc, info = env.step(key, state, i % 2, params)
        expected = base.step(jax.random.split(key)[0], inner_state, i % 2, params)
        inner_state = expected[1]
        assert jnp.array_equal(obs[:4], expected[0])
        assert jnp.array_equal(info["final_observation"][:4], expected[5]["final_observation"])
        assert jnp.array_equal(info["final_observation"][4:], obs[4:])
        assert float(reward) == float(expected[2]) and bool(term) == bool(expected[3])


def test_distractor_kinds_have_their_spread_and_memory():
    base, params = envs.make("CartPole-v1")
    for kind, lag1 in (("iid", 0.0), ("walk", 0.95)):
        env = Distractors(base, 8, kind, scale=5.0, persistence=0.95)
        data = abstraction.collect(env, params, jax.random.key(0), 8, 400)
        noise = np.asarray(data.obs[:, :, 4:]).reshape(400, -1)
        assert abs(noise.std() / 5.0 - 1.0) < 0.25
        auto = np.mean([np.corrcoef(noise[:-1, j], noise[1:, j])[0, 1]
                        for j in range(noise.shape[1])])
        assert abs(auto - lag1) < 0.1, (kind, auto)


def test_distractors_are_deterministic():
    base, params = envs.make("CartPole-v1")
    env = Distractors(base, 3, "walk")
    a = env.step(jax.random.key(1), env.reset(jax.random.key(0), params)[1], 0, params)
    b = env.step(jax.random.key(1), env.reset(jax.random.key(0), params)[1], 0, params)
    assert _trees_equal(a, b)


def test_distractors_refuse_bad_configurations():
    base, _ = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match="unknown kind 'gauss'"):
        Distractors(base, 4, "gauss")
    with pytest.raises(ValueError, match="n=-1"):
        Distractors(base, -1)
    with pytest.raises(ValueError, match="scale=0"):
        Distractors(base, 4, scale=0)
    with pytest.raises(ValueError, match="persistence=1.0"):
        Distractors(base, 4, "walk", persistence=1.0)
    breakout, _ = envs.make("Breakout-MinAtar")
    with pytest.raises(ValueError, match="vector observations"):
        Distractors(breakout, 4)


# Abstractions -------------------------------------------------------------------
def test_abstracted_changes_only_what_the_agent_sees():
    base, params = envs.make("CartPole-v1")
    noisy = Distractors(base, 4)
    data = abstraction.collect(noisy, params, jax.random.key(0), 4, 16)
    assert data.obs.shape == (16, 4, 8) and data.action.shape == (16, 4)
    fit = abstraction.make_fit("predictive", 8, 2, latent_dim=3, horizon=2, num_updates=2,
                               batch_size=8)
    encoder, losses = jax.jit(fit)(jax.random.key(1), data)
    assert losses.shape == (2,) and bool(jnp.isfinite(losses).all())
    env = abstraction.Abstracted(noisy, 3)
    env_params = abstraction.Abstracted.params(params, encoder)
    assert env.observation_space(env_params).shape == (3,)
    assert env.action_space(env_params).n == 2 and env_params.max_steps_in_episode == 500
    z, state = env.reset(jax.random.key(2), env_params)
    obs, inner = noisy.reset(jax.random.key(2), params)
    assert jnp.allclose(z, abstraction.encode(encoder, obs, 3))
    step = env.step(jax.random.key(3), state, 1, env_params)
    expected = noisy.step(jax.random.key(3), inner, 1, params)
    assert jnp.allclose(step[0], abstraction.encode(encoder, expected[0], 3))
    assert _trees_equal(step[1], expected[1]) and float(step[2]) == float(expected[2])
    with pytest.raises(TypeError, match="AbstractedParams"):
        env.reset(jax.random.key(0), params)


def test_linear_probe_r2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = np.stack([x @ rng.normal(size=5), rng.normal(size=400)], axis=1)
    r2 = abstraction.linear_probe_r2(x, y)
    assert r2[0] > 0.99 and abs(r2[1]) < 0.1
    with pytest.raises(ValueError, match="same rows"):
        abstraction.linear_probe_r2(x, y[:10])


def test_probing_the_raw_observation_finds_everything():
    from learnenv.experiments.abstractions import AbstractionConfig, probe

    rng = np.random.default_rng(1)
    found = probe(AbstractionConfig(distractors=3), rng.normal(size=(200, 7)))
    assert found["true_state_r2"].shape == found["distractor_r2"].shape == (1,)
    assert found["true_state_r2"][0] > 0.99 and found["distractor_r2"][0] > 0.99


def test_make_fit_refuses_bad_configurations():
    with pytest.raises(ValueError, match="unknown kind 'pca'"):
        abstraction.make_fit("pca", 4, 2)
    with pytest.raises(ValueError, match="latent_dim=0"):
        abstraction.make_fit("predictive", 4, 2, latent_dim=0)
    base, params = envs.make("Pendulum-v1")
    with pytest.raises(ValueError, match="continuous actions"):
        abstraction.collect(base, params, jax.random.key(0), 2, 4)


@pytest.mark.slow
def test_predictive_abstraction_keeps_the_state_and_reconstruction_keeps_the_noise():
    """The section's claim, on one seed: what the encoder predicts decides what it keeps."""
    base, params = envs.make("CartPole-v1")
    noisy = Distractors(base, 32, "iid", scale=10.0)
    data = abstraction.collect(noisy, params, jax.random.key(0), 16, 512)
    test = abstraction.collect(noisy, params, jax.random.key(1), 8, 256)
    obs = np.asarray(test.obs).reshape(-1, 36)
    r2 = {}
    for kind in abstraction.KINDS:
        fit = abstraction.make_fit(kind, 36, 2, latent_dim=8, num_updates=1500)
        encoder, _ = jax.jit(fit)(jax.random.key(2), data)
        z = np.asarray(abstraction.encode(encoder, jnp.asarray(obs), 8))
        r2[kind] = (abstraction.linear_probe_r2(z, obs[:, :4]),
                    abstraction.linear_probe_r2(z, obs[:, 4:]).mean())
    true_pred, noise_pred = r2["predictive"]
    true_rec, noise_rec = r2["reconstruction"]
    assert true_pred[2:].min() > 0.8 and noise_pred < 0.05  # the pole's angle and velocity
    assert true_rec.max() < 0.2 and noise_rec > 0.1


def test_experiment_configs_refuse_bad_values():
    from learnenv.experiments.abstractions import AbstractionConfig, OptionsConfig

    with pytest.raises(ValueError, match="positive ints"):
        OptionsConfig(repeats=(0, 4))
    with pytest.raises(ValueError, match="less than one PPO update"):
        OptionsConfig(primitive_steps=1000)
    with pytest.raises(ValueError, match=r"unknown arm\(s\) \['pca'\]"):
        AbstractionConfig(arms=("raw", "pca"))
    with pytest.raises(ValueError, match="use up total_timesteps"):
        AbstractionConfig(total_timesteps=8192)


@pytest.mark.slow
def test_the_experiments_run_end_to_end_on_tiny_budgets(tmp_path):
    """Both experiments' run functions, at sizes that only check plumbing and shapes."""
    from learnenv.experiments.abstractions import (AbstractionConfig, OptionsConfig,
                                                   run_abstraction, run_options)

    options = run_options(OptionsConfig(repeats=(4,), num_seeds=2, primitive_steps=2048,
                                        eval_every=1024, eval_episodes=2, num_envs=2,
                                        num_steps=64), tmp_path, jax.random.key(0))
    arm = options["arms"]["repeat-4"]
    assert arm["returns"].shape == arm["success"].shape == (2,)
    assert arm["curve"].shape == (2, len(arm["curve_steps"])) and len(arm["curve_steps"])
    assert arm["curve_steps"][-1] <= 2048
    assert (tmp_path / "options_curves.png").is_file()
    config = AbstractionConfig(arms=("predictive",), distractors=4, num_seeds=2,
                               total_timesteps=4096, collect_envs=4, collect_steps=64,
                               fit_updates=5, probe_steps=32, eval_episodes=2)
    found = run_abstraction(config, tmp_path, jax.random.key(1))
    predictive = found["arms"]["predictive"]
    assert predictive["returns"].shape == (2,) and predictive["data_steps"] == 256
    assert predictive["probe"]["true_state_r2"].shape == (2,)
    assert (tmp_path / "abstraction_returns.png").is_file()
