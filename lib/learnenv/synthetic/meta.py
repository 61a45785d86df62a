"""Meta-training synthetic environments with SNES (Liesen et al., 2024).

The bi-level loop is :func:`learnenv.synthetic.evolve.evolve`; this module is
its SCB fitness (:class:`SCBFitness`), close to the paper's pseudocode::

    psi ~ SNES(mean = default init of the networks, sigma = 0.05)
    for generation g:
        algorithm = algorithms[g % len(algorithms)]          # in rotation
        hps = sample from the paper's lists                   # shared by the population
        for every member psi_i (vmapped):
            agent_i = train(algorithm, hps, env = SCB(psi_i), 10k steps)
            fitness_i = mean real-environment return of agent_i  # episodes cut at
                                                                  # the curriculum's length
        SNES.tell(-fitness)                                   # evosax minimises

Hyperparameters are sampled anew in every generation so that the environment
cannot specialise to one learner (the paper's robustness argument).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from learnenv import agents, envs, io
from learnenv.agents.base import evaluate
from learnenv.config import field
from learnenv.parallel import shard_population
from learnenv.synthetic.evolve import EvolutionConfig, evolve
from learnenv.synthetic.bandit import SyntheticContextualBandit, SyntheticEnvParams, SyntheticMDP
from learnenv.synthetic.base import broadcast

# The paper's hyperparameter lists (synthetic-gymnax configs), sampled uniformly.
# Their tau is the fraction of the *target* kept; ours is the fraction of the
# online network mixed in, so tau_ours = 1 - tau_theirs.
_LR = (1e-2, 5e-3, 1e-3, 5e-4, 1e-4)
_GAMMA = (1.0, 0.99, 0.95, 0.9, 0.8)
_TAU = tuple(round(1 - t, 2) for t in (0.99, 0.95, 0.9, 0.7, 0.8))
_NOISE = (0.1, 0.3, 0.5, 0.7, 0.9)
PAPER_HYPERPARAMETERS: dict[str, dict[str, tuple]] = {
    "ppo": dict(
        learning_rate=_LR, gamma=_GAMMA, gae_lambda=(1.0, 0.95, 0.9, 0.8, 0.5),
        clip_eps=(0.1, 0.2, 0.3, 0.4, 0.5), ent_coef=(0.0, 0.01, 0.05, 0.1, 0.5),
        vf_coef=(0.0, 0.5, 1.0, 1.5, 2.0),
    ),
    "sac": dict(learning_rate=_LR, gamma=_GAMMA, tau=_TAU,
                target_entropy_ratio=(0.1, 0.3, 0.5, 0.7, 0.9)),
    "dqn": dict(learning_rate=_LR, gamma=_GAMMA, eps_end=(0.01, 0.05, 0.1, 0.2)),
    "ddpg": dict(learning_rate=_LR, gamma=_GAMMA, tau=_TAU, exploration_noise=_NOISE),
    "td3": dict(learning_rate=_LR, gamma=_GAMMA, tau=_TAU, exploration_noise=_NOISE,
                policy_noise=_NOISE, noise_clip=(0.1, 0.4, 0.7, 1.0, 1.3)),
}


def agent(algorithm: str):
    """``(module, config class)`` of an inner-loop algorithm (from the agent registry)."""
    spec = agents.get(algorithm)
    return spec.module, spec.Config


DISCRETE_ALGORITHMS = ("ppo", "sac", "dqn")
CONTINUOUS_ALGORITHMS = ("ppo", "sac", "ddpg", "td3")

INNER_STRUCTURES = ("paper", "fast")
# What the "fast" layout changes in the paper's: 50 environments collect the same
# 10k steps, with fewer, larger gradient steps.
FAST_LAYOUT_CHANGES: dict[str, dict[str, Any]] = {
    "ppo": dict(num_envs=50, num_steps=20, update_epochs=4, num_minibatches=4),
    "sac": dict(num_envs=50, gradient_steps=4),
    "dqn": dict(num_envs=50, gradient_steps=2, target_update_interval=10),
    "ddpg": dict(num_envs=50, gradient_steps=4),
    "td3": dict(num_envs=50, gradient_steps=4),
}


_TANH = dict(activation="tanh")
# Where synthetic-gymnax's per-environment configs differ from its CartPole and
# Acrobot ones (the layout below); the "paper" structure applies them.
PAPER_ENV_DIFFERENCES: dict[str, dict[str, dict[str, Any]]] = {
    "MountainCar-v0": {"ppo": dict(update_epochs=4, num_minibatches=4)},
    "MountainCarContinuous-v0": {"ppo": dict(update_epochs=4, num_minibatches=4, **_TANH),
                                 "sac": _TANH, "ddpg": _TANH, "td3": _TANH},
    "brax": {"ppo": _TANH, "ddpg": dict(buffer_size=5000, **_TANH),
             "td3": dict(buffer_size=5000, **_TANH),
             "sac": dict(num_envs=1, batch_size=250, buffer_size=5000, gradient_steps=1,
                         **_TANH)},
}
# ... and where their sampled lists differ: continuous tasks drop PPO's 1e-2.
PAPER_CONTINUOUS_PPO_LR = tuple(lr for lr in _LR if lr != 1e-2)


def _paper_env_key(env_name: str) -> str:
    return "brax" if env_name.startswith("brax/") else env_name


def hyperparameter_lists(algorithm: str, discrete: bool, structure: str = "paper") -> dict:
    """The lists a meta-training run samples ``algorithm``'s hyperparameters from."""
    lists = dict(PAPER_HYPERPARAMETERS[algorithm])
    if structure == "paper" and algorithm == "ppo" and not discrete:
        lists["learning_rate"] = PAPER_CONTINUOUS_PPO_LR
    return lists


