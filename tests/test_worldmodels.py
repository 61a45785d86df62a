"""World models learned from data: datasets, families, fitting, errors, the environment."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs, io
from learnenv.agents import ppo
from learnenv.worldmodels import compare, horizon
from learnenv.worldmodels.base import Stats, sequence_loss
from learnenv.worldmodels.data import collect, random_policy
from learnenv.worldmodels.environment import WorldModelEnvironment
from learnenv.worldmodels.families import FAMILIES, make_model
from learnenv.worldmodels.fit import FitConfig, make_fit, sample_windows


@pytest.fixture(scope="module")
def cartpole_data():
    env, env_params = envs.make("CartPole-v1")
    return compare.dataset("CartPole-v1", 60, jax.random.key(0))


def test_collect_records_whole_episodes_and_real_terminations():
    env, env_params = envs.make("CartPole-v1")
    eps = collect(env, env_params, random_policy(env, env_params), None, jax.random.key(1), 8)
    assert eps.obs.shape == (8, 500, 4) and eps.mask.shape == (8, 500)
    lengths = np.asarray(eps.lengths())
    mask = np.asarray(eps.mask)
    for e, n in enumerate(lengths.astype(int)):
        assert mask[e, :n].all() and not mask[e, n:].any()  # one contiguous episode
        # a random policy drops the pole: its last step is a real termination, the only one
        assert np.asarray(eps.terminated)[e].nonzero()[0].tolist() == [n - 1]
    # next_obs is the real next observation: obs of step t+1 inside an episode
    n0 = int(lengths[0])
    np.testing.assert_allclose(eps.next_obs[0, :n0 - 1], eps.obs[0, 1:n0])
    again = collect(env, env_params, random_policy(env, env_params), None, jax.random.key(1), 8)
    np.testing.assert_array_equal(eps.obs, again.obs)


def test_select_observation_hides_components():
    env, env_params = envs.make("CartPole-v1", observe=[0, 2])
    full, _ = envs.make("CartPole-v1")
    obs, state = env.reset(jax.random.key(0), env_params)
    full_obs, _ = full.reset(jax.random.key(0), env_params)
    np.testing.assert_allclose(obs, full_obs[jnp.array([0, 2])])
    assert envs.observation_shape(env, env_params) == (2,)
    with pytest.raises(ValueError, match="distinct indices"):
        envs.make("CartPole-v1", observe=[0, 0])


def test_sample_windows_start_on_real_steps(cartpole_data):
    batch = sample_windows(cartpole_data, jax.random.key(2), 512, 4)
    assert batch.obs.shape == (512, 4, 4)
    assert bool((batch.mask[:, 0] == 1).all())  # every window starts on a real step
    # masks never resume after an episode's end
    assert bool((jnp.diff(batch.mask, axis=1) <= 0).all())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fit_learns_cartpole_one_step(family, cartpole_data):
    train, test = cartpole_data.split(0.8)
    model = make_model(family, 4, 2, True, hidden_sizes=(32, 32))
    cfg = compare.fit_config(family, 300)
    nets, stats, losses = jax.jit(make_fit(model, cfg))(jax.random.key(3), train)
    assert losses.shape == (1, 300)
    assert float(losses[0, -20:].mean()) < 0.2 * float(losses[0, :20].mean())
    errors = horizon.one_step_error(model, nets, stats, test)
    # far better than predicting "no change" (about 0.2 stds per step here)
    assert float(errors["state_rmse"]) < 0.1
    assert float(errors["done_accuracy"]) > 0.9


def test_recurrent_memory_recovers_hidden_velocities(cartpole_data):
    """The temporal-dependency claim of the chapter, on a small budget."""
    part = compare.observe(cartpole_data, (0, 2))
    train, test = part.split(0.8)
    errs = {}
    for family in ("one-step", "recurrent"):
        model = make_model(family, 2, 2, True, hidden_sizes=(64, 64))
        nets, stats, _ = jax.jit(make_fit(model, compare.fit_config(family, 800)))(
            jax.random.key(4), train)
        errs[family] = float(horizon.one_step_error(model, nets, stats, test)["state_rmse"])
    assert errs["recurrent"] < 0.6 * errs["one-step"], errs


def test_sequence_loss_burn_in_and_mask(cartpole_data):
    model = make_model("recurrent", 4, 2, True, hidden_sizes=(16,))
    net = model.init(jax.random.key(0))
    stats = Stats.of(cartpole_data)
    window = jax.tree.map(lambda x: x[0, :10], cartpole_data)
    full, _ = sequence_loss(model, net, stats, window, burn_in=0)
    late, _ = sequence_loss(model, net, stats, window, burn_in=5)
    masked, _ = sequence_loss(model, net, stats, window.replace(mask=window.mask.at[5:].set(0)))
    assert float(full) != float(late) and float(full) != float(masked)
    with pytest.raises(ValueError, match="burn_in"):
        FitConfig(window=4, burn_in=4)


def test_open_loop_error_grows_and_checks_horizon(cartpole_data):
    train, test = cartpole_data.split(0.8)
    model = make_model("one-step", 4, 2, True, hidden_sizes=(32, 32))
    nets, stats, _ = jax.jit(make_fit(model, compare.fit_config("one-step", 300)))(
        jax.random.key(5), train)
    curve = np.asarray(horizon.open_loop_error(model, nets, stats, test, 60, context=4))
    assert curve.shape == (60,) and curve[-1] > 3 * curve[0]
    with pytest.raises(ValueError, match="horizon"):
        horizon.open_loop_error(model, nets, stats, test, 500, context=4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_world_model_environment_is_an_environment_and_saves(family, tmp_path, cartpole_data):
    env = WorldModelEnvironment("CartPole-v1", family=family, hidden_sizes=(16,),
                                ensemble_size=2, start="learned")
    model = env.model
    nets, stats, _ = make_fit(model, FitConfig(steps=5, window=2, ensemble_size=2))(
        jax.random.key(0), cartpole_data)
    params = env.fitted_params(nets, stats, cartpole_data)
    real, real_params = envs.make("CartPole-v1")
    assert env.observation_space(params).shape == real.observation_space(real_params).shape
    assert env.action_space(params).n == 2
    obs, state = env.reset(jax.random.key(1), params)
    obs2, state2, reward, terminated, truncated, info = env.step(jax.random.key(2), state, 1,
                                                                  params)
    assert obs2.shape == (4,) and reward.shape == () and terminated.dtype == jnp.bool_
    path = io.save_environment(tmp_path / "wm", env, params)
    loaded, loaded_params = io.load_environment(path, expect_kind="world-model")
    assert loaded.spec() == env.spec()
    again = loaded.step(jax.random.key(2), loaded.reset(jax.random.key(1), loaded_params)[1], 1,
                        loaded_params)
    np.testing.assert_allclose(again[0], obs2, rtol=1e-6)


def test_ppo_trains_unchanged_in_a_recurrent_model_ensemble(cartpole_data):
    """The hardest case for the interface: every member's memory lives in the state."""
    env = WorldModelEnvironment("CartPole-v1", family="recurrent", hidden_sizes=(16,),
                                ensemble_size=2)
    nets, stats, _ = make_fit(env.model, FitConfig(steps=5, window=4, ensemble_size=2))(
        jax.random.key(0), cartpole_data)
    params = env.fitted_params(nets, stats)
    _, state = env.reset(jax.random.key(1), params)
    assert state.memory.shape == (2, 16)
    result = ppo.make_train(ppo.PPOConfig(total_timesteps=512), env, params)(jax.random.key(3))
    assert np.isfinite(np.asarray(result.metrics["policy_loss"])).all()


