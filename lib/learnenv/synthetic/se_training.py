"""Learning a synthetic environment: NES outside, DDQN inside (Ferreira et al., 2022).

The bi-level loop, per generation::

    population = strategy.ask()                      # perturbed SE weights
    for every member, in parallel (one vmapped call per agent variant):
        sample DDQN hyperparameters (lr log-uniform in [lr/3, 3 lr])
        train a fresh DDQN for inner_timesteps steps INSIDE the member's SE
        fitness = mean greedy return of that agent over 10 REAL episodes
    strategy.tell(-fitness)                          # evosax minimises

Every ``centre_eval_every`` generations the ES *centre* (not the luckiest
member: fitness is noisy, and a lucky draw says little) is tested the same way
with fresh agents; the run stops once a fraction ``solved_fraction`` of those
agents solves the real task.

What varies per member. Traced values vary freely inside one vmapped call: the
learning rate and the seed. Hidden sizes and batch sizes fix array shapes, so
they come from a short list of static ``agent_variants``; members are dealt
round-robin to the variants (each variant is one compiled, vmapped call). The
two members of a mirrored pair share their hyperparameters and seed, so the
comparison between ``psi + eps`` and ``psi - eps`` is not drowned in the noise
of two different agents.

Strategies: ``"mirrored_nes"`` (the paper's, :mod:`learnenv.synthetic.nes`) or
the name of any evosax distribution-based strategy with a ``std_init``
parameter (``"SNES"``, ``"xNES"``, ``"Sep_CMA_ES"``, ...).

The loop runs through :func:`learnenv.checkpoint.run_resumable`: interrupted
runs resume exactly, and a finished run is read back instead of recomputed.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from learnenv import envs, io
from learnenv.config import Config, field
from learnenv.synthetic.base import broadcast

__all__ = [
    "SETrainingConfig",
    "SEResult",
    "make_se",
    "make_strategy",
    "make_agent_config",
    "make_member_eval",
    "sample_learning_rates",
    "train_se",
    "test_se",
    "save_se",
    "load_se",
]


@dataclasses.dataclass(frozen=True)
class SETrainingConfig(Config):
    """Everything that defines one SE training run."""

    env_name: str = "CartPole-v1"
    env_kind: str = field("se", choices=("se", "rn_additive"),
                          doc="synthetic environment, or reward network on the real dynamics")
    max_steps_in_episode: int = field(200, low=0, doc="real env step cap (0: its default); also the SE's")
    # The synthetic environment.
    se_hidden_size: int = field(128, low=1, doc="hidden units of each SE network (or of the RN)")
    se_activation: str = field("leaky_relu", choices=("leaky_relu", "relu", "tanh", "elu", "swish"))
    state_clip: float = field(10.0, low=0.0, doc="SE states clipped to [-c, c] (0: off; ours)")
    # The outer loop.
    strategy: str = "mirrored_nes"
    num_workers: int = field(8, low=1, doc="mirrored pairs; population = 2 * num_workers")
    sigma: float = field(0.05, low=0.0, low_inclusive=False, doc="perturbation std (fixed for NES)")
    step_size: float = field(1.0, low=0.0, low_inclusive=False, doc="NES step size")
    num_generations: int = field(100, low=1)
    stop_when_solved: bool = field(True, choices=(True, False))
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
    # Fitness and "solved".
    eval_episodes: int = field(10, low=1, doc="real episodes per fitness evaluation")
    solved_return: float = 195.0
    solved_fraction: float = field(0.8, low=0.0, high=1.0, doc="of the centre's test agents")
    solved_patience: int = field(1, low=1, doc="consecutive solved centre tests to stop")
    centre_eval_every: int = field(2, low=1, doc="generations between tests of the ES centre")
    checkpoint_every: int = field(5, low=0)

    def validate(self) -> None:
        if not self.agent_variants:
            raise ValueError("SETrainingConfig.agent_variants must list at least one (hidden, batch).")
        for v in self.agent_variants:
            if len(v) != 2 or not all(int(h) > 0 for h in v[0]) or int(v[1]) < 1:
                raise ValueError(
                    f"SETrainingConfig.agent_variants entry {v!r} must be (hidden_sizes, batch_size)."
                )
        pop = self.population_size
        if pop % len(self.agent_variants):
            raise ValueError(
                f"SETrainingConfig: the population ({pop}) must split evenly over the "
                f"{len(self.agent_variants)} agent_variants."
            )
        if self.strategy == "mirrored_nes" and self.num_workers % len(self.agent_variants):
            raise ValueError(
                f"SETrainingConfig.num_workers={self.num_workers} must be a multiple of the "
                f"{len(self.agent_variants)} agent_variants (pairs share a variant)."
            )

    @property
    def population_size(self) -> int:
        return 2 * self.num_workers

    @property
    def variants(self) -> list[tuple[tuple[int, ...], int]]:
        return [(tuple(int(h) for h in hid), int(b)) for hid, b in self.agent_variants]


# --------------------------------------------------------------------------- pieces


def real_env_kwargs(config: SETrainingConfig) -> dict:
    return {"max_steps_in_episode": config.max_steps_in_episode} if config.max_steps_in_episode else {}


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
        env = SyntheticEnvironment(config.env_name, state_clip=config.state_clip, **kwargs)
    else:
        env = RewardNetworkEnvironment(config.env_name, **kwargs)
    return env, env.default_params


def make_strategy(config: SETrainingConfig, template: Any):
    """``(strategy, strategy_params)``: the paper's NES or an evosax strategy by name."""
    if config.strategy == "mirrored_nes":
        from learnenv.synthetic.nes import MirroredNES

        strategy = MirroredNES(config.population_size, template)
        params = strategy.default_params.replace(
            std_init=jnp.asarray(config.sigma), step_size=jnp.asarray(config.step_size)
        )
        return strategy, params
    from evosax.algorithms import distribution_based_algorithms

    if config.strategy not in distribution_based_algorithms:
        valid = ", ".join(["mirrored_nes", *sorted(distribution_based_algorithms)])
        raise ValueError(f"Unknown strategy {config.strategy!r}; valid: {valid}.")
    strategy = distribution_based_algorithms[config.strategy](config.population_size, template)
    params = strategy.default_params
    if not hasattr(params, "std_init"):
        raise ValueError(f"evosax {config.strategy} has no std_init; pick another strategy.")
    return strategy, params.replace(std_init=jnp.asarray(config.sigma))