def inner_config(algorithm: str, discrete: bool, total_timesteps: int = 10_000,
                 structure: str = "paper", env_name: str | None = None, **overrides):
    """The inner-loop agent's fixed structure.

    ``"paper"`` is synthetic-gymnax's configs. ``"fast"`` keeps the same 10k
    steps but collects them in wider batches (50 environments), so there are
    about 10x fewer sequential gradient steps: PPO 160 instead of 2,000, which
    is what makes a CPU meta-training run take minutes instead of hours.
    Given ``env_name``, ``"paper"`` also applies that environment's own
    differences (:data:`PAPER_ENV_DIFFERENCES`).
    Every structural field is pinned here rather than taken from the agent's
    defaults, which are tuned for training on real environments. DQN keeps the
    Huber loss: on one-step episodes its target is the reward itself, so the
    divergence that made DQN's real-environment default squared error cannot occur.
    """
    if structure not in INNER_STRUCTURES:
        raise ValueError(f"inner structure {structure!r}; valid: {INNER_STRUCTURES}.")
    activation = "tanh" if discrete else "relu"
    _, config_class = agent(algorithm)
    layout: dict[str, Any] = {
        "ppo": dict(num_envs=5, num_steps=100, update_epochs=10, num_minibatches=10,
                    max_grad_norm=10.0, activation=activation, anneal_lr=False,
                    normalize_observations=False),
        "sac": dict(num_envs=5, buffer_size=2000, learning_starts=1000, batch_size=256,
                    train_freq=1, gradient_steps=2, anneal_lr=False, activation=activation),
        "dqn": dict(num_envs=10, buffer_size=2000, learning_starts=1000, batch_size=100,
                    train_freq=1, gradient_steps=1, target_update_interval=50, tau=1.0,
                    dueling=True, layer_norm=False, anneal_lr=False, max_grad_norm=10.0,
                    eps_start=1.0, exploration_fraction=0.5, activation=activation,
                    loss="huber"),
        "ddpg": dict(num_envs=1, buffer_size=2000, learning_starts=1000, batch_size=100,
                     train_freq=1, gradient_steps=1, anneal_lr=False, activation=activation),
        "td3": dict(num_envs=1, buffer_size=10_000, learning_starts=1000, batch_size=100,
                    train_freq=1, gradient_steps=1, anneal_lr=False, policy_delay=2,
                    activation=activation),
    }[algorithm]
    if structure == "fast":
        layout.update(FAST_LAYOUT_CHANGES[algorithm])
    elif env_name is not None:
        layout.update(PAPER_ENV_DIFFERENCES.get(_paper_env_key(env_name), {}).get(algorithm, {}))
    layout["hidden_sizes"] = (64, 64)
    layout.update(overrides)
    return config_class(total_timesteps=total_timesteps, **layout)


