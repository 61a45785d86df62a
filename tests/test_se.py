"""Synthetic environments learned with NES (Ferreira et al., 2022): env, NES, loop, files."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv.synthetic.bandit import SyntheticEnvParams
from learnenv.synthetic.environment import SyntheticEnvironment
from learnenv.synthetic.nes import MirroredNES, nes_utilities

# A tiny run: compiles in seconds, trains in seconds.
TINY = dict(
    max_steps_in_episode=50, se_hidden_size=8, population_size=4, num_generations=3,
    stop_after_solved=0, inner_timesteps=256, learning_starts=64, train_freq=4,
    agent_variants=(((16,), 16),), num_eval_episodes=2, mean_eval_every=1, checkpoint_every=1,
)


@pytest.fixture(scope="module")
def se():
    return SyntheticEnvironment("CartPole-v1", max_steps_in_episode=200)


# --------------------------------------------------------------------------- the environment


def test_se_matches_the_paper_sizes(se):
    # three one-hidden-layer MLPs of 128 units on [one_hot(a), s]: 6 inputs for CartPole
    assert se.num_parameters() == (6 * 128 + 128 + 128 * 4 + 4) + 2 * (6 * 128 + 128 + 128 + 1)
    assert se.num_parameters() == 3462
    assert se.real_env_params.max_steps_in_episode == 200


def test_se_gymnax_contract(se):
    params = se.default_params
    obs, state = se.reset(jax.random.key(0), params)
    assert obs.shape == (4,) and obs.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(obs)) <= 0.05)  # the real CartPole's reset distribution
    obs2, state2, reward, terminated, truncated, info = se.step(jax.random.key(1), state, 1, params)
    assert obs2.shape == (4,) and reward.shape == () and terminated.dtype == jnp.bool_
    assert "final_observation" in info
    assert se.action_space(params).n == 2
    assert se.observation_space(params).shape == (4,)
    # the transition is the network's prediction, deterministic given (s, a)
    pred, r, _ = se.predict(params.network_params, obs, 1)
    np.testing.assert_allclose(info["final_observation"], pred, rtol=1e-6)
    np.testing.assert_allclose(reward, r, rtol=1e-6)


def test_se_step_cap_and_done_threshold(se):
    params = se.default_params
    # done head biased to fire: every step terminates
    net = jax.tree.map(lambda x: x, params.network_params)
    net["done"]["Dense_1"]["bias"] = jnp.array([10.0])
    _, state = se.reset(jax.random.key(0), params)
    _, _, _, terminated, _, _ = se.step(jax.random.key(1), state, 0, SyntheticEnvParams(net, 200))
    assert bool(terminated)
    # done head off: the episode is truncated at the cap, not before
    net["done"]["Dense_1"]["bias"] = jnp.array([-10.0])
    capped = SyntheticEnvParams(net, max_steps_in_episode=5)

    def step(state, key):
        obs, state, r, term, trunc, _ = se.step(key, state, 0, capped)
        return state, (term, trunc)

    _, (term, trunc) = jax.lax.scan(step, state, jax.random.split(jax.random.key(2), 10))
    assert not np.any(term)
    np.testing.assert_array_equal(np.nonzero(np.asarray(trunc))[0], [4, 9])


def test_se_vmaps_over_env_params(se):
    batch = jax.vmap(se.init_params)(jax.random.split(jax.random.key(0), 3))
    keys = jax.random.split(jax.random.key(1), 3)
    obs, state = jax.vmap(se.reset)(keys, batch)
    out = jax.vmap(se.step)(keys, state, jnp.array([0, 1, 0]), batch)
    assert out[0].shape == (3, 4)
    assert not np.allclose(out[0][0], out[0][1])  # different SEs, different dynamics


# --------------------------------------------------------------------------- the NES


def test_nes_utilities():
    u = nes_utilities(8)
    assert float(u[0]) == pytest.approx(1.0) and np.all(np.diff(np.asarray(u)) <= 0)
    assert np.all(np.asarray(u[4:]) == 0.0)  # the worse half gets no weight


def test_mirrored_pair_keeps_the_better_side():
    template = {"w": jnp.zeros(3)}
    es = MirroredNES(2, template)
    params = es.default_params.replace(std_init=jnp.asarray(0.1), step_size=jnp.asarray(1.0))
    state = es.init(jax.random.key(0), template, params)
    pop, state = es.ask(jax.random.key(1), state, params)
    eps = np.asarray(pop["w"][0])
    np.testing.assert_allclose(pop["w"][1], -eps, rtol=1e-6)
    # minus side better (lower fitness): the centre moves along -eps, by step_size * eps exactly
    new, metrics = es.tell(jax.random.key(2), pop, jnp.array([1.0, 0.0]), state, params)
    np.testing.assert_allclose(es.get_mean(new)["w"], -eps, rtol=1e-5)
    assert float(metrics["best_fitness"]) == 0.0  # evosax's archive kept the minus member
    np.testing.assert_allclose(new.best_solution, -eps, rtol=1e-6)
    new, _ = es.tell(jax.random.key(2), pop, jnp.array([0.0, 1.0]), state, params)
    np.testing.assert_allclose(es.get_mean(new)["w"], eps, rtol=1e-5)


def test_mirrored_nes_descends_a_quadratic():
    target = jnp.array([1.0, -2.0, 0.5, 3.0])
    es = MirroredNES(16, jnp.zeros(4))
    params = es.default_params.replace(std_init=jnp.asarray(0.1), step_size=jnp.asarray(0.5))
    state = es.init(jax.random.key(0), jnp.zeros(4), params)

    @jax.jit
    def gen(state, key):
        pop, state = es.ask(key, state, params)
        fitness = jnp.sum((pop - target) ** 2, axis=1)
        return es.tell(key, pop, fitness, state, params)[0]

    start = float(jnp.sum(target**2))
    for i in range(60):
        state = gen(state, jax.random.key(i))
    assert float(jnp.sum((state.mean - target) ** 2)) < 0.05 * start


def test_mirrored_nes_needs_pairs():
    with pytest.raises(ValueError, match="even"):
        MirroredNES(3, jnp.zeros(2))


# --------------------------------------------------------------------------- the loop


@pytest.fixture(scope="module")
def tiny_config():
    from learnenv.synthetic.se_training import SETrainingConfig

    return SETrainingConfig(**TINY)


def _flat(network_params):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(network_params)])


def test_train_se_is_deterministic_and_resumes_exactly(tiny_config, tmp_path, monkeypatch):
    from learnenv.synthetic import se_training as st

    se, a_params, a = st.train_se(tiny_config, jax.random.key(0), progress=False)
    _, b_params, b = st.train_se(tiny_config, jax.random.key(0), progress=False)
    np.testing.assert_array_equal(_flat(a_params.network_params), _flat(b_params.network_params))
    np.testing.assert_array_equal(a.history["fitness"], b.history["fitness"])
    assert a.history["fitness"].shape == (3, 4)
    assert np.all(np.isfinite(a.history["mean_fitness"]))  # tested every generation
    # mirrored pairs share their agent: member i and its mirror i + 2 saw the same
    # agent, so their SE returns differ only through the SE
    assert a.history["member_se_return"].shape == (3, 4)
    # the mean moved away from the initialisation
    assert not np.allclose(_flat(a_params.network_params), _flat(se.default_params.network_params))

    # interrupt during generation 2, then call again: same result as uninterrupted
    calls = {"n": 0}
    real_call = st.SEFitness.__call__

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(st.SEFitness, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        st.train_se(tiny_config, jax.random.key(0), checkpoint_dir=tmp_path, progress=False)
    monkeypatch.setattr(st.SEFitness, "__call__", real_call)
    _, resumed_params, resumed = st.train_se(tiny_config, jax.random.key(0),
                                             checkpoint_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(_flat(resumed_params.network_params),
                                  _flat(a_params.network_params))
    np.testing.assert_array_equal(resumed.history["fitness"], a.history["fitness"])


def test_train_se_stops_once_the_mean_passes(tiny_config):
    """With a bar every agent clears, the first test of the mean stops the run."""
    from learnenv.synthetic import se_training as st

    easy = tiny_config.replace(stop_after_solved=1, solved_return=0.0, num_generations=3)
    _, _, result = st.train_se(easy, jax.random.key(0), progress=False)
    assert result.solved_generation == 1 and result.generations == 1
    assert result.history["fitness"].shape == (1, 4)


def test_save_and_load_se(tiny_config, tmp_path):
    from learnenv.agents import dqn
    from learnenv.synthetic import se_training as st

    se, params = st.make_se(tiny_config)
    params = se.init_params(jax.random.key(3))
    path = st.save_se(tmp_path / "se", se, params, config=tiny_config, extra={"note": "test"})
    env, loaded = st.load_se(path)
    assert env.real_env_name == "CartPole-v1" and loaded.max_steps_in_episode == 50
    for x, y in zip(jax.tree.leaves(params.network_params), jax.tree.leaves(loaded.network_params)):
        np.testing.assert_array_equal(x, y)
    # and an agent trains on the loaded SE like on any gymnax env
    cfg = dqn.DQNConfig(total_timesteps=128, learning_starts=32, buffer_size=128, batch_size=8,
                        train_freq=4, gradient_steps=1, hidden_sizes=(8,))
    result = jax.jit(dqn.make_train(cfg, env, loaded))(jax.random.key(0))
    assert result.metrics["timesteps"][-1] == 128


def test_pretrained_loader_lists_names_on_error():
    from learnenv import pretrained

    with pytest.raises(KeyError, match="Valid names"):
        pretrained.load("no-such-environment")
    for name in pretrained.names():
        if name.startswith("se-"):
            env, params = pretrained.load(name)
            obs, state = env.reset(jax.random.key(0), params)
            assert obs.shape == env.obs_shape


# --------------------------------------------------------------------------- measurements


def test_steps_to_solve_protocol():
    from learnenv.synthetic.se_analysis import steps_to_solve

    nan = np.nan
    curves = np.array([[nan, 10, nan, 196, nan, 200],   # solves at 400, stays
                       [nan, 199, nan, 100, nan, 198],  # solves at 200, drops
                       [nan, 10, nan, 20, nan, 30]])     # never
    steps = np.arange(1, 7) * 100
    out = steps_to_solve(curves, steps, 195.0)
    np.testing.assert_array_equal(out["first_solve"][:2], [400, 200])
    assert np.isnan(out["first_solve"][2])
    np.testing.assert_array_equal(out["stays_solved"], [True, False, False])


def test_train_with_eval_evaluates_on_schedule():
    from learnenv import envs
    from learnenv.agents import dqn
    from learnenv.synthetic.se_analysis import evaluation_curves, make_train_with_eval

    env, params = envs.make("CartPole-v1", max_steps_in_episode=50)
    cfg = dqn.DQNConfig(total_timesteps=400, learning_starts=100, buffer_size=400, batch_size=8,
                        train_freq=4, gradient_steps=1, hidden_sizes=(8,))
    train = make_train_with_eval(cfg, env, params, env, params, eval_every=100, eval_episodes=2)
    out = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))
    evals = np.asarray(out.metrics["eval_return"][0])
    steps = np.asarray(out.metrics["timesteps"][0])
    done = ~np.isnan(evals) & (steps > cfg.learning_starts)
    np.testing.assert_array_equal(steps[done], [200, 300, 400])
    eval_steps, curves = evaluation_curves(out.metrics, cfg.learning_starts)
    np.testing.assert_array_equal(eval_steps, [200, 300, 400])
    assert curves.shape == (2, 3)  # the values themselves: tests/test_dqn.py's hook test


@pytest.mark.parametrize("agent", ["dqn", "sac"])
def test_train_with_eval_leaves_training_unchanged(agent):
    """The evaluation hook only adds ``eval_return``: same keys, same trained weights."""
    import importlib

    from learnenv import envs
    from learnenv.synthetic.se_analysis import make_train_with_eval

    module = importlib.import_module(f"learnenv.agents.{agent}")
    config_cls = module.DQNConfig if agent == "dqn" else module.SACConfig
    env, params = envs.make("CartPole-v1", max_steps_in_episode=50)
    cfg = config_cls(total_timesteps=240, learning_starts=80, buffer_size=240, batch_size=8,
                     train_freq=4, gradient_steps=1, hidden_sizes=(8,))
    key = jax.random.key(3)
    plain = jax.jit(module.make_train(cfg, env, params))(key)
    train = make_train_with_eval(cfg, env, params, env, params, eval_every=80,
                                 eval_episodes=2, agent=module)
    hooked = jax.jit(train)(key)
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(hooked.params)):
        np.testing.assert_array_equal(a, b)
    evals = np.asarray(hooked.metrics["eval_return"])
    steps = np.asarray(hooked.metrics["timesteps"])
    done = ~np.isnan(evals) & (steps > cfg.learning_starts)
    np.testing.assert_array_equal(steps[done], [160, 240])


def test_inner_loop_agents_do_not_follow_agent_defaults():
    """The SE loops pin their DQN settings: changing DQNConfig's defaults must not change them."""
    import dataclasses

    from learnenv.agents.dqn import DQNConfig
    from learnenv.experiments.se_steps import StepsToSolve, agent_config
    from learnenv.synthetic import se_training as st

    pinned = st.make_agent_config(st.SETrainingConfig(), (64,), 64)
    steps = agent_config(StepsToSolve(), "DDQN", 10_000)
    for cfg in (pinned, steps):
        assert cfg.num_envs == 1 and cfg.train_freq == 4 and cfg.gradient_steps == 1
        assert not cfg.layer_norm and not cfg.anneal_lr and cfg.double
        if "loss" in {f.name for f in dataclasses.fields(DQNConfig)}:
            assert cfg.loss == "huber"
    assert pinned.hidden_sizes == (64,) and pinned.batch_size == 64
    assert pinned.total_timesteps == 10_000 and pinned.learning_rate == 1e-3
    assert steps.exploration_fraction == 2_000 / 10_000


def test_shipped_ses_are_their_experiments_quick_presets():
    """The shipped SEs rebuild their configs (renamed to the shared vocabulary of
    learnenv.synthetic.evolve, values unchanged) and match the presets that made them."""
    import dataclasses

    from learnenv import pretrained
    from learnenv.experiments.se_learning import ACROBOT, CARTPOLE, SEExperiment

    acrobot = pretrained.load_checkpoint("se-acrobot", config_cls=SEExperiment)
    assert acrobot.config == ACROBOT["quick"]
    cartpole = pretrained.load_checkpoint("se-cartpole", config_cls=SEExperiment)
    # made when the quick preset's cap was 60 generations; it stopped at its 'generations'
    assert cartpole.config == dataclasses.replace(CARTPOLE["quick"], num_generations=60)
    assert cartpole.extra["generations"] <= 60
    env, params = pretrained.load("se-cartpole")
    assert env.num_parameters(params) == cartpole.extra["num_parameters"]
