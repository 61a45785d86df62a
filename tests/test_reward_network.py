"""Reward networks: the real dynamics with a learned, potential-based reward."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv.synthetic.reward_network import RewardNetworkEnvironment


@pytest.fixture(scope="module")
def rn():
    env = RewardNetworkEnvironment("CartPole-v1", hidden_sizes=(16,), max_steps_in_episode=200)
    return env, env.init_params(jax.random.key(1))


def _rollout(env, params, actions, key):
    """Observations, rewards and terminations of ``env`` under fixed actions and keys."""
    obs, state = env.reset(key, params)
    out = []
    for t, action in enumerate(actions):
        step_key = jax.random.fold_in(key, t)
        next_obs, state, reward, terminated, truncated, _ = env.step(step_key, state, action, params)
        out.append((np.asarray(obs), np.asarray(next_obs), float(reward), bool(terminated)))
        obs = next_obs
        if terminated or truncated:
            break
    return out


def test_dynamics_are_the_real_environments(rn):
    env, params = rn
    actions = [0, 1, 1, 0, 1, 1, 1, 0]
    key = jax.random.key(5)
    shaped = _rollout(env, params, actions, key)
    real = _rollout(env.real_env, env.real_env_params, actions, key)
    assert len(shaped) == len(real)
    for (o, n, _, d), (ro, rn_, _, rd) in zip(shaped, real):
        # the same dynamics (compiled in another program, so equal up to float rounding)
        np.testing.assert_allclose(o, ro, atol=1e-6)
        np.testing.assert_allclose(n, rn_, atol=1e-6)
        assert d == rd


def test_reward_is_the_additive_potential_shaping(rn):
    env, params = rn
    net = params.network_params
    for obs, next_obs, reward, terminated in _rollout(env, params, [1] * 40, jax.random.key(2)):
        phi = float(env.potential(net, jnp.asarray(obs)))
        phi_next = 0.0 if terminated else float(env.potential(net, jnp.asarray(next_obs)))
        assert reward == pytest.approx(1.0 + env.gamma * phi_next - phi, abs=1e-5)


def test_shaping_telescopes_so_optimal_policies_are_unchanged(rn):
    """Ng et al. (1999): over an episode that terminates, the discounted shaped return
    is the discounted real return minus the start state's potential, for every policy."""
    env, params = rn
    steps = _rollout(env, params, [1] * 200, jax.random.key(3))
    assert steps[-1][3], "always pushing right must topple the pole"
    discounts = env.gamma ** np.arange(len(steps))
    shaped_return = float(np.sum(discounts * [r for _, _, r, _ in steps]))
    real_return = float(np.sum(discounts * 1.0))
    phi0 = float(env.potential(params.network_params, jnp.asarray(steps[0][0])))
    assert shaped_return == pytest.approx(real_return - phi0, abs=1e-3)
    assert abs(phi0) > 1e-3  # a zero potential would make this test vacuous


def test_a_population_of_reward_networks_is_a_batch_of_params(rn):
    env, _ = rn
    batch = jax.vmap(env.init_params)(jax.random.split(jax.random.key(0), 3))
    obs = jnp.full((env.obs_dim,), 0.1)  # (zero in, zero out: biases start at zero)
    potentials = jax.vmap(lambda p: env.potential(p.network_params, obs))(batch)
    assert potentials.shape == (3,) and len(set(np.asarray(potentials).round(6))) == 3