def sample_hyperparameters(algorithm: str, key: jax.Array, base: Any,
                           lists: Mapping[str, tuple] | None = None) -> Any:
    """Replace ``base``'s fields by uniform draws from the paper's lists (jittable)."""
    lists = PAPER_HYPERPARAMETERS[algorithm] if lists is None else lists
    keys = jax.random.split(key, len(lists))
    draws = {
        name: jax.random.choice(k, jnp.asarray(values, jnp.float32))
        for k, (name, values) in zip(keys, sorted(lists.items()))
    }
    return base.replace(**draws)


@dataclasses.dataclass(frozen=True)
class SCBMetaConfig(EvolutionConfig):
    """Meta-training of one synthetic environment for one real environment
    (the outer loop's fields are :class:`~learnenv.synthetic.evolve.EvolutionConfig`'s)."""

    env_name: str = field("CartPole-v1", choices=envs.names)
    kind: str = field("bandit", choices=("bandit", "mdp"), doc="SCB or synthetic MDP")
    algorithms: tuple = DISCRETE_ALGORITHMS
    inner_timesteps: int = field(10_000, low=1)
    inner_structure: str = field("paper", choices=INNER_STRUCTURES,
                                 doc="inner agents' batch layout (see inner_config)")
    rollouts_per_member: int = field(1, low=1, doc="agents (each its own hyperparameters "
                                     "and seed, shared by the population) per member's fitness")
    eval_max_steps: int = field(0, low=0, doc="0 = the real environment's own cap")
    # The paper's evaluation-length curriculum (synthetic-gymnax's eval_config):
    # MountainCar's fitness episodes start at 1,000 steps, so that agents which
    # reach the flag slowly still score above the flat -200 floor, and shrink
    # linearly to the real cap; brax's grow from 100 to 1,000.
    eval_steps_start: int = field(0, low=0, doc="fitness episode length at first; 0 = no curriculum")
    eval_curriculum_begin: int = field(0, low=0, doc="generation where the length starts to change")
    eval_curriculum_generations: int = field(1, low=1, doc="generations the change takes")
    eval_greedy: bool = field(True, choices=(True, False), doc="greedy or sampled actions in the fitness episodes")
    hidden_size: int = field(32, low=1)
    seed: int = field(0, low=0)

    def validate(self) -> None:
        if self.stop_after_solved:
            raise ValueError("SCBMetaConfig.stop_after_solved must be 0: an SCB's mean has no "
                             "'solved' test (SCBFitness.evaluate_mean scores it only).")
        unknown = [a for a in self.algorithms if a not in PAPER_HYPERPARAMETERS]
        if not self.algorithms or unknown:
            raise ValueError(
                f"SCBMetaConfig.algorithms={self.algorithms!r}: unknown {unknown}; "
                f"choose from {sorted(PAPER_HYPERPARAMETERS)}."
            )


def make_synthetic_env(config: SCBMetaConfig):
    cls = SyntheticContextualBandit if config.kind == "bandit" else SyntheticMDP
    return cls(config.env_name, hidden_sizes=(config.hidden_size,))


