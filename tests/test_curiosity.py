"""The curiosity wrapper (learnenv.rewards.curiosity) and the DeepSea experiment.

The wrapper's contracts are checked by stepping it next to its inner
environment with the same keys: it must pass the inner environment through
(observations, spaces, episode ends, the task's reward in ``info``) and add
exactly ``beta * bonus``, where the bonus is a prediction error that falls as
the predictor sees a transition again.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv import envs, experiments
from learnenv.experiments.curiosity import (ARMS, PRESETS, CuriosityDeepSea, effect_shown,
                                            novelty_map)
from learnenv.rewards.curiosity import KINDS, Curiosity

ENVS = [("DeepSea-bsuite", {"size": 6}), ("CartPole-v1", {}), ("Pendulum-v1", {})]


def make(name, kwargs, **curiosity):
    env, env_params = envs.make(name, **kwargs)
    return env, env_params, Curiosity(env, env_params, **curiosity)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name,kwargs", ENVS)
def test_wrapper_passes_the_environment_through_and_adds_beta_times_bonus(name, kwargs, kind):
    env, env_params, wrapped = make(name, kwargs, kind=kind, beta=0.3)
    assert wrapped.observation_space(env_params).shape == env.observation_space(env_params).shape
    assert type(wrapped.action_space(env_params)) is type(env.action_space(env_params))
    obs, state = wrapped.reset(jax.random.key(0), env_params)
    assert obs.shape == env.observation_space(env_params).shape  # image-like obs kept as is
    space = env.action_space(env_params)
    ended = 0
    for key in jax.random.split(jax.random.key(1), 12):
        action = space.sample(jax.random.fold_in(key, 1))
        raw = env.step(key, state.env_state, action, env_params)
        obs, state, reward, terminated, truncated, info = wrapped.step(key, state, action,
                                                                       env_params)
        np.testing.assert_array_equal(obs, raw[0])
        assert bool(terminated) == bool(raw[3]) and bool(truncated) == bool(raw[4])
        np.testing.assert_allclose(info["extrinsic_reward"], raw[2])
        np.testing.assert_allclose(reward, raw[2] + 0.3 * info["bonus"], rtol=1e-6)
        assert info["novelty"] > 0 or name == "DeepSea-bsuite"  # DeepSea's exit obs is all zeros
        ended += int(terminated or truncated)
    assert state.count == 12  # the predictor's statistics outlived the inner resets
    if name == "DeepSea-bsuite":
        assert ended == 2


@pytest.mark.parametrize("kind", KINDS)
def test_bonus_shrinks_on_a_repeated_transition(kind):
    env, env_params, wrapped = make("DeepSea-bsuite", {"size": 6}, kind=kind)
    _, start = wrapped.reset(jax.random.key(0), env_params)
    state, novelties = start, []
    for _ in range(60):  # the same transition from the start cell, learned again and again
        state = state.replace(env_state=start.env_state, obs=start.obs)
        _, state, _, _, _, info = wrapped.step(jax.random.key(1), state, 1, env_params)
        novelties.append(float(info["novelty"]))
    assert novelties[-1] < 0.1 * novelties[0]
    assert info["bonus"] < 0.3  # small against the running scale of all novelties seen
    # A transition it has not seen (the other action, to the other next cell) is still new.
    fresh = wrapped.step(jax.random.key(1), state.replace(env_state=start.env_state,
                                                          obs=start.obs), 0, env_params)
    assert fresh[5]["novelty"] > 5 * novelties[-1]


def test_novelty_is_of_the_real_next_observation_at_an_episode_end():
    env, env_params, wrapped = make("DeepSea-bsuite", {"size": 3}, kind="forward")
    _, state = wrapped.reset(jax.random.key(0), env_params)
    for t in range(3):
        before = state
        obs, state, _, terminated, _, info = wrapped.step(jax.random.key(t), state, 0, env_params)
    assert terminated
    final = jnp.ravel(info["final_observation"])
    expected = wrapped.novelty(before.predictor, before.target, before.obs, 0, final)
    np.testing.assert_allclose(info["novelty"], expected, rtol=1e-6)
    np.testing.assert_array_equal(state.obs, jnp.ravel(obs))  # next: the new episode's start


def test_deterministic_for_a_key_and_one_predictor_per_vmapped_copy():
    env, env_params, wrapped = make("CartPole-v1", {}, kind="rnd")

    def run(key):
        obs, state = wrapped.reset(key, env_params)
        out = wrapped.step(key, state, 1, env_params)
        return out[5]["novelty"], out[1].predictor

    keys = jax.random.split(jax.random.key(3), 3)
    novelty, predictors = jax.jit(jax.vmap(run))(keys[jnp.array([0, 0, 1])])
    same = jax.tree.map(lambda p: jnp.array_equal(p[0], p[1]), predictors)
    assert novelty[0] == novelty[1] and jax.tree.all(same)  # same key, same everything
    assert novelty[0] != novelty[2]
    kernel = jax.tree.leaves(predictors)[0]  # each vmapped copy has its own predictor
    assert kernel.shape[0] == 3 and not jnp.allclose(kernel[0], kernel[2])


@pytest.mark.parametrize("bad,match", [
    (dict(kind="icm"), "unknown kind 'icm'.*rnd, forward"),
    (dict(beta=-0.1), "beta=-0.1"),
    (dict(learning_rate=0.0), "learning_rate=0.0"),
    (dict(hidden_sizes=()), "hidden_sizes"),
    (dict(features=0), "features=0"),
])
def test_bad_config_is_rejected_with_a_message_naming_it(bad, match):
    env, env_params = envs.make("CartPole-v1")
    with pytest.raises(ValueError, match=match):
        Curiosity(env, env_params, **bad)


def test_experiment_is_registered_and_validates_its_config():
    exp = experiments.get("curiosity-deepsea")
    assert exp.config("quick").size >= 10 and exp.config("quick").num_seeds >= 8
    assert exp.config("full").size > exp.config("quick").size
    with pytest.raises(ValueError, match="size"):
        CuriosityDeepSea(size=1)
    with pytest.raises(ValueError, match="kind"):
        CuriosityDeepSea(kind="icm")
    assert effect_shown(0.0, 0.75) and not effect_shown(0.0, 0.625)
    assert not effect_shown(0.5, 1.0)


def test_the_bonus_is_low_where_a_random_walk_went_and_high_where_it_did_not():
    m = novelty_map(8, 4000, jax.random.key(0))
    visits, bonus = np.asarray(m["visits"]).reshape(8, 8), np.asarray(m["bonus"])
    often = visits > 100
    never = (visits == 0) & (np.arange(8)[:, None] >= 1)  # row 0 is the start, never entered
    assert often.sum() > 5 and bonus[often].max() < bonus[never].min()


@pytest.mark.slow
def test_quick_preset_curiosity_solves_deepsea_and_plain_ppo_does_not(tmp_path):
    result = experiments.get("curiosity-deepsea").run(PRESETS["quick"], tmp_path,
                                                     jax.random.key(0))
    plain, curious = (result["arms"][a] for a in ARMS)
    assert curious["env_steps_per_seed"] == plain["env_steps_per_seed"] >= 90_000
    assert result["effect_shown"], (plain["fraction_solved"], curious["fraction_solved"])
    assert (tmp_path / "curves.png").is_file()
