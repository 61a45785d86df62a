"""The one bi-level loop (learnenv.synthetic.evolve) and populations over devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from learnenv.agents.base import evaluate
from learnenv.synthetic import SyntheticContextualBandit
from learnenv.synthetic.evolve import EvolutionConfig, evolve


class GreedyRewardFitness:
    """A tiny meta-learning problem with no inner training: an SCB's fitness is the
    real CartPole return of acting greedily on its reward, argmax_a r(s, a) (the
    optimum an agent of the SCB would learn). A random SCB's reward mostly prefers
    one action everywhere, which falls over in about 10 steps."""

    metrics: dict = {}
    mean_metrics = ("mean_fitness",)

    def __init__(self):
        self.scb = SyntheticContextualBandit("CartPole-v1")
        real, real_params = self.scb.real_env, self.scb.real_env_params

        def policy(net, obs, key, greedy):
            return jnp.argmax(jnp.stack([self.scb.reward(net, obs, a) for a in (0, 1)]))

        def score(net, key):
            return evaluate(policy, net, real, real_params, key, 4).mean()

        self.score = jax.jit(jax.vmap(score, in_axes=(0, None)))

    def __call__(self, population, key, generation):
        return self.score(population, key), {}

    def evaluate_mean(self, mean, key, generation):
        return {"mean_fitness": self.score(jax.tree.map(lambda x: x[None], mean), key)[0],
                "solved": False}


@pytest.fixture(scope="module")
def toy():
    return GreedyRewardFitness()


def test_evolution_improves_an_environment_that_starts_badly(toy):
    config = EvolutionConfig(population_size=16, sigma_init=0.1, num_generations=30,
                             mean_eval_every=5, checkpoint_every=0)
    result = evolve(config, toy.scb.default_params.network_params, toy, jax.random.key(0),
                    progress=False)
    tested = result.history["mean_fitness"][np.isfinite(result.history["mean_fitness"])]
    assert result.history["fitness_mean"][0] < 30  # random SCBs teach "push one way"
    assert len(tested) == 6 and tested[-1] > 200  # the evolved mean balances the pole
    assert result.generations == 30 and result.solved_generation is None


def test_nan_fitness_counts_as_the_worst_and_is_recorded_as_nan(toy):
    class HalfDiverged(GreedyRewardFitness):
        def __call__(self, population, key, generation):
            fitness, extra = super().__call__(population, key, generation)
            return fitness.at[::2].set(jnp.nan), extra  # every other inner run "diverged"

    fitness = HalfDiverged()
    config = EvolutionConfig(population_size=8, num_generations=3, mean_eval_every=0,
                             checkpoint_every=0)
    result = evolve(config, fitness.scb.default_params.network_params, fitness,
                    jax.random.key(0), progress=False)
    assert np.all(np.isnan(result.history["fitness"][:, ::2]))
    assert np.all(np.isfinite(result.history["fitness"][:, 1::2]))
    np.testing.assert_allclose(result.history["fitness_mean"],
                               result.history["fitness"][:, 1::2].mean(axis=1), rtol=1e-6)
    assert np.all(np.isfinite(ravel_pytree(result.mean)[0]))


def test_mirrored_nes_runs_in_the_same_loop(toy):
    config = EvolutionConfig(strategy="mirrored_nes", population_size=8, sigma_init=0.05,
                             num_generations=2, mean_eval_every=1, checkpoint_every=0)
    result = evolve(config, toy.scb.default_params.network_params, toy, jax.random.key(1),
                    progress=False)
    assert result.history["fitness"].shape == (2, 8)
    assert np.all(np.isfinite(result.history["mean_fitness"]))


def test_unknown_strategy_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="strategy.*SNES"):
        EvolutionConfig(strategy="snes_typo")


# --------------------------------------------------------------------------- devices

_SCORE = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from learnenv.synthetic.base import broadcast
    from learnenv.synthetic.meta import SCBMetaConfig, SCBFitness

    population = int(sys.argv[1])
    config = SCBMetaConfig(algorithms=("ppo",), population_size=population,
                           inner_timesteps=1000, inner_structure="fast",
                           num_eval_episodes=2, eval_max_steps=50)
    fitness = SCBFitness(config)
    members = jax.vmap(fitness.synthetic_env.init_network_params)(
        jax.random.split(jax.random.key(3), population))
    values, _ = fitness.score(members, jax.random.key(4), "ppo", None, shared=False)
    print(json.dumps({"devices": jax.device_count(), "fitness": np.asarray(values).tolist(),
                      "shards": len(values.sharding.device_set)}))
""")


def _score_on(devices: int, population: int = 4) -> subprocess.CompletedProcess:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", _SCORE, str(population)], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_population_shards_over_two_devices_with_the_same_fitness():
    one, two = _score_on(1), _score_on(2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    one, two = json.loads(one.stdout.splitlines()[-1]), json.loads(two.stdout.splitlines()[-1])
    assert (one["devices"], one["shards"]) == (1, 1)
    assert (two["devices"], two["shards"]) == (2, 2)  # each device trained half the members
    assert len(set(one["fitness"])) > 1  # the members differ, so the comparison means something
    np.testing.assert_allclose(two["fitness"], one["fitness"], rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_a_population_that_does_not_split_over_the_devices_is_refused():
    out = _score_on(2, population=3)
    assert out.returncode != 0
    assert "population of 3 does not split evenly over the 2 visible devices" in out.stderr


def test_an_extended_run_stops_where_a_fresh_run_would(toy, tmp_path):
    """The extra test of a run's last generation must not count towards the stop rule,
    or extending a finished run would differ from running the longer run at once."""

    class SolvedFromGenerationTwo(GreedyRewardFitness):
        def evaluate_mean(self, mean, key, generation):
            return {**super().evaluate_mean(mean, key, generation), "solved": generation >= 2}

    fitness = SolvedFromGenerationTwo()
    config = EvolutionConfig(population_size=4, num_generations=3, mean_eval_every=2,
                             stop_after_solved=1, checkpoint_every=1)
    template = fitness.scb.default_params.network_params
    evolve(config, template, fitness, jax.random.key(0), checkpoint_dir=tmp_path, progress=False)
    longer = config.replace(num_generations=6)
    extended = evolve(longer, template, fitness, jax.random.key(0), checkpoint_dir=tmp_path,
                      progress=False)
    fresh = evolve(longer, template, fitness, jax.random.key(0), progress=False)
    assert extended.solved_generation == fresh.solved_generation == 4
    np.testing.assert_array_equal(ravel_pytree(extended.mean)[0], ravel_pytree(fresh.mean)[0])


def test_sharding_names_a_leaf_that_is_not_a_batch():
    from learnenv.parallel import shard_population

    with pytest.raises(ValueError, match=r"leaf .*'lr'.* has shape \(\)"):
        shard_population({"keys": jnp.zeros((4, 2)), "lr": jnp.float32(1e-3)})