def test_world_model_environment_rejects_bad_input(cartpole_data):
    with pytest.raises(ValueError, match="family"):
        WorldModelEnvironment("CartPole-v1", family="transformer")
    with pytest.raises(ValueError, match="start"):
        WorldModelEnvironment("CartPole-v1", start="anywhere")
    env = WorldModelEnvironment("CartPole-v1", hidden_sizes=(8,), ensemble_size=3)
    nets, stats, _ = make_fit(env.model, FitConfig(steps=2, ensemble_size=2))(
        jax.random.key(0), cartpole_data)
    with pytest.raises(ValueError, match="ensemble_size=3"):
        env.fitted_params(nets, stats)
    with pytest.raises(ValueError, match="learned"):
        WorldModelEnvironment("CartPole-v1", hidden_sizes=(8,), start="learned").fitted_params(
            *make_fit(env.model, FitConfig(steps=2))(jax.random.key(0), cartpole_data)[:2])


@pytest.mark.slow
def test_ppo_inside_a_learned_cartpole_model_solves_the_real_one():
    """The chapter's headline on a small budget: a model fitted to ~1k random real
    steps teaches PPO to balance the real pole. Every seed must pass 195, the return
    at which CartPole-v0 counts as solved (a random policy scores about 22); the
    mean over seeds sits near 300 and varies across machines (299.5 and above 300
    measured), so a bar on the mean there would test the machine, not the method."""
    from learnenv.worldmodels.dyna import DynaConfig, make_train

    cfg = DynaConfig(iterations=1, ensemble_size=3, agent_timesteps=60_000)
    out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), 4))
    steps, returns = np.asarray(out["real_steps"]), np.asarray(out["real_return"])
    assert steps.shape == (4, 1) and (steps < 2_000).all()
    assert (returns > 195).all(), returns
