"""What every agent shares: the result of training, and evaluation.

Every agent module follows the same shape (purejaxrl style)::

    config = PPOConfig(total_timesteps=100_000)          # validated, frozen
    train = make_train(config, env, env_params)         # pure function
    result = jax.jit(train)(key)                        # -> TrainResult
    results = jax.jit(jax.vmap(train))(keys)            # many seeds at once
    hps = batched_hyperparams(config, len(lrs), learning_rate=lrs)
    results = jax.jit(jax.vmap(train, in_axes=(None, 0)))(key, hps)  # every leaf batched
    policy = make_policy(config, env, env_params)       # policy(params, obs, key, greedy)

``train(key, hyperparams=None, env_params=None)``: ``hyperparams`` is a pytree of
the numeric hyperparameters (traced, so they can be vmapped); ``env_params``
replaces the environment parameters given to ``make_train`` (so a population of
learned environments trains in one call).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

# policy(params, obs, key, greedy) -> action
Policy = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]


def batched_hyperparams(config: Any, n: int, **fields: Any) -> Any:
    """``config.hyperparams()`` with every field broadcast to ``(n,)``, some replaced.

    ``jax.vmap(train, in_axes=(0, 0))(keys, batched_hyperparams(config, 8,
    learning_rate=lrs))`` then trains 8 agents, one per learning rate.
    """
    hps = jax.tree.map(lambda x: jnp.full((n,), x, jnp.float32), config.hyperparams())
    return hps.replace(**{k: jnp.asarray(v, jnp.float32) for k, v in fields.items()})


@struct.dataclass
class TrainResult:
    params: Any  # what the policy function needs (actor params, normaliser stats...)
    metrics: dict  # per-update curves, each with a leading axis of length num_updates


def evaluate(
    policy: Policy,
    params: Any,
    env: Any,
    env_params: Any,
    key: jax.Array,
    num_episodes: int = 16,
    greedy: bool = True,
    max_steps: int | None = None,
) -> jax.Array:
    """Undiscounted returns of ``num_episodes`` episodes, run in parallel.

    Pure and jittable (``num_episodes``, ``greedy`` and ``max_steps`` are
    static); vmap it over params, keys or env_params. Each episode stops at its
    first termination or truncation; ``max_steps`` (a bound on the loop)
    defaults to the environment's ``max_steps_in_episode``. The loop ends as soon
    as every episode has ended, so a traced, shorter ``max_steps_in_episode`` in
    ``env_params`` (an evaluation-length curriculum) or agents that fail early
    cost only the steps they run.
    """
    if max_steps is None:
        max_steps = int(env_params.max_steps_in_episode)

    def one_episode(key):
        reset_key, loop_key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)
        step_keys = jax.random.split(loop_key, max_steps)

        def running(carry):
            t, _, _, _, alive = carry
            return jnp.logical_and(t < max_steps, alive > 0)

        def step(carry):
            t, obs, state, ret, alive = carry
            act_key, step_key = jax.random.split(step_keys[t])
            action = policy(params, obs, act_key, greedy)
            obs, state, reward, terminated, truncated, _ = env.step(
                step_key, state, action, env_params
            )
            ret = ret + alive * reward
            alive = alive * (1.0 - jnp.logical_or(terminated, truncated))
            return t + 1, obs, state, ret, alive

        carry = (jnp.zeros((), jnp.int32), obs, state, jnp.zeros(()), jnp.ones(()))
        return jax.lax.while_loop(running, step, carry)[3]

    return jax.vmap(one_episode)(jax.random.split(key, num_episodes))


def make_evaluate(policy: Policy, env: Any, num_episodes: int = 16, greedy: bool = True,
                  max_steps: int | None = None):
    """``evaluate`` with the static arguments bound: ``fn(params, env_params, key)``."""
    return partial(_bound_evaluate, policy, env, num_episodes, greedy, max_steps)


def _bound_evaluate(policy, env, num_episodes, greedy, max_steps, params, env_params, key):
    return evaluate(policy, params, env, env_params, key, num_episodes, greedy, max_steps)
