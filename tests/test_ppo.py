"""PPO: learning, determinism, vmapping over seeds, hyperparameters and env_params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs
from learnenv.agents import ppo
from learnenv.agents.base import evaluate
from toy_learned_env import ToyLearnedEnv, random_params

CARTPOLE = ppo.PPOConfig(total_timesteps=100_000)  # purejaxrl's settings, 1/5 of the budget
RANDOM_CARTPOLE_RETURN = 22.0  # a uniformly random policy, for reference


@pytest.fixture(scope="module")
def cartpole():
    return envs.make("CartPole-v1")


@pytest.fixture(scope="module")
def cartpole_runs(cartpole):
    """4 seeds, trained in one jitted call; reused by several tests."""
    env, params = cartpole
    train = jax.jit(jax.vmap(ppo.make_train(CARTPOLE, env, params)))
    keys = jax.random.split(jax.random.key(0), 4)
    return train, keys, train(keys)


def greedy_returns(config, env, env_params, agent_params, num_episodes=8):
    policy = ppo.make_policy(config, env, env_params)
    run = jax.vmap(lambda p, k: evaluate(policy, p, env, env_params, k, num_episodes).mean())
    keys = jax.random.split(jax.random.key(99), jax.tree.leaves(agent_params)[0].shape[0])
    return np.asarray(jax.jit(run)(agent_params, keys))


def test_ppo_learns_cartpole(cartpole, cartpole_runs):
    env, params = cartpole
    _, _, result = cartpole_runs
    returns = greedy_returns(CARTPOLE, env, params, result.params)
    assert returns.mean() > 8 * RANDOM_CARTPOLE_RETURN, returns
    curve = np.asarray(result.metrics["episode_return"]).mean(axis=0)
    assert curve[-5:].mean() > 3 * curve[:5].mean()
    batch = CARTPOLE.num_envs * CARTPOLE.num_steps
    assert CARTPOLE.total_timesteps - batch < int(result.metrics["timesteps"][0, -1]) <= CARTPOLE.total_timesteps


def test_same_key_same_result(cartpole_runs):
    train, keys, result = cartpole_runs
    again = train(keys)
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(jax.tree.leaves(result.params)[0][0], jax.tree.leaves(result.params)[0][1])


def test_vmap_over_eight_learning_rates_in_one_call(cartpole):
    env, params = cartpole
    config = CARTPOLE.replace(total_timesteps=50_000)
    train = ppo.make_train(config, env, params)
    lrs = jnp.array([1e-6, 3e-5, 1e-4, 3e-4, 1e-3, 2.5e-3, 5e-3, 1e-2])
    hps = config.hyperparams()
    axes = jax.tree.map(lambda _: None, hps).replace(learning_rate=0)
    batched = hps.replace(learning_rate=lrs)
    result = jax.jit(jax.vmap(train, in_axes=(None, axes)))(jax.random.key(1), batched)
    final = np.asarray(result.metrics["episode_return"])[:, -5:].mean(axis=1)
    assert final.shape == (8,)
    assert len(np.unique(np.round(final, 3))) > 4  # the lr really changes the run
    assert final[0] < 40 < final[4:].max()  # a tiny lr barely learns; a good one does


def test_same_code_trains_on_a_population_of_toy_learned_envs():
    env = ToyLearnedEnv()
    population = jax.vmap(random_params)(jax.random.split(jax.random.key(3), 3))
    config = ppo.PPOConfig(total_timesteps=20_000, num_envs=8, num_steps=64, normalize_observations=False)
    train = ppo.make_train(config, env, env.default_params)
    result = jax.jit(jax.vmap(train, in_axes=(None, None, 0)))(jax.random.key(0), None, population)
    curves = np.asarray(result.metrics["episode_return"])
    assert curves.shape[0] == 3
    assert np.all(curves[:, -3:].mean(axis=1) > curves[:, :3].mean(axis=1))  # each one learns
    assert len(np.unique(np.round(curves[:, -1], 2))) == 3  # ... its own environment


@pytest.mark.slow
def test_continuous_ppo_learns_on_brax():
    env, params = envs.make("brax/inverted_pendulum", max_steps_in_episode=200)
    config = ppo.PPOConfig(total_timesteps=40_000, num_envs=16, num_steps=64, num_minibatches=4,
                           update_epochs=4, learning_rate=3e-4, normalize_observations=True)
    result = jax.jit(ppo.make_train(config, env, params))(jax.random.key(0))
    params_batch = jax.tree.map(lambda x: x[None], result.params)
    trained = greedy_returns(config, env, params, params_batch, num_episodes=4)[0]

    def random_policy(_, obs, key, greedy):
        return jax.random.uniform(key, (env.num_actions,), minval=-1.0, maxval=1.0)

    rand = float(jax.jit(lambda k: evaluate(random_policy, None, env, params, k, 4, False).mean())(
        jax.random.key(5)))
    assert trained > 3 * rand, (trained, rand)