class SCBFitness:
    """The SCB paper's fitness for :func:`~learnenv.synthetic.evolve.evolve`: per
    generation one algorithm (in rotation) with hyperparameters drawn from the
    paper's lists, shared by the population, trained for ``inner_timesteps`` in
    every member and scored on the real environment.

    Also the transfer test's engine (:func:`learnenv.synthetic.scb_eval.transfer`):
    :meth:`score` trains one agent per member, compiled once per algorithm.
    """

    mean_metrics = ("mean_fitness",)

    def __init__(self, config: SCBMetaConfig, synthetic_env: Any = None):
        """``synthetic_env``: the environment the agents train on (by default
        :func:`make_synthetic_env` of ``config``); its ``real_env`` is the one they
        are scored in, so passing one chooses, e.g., the real brax backend. Its
        ``default_params`` are the template of the members' weights."""
        self.config = config
        self.metrics = {"algorithm_index": (), "dqn_double": (), "learning_rate": (),
                        "eval_steps": ()}
        if synthetic_env is not None and synthetic_env.real_env_name != config.env_name:
            raise ValueError(f"synthetic_env stands in for {synthetic_env.real_env_name}, "
                             f"but config.env_name is {config.env_name}.")
        self.synthetic_env = make_synthetic_env(config) if synthetic_env is None else synthetic_env
        self.real_env = self.synthetic_env.real_env
        self.real_params = self.synthetic_env.real_env_params
        self.discrete = self.synthetic_env.discrete
        valid = DISCRETE_ALGORITHMS if self.discrete else CONTINUOUS_ALGORITHMS
        bad = [a for a in config.algorithms if a not in valid]
        if bad:
            raise ValueError(
                f"SCBMetaConfig.algorithms has {bad}, which cannot act in {config.env_name} "
                f"({'discrete' if self.discrete else 'continuous'} actions); valid: {valid}."
            )
        self.template = self.synthetic_env.default_params
        self.eval_max_steps = config.eval_max_steps or int(self.real_params.max_steps_in_episode)
        start = config.eval_steps_start or self.eval_max_steps
        self.eval_schedule = optax.linear_schedule(
            start, self.eval_max_steps, config.eval_curriculum_generations,
            config.eval_curriculum_begin)
        # The longest length of the curriculum bounds the evaluation loop; the real
        # env's time limit, a traced parameter, ends episodes at this generation's
        # length, and the loop stops when they have all ended.
        self.eval_scan_steps = max(start, self.eval_max_steps)
        self._fitness_fns: dict[tuple, Callable] = {}

    def eval_steps(self, generation: int | None = None) -> int:
        """Length of the fitness episodes in ``generation`` (the curriculum);
        ``None``: the final length, the one a test of the finished SCB uses."""
        if generation is None:
            return self.eval_max_steps
        return int(round(float(self.eval_schedule(generation))))

    # --- one inner loop: train on the synthetic env, score on the real one ----
    def make_member_fitness(self, algorithm: str, double: bool | None = None):
        """``fitness(network_params, hps, key, eval_steps) -> mean real return`` for one member."""
        overrides = {} if double is None else {"double": double}
        cfg = inner_config(algorithm, self.discrete, self.config.inner_timesteps,
                           self.config.inner_structure, self.config.env_name, **overrides)
        module, _ = agent(algorithm)
        env, template = self.synthetic_env, self.template
        train = module.make_train(cfg, env, template)
        policy = module.make_policy(cfg, env, template)

        def fitness(network_params, hps, key, eval_steps):
            train_key, eval_key = jax.random.split(key)
            result = train(train_key, hps, self.environment_params(network_params))
            real_params = self.real_params.replace(max_steps_in_episode=eval_steps)
            returns = evaluate(policy, result.params, self.real_env, real_params, eval_key,
                               self.config.num_eval_episodes, self.config.eval_greedy,
                               self.eval_scan_steps)
            return returns.mean()

        return fitness, cfg.hyperparams()

    def population_fitness(self, algorithm: str, double: bool | None = None) -> Callable:
        """Jitted ``(population, hps, keys, eval_steps) -> fitness[pop]``, batched on axis 0.

        Compiled once per algorithm variant and reused both for the population
        (shared hyperparameters and seed, as in the paper, so fitness differences
        come from the environments alone) and for scoring the ES mean (a
        different draw per row).
        """
        variant = (algorithm, double if algorithm == "dqn" else None)
        if variant not in self._fitness_fns:
            member_fitness, base_hps = self.make_member_fitness(*variant)
            lists = hyperparameter_lists(algorithm, self.discrete, self.config.inner_structure)
            sample = jax.jit(jax.vmap(
                lambda k: sample_hyperparameters(algorithm, k, base_hps, lists)))
            population_fitness = jax.vmap(member_fitness, in_axes=(0, 0, 0, None))
            self._fitness_fns[variant] = (jax.jit(population_fitness), sample)
        return self._fitness_fns[variant]

    def score(self, population, key, algorithm: str, double: bool | None, shared: bool,
              generation: int | None = None):
        """Train one agent per member and return the members' real returns."""
        fitness_fn, sample = self.population_fitness(algorithm, double)
        n = jax.tree.leaves(population)[0].shape[0]
        hp_key, run_key = jax.random.split(key)
        hp_keys = jax.random.split(hp_key, n)
        run_keys = jax.random.split(run_key, n)
        if shared:
            hp_keys = jnp.broadcast_to(hp_keys[0], hp_keys.shape)
            run_keys = jnp.broadcast_to(run_keys[0], run_keys.shape)
        hps = sample(hp_keys)
        eval_steps = jnp.asarray(self.eval_steps(generation), jnp.int32)
        population, hps, run_keys = shard_population(population, hps, run_keys)
        return fitness_fn(population, hps, run_keys, eval_steps), hps

    # --- the outer loop's view ----------------------------------------------
    def algorithm_for(self, generation: int, key: jax.Array) -> tuple:
        algorithm = self.config.algorithms[generation % len(self.config.algorithms)]
        double = None
        if algorithm == "dqn":  # the double flag changes the program: drawn outside jit
            double = bool(jax.random.bernoulli(jax.random.fold_in(key, 7)))
        return algorithm, double

    def __call__(self, population, key: jax.Array, generation: int):
        """Fitness of every member: its agents' mean real return (see the module docstring)."""
        algorithm, double = self.algorithm_for(generation, key)
        # The paper's num_rollouts (8 for Pendulum): fitness averages several agents,
        # each with its own hyperparameters and seed, shared by the whole population.
        rollout_keys = [jax.random.fold_in(key, r) if r else key
                        for r in range(self.config.rollouts_per_member)]
        scored = [self.score(population, k, algorithm, double, shared=True,
                             generation=generation) for k in rollout_keys]
        fitness = jnp.mean(jnp.stack([f for f, _ in scored]), axis=0)
        hps = scored[0][1]
        return fitness, {
            "algorithm_index": self.config.algorithms.index(algorithm),
            "dqn_double": -1 if double is None else int(double),
            "learning_rate": hps.learning_rate[0],
            "eval_steps": self.eval_steps(generation),
        }

    def evaluate_mean(self, mean, key: jax.Array, generation: int) -> dict:
        """Real return of agents trained on the ES mean: for every algorithm, one
        agent per population slot, each with its own hyperparameters and seed."""
        batch = broadcast(mean, self.config.population_size)
        scores = []
        for i, algorithm in enumerate(self.config.algorithms):
            double = True if algorithm == "dqn" else None  # one fixed DQN variant
            fitness, _ = self.score(batch, jax.random.fold_in(key, i), algorithm, double,
                                    shared=False, generation=generation)
            scores.append(jnp.mean(fitness))
        return {"mean_fitness": jnp.mean(jnp.stack(scores))}

    def environment_params(self, network_params) -> SyntheticEnvParams:
        return SyntheticEnvParams(network_params, self.template.max_steps_in_episode)


