"""Synthetic contextual bandits and synthetic MDPs: the environment contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnenv.synthetic import SyntheticContextualBandit, SyntheticEnvParams, SyntheticMDP
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


def test_meta_config_validation_names_the_field():
    with pytest.raises(ValueError, match="SCBMetaConfig.population_size"):
        SCBMetaConfig(population_size=1)
    with pytest.raises(ValueError, match="SCBMetaConfig.algorithms"):
        SCBMetaConfig(algorithms=("a2c",))


def test_meta_training_runs_and_resumes_identically(tmp_path, monkeypatch):
    from learnenv.synthetic import meta

    cfg = SCBMetaConfig(algorithms=("ppo",), population_size=4, num_generations=3,
                        inner_timesteps=1000, num_eval_episodes=2, eval_max_steps=50,
                        mean_eval_every=0, checkpoint_every=1)
    full = meta.meta_train(cfg, checkpoint_dir=None, progress=False)
    trainer = full["trainer"]  # reuse its compiled functions
    assert full["history"]["fitness_mean"].shape == (3,)
    assert np.all(full["history"]["fitness_mean"] > 0)

    # Interrupt the run in generation 2, then start it again: it resumes.
    original = meta.MetaTrainer.generation

    def crash_in_generation_2(self, state, generation):
        if generation == 2:
            raise KeyboardInterrupt
        return original(self, state, generation)

    monkeypatch.setattr(meta.MetaTrainer, "generation", crash_in_generation_2)
    with pytest.raises(KeyboardInterrupt):
        meta.meta_train(cfg, checkpoint_dir=tmp_path, progress=False, trainer=trainer)
    monkeypatch.setattr(meta.MetaTrainer, "generation", original)
    resumed = meta.meta_train(cfg, checkpoint_dir=tmp_path, progress=False, trainer=trainer)

    np.testing.assert_array_equal(full["history"]["fitness_mean"],
                                  resumed["history"]["fitness_mean"])
    assert isinstance(resumed["env_params"], SyntheticEnvParams)
    for a, b in zip(jax.tree.leaves(full["env_params"].network_params),
                    jax.tree.leaves(resumed["env_params"].network_params)):
        np.testing.assert_array_equal(a, b)
