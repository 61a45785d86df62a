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
the numeric hyperparameters (``config.hyperparams()``, the config's fields
declared ``traced=True``, so they can be vmapped); ``env_params`` replaces the
environment parameters given to ``make_train`` (so a population of learned
environments trains in one call).

``make_train(config, env, env_params, eval_every=0, eval_fn=None)`` adds an
evaluation hook (rejax's ``eval_freq`` and ``eval_callback``): every
``eval_every`` env steps the loop calls ``eval_fn(policy_params, key)`` and
logs the scalar as the metric ``eval_return`` (see :func:`make_eval_hook`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

# policy(params, obs, key, greedy) -> action
Policy = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]
# eval_fn(policy_params, key) -> scalar, e.g. a mean greedy return
EvalFn = Callable[[Any, jax.Array], jax.Array]


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


def make_eval_hook(eval_every: int, eval_fn: EvalFn | None):
    """The training loops' evaluation hook, or None when there is no ``eval_fn``.

    ``hook(policy_params, timestep, steps, key) -> eval_return`` is called after
    every update, whose ``steps`` env steps brought training to ``timestep``: it
    returns ``eval_fn(policy_params, fold_in(key, timestep))`` if the update
    reached or passed a multiple of ``eval_every``, and NaN otherwise. ``key``
    is a key the loop sets aside for evaluations, so the hook never changes
    the random stream of training. The step count is the same for every vmapped
    agent, so the ``lax.cond`` stays a branch under vmap, and only the updates
    that evaluate pay for it.
    """
    if eval_fn is None:
        if eval_every:
            raise ValueError(f"eval_every={eval_every} needs an eval_fn.")
        return None
    if eval_every < 1:
        raise ValueError(f"eval_every={eval_every} must be a positive number of env steps.")

    def hook(policy_params, timestep, steps, key):
        due = timestep // eval_every > (timestep - steps) // eval_every
        return jax.lax.cond(
            due,
            lambda: jnp.asarray(eval_fn(policy_params, jax.random.fold_in(key, timestep)),
                                jnp.float32),
            lambda: jnp.full((), jnp.nan, jnp.float32),
        )

    return hook


def evaluate(policy: Policy, params: Any, env: Any, env_params: Any, key: jax.Array,
             num_episodes: int = 16, greedy: bool = True,
             max_steps: int | None = None) -> jax.Array:
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


@struct.dataclass
class Trajectory:
    obs: jax.Array  # the observation each action was chosen from
    action: jax.Array
    reward: jax.Array
    done: jax.Array  # terminated or truncated: the next observation starts a new episode


def rollout(policy: Policy, params: Any, env: Any, env_params: Any, key: jax.Array,
            num_steps: int, greedy: bool = True, epsilon: float = 0.0) -> Trajectory:
    """``num_steps`` steps of one environment from a reset, episodes resetting on their own.

    What an agent sees, for histograms and state samples (:func:`evaluate` is
    the loop for returns). With probability ``epsilon`` an action is replaced
    by a uniformly random one from the action space. Pure and jittable
    (``num_steps`` and ``greedy`` are static); vmap it over keys for many
    streams. Each step's key is split four ways (policy, random action, coin,
    environment) whatever ``epsilon``, so rollouts with different ``epsilon``
    and the same key share their environment keys.
    """
    space = env.action_space(env_params)
    reset_key, loop_key = jax.random.split(key)
    obs, state = env.reset(reset_key, env_params)

    def step(carry, key):
        obs, state = carry
        act_key, random_key, coin_key, step_key = jax.random.split(key, 4)
        action = policy(params, obs, act_key, greedy)
        explore = jax.random.uniform(coin_key) < epsilon
        action = jnp.where(explore, space.sample(random_key), action)
        next_obs, state, reward, terminated, truncated, _ = env.step(
            step_key, state, action, env_params
        )
        done = jnp.logical_or(terminated, truncated)
        return (next_obs, state), Trajectory(obs, action, reward, done)

    _, trajectory = jax.lax.scan(step, (obs, state), jax.random.split(loop_key, num_steps))
    return trajectory