@functools.lru_cache(maxsize=8)
def scb_fitness(config: SCBMetaConfig) -> SCBFitness:
    """The :class:`SCBFitness` of ``config``, built once, so repeated runs and
    transfer tests of one config reuse its compiled functions."""
    return SCBFitness(config)


def meta_train(config: SCBMetaConfig, checkpoint_dir: str | None = None,
               progress: bool | None = None):
    """Meta-train an SCB (or synthetic MDP): ``(env, env_params, result)``.

    Resumable when ``checkpoint_dir`` is given, and extendable: the same run
    asked for more generations goes on from its last checkpoint.
    """
    fitness = scb_fitness(config)
    result = evolve(config, fitness.template.network_params, fitness, jax.random.key(config.seed),
                    checkpoint_dir=checkpoint_dir, progress=progress,
                    desc=f"{config.strategy} {config.env_name}")
    return fitness.synthetic_env, fitness.environment_params(result.mean), result


# --- files ---------------------------------------------------------------------
def save_scb(path, config: SCBMetaConfig, env_params: SyntheticEnvParams, *, metrics=None,
             extra: dict | None = None, wall_clock_s: float | None = None):
    """Save a meta-trained SCB (or synthetic MDP) with its config and history;
    :func:`load_scb` and ``learnenv.pretrained.load`` turn it back into ``(env, env_params)``."""
    env = make_synthetic_env(config)
    info = {"num_parameters": env.num_parameters(env_params), **(extra or {})}
    return io.save_environment(path, env, env_params, config=config, metrics=metrics,
                               extra=info, wall_clock_s=wall_clock_s)


def load_scb(path):
    """``(env, env_params)`` of a synthetic environment saved by :func:`save_scb`."""
    return io.load_environment(path, expect_kind=("scb", "synthetic-mdp"))
