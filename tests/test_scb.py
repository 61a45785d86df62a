"""Synthetic contextual bandits and synthetic MDPs: the environment contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv.synthetic import SyntheticContextualBandit, SyntheticEnvParams, SyntheticMDP
from learnenv.synthetic.base import broadcast
from learnenv.synthetic.meta import (
    PAPER_HYPERPARAMETERS,
    SCBMetaConfig,
    inner_config,
    sample_hyperparameters,
)

# Parameter counts of the paper's checkpoints (Liesen et al. 2024, synthetic-gymnax).
PAPER_PARAMETER_COUNTS = {
    "CartPole-v1": 549,
    "Acrobot-v1": 775,
    "MountainCar-v0": 387,
    "MountainCarContinuous-v0": 323,
    "Pendulum-v1": 420,
}


@pytest.mark.parametrize("name,count", sorted(PAPER_PARAMETER_COUNTS.items()))
def test_parameter_count_matches_paper(name, count):
    assert SyntheticContextualBandit(name).num_parameters() == count


def test_one_step_episodes_and_reward_is_the_network():
    scb = SyntheticContextualBandit("CartPole-v1")
    params = scb.init_params(jax.random.key(1))
    obs, state = scb.reset(jax.random.key(2), params)
    assert obs.shape == (4,)
    for action in (0, 1):
        _, _, reward, terminated, _, _ = scb.step(jax.random.key(3), state, action, params)
        assert bool(terminated)
        np.testing.assert_allclose(reward, scb.reward(params.network_params, obs, action), rtol=1e-6)


def test_context_distribution_depends_on_params_and_key():
    scb = SyntheticContextualBandit("Pendulum-v1")
    p1, p2 = scb.init_params(jax.random.key(1)), scb.init_params(jax.random.key(2))
    key = jax.random.key(0)
    o1, _ = scb.reset(key, p1)
    assert not np.allclose(o1, scb.reset(key, p2)[0])
    assert not np.allclose(o1, scb.reset(jax.random.key(5), p1)[0])
    np.testing.assert_array_equal(o1, scb.reset(key, p1)[0])  # deterministic


def test_continuous_actions_enter_raw():
    scb = SyntheticContextualBandit("Pendulum-v1")
    params = scb.default_params
    obs, state = scb.reset(jax.random.key(0), params)
    r = [scb.step(jax.random.key(0), state, jnp.array([a]), params)[2] for a in (-2.0, 0.0, 2.0)]
    assert len({float(x) for x in r}) == 3


def test_population_is_a_batch_of_env_params():
    scb = SyntheticContextualBandit("CartPole-v1")
    pop = jax.vmap(scb.init_params)(jax.random.split(jax.random.key(0), 5))
    assert isinstance(pop, SyntheticEnvParams) and pop.max_steps_in_episode == 1
    obs, _ = jax.vmap(scb.reset, in_axes=(None, 0))(jax.random.key(1), pop)
    assert obs.shape == (5, 4)
    assert len(np.unique(np.asarray(obs[:, 0]))) == 5


def test_synthetic_mdp_has_transition_and_done_heads():
    mdp = SyntheticMDP("CartPole-v1")
    params = mdp.init_params(jax.random.key(0))
    assert mdp.num_parameters(params) > SyntheticContextualBandit("CartPole-v1").num_parameters()
    assert params.max_steps_in_episode == 500
    obs, state = mdp.reset(jax.random.key(1), params)
    next_obs, next_state, *_ = mdp.step_env(jax.random.key(2), state, 1, params)
    assert next_obs.shape == obs.shape and not np.allclose(next_obs, obs)
    assert int(next_state.time) == 1


def test_image_observations_are_refused():
    with pytest.raises(ValueError, match="flat observations"):
        SyntheticContextualBandit("Breakout-MinAtar")


def test_hyperparameters_are_sampled_from_the_paper_lists():
    cfg = inner_config("ppo", discrete=True)
    base = cfg.hyperparams()
    draws = jax.vmap(lambda k: sample_hyperparameters("ppo", k, base))(
        jax.random.split(jax.random.key(0), 200)
    )
    for name, values in PAPER_HYPERPARAMETERS["ppo"].items():
        drawn = set(np.round(np.asarray(getattr(draws, name), np.float64), 6))
        assert drawn == set(np.round(values, 6)), name


def test_paper_structure_applies_each_environments_own_config():
    from learnenv.synthetic.meta import hyperparameter_lists

    assert inner_config("ppo", False, env_name="MountainCarContinuous-v0").activation == "tanh"
    assert inner_config("ppo", False, env_name="Pendulum-v1").activation == "relu"
    assert inner_config("ppo", True, env_name="MountainCar-v0").update_epochs == 4
    assert inner_config("ppo", True, env_name="CartPole-v1").update_epochs == 10
    sac = inner_config("sac", False, env_name="brax/hopper")
    assert (sac.num_envs, sac.batch_size, sac.buffer_size) == (1, 250, 5000)
    # The fast layout is the same for every environment.
    assert inner_config("ppo", True, structure="fast", env_name="MountainCar-v0").update_epochs == 4
    assert inner_config("sac", False, structure="fast", env_name="brax/hopper").num_envs == 50
    assert 1e-2 not in hyperparameter_lists("ppo", discrete=False)["learning_rate"]
    assert 1e-2 in hyperparameter_lists("ppo", discrete=True)["learning_rate"]
    assert 1e-2 in hyperparameter_lists("ppo", discrete=False, structure="fast")["learning_rate"]


def test_meta_config_validation_names_the_field():
    with pytest.raises(ValueError, match="SCBMetaConfig.population_size"):
        SCBMetaConfig(population_size=1)
    with pytest.raises(ValueError, match="SCBMetaConfig.algorithms"):
        SCBMetaConfig(algorithms=("a2c",))


def test_meta_training_runs_and_resumes_identically(tmp_path, monkeypatch):
    from learnenv.synthetic import meta

    # With an evaluation-length curriculum: fitness episodes of 20, 35, then 50 steps.
    cfg = SCBMetaConfig(algorithms=("ppo",), population_size=4, num_generations=3,
                        inner_timesteps=1000, num_eval_episodes=2, eval_max_steps=50,
                        eval_steps_start=20, eval_curriculum_generations=2,
                        mean_eval_every=0, checkpoint_every=1)
    _, full_params, full = meta.meta_train(cfg, checkpoint_dir=None, progress=False)
    assert full.history["fitness"].shape == (3, 4)
    np.testing.assert_array_equal(full.history["eval_steps"], [20, 35, 50])
    # CartPole pays 1 per step, so the curriculum's length caps the fitness.
    assert np.all(full.history["fitness_max"] <= full.history["eval_steps"])

    # Interrupt the run in generation 2, then start it again: it resumes.
    original = meta.SCBFitness.__call__

    def crash_in_generation_2(self, population, key, generation):
        if generation == 2:
            raise KeyboardInterrupt
        return original(self, population, key, generation)

    monkeypatch.setattr(meta.SCBFitness, "__call__", crash_in_generation_2)
    with pytest.raises(KeyboardInterrupt):
        meta.meta_train(cfg, checkpoint_dir=tmp_path, progress=False)
    monkeypatch.setattr(meta.SCBFitness, "__call__", original)
    _, resumed_params, resumed = meta.meta_train(cfg, checkpoint_dir=tmp_path, progress=False)

    np.testing.assert_array_equal(full.history["fitness"], resumed.history["fitness"])
    assert isinstance(resumed_params, SyntheticEnvParams)
    for a, b in zip(jax.tree.leaves(full_params.network_params),
                    jax.tree.leaves(resumed_params.network_params)):
        np.testing.assert_array_equal(a, b)


def test_fast_inner_structure_keeps_the_budget_and_refuses_unknown_layouts():
    for algorithm in ("ppo", "dqn", "sac"):
        paper = inner_config(algorithm, True)
        fast = inner_config(algorithm, True, structure="fast")
        assert paper.total_timesteps == fast.total_timesteps == 10_000
        assert fast.num_envs > paper.num_envs
    with pytest.raises(ValueError, match="inner structure"):
        inner_config("ppo", True, structure="slow")
    with pytest.raises(ValueError, match="SCBMetaConfig.inner_structure"):
        SCBMetaConfig(inner_structure="slow")


def _hand_made_cartpole_scb(scb):
    """An SCB that teaches the controller "push right iff angle + 0.25 * angular velocity > 0".

    Context: s = scale * z, z ~ N(0, I) (ReLU units for z and -z). Reward:
    r(s, right) = relu(f), r(s, left) = relu(-f) with f = angle + 0.25 * angular
    velocity, so r(s, right) - r(s, left) = f. That linear rule alone keeps
    real CartPole-v1 up for all 500 steps.
    """
    params = scb.init_params(jax.random.key(0))
    scale = np.array([0.5, 0.5, 0.1, 0.5], np.float32)
    c0, c1 = np.zeros((4, 32), np.float32), np.zeros((32, 4), np.float32)
    for i in range(4):
        c0[i, i], c0[i, 4 + i] = 1.0, -1.0
        c1[i, i], c1[4 + i, i] = scale[i], -scale[i]
    r0, r1 = np.zeros((6, 32), np.float32), np.zeros((32, 1), np.float32)
    big = 100.0
    r0[2, 0], r0[3, 0], r0[4, 0] = 1.0, 0.25, -big  # relu(f - big * [left])
    r0[2, 1], r0[3, 1], r0[5, 1] = -1.0, -0.25, -big  # relu(-f - big * [right])
    r1[0, 0] = r1[1, 0] = 1.0
    zeros = jax.tree.map(jnp.zeros_like, params.network_params)
    net = {
        "context": {"Dense_0": {"kernel": jnp.asarray(c0), "bias": zeros["context"]["Dense_0"]["bias"]},
                    "Dense_1": {"kernel": jnp.asarray(c1), "bias": zeros["context"]["Dense_1"]["bias"]}},
        "reward": {"Dense_0": {"kernel": jnp.asarray(r0), "bias": zeros["reward"]["Dense_0"]["bias"]},
                   "Dense_1": {"kernel": jnp.asarray(r1), "bias": zeros["reward"]["Dense_1"]["bias"]}},
    }
    return params.replace(network_params=net)


@pytest.mark.slow
def test_agents_trained_on_a_good_scb_solve_the_real_env_and_transfer_reports_them():
    from learnenv.synthetic import scb_eval

    scb = SyntheticContextualBandit("CartPole-v1")
    params = _hand_made_cartpole_scb(scb)
    states = np.array([[0, 0, 0.1, 0.0], [0, 0, -0.1, 0.0], [0, 0, 0.0, 1.0]], np.float32)
    r = scb_eval.reward_landscape(scb, params, states, actions=(0, 1))
    np.testing.assert_allclose(r[1] - r[0], [0.1, -0.1, 0.25], atol=1e-6)
    # Fresh PPO agents with sampled hyperparameters, 10k steps on the SCB, scored on
    # real CartPole-v1: a correct one-step reward is enough to balance for 500 steps.
    out = scb_eval.transfer("CartPole-v1", params, jax.random.key(0), algorithms=("ppo",),
                            num_configs=4, num_eval_episodes=4)
    row = out["ppo"]
    assert row["returns"].shape == (4,) and row["learning_rate"].shape == (4,)
    assert len(set(row["learning_rate"].tolist()) | set(row["gamma"].tolist())) > 1
    assert np.sum(row["returns"] >= 475) >= 2, row


def test_feature_importance_finds_the_features_the_reward_uses():
    from learnenv.synthetic import scb_eval

    scb = SyntheticContextualBandit("CartPole-v1")
    params = scb.init_params(jax.random.key(0))
    net = jax.tree.map(jnp.zeros_like, params.network_params)
    k = np.zeros((6, 32), np.float32)
    k[2, 0], k[4, 0] = 1.0, 1.0  # hidden unit 0 = relu(angle + [action 0])
    net["reward"]["Dense_0"]["kernel"] = jnp.asarray(k)
    net["reward"]["Dense_1"]["kernel"] = jnp.asarray(np.eye(32, 1, dtype=np.float32))
    params = params.replace(network_params=net)
    states = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    imp = scb_eval.feature_importance(scb, params, states, actions=(0, 1))
    assert imp.shape == (4,)
    assert imp[2] > 0 and np.allclose(imp[[0, 1, 3]], 0)


def test_scb_saves_and_loads_in_one_call_and_refuses_other_checkpoints(tmp_path):
    from learnenv import io
    from learnenv.synthetic import meta

    cfg = SCBMetaConfig(env_name="Acrobot-v1")
    env = meta.make_synthetic_env(cfg)
    params = env.init_params(jax.random.key(3))
    meta.save_scb(tmp_path / "scb", cfg, params, extra={"note": "test"})
    loaded_env, loaded = meta.load_scb(tmp_path / "scb")
    assert loaded_env.name == env.name and loaded.max_steps_in_episode == 1
    for a, b in zip(jax.tree.leaves(params.network_params), jax.tree.leaves(loaded.network_params)):
        np.testing.assert_array_equal(a, b)
    io.save(tmp_path / "agent", params={"w": jnp.zeros(3)}, env_name="CartPole-v1")
    with pytest.raises(io.CheckpointError, match="holds kind 'agent', not 'scb'"):
        meta.load_scb(tmp_path / "agent")


def test_scb_experiments_are_registered_with_both_presets():
    from learnenv import experiments

    for name in ("scb-cartpole", "scb-acrobot", "scb-mountaincar",
                 "scb-mountaincar-continuous", "scb-pendulum"):
        exp = experiments.get(name)
        assert set(exp.presets) == {"quick", "full"}
        full = exp.presets["full"]
        assert full.sigma_init == 0.05 and full.inner_structure == "paper"


def test_full_presets_use_the_papers_evaluation_length_curricula():
    from learnenv import experiments
    from learnenv.synthetic.meta import SCBFitness

    mountaincar = SCBFitness(experiments.get("scb-mountaincar").presets["full"].meta_config())
    assert [mountaincar.eval_steps(g) for g in (0, 200, 500, 800, 999)] == [1000, 1000, 600,
                                                                           200, 200]
    assert mountaincar.eval_steps() == 200  # a test of the finished SCB uses the real cap
    quick = SCBFitness(experiments.get("scb-mountaincar").presets["quick"].meta_config())
    assert [quick.eval_steps(g) for g in (0, 8, 32, 39)] == [1000, 1000, 200, 200]  # scaled
    hopper = SCBFitness(experiments.get("scb-brax-hopper").presets["full"].meta_config())
    assert [hopper.eval_steps(g) for g in (0, 200, 1000, 1800)] == [100, 100, 550, 1000]
    cartpole = SCBFitness(experiments.get("scb-cartpole").presets["full"].meta_config())
    assert {cartpole.eval_steps(g) for g in (0, 150, 299)} == {500}


@pytest.mark.slow
def test_first_generation_of_a_brax_full_preset_runs_on_cpu():
    """The full preset's first generation (PPO in the rotation) with a tiny population."""
    import dataclasses

    from learnenv import experiments
    from learnenv.synthetic import meta

    full = experiments.get("scb-brax-hopper").presets["full"]
    assert full.algorithms[0] == "ppo" and full.population_size == 256
    tiny = dataclasses.replace(full, population_size=2, num_generations=1, inner_timesteps=1500,
                               num_eval_episodes=1, eval_max_steps=10, eval_steps_start=10,
                               mean_eval_every=0)
    env, _, result = meta.meta_train(tiny.meta_config(), progress=False)
    assert env.num_parameters() == 1260  # the paper's hopper checkpoint
    assert result.generations == 1 and result.history["fitness"].shape == (1, 2)