def make_agent_config(config: SETrainingConfig, hidden_sizes, batch_size, total_timesteps=None):
    from learnenv.agents.dqn import DQNConfig

    total = int(total_timesteps or config.inner_timesteps)
    return DQNConfig(
        **pinned_dqn_loss(),
        total_timesteps=total,
        num_envs=1,
        eps_start=1.0,
        buffer_size=max(total, int(batch_size)),
        batch_size=int(batch_size),
        learning_starts=min(config.learning_starts, max(total - config.train_freq, 0)),
        train_freq=config.train_freq,
        # Every field pinned, not left to DQNConfig's defaults (tuned for real
        # CartPole, and changed since the shipped SEs were learned): one env,
        # one gradient step per round, no LayerNorm, constant lr, ReLU, Huber.
        gradient_steps=1,
        layer_norm=False,
        anneal_lr=False,
        activation="relu",
        max_grad_norm=10.0,
        hidden_sizes=tuple(hidden_sizes),
        double=True,
        dueling=config.dueling,
        target_update_interval=1,
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        tau=config.tau,
        eps_end=config.eps_end,
        exploration_fraction=config.exploration_fraction,
    )


def pinned_dqn_loss() -> dict:
    """``{"loss": "huber"}`` where DQNConfig has a ``loss`` field, else nothing.

    The shipped SEs were learned, and the chapter's steps were measured, with
    the Huber TD loss; pinning it keeps them reproducible when DQN's default
    changes.
    """
    from learnenv.agents.dqn import DQNConfig

    names = {f.name for f in dataclasses.fields(DQNConfig)}
    return {"loss": "huber"} if "loss" in names else {}


def sample_learning_rates(key, n: int, lr: float, factor: float) -> jax.Array:
    """Log-uniform in ``[lr/factor, lr*factor]`` (the paper's varied-HP range)."""
    u = jax.random.uniform(key, (n,), minval=-1.0, maxval=1.0)
    return lr * factor**u


