"""Does a learned synthetic environment teach agents it has never seen?

The test of an SCB (Liesen et al., 2024) is transfer: fresh agents, with
hyperparameters drawn from the paper's lists, are trained for 10k steps on the
synthetic environment and then evaluated on the *real* one. This module runs
that test in one vmapped call per algorithm (reusing meta-training's
:class:`~learnenv.synthetic.meta.SCBFitness`, so the agents are exactly those
of meta-training), and the analyses
the paper uses to interpret an SCB: its context distribution against the real
state distribution, and the reward landscape with its gradient-based feature
importance (with one-step episodes the reward *is* the Q-value).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from learnenv.synthetic.base import SyntheticEnvParams, broadcast
from learnenv.synthetic.meta import (
    DISCRETE_ALGORITHMS,
    CONTINUOUS_ALGORITHMS,
    SCBFitness,
    SCBMetaConfig,
    make_synthetic_env,
    scb_fitness,
)

__all__ = ["transfer", "context_samples", "real_state_samples", "reward_landscape",
           "feature_importance"]


def transfer(env_name: str, env_params: SyntheticEnvParams, key: jax.Array,
             algorithms: Sequence[str] | None = None, num_configs: int = 32,
             inner_structure: str = "paper", inner_timesteps: int = 10_000,
             num_eval_episodes: int = 16, greedy: bool = True,
             kind: str = "bandit", env: Any = None) -> dict[str, dict[str, np.ndarray]]:
    """Real-environment returns of agents trained on the synthetic environment.

    For every algorithm, ``num_configs`` agents, each with its own
    hyperparameters sampled from the paper's lists and its own seed, are trained
    for ``inner_timesteps`` steps on ``env_params`` and evaluated on the real
    ``env_name`` over ``num_eval_episodes`` episodes. DQN's double flag changes
    the program, so half the DQN agents are double DQNs and half plain.

    ``env`` is the synthetic environment to train on, standing in for
    ``env_name`` (by default an SCB of ``kind`` built with the real environment's
    defaults); the agents are evaluated in its ``real_env``. Pass one to choose
    the real environment's settings, e.g. a paper SCB with the paper's brax
    backend (:mod:`learnenv.synthetic.paper_scb`).

    Returns ``{algorithm: {"returns": (num_configs,), <hyperparameter>: (num_configs,)}}``.
    """
    probe = SCBMetaConfig(env_name=env_name, kind=kind)
    discrete = (make_synthetic_env(probe) if env is None else env).discrete
    if algorithms is None:
        algorithms = DISCRETE_ALGORITHMS if discrete else CONTINUOUS_ALGORITHMS
    config = dataclasses.replace(
        probe, algorithms=tuple(algorithms), population_size=max(num_configs, 2),
        inner_structure=inner_structure, inner_timesteps=inner_timesteps,
        num_eval_episodes=num_eval_episodes, eval_greedy=greedy,
    )
    fitness = scb_fitness(config) if env is None else SCBFitness(config, synthetic_env=env)
    out = {}
    for i, algorithm in enumerate(config.algorithms):
        alg_key = jax.random.fold_in(key, i)
        if algorithm == "dqn":
            halves = [(True, num_configs - num_configs // 2), (False, num_configs // 2)]
        else:
            halves = [(None, num_configs)]
        returns, hps = [], []
        for j, (double, n) in enumerate(halves):
            if n == 0:
                continue
            batch = broadcast(env_params.network_params, n)
            r, h = fitness.score(batch, jax.random.fold_in(alg_key, j), algorithm, double,
                                 shared=False)
            returns.append(np.asarray(r))
            hps.append({f.name: np.asarray(getattr(h, f.name)) for f in dataclasses.fields(h)})
        row = {"returns": np.concatenate(returns)}
        for name in hps[0]:
            row[name] = np.concatenate([h[name] for h in hps])
        if algorithm == "dqn":
            row["double"] = np.concatenate([np.full(n, d) for d, n in halves if n])
        out[algorithm] = row
    return out


# --- interpreting an SCB ------------------------------------------------------------
def context_samples(env, env_params: SyntheticEnvParams, key: jax.Array, n: int = 4096):
    """``n`` initial observations of the SCB: its learned context distribution."""
    keys = jax.random.split(key, n)
    return np.asarray(jax.vmap(lambda k: env.reset(k, env_params)[0])(keys))


def real_state_samples(policy, policy_params, real_env, real_params, key: jax.Array,
                       num_episodes: int = 32, max_steps: int | None = None) -> np.ndarray:
    """Every observation a policy visits in the real environment (first episodes only)."""
    from learnenv.agents.base import rollout

    max_steps = int(max_steps or real_params.max_steps_in_episode)

    def episode(key):
        trajectory = rollout(policy, policy_params, real_env, real_params, key, max_steps)
        ended_before = jnp.cumsum(trajectory.done) - trajectory.done  # episodes ended before t
        return trajectory.obs, ended_before == 0

    obs, first = jax.jit(jax.vmap(episode))(jax.random.split(key, num_episodes))
    return np.asarray(obs).reshape(-1, obs.shape[-1])[np.asarray(first).ravel()]


def reward_landscape(env, env_params: SyntheticEnvParams, grid: np.ndarray,
                     actions: Sequence[Any]) -> np.ndarray:
    """The learned reward at every state of ``grid`` (shape (..., obs_dim)) for each action.

    Returns an array of shape ``(len(actions),) + grid.shape[:-1]``.
    """
    flat = jnp.asarray(grid.reshape(-1, grid.shape[-1]), jnp.float32)
    net = env_params.network_params
    rows = [jax.vmap(lambda s: env.reward(net, s, a))(flat) for a in actions]
    return np.asarray(jnp.stack(rows)).reshape((len(actions),) + grid.shape[:-1])


def feature_importance(env, env_params: SyntheticEnvParams, states: np.ndarray,
                       actions: Sequence[Any]) -> np.ndarray:
    """Mean absolute gradient of the reward *difference* between actions w.r.t. each
    state feature, over ``states``: which features decide the best action.

    For two actions it is ``|d (r(s, a1) - r(s, a0)) / ds|``; for more, the
    gradient of the spread (max - min) of rewards across actions.
    """
    net = env_params.network_params

    def spread(s):
        rewards = jnp.stack([env.reward(net, s, a) for a in actions])
        if len(actions) == 2:
            return rewards[1] - rewards[0]
        return rewards.max() - rewards.min()

    grads = jax.vmap(jax.grad(spread))(jnp.asarray(states, jnp.float32))
    return np.asarray(jnp.abs(grads).mean(axis=0))