def test_shipped_scbs_load_in_one_call_with_provenance_and_transfer_results():
    from learnenv import pretrained

    shipped = [n for n in pretrained.names() if n.startswith("scb-")]
    assert "scb-cartpole-v1" in shipped
    for name in shipped:
        env, params = pretrained.load(name)
        assert isinstance(env, SyntheticContextualBandit)
        obs, state = env.reset(jax.random.key(0), params)
        assert obs.shape == env.obs_shape
        assert bool(env.step(jax.random.key(1), state, env.action_space(params).sample(
            jax.random.key(2)), params)[3])  # one-step episodes
        ckpt = pretrained.load_checkpoint(name)
        assert ckpt.provenance["git"]["commit"] and ckpt.provenance["wall_clock_s"] > 0
        transfer = ckpt.extra["transfer"]
        assert transfer and all(len(row["returns"]) >= 16 for row in transfer.values())
    env, params = pretrained.load("scb-cartpole-v1")
    assert env.num_parameters(params) == PAPER_PARAMETER_COUNTS["CartPole-v1"]


def test_shipped_synthetic_mdp_is_the_quick_preset_with_kind_mdp():
    """The chapter compares it with its live SCB, so its config must be the quick preset's."""
    import dataclasses

    from learnenv import experiments, pretrained

    env, params = pretrained.load("mdp-cartpole-quick")
    assert type(env) is SyntheticMDP and env.num_parameters(params) == 1098
    ckpt = pretrained.load_checkpoint("mdp-cartpole-quick", config_cls=SCBMetaConfig)
    quick = experiments.get("scb-cartpole").presets["quick"].meta_config()
    assert ckpt.config == dataclasses.replace(quick, kind="mdp")
    assert len(ckpt.metrics["fitness_mean"]) == quick.num_generations
    assert set(ckpt.extra["transfer"]) == {"ppo", "sac", "dqn"}


