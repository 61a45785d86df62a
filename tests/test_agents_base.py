"""agents.base (evaluate, rollout, the evaluation hook) and the orthogonal initialiser.

``evaluate`` and ``rollout`` are checked against plain Python loops that use
the keys the docstrings promise, so a change in how episodes are cut, keys are
split or returns are summed fails here.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs
from learnenv.agents import dqn
from learnenv.agents.base import evaluate, make_eval_hook, rollout
from learnenv.agents.networks import orthogonal
from learnenv.synthetic import scb_eval


def cartpole_policy(params, obs, key, greedy):
    """A linear controller that holds the pole for 500 steps; when not greedy, random.

    Neither depends on the last bits of the state: a policy that sometimes acts on
    a near-zero sign would turn float differences between a batched, fused loop
    and one step at a time into different episodes.
    """
    if greedy:
        return (obs @ params > 0).astype(jnp.int32)
    return jax.random.randint(key, (), 0, 2)


def pendulum_policy(params, obs, key, greedy):
    """A damping torque, with Gaussian noise when not greedy."""
    torque = jnp.clip(-params * obs[2:3], -2.0, 2.0)
    return torque if greedy else torque + 0.5 * jax.random.normal(key, (1,))


def reference_returns(policy, params, env, env_params, key, num_episodes, greedy, max_steps):
    """``evaluate``'s contract as a Python loop: one jitted env step at a time."""

    @jax.jit
    def act_and_step(key, state, obs):
        act_key, step_key = jax.random.split(key)
        action = policy(params, obs, act_key, greedy)
        obs, state, reward, terminated, truncated, _ = env.step(step_key, state, action,
                                                                 env_params)
        return obs, state, reward, jnp.logical_or(terminated, truncated)

    returns = []
    for episode_key in jax.random.split(key, num_episodes):
        reset_key, loop_key = jax.random.split(episode_key)
        obs, state = env.reset(reset_key, env_params)
        step_keys = jax.random.split(loop_key, max_steps)
        total = np.float32(0.0)
        for t in range(max_steps):
            obs, state, reward, done = act_and_step(step_keys[t], state, obs)
            total += np.float32(reward)
            if done:
                break
        returns.append(total)
    return np.array(returns)


CASES = {
    # name: (env name, policy, its parameter, shorter traced episode cap)
    "CartPole-v1": ("CartPole-v1", cartpole_policy, jnp.array([0.1, 0.5, 1.0, 1.0]), 60),
    "Pendulum-v1": ("Pendulum-v1", pendulum_policy, 2.0, 50),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("greedy", [True, False])
def test_evaluate_matches_a_python_loop(name, greedy):
    env_name, policy, params, short = CASES[name]
    env, env_params = envs.make(env_name)
    key = jax.random.key(3)
    max_steps = int(env_params.max_steps_in_episode)
    fn = jax.jit(lambda ep, k: evaluate(policy, params, env, ep, k, 4, greedy, max_steps))

    returns = np.asarray(fn(env_params, key))
    expected = reference_returns(policy, params, env, env_params, key, 4, greedy, max_steps)
    np.testing.assert_allclose(returns, expected, rtol=1e-5)
    if not (name == "CartPole-v1" and greedy):  # (the controller always reaches 500)
        assert len(np.unique(expected)) == 4  # episodes differ: each has its own keys

    # A shorter cap, traced (the same compiled function), ends episodes earlier.
    short_params = env_params.replace(max_steps_in_episode=jnp.asarray(short))
    returns = np.asarray(fn(short_params, key))
    expected = reference_returns(policy, params, env, short_params, key, 4, greedy, max_steps)
    np.testing.assert_allclose(returns, expected, rtol=1e-5)
    if name == "CartPole-v1" and greedy:
        np.testing.assert_array_equal(returns, short)  # every episode reaches the short cap


WEIGHTS = CASES["CartPole-v1"][2]


def test_rollout_matches_a_python_loop_and_explores_with_epsilon():
    env, env_params = envs.make("CartPole-v1", max_steps_in_episode=30)
    key, num_steps = jax.random.key(5), 100
    for epsilon in (0.0, 0.3):
        traj = jax.jit(lambda k: rollout(cartpole_policy, WEIGHTS, env, env_params, k, num_steps,
                                         True, epsilon))(key)
        reset_key, loop_key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)
        explored = 0
        for t, step_key in enumerate(jax.random.split(loop_key, num_steps)):
            act_key, random_key, coin_key, env_key = jax.random.split(step_key, 4)
            np.testing.assert_allclose(traj.obs[t], obs, atol=1e-5)  # fused vs eager floats
            if jax.random.uniform(coin_key) < epsilon:
                action, explored = env.action_space(env_params).sample(random_key), explored + 1
            else:
                action = cartpole_policy(WEIGHTS, traj.obs[t], act_key, True)
            assert int(traj.action[t]) == int(action)
            obs, state, reward, terminated, truncated, _ = env.step(env_key, state, action,
                                                                    env_params)
            assert float(traj.reward[t]) == float(reward)
            assert bool(traj.done[t]) == bool(terminated or truncated)
        # Episodes reset on their own: capped at 30 steps, 100 steps hold several.
        assert int(traj.done.sum()) >= 3
        assert (explored > 10) == (epsilon > 0)


