"""The environment wrappers against plain NumPy bookkeeping of the same stream.

Each test steps the wrapped and the bare environment side by side with the same
keys and actions (a wrapper passes its key on unchanged), so the bare one gives
the raw stream the wrapper should have seen.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from learnenv import envs
from learnenv.envs.wrappers import EpisodeStatistics, FlattenObservation, NormalizeObservation


def side_by_side(env, wrapped, env_params, key, num_steps):
    """Yield ``(raw step, wrapped step)`` for ``num_steps`` random actions, after the resets."""
    reset_key, key = jax.random.split(key)
    raw_obs, raw_state = env.reset(reset_key, env_params)
    obs, state = wrapped.reset(reset_key, env_params)
    yield (raw_obs,), (obs, state)
    space = env.action_space(env_params)
    for step_key in jax.random.split(key, num_steps):
        act_key, step_key = jax.random.split(step_key)
        action = space.sample(act_key)
        raw = env.step(step_key, raw_state, action, env_params)
        out = wrapped.step(step_key, state, action, env_params)
        raw_state, state = raw[1], out[1]
        yield raw, out


# gym's RunningMeanStd (and the wrapper) start from this many pseudo-observations
# with mean 0 and variance 1, so that the first division is safe.
PRIOR_COUNT = 1e-4


def pooled_mean_var(stream):
    """Mean and variance of the prior's pseudo-observations and ``stream`` together."""
    count = PRIOR_COUNT + len(stream)
    mean = stream.sum(axis=0) / count
    m2 = PRIOR_COUNT * (1.0 + mean**2) + np.square(stream - mean).sum(axis=0)
    return mean, m2 / count


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
def test_normalize_observation_keeps_the_running_mean_and_variance(name):
    env, env_params = envs.make(name, max_steps_in_episode=40)
    wrapped = NormalizeObservation(env)
    seen = []
    for raw, (obs, state, *rest) in side_by_side(env, wrapped, env_params, jax.random.key(0), 150):
        seen.append(np.asarray(raw[0], np.float64))  # resets of new episodes included
        mean, var = pooled_mean_var(np.array(seen))
        np.testing.assert_allclose(state.mean, mean, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(state.var, var, rtol=1e-4, atol=1e-7)
        scale = np.sqrt(var + wrapped.epsilon)
        np.testing.assert_allclose(obs, np.clip((seen[-1] - mean) / scale, -10, 10),
                                   rtol=1e-4, atol=1e-4)
        if rest:  # the final observation is normalised with the same statistics
            final = (np.asarray(rest[3]["final_observation"]), raw[5]["final_observation"])
            np.testing.assert_allclose(final[0], np.clip((final[1] - mean) / scale, -10, 10),
                                       rtol=1e-4, atol=1e-4)
    assert float(state.count) == pytest.approx(PRIOR_COUNT + 151, rel=1e-6)
    assert len({tuple(s) for s in seen}) == len(seen)  # a varied stream, resets included


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
def test_episode_statistics_reports_each_finished_episode(name):
    """Returns and lengths of finished episodes, kept until the next one ends."""
    env, env_params = envs.make(name, max_steps_in_episode=25)
    wrapped = EpisodeStatistics(env)
    episode_return, episode_length = 0.0, 0
    last_return, last_length, finished = 0.0, 0, 0
    steps = side_by_side(env, wrapped, env_params, jax.random.key(1), 120)
    next(steps)
    for raw, out in steps:
        _, _, reward, terminated, truncated, info = out
        done = bool(raw[3] or raw[4])
        np.testing.assert_array_equal(reward, raw[2])
        episode_return += float(reward)
        episode_length += 1
        if done:
            last_return, last_length = episode_return, episode_length
            episode_return, episode_length, finished = 0.0, 0, finished + 1
        assert bool(info["returned_episode"]) == done
        assert float(info["returned_episode_returns"]) == pytest.approx(last_return, rel=1e-5)
        assert int(info["returned_episode_lengths"]) == last_length
    assert finished >= 4  # several episodes, by termination (CartPole) or time limit


def test_flatten_observation_flattens_obs_space_and_final_observation():
    env, env_params = envs.make("Breakout-MinAtar", max_steps_in_episode=20)
    wrapped = FlattenObservation(env)
    assert wrapped.observation_space(env_params).shape == (10 * 10 * 4,)
    done_seen = False
    for raw, out in side_by_side(env, wrapped, env_params, jax.random.key(2), 60):
        assert out[0].shape == (400,)
        np.testing.assert_array_equal(out[0], np.ravel(raw[0]))
        if len(out) > 2:
            np.testing.assert_array_equal(out[5]["final_observation"],
                                          np.ravel(raw[5]["final_observation"]))
            done_seen |= bool(out[3] or out[4])
    assert done_seen  # an episode ended, so a final observation differed from the next one
