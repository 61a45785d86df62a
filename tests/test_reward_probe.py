"""The reward probe reads what a learned reward says about the action."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from learnenv import envs, pretrained
from learnenv.agents.base import evaluate
from learnenv.synthetic import reward_probe


def test_linear_fit_recovers_a_linear_function():
    states = np.random.default_rng(0).normal(size=(200, 4))
    fit = reward_probe.linear_fit(states, states @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.25)
    np.testing.assert_allclose(fit["slope"], [1.0, -2.0, 0.5, 3.0], atol=1e-9)
    assert abs(fit["offset"] - 0.25) < 1e-9 and fit["r2"] > 1 - 1e-9
    noisy = reward_probe.linear_fit(states, np.random.default_rng(1).normal(size=200))
    assert noisy["r2"] < 0.1


def test_sign_agreement_counts_matching_choices():
    values = np.array([1.0, -1.0, 2.0, -0.5])
    assert reward_probe.sign_agreement(values, np.array([1, 0, 0, 1])) == 0.5
    assert reward_probe.sign_agreement(values, np.array([1, 0, 1, 0])) == 1.0


def test_controller_balances_cartpole():
    env, params = envs.make("CartPole-v1")
    returns = evaluate(lambda p, obs, k, g: reward_probe.cartpole_controller(obs), None, env,
                       params, jax.random.key(0), 8)
    assert float(returns.min()) == 500.0


def test_probe_of_an_scb_matches_its_reward_network():
    env, params = pretrained.load("scb-cartpole-v1")
    states = np.random.default_rng(2).normal(scale=0.1, size=(32, 4)).astype(np.float32)
    out = reward_probe.probe(env, params, states)
    net = params.network_params
    want = [float(env.reward(net, s, 1) - env.reward(net, s, 0)) for s in jnp.asarray(states)]
    np.testing.assert_allclose(out["difference"], want, rtol=1e-5, atol=1e-5)
    assert 0.0 <= out["agreement"] <= 1.0 and out["share_action_1"] == np.mean(np.array(want) > 0)


def test_se_exposes_its_reward_like_an_scb():
    se, params = pretrained.load("se-cartpole")
    s = jnp.zeros(4)
    assert float(se.reward(params.network_params, s, 1)) == float(
        se.predict(params.network_params, s, 1)[1])