def test_state_samples_are_the_episodes_evaluate_plays():
    """``real_state_samples`` keeps each episode up to its end."""
    env, env_params = envs.make("CartPole-v1")
    config = dqn.DQNConfig(hidden_sizes=(8,))
    policy = dqn.make_policy(config, env, env_params)
    params = {"q": dqn._network(config, dqn.ActionSpace.of(env, env_params)).init(
        jax.random.key(0), jnp.zeros(4))}
    key = jax.random.key(1)
    states = scb_eval.real_state_samples(policy, params, env, env_params, key, num_episodes=6)
    # A greedy policy on deterministic dynamics: the same episodes that evaluate plays
    # (the same reset keys), and CartPole pays 1 per step, so returns count the states.
    returns = evaluate(policy, params, env, env_params, key, 6)
    assert states.shape == (int(returns.sum()), 4)
    first_obs = jax.vmap(lambda k: env.reset(jax.random.split(k)[0], env_params)[0])(
        jax.random.split(key, 6))
    starts = np.concatenate([[0], np.cumsum(np.asarray(returns, int))[:-1]])
    np.testing.assert_allclose(states[starts], first_obs, rtol=1e-6)


def test_eval_hook_runs_on_multiples_of_eval_every():
    hook = make_eval_hook(100, lambda params, key: params + jax.random.uniform(key))
    key = jax.random.key(0)
    out = [float(hook(jnp.float32(10.0), t, 40, key)) for t in range(40, 401, 40)]
    # Updates of 40 steps reach or pass 100, 200, 300, 400 at 120, 200, 320 and 400.
    evaluated = [t for t, x in zip(range(40, 401, 40), out) if not np.isnan(x)]
    assert evaluated == [120, 200, 320, 400]
    values = [x for x in out if not np.isnan(x)]
    assert all(10.0 <= x < 11.0 for x in values) and len(set(values)) == 4  # a key per step
    with pytest.raises(ValueError, match="eval_fn"):
        make_eval_hook(100, None)
    with pytest.raises(ValueError, match="eval_every"):
        make_eval_hook(0, lambda params, key: 0.0)
    assert make_eval_hook(0, None) is None


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (2, 3, 4), (6, 6)])
def test_orthogonal_init_equals_flax(shape):
    """The Gram-Schmidt initialiser is flax's QR-based one: the same values, not only
    the same distribution (orthonormal columns or rows, times the scale)."""
    scale = np.sqrt(2.0)
    key = jax.random.key(4)
    ours = np.asarray(orthogonal(scale)(key, shape))
    theirs = np.asarray(nn.initializers.orthogonal(scale)(key, shape))
    assert ours.shape == shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    matrix = ours.reshape(-1, shape[-1])
    small = min(matrix.shape)
    gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
    np.testing.assert_allclose(gram, scale**2 * np.eye(small), atol=1e-5)
    other = np.asarray(orthogonal(scale)(jax.random.key(5), shape))
    assert not np.allclose(ours, other)