def test_shipped_inverted_pendulum_scb_is_its_experiments_quick_preset():
    """The chapter's brax comparison uses it; the command in results/scb/README.md
    (quick preset, meta seed 1) must still reproduce it."""
    import dataclasses

    from learnenv import experiments, pretrained

    ckpt = pretrained.load_checkpoint("scb-brax-inverted-pendulum-v1", config_cls=SCBMetaConfig)
    quick = experiments.get("scb-brax-inverted-pendulum").presets["quick"]
    assert ckpt.config == dataclasses.replace(quick.meta_config(), seed=1)
    assert set(ckpt.extra["transfer"]) == set(quick.transfer_algorithms)
    assert all(len(row["returns"]) == quick.transfer_configs
               for row in ckpt.extra["transfer"].values())


def test_fitness_averages_the_agents_of_each_member(monkeypatch):
    """``rollouts_per_member`` (the paper's num_rollouts): R agents, R distinct draws."""
    import types

    from learnenv.synthetic import meta

    cfg = SCBMetaConfig(algorithms=("ppo",), population_size=4, rollouts_per_member=3,
                        mean_eval_every=0)
    fitness = meta.SCBFitness(cfg)
    keys = []

    def fake_score(self, population, key, algorithm, double, shared, generation=None):
        keys.append(np.asarray(jax.random.key_data(key)))
        n = jax.tree.leaves(population)[0].shape[0]
        return jnp.arange(n) + 10.0 * len(keys), types.SimpleNamespace(
            learning_rate=jnp.full(n, 1e-3))

    monkeypatch.setattr(meta.SCBFitness, "score", fake_score)
    population = broadcast(fitness.template.network_params, 4)
    values, _ = fitness(population, jax.random.key(0), 0)
    assert len(keys) == 3 and len({k.tobytes() for k in keys}) == 3
    # member i scores i + 10, i + 20, i + 30 in the three rollouts: mean i + 20
    np.testing.assert_allclose(values, np.arange(4) + 20.0)
