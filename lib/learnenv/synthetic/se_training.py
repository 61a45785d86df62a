"""Learning a synthetic environment: NES outside, DDQN inside (Ferreira et al., 2022).

The bi-level loop, per generation::

    population = strategy.ask()                      # perturbed SE weights
    for every member, in parallel (one vmapped call per agent variant):
        sample DDQN hyperparameters (lr log-uniform in [lr/3, 3 lr])
        train a fresh DDQN for inner_timesteps steps INSIDE the member's SE
        fitness = mean greedy return of that agent over 10 REAL episodes
    strategy.tell(-fitness)                          # evosax minimises

The loop itself is :func:`learnenv.synthetic.evolve.evolve`; this module is its
SE fitness (:class:`SEFitness`). Every ``mean_eval_every`` generations the ES
*mean* ("centre" in the paper; not the luckiest member: fitness is noisy, and a
lucky draw says little) is tested the same way with fresh agents; the run stops
once a fraction ``solved_fraction`` of those agents solves the real task.

What varies per member. Traced values vary freely inside one vmapped call: the
learning rate and the seed. Hidden sizes and batch sizes fix array shapes, so
they come from a short list of static ``agent_variants``; members are dealt
round-robin to the variants (each variant is one compiled, vmapped call). The
two members of a mirrored pair share their hyperparameters and seed, so the
comparison between ``psi + eps`` and ``psi - eps`` is not drowned in the noise
of two different agents.

Strategies: ``"mirrored_nes"`` (the paper's, :mod:`learnenv.synthetic.nes`) or
the name of any evosax distribution-based strategy (``"SNES"``, ...).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from learnenv import envs, io
from learnenv.config import field
from learnenv.parallel import shard_population
from learnenv.synthetic.base import SyntheticEnvParams, broadcast
from learnenv.synthetic.evolve import EvolutionConfig, EvolutionResult, evolve, strategies

__all__ = ["SETrainingConfig", "SEFitness", "make_se", "make_agent_config", "make_member_eval",
           "sample_learning_rates", "train_se", "test_se", "save_se", "load_se"]


@dataclasses.dataclass(frozen=True)
class SETrainingConfig(EvolutionConfig):
    """Everything that defines one SE training run (the outer loop's fields are
    :class:`~learnenv.synthetic.evolve.EvolutionConfig`'s, here with the paper's
    defaults: mirrored NES, 8 pairs, sigma 0.05, step 1)."""

    strategy: str = field("mirrored_nes", choices=strategies)
    population_size: int = field(16, low=2, doc="members per generation (2 per mirrored pair)")
    num_generations: int = field(100, low=1)
    num_eval_episodes: int = field(10, low=1, doc="real episodes per fitness evaluation")
    mean_eval_every: int = field(2, low=1, doc="generations between tests of the ES mean")
    stop_after_solved: int = field(1, low=0, doc="consecutive passed tests of the mean to stop")
    env_name: str = field("CartPole-v1", choices=envs.names)
    env_kind: str = field("se", choices=("se", "rn_additive"),
                          doc="synthetic environment, or reward network on the real dynamics")
    max_steps_in_episode: int = field(200, low=0, doc="real env step cap (0: its default); also the SE's")
    # The synthetic environment.
    se_hidden_size: int = field(128, low=1, doc="hidden units of each SE network (or of the RN)")
    se_activation: str = field("leaky_relu", choices=("leaky_relu", "relu", "tanh", "elu", "swish"))
    state_clip: float = field(10.0, low=0.0, doc="SE states clipped to [-c, c] (0: off; ours)")
    init_scale: float = field(1.0, low=0.0, low_inclusive=False,
                              doc="SE start states: the real reset's times this (1: the paper's)")
    # The inner loop: DDQN (or dueling DDQN) with varied hyperparameters.
    dueling: bool = field(False, choices=(True, False))
    inner_timesteps: int = field(10_000, low=1)
    agent_variants: tuple = (((64,), 64), ((128,), 32))  # (hidden_sizes, batch_size) each
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False)
    lr_factor: float = field(3.0, low=1.0, doc="lr log-uniform in [lr/f, lr*f]")
    gamma: float = field(0.99, low=0.0, high=1.0)
    tau: float = field(0.01, low=0.0, high=1.0, low_inclusive=False, doc="soft target update per step")
    train_freq: int = field(4, low=1)
    learning_starts: int = field(1_000, low=0)
    eps_end: float = field(0.05, low=0.0, high=1.0)
    exploration_fraction: float = field(0.2, low=0.0, high=1.0)
    # "Solved".
    solved_return: float = 195.0
    solved_fraction: float = field(0.8, low=0.0, high=1.0, doc="of the mean's test agents")

    def validate(self) -> None:
        if not self.agent_variants:
            raise ValueError("SETrainingConfig.agent_variants must list at least one (hidden, batch).")
        for v in self.agent_variants:
            if len(v) != 2 or not all(int(h) > 0 for h in v[0]) or int(v[1]) < 1:
                raise ValueError(
                    f"SETrainingConfig.agent_variants entry {v!r} must be (hidden_sizes, batch_size)."
                )
        pop, n = self.population_size, len(self.agent_variants)
        if pop % n:
            raise ValueError(
                f"SETrainingConfig: the population ({pop}) must split evenly over the "
                f"{n} agent_variants."
            )
        if self.strategy == "mirrored_nes" and (pop % 2 or (pop // 2) % n):
            raise ValueError(
                f"SETrainingConfig.population_size={pop}: mirrored_nes needs pairs, and the "
                f"{pop // 2} pairs must split evenly over the {n} agent_variants "
                "(the two members of a pair share a variant)."
            )

    @property
    def variants(self) -> list[tuple[tuple[int, ...], int]]:
        return [(tuple(int(h) for h in hid), int(b)) for hid, b in self.agent_variants]


# --------------------------------------------------------------------------- pieces


def real_env_kwargs(config: Any) -> dict:
    """``envs.make`` keywords for ``config.max_steps_in_episode`` (0: the env's own cap)."""
    cap = config.max_steps_in_episode
    return {"max_steps_in_episode": cap} if cap else {}


@functools.lru_cache(maxsize=8)
def make_se(config: SETrainingConfig):
    """The SE (and its default, untrained ``env_params``) that ``config`` trains.

    Cached, so repeated runs of one config reuse the compiled inner loop.
    """
    from learnenv.synthetic.environment import SyntheticEnvironment
    from learnenv.synthetic.reward_network import RewardNetworkEnvironment

    kwargs = dict(hidden_sizes=(config.se_hidden_size,), activation=config.se_activation,
                  **real_env_kwargs(config))
    if config.env_kind == "se":
        env = SyntheticEnvironment(config.env_name, state_clip=config.state_clip,
                                   init_scale=config.init_scale, **kwargs)
    else:
        env = RewardNetworkEnvironment(config.env_name, **kwargs)
    return env, env.default_params


def make_agent_config(config: SETrainingConfig, hidden_sizes, batch_size, total_timesteps=None):
    from learnenv.agents.dqn import DQNConfig

    total = int(total_timesteps or config.inner_timesteps)
    # Every field pinned, not left to DQNConfig's defaults (tuned for real
    # CartPole, and changed since the shipped SEs were learned): one env, one
    # gradient step per round, no LayerNorm, constant lr, ReLU, and the Huber
    # loss the shipped SEs were learned with (DQN's default is now "mse").
    return DQNConfig(
        loss="huber", total_timesteps=total, num_envs=1, gradient_steps=1, layer_norm=False,
        anneal_lr=False, activation="relu", max_grad_norm=10.0, double=True,
        target_update_interval=1, eps_start=1.0,
        buffer_size=max(total, int(batch_size)), batch_size=int(batch_size),
        learning_starts=min(config.learning_starts, max(total - config.train_freq, 0)),
        train_freq=config.train_freq, hidden_sizes=tuple(hidden_sizes), dueling=config.dueling,
        learning_rate=config.learning_rate, gamma=config.gamma, tau=config.tau,
        eps_end=config.eps_end, exploration_fraction=config.exploration_fraction,
    )


def sample_learning_rates(key, n: int, lr: float, factor: float) -> jax.Array:
    """Log-uniform in ``[lr/factor, lr*factor]`` (the paper's varied-HP range)."""
    u = jax.random.uniform(key, (n,), minval=-1.0, maxval=1.0)
    return lr * factor**u


@functools.lru_cache(maxsize=32)
def make_member_eval(config: SETrainingConfig, se, hidden, batch, total_timesteps=None) -> Callable:
    """Jitted ``f(keys, lrs, env_params_batch, eval_keys) -> (real_return, se_return)``.

    Trains one DDQN per member inside its SE (vmapped over members) and returns
    its mean greedy return over ``num_eval_episodes`` real episodes, and its last
    training return inside the SE. Cached: the same (config, SE, variant) reuses
    the compiled call.
    """
    from learnenv.agents import dqn
    from learnenv.agents.base import evaluate

    real_env, real_params = se.real_env, se.real_env_params
    agent_config = make_agent_config(config, hidden, batch, total_timesteps)
    train = dqn.make_train(agent_config, se, se.default_params)
    policy = dqn.make_policy(agent_config, real_env, real_params)
    base_hps = agent_config.hyperparams()

    def one(key, lr, env_params, eval_key):
        result = train(key, base_hps.replace(learning_rate=lr), env_params)
        returns = evaluate(policy, result.params, real_env, real_params, eval_key,
                           config.num_eval_episodes, greedy=True)
        return returns.mean(), result.metrics["episode_return"][-1]

    return jax.jit(jax.vmap(one))


class SEFitness:
    """The SE paper's fitness for :func:`~learnenv.synthetic.evolve.evolve`:
    one DDQN per member, with its own learning rate and seed, trained inside the
    member and scored by its mean greedy return on the real environment. The two
    members of a mirrored pair share the agent (seed, learning rate, variant
    and evaluation episodes), so their comparison is not drowned in agent noise.
    """

    mean_metrics = ("mean_fitness", "mean_solved_fraction")

    def __init__(self, config: SETrainingConfig, total_timesteps: int | None = None):
        self.config = config
        self.se, self.se_params = make_se(config)
        self.metrics = {"member_se_return": (config.population_size,)}
        self.variants = config.variants
        self.fns = [make_member_eval(config, self.se, h, b, total_timesteps)
                    for h, b in self.variants]
        self.pairs = config.strategy == "mirrored_nes"

    def env_params(self, network_params):
        return SyntheticEnvParams(network_params, self.se_params.max_steps_in_episode)

    def groups(self, n: int, pair_size: int | None = None) -> list[np.ndarray]:
        """Member indices of each variant; members of a mirrored pair stay together."""
        worker = np.arange(n) % pair_size if pair_size else np.arange(n)
        return [np.nonzero(worker % len(self.variants) == v)[0] for v in range(len(self.variants))]

    def agents(self, keys, lrs, network_params, eval_keys, pair_size=None):
        """``(real_return, se_return)`` of one agent per member, one call per variant."""
        n = keys.shape[0]
        real = np.zeros(n, np.float32)
        se_ret = np.zeros(n, np.float32)
        env_params = self.env_params(network_params)
        for fn, idx in zip(self.fns, self.groups(n, pair_size)):
            batch = jax.tree.map(lambda x: x[idx], (keys, lrs, env_params, eval_keys))
            r, s = fn(*shard_population(*batch))
            real[idx], se_ret[idx] = np.asarray(r), np.asarray(s)
        return real, se_ret

    def draw(self, key, n: int):
        """Agent seeds, learning rates and evaluation keys of ``n`` agents."""
        k_seed, k_lr, k_eval = jax.random.split(key, 3)
        lrs = sample_learning_rates(k_lr, n, self.config.learning_rate, self.config.lr_factor)
        return jax.random.split(k_seed, n), lrs, jax.random.split(k_eval, n)

    def __call__(self, population, key, generation: int):
        pop = self.config.population_size
        pair_size = pop // 2 if self.pairs else None
        seeds, lrs, evals = self.draw(key, pair_size or pop)
        if self.pairs:  # both members of a pair: the same agent
            seeds, lrs, evals = (jnp.concatenate([x, x]) for x in (seeds, lrs, evals))
        real, se_ret = self.agents(seeds, lrs, population, evals, pair_size)
        return jnp.asarray(real), {"member_se_return": se_ret}

    def evaluate_mean(self, mean, key, generation: int) -> dict:
        real = self.test(mean, key, self.config.population_size)
        solved = float((real >= self.config.solved_return).mean())
        return {"mean_fitness": np.float32(real.mean()), "mean_solved_fraction": np.float32(solved),
                "solved": solved >= self.config.solved_fraction}

    def test(self, network_params, key, num_agents: int) -> np.ndarray:
        """Real returns of ``num_agents`` fresh agents trained on one SE, in batches
        of the population size (the shape already compiled during training)."""
        batch = self.config.population_size
        returns = []
        for i in range(-(-num_agents // batch)):
            seeds, lrs, evals = self.draw(jax.random.fold_in(key, i), batch)
            real, _ = self.agents(seeds, lrs, broadcast(network_params, batch), evals)
            returns.append(real)
        return np.concatenate(returns)[:num_agents]


def train_se(config: SETrainingConfig, key: jax.Array, checkpoint_dir: str | Path | None = None,
             progress: bool | None = None) -> tuple[Any, Any, EvolutionResult]:
    """Learn an SE with ``config``: ``(se, env_params, result)``; resumable through
    ``checkpoint_dir``. ``result.history`` has, per generation, ``fitness`` (the
    members' real returns), ``member_se_return`` (their last training return in
    the SE), ``mean_fitness`` and ``mean_solved_fraction`` (NaN where the mean
    was not tested)."""
    fitness = SEFitness(config)
    result = evolve(config, fitness.se_params.network_params, fitness, key,
                    checkpoint_dir=checkpoint_dir, progress=progress,
                    desc=f"SE {config.env_name} ({config.strategy})")
    return fitness.se, fitness.env_params(result.mean), result


def test_se(config: SETrainingConfig, env_params, key, num_agents: int = 20,
            total_timesteps: int | None = None) -> dict:
    """Train ``num_agents`` fresh DDQNs (varied lr, all variants) on one SE; test on the real env.

    Returns the per-agent mean greedy real returns and the fraction that solved
    (mean >= ``solved_return``).
    """
    returns = SEFitness(config, total_timesteps).test(env_params.network_params, key, num_agents)
    solved = returns >= config.solved_return
    return {"returns": returns, "solved": solved, "success_rate": float(solved.mean())}


# --------------------------------------------------------------------------- files


def save_se(path, se, env_params, *, config: SETrainingConfig | None = None,
            metrics=None, extra: dict | None = None, wall_clock_s: float | None = None) -> Path:
    """Save an SE (or RN) with its config and history; :func:`load_se` and
    ``learnenv.pretrained.load`` turn it back into ``(env, env_params)``."""
    info = {"num_parameters": se.num_parameters(env_params), **(extra or {})}
    return io.save_environment(path, se, env_params, config=config, metrics=metrics,
                               extra=info, wall_clock_s=wall_clock_s)


def load_se(path):
    """``(env, env_params)`` of an SE (or RN) saved by :func:`save_se`."""
    return io.load_environment(path, expect_kind=("se", "reward-network"))