@functools.lru_cache(maxsize=32)
def make_member_eval(config: SETrainingConfig, se, hidden, batch, total_timesteps=None) -> Callable:
    """Jitted ``f(keys, lrs, env_params_batch, eval_keys) -> (real_return, se_return)``.

    Trains one DDQN per member inside its SE (vmapped over members) and returns
    its mean greedy return over ``eval_episodes`` real episodes, and its last
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
                           config.eval_episodes, greedy=True)
        return returns.mean(), result.metrics["episode_return"][-1]

    return jax.jit(jax.vmap(one))


@dataclasses.dataclass
class SEResult:
    env: Any  # the SyntheticEnvironment
    env_params: Any  # the ES centre, as SE env_params
    metrics: dict  # per generation (numpy), see train_se
    generations: int  # generations actually run (stops early once solved)
    solved_generation: int | None
    wall_clock_s: float
    compile_s: float
    config: SETrainingConfig


class _Evaluator:
    """Runs a population through the compiled per-variant calls."""

    def __init__(self, config: SETrainingConfig, se, total_timesteps=None):
        self.config = config
        self.variants = config.variants
        self.fns = [make_member_eval(config, se, h, b, total_timesteps) for h, b in self.variants]

    def groups(self, n: int, pair_size: int | None = None) -> list[np.ndarray]:
        """Member indices of each variant; members of a mirrored pair stay together."""
        worker = np.arange(n) % pair_size if pair_size else np.arange(n)
        return [np.nonzero(worker % len(self.variants) == v)[0] for v in range(len(self.variants))]

    def __call__(self, keys, lrs, env_params, eval_keys, pair_size=None):
        n = keys.shape[0]
        real = np.zeros(n, np.float32)
        se_ret = np.zeros(n, np.float32)
        for fn, idx in zip(self.fns, self.groups(n, pair_size)):
            take = lambda x: x[idx]  # noqa: E731
            r, s = fn(keys[idx], lrs[idx], jax.tree.map(take, env_params), eval_keys[idx])
            real[idx], se_ret[idx] = np.asarray(r), np.asarray(s)
        return real, se_ret


def train_se(config: SETrainingConfig, key: jax.Array, checkpoint_dir: str | Path | None = None,
             progress: bool | None = None) -> SEResult:
    """Learn an SE with ``config``; resumable through ``checkpoint_dir``.

    Metrics per generation: ``member_return`` (real returns of every member,
    shape (population,)), ``member_se_return`` (their last training return in
    the SE), ``centre_return`` (mean real return of agents trained on the
    centre; NaN where the centre was not tested), ``centre_solved_fraction``,
    ``seconds``.
    """
    from learnenv.checkpoint import run_resumable

    se, se_params = make_se(config)
    strategy, es_params = make_strategy(config, se_params.network_params)
    evaluator = _Evaluator(config, se)
    pop = config.population_size
    mirrored = config.strategy == "mirrored_nes"
    max_steps = se_params.max_steps_in_episode

    init_key, key = jax.random.split(key)
    es_state = strategy.init(init_key, se_params.network_params, es_params)
    init_state = {"es": es_state, "key": key, "solved_at": jnp.asarray(-1, jnp.int32),
                  "streak": jnp.asarray(0, jnp.int32)}
    compile_s = 0.0

    def as_env_params(network_params):
        from learnenv.synthetic.bandit import SyntheticEnvParams

        return SyntheticEnvParams(network_params, max_steps_in_episode=max_steps)

    def test_centre(es_state, key):
        k_seed, k_lr, k_eval = jax.random.split(key, 3)
        centre = as_env_params(broadcast(strategy.get_mean(es_state), pop))
        lrs = sample_learning_rates(k_lr, pop, config.learning_rate, config.lr_factor)
        real, _ = evaluator(jax.random.split(k_seed, pop), lrs, centre,
                            jax.random.split(k_eval, pop))
        return real

    def step(state, generation):
        nonlocal compile_s
        t0 = time.perf_counter()
        nan = np.float32(np.nan)
        if config.stop_when_solved and int(state["solved_at"]) >= 0:
            empty = {"member_return": np.full(pop, nan), "member_se_return": np.full(pop, nan),
                     "centre_return": nan, "centre_solved_fraction": nan,
                     "seconds": np.float32(0.0), "ran": np.bool_(False)}
            return state, empty
        key, k_ask, k_seed, k_lr, k_eval, k_tell, k_centre = jax.random.split(state["key"], 7)
        population, es_state = strategy.ask(k_ask, state["es"], es_params)
        n_agents = pop // 2 if mirrored else pop
        seeds = jax.random.split(k_seed, n_agents)
        lrs = sample_learning_rates(k_lr, n_agents, config.learning_rate, config.lr_factor)
        evals = jax.random.split(k_eval, n_agents)
        if mirrored:  # both members of a pair: same agent seed, lr and evaluation episodes
            seeds, lrs, evals = (jnp.concatenate([x, x]) for x in (seeds, lrs, evals))
        first = generation == 0 or compile_s == 0.0
        real, se_ret = evaluator(seeds, lrs, as_env_params(population), evals,
                                 pair_size=pop // 2 if mirrored else None)
        if first:
            compile_s = time.perf_counter() - t0  # includes compilation (one-off)
        es_state, _ = strategy.tell(k_tell, population, -jnp.asarray(real), es_state, es_params)
        solved_at, streak = state["solved_at"], state["streak"]
        centre_return, solved_frac = nan, nan
        last = generation == config.num_generations - 1
        if (generation + 1) % config.centre_eval_every == 0 or last:
            centre = test_centre(es_state, k_centre)
            centre_return = np.float32(centre.mean())
            solved_frac = np.float32((centre >= config.solved_return).mean())
            streak = jnp.where(solved_frac >= config.solved_fraction, streak + 1, 0).astype(jnp.int32)
            if int(streak) >= config.solved_patience and int(solved_at) < 0:
                solved_at = jnp.asarray(generation + 1, jnp.int32)
        new_state = {"es": es_state, "key": key, "solved_at": solved_at, "streak": streak}
        metrics = {
            "member_return": real,
            "member_se_return": se_ret,
            "centre_return": centre_return,
            "centre_solved_fraction": solved_frac,
            "seconds": np.float32(time.perf_counter() - t0),
            "ran": np.bool_(True),
        }
        return new_state, metrics

    out = run_resumable(
        step, init_state, config.num_generations, checkpoint_dir,
        every=config.checkpoint_every, config=config, progress=progress,
        desc=f"SE {config.env_name} ({config.strategy})", kind="se-training",
    )
    metrics = out.metrics or {}
    ran = np.asarray(metrics.get("ran", np.zeros(0, bool)), bool)
    metrics = {k: np.asarray(v)[ran] for k, v in metrics.items() if k != "ran"}
    solved_at = int(out.state["solved_at"])
    return SEResult(
        env=se,
        env_params=as_env_params(strategy.get_mean(out.state["es"])),
        metrics=metrics,
        generations=int(ran.sum()),
        solved_generation=solved_at if solved_at >= 0 else None,
        wall_clock_s=out.wall_clock_s,
        compile_s=compile_s,
        config=config,
    )


def test_se(config: SETrainingConfig, se, env_params, key, num_agents: int = 20,
            total_timesteps: int | None = None) -> dict:
    """Train ``num_agents`` fresh DDQNs (varied lr, all variants) on one SE; test on the real env.

    Agents are run in batches of the population size (the shape already
    compiled during training). Returns the per-agent mean greedy real returns
    and the fraction that solved (mean >= ``solved_return``).
    """
    evaluator = _Evaluator(config, se, total_timesteps)
    batch = config.population_size
    returns = []
    for i in range(-(-num_agents // batch)):
        k_seed, k_lr, k_eval = jax.random.split(jax.random.fold_in(key, i), 3)
        lrs = sample_learning_rates(k_lr, batch, config.learning_rate, config.lr_factor)
        real, _ = evaluator(jax.random.split(k_seed, batch), lrs, broadcast(env_params, batch),
                            jax.random.split(k_eval, batch))
        returns.append(real)
    returns = np.concatenate(returns)[:num_agents]
    return {
        "returns": returns,
        "solved": returns >= config.solved_return,
        "success_rate": float((returns >= config.solved_return).mean()),
    }


# --------------------------------------------------------------------------- files


def save_se(path, result_or_env, env_params=None, *, config: SETrainingConfig | None = None,
            metrics=None, extra: dict | None = None, wall_clock_s: float | None = None) -> Path:
    """Save an SE as a :mod:`learnenv.io` checkpoint that :func:`load_se` rebuilds."""
    if isinstance(result_or_env, SEResult):
        res = result_or_env
        se, env_params, config = res.env, res.env_params, res.config
        metrics = res.metrics if metrics is None else metrics
        wall_clock_s = res.wall_clock_s if wall_clock_s is None else wall_clock_s
    else:
        se = result_or_env
    info = {
        "loader": "learnenv.synthetic.se_training:load_se",
        "env_class": f"{type(se).__module__}:{type(se).__qualname__}",
        "real_env": se.real_env_name,
        "hidden_sizes": list(se.hidden_sizes),
        "activation": se.activation,
        "max_steps_in_episode": int(env_params.max_steps_in_episode),
        "num_parameters": se.num_parameters(env_params),
    }
    if hasattr(se, "state_clip"):
        info["state_clip"] = se.state_clip
    info.update(extra or {})
    return io.save(path, params=env_params.network_params, config=config, env_name=se.name,
                   kind="environment", metrics=metrics, extra=info, wall_clock_s=wall_clock_s)


def load_se(path):
    """``(env, env_params)`` of an SE (or RN) saved by :func:`save_se`."""
    from learnenv.synthetic.bandit import SyntheticEnvParams

    meta = io.read_meta(path)
    info = meta.get("extra", {})
    cls = io._import_class(info.get("env_class", "learnenv.synthetic.environment:SyntheticEnvironment"))
    kwargs = {"state_clip": info["state_clip"]} if "state_clip" in info else {}
    env = cls(
        info["real_env"],
        hidden_sizes=tuple(info["hidden_sizes"]),
        activation=info["activation"],
        max_steps_in_episode=info["max_steps_in_episode"],
        **kwargs,
    )
    ckpt = io.load(path, like=env.default_params.network_params)
    return env, SyntheticEnvParams(ckpt.params, max_steps_in_episode=info["max_steps_in_episode"])
