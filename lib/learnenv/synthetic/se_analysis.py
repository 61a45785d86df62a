"""Measuring what a synthetic environment buys: steps to solve, and what it shows agents.

**Steps to solve** (the paper's central measurement). An agent trains on some
environment (the SE or the real one) and is *evaluated on the real
environment* every ``eval_every`` of its training steps: the mean greedy return
over ``eval_episodes`` episodes. It *first solves* at the first evaluation
whose mean reaches the threshold (195 for CartPole-200), and *stays solved*
if every later evaluation up to the end of its budget does too. Both numbers
depend on the protocol (how often one looks, how many episodes), so the
protocol is returned with them.

The evaluation runs inside the jitted, vmapped training: the DQN update is
wrapped so that, whenever the step count reaches a multiple of ``eval_every``,
the current greedy policy is rolled out on the real environment (a
``lax.cond`` on an update counter kept next to the agent's state, which is the
same for every vmapped agent, so only the due updates pay for it). The agent's
own functions are taken from its ``make_train`` by intercepting its call to
the shared off-policy loop, so this works for every agent built on that loop
(DQN variants, SAC) without changing them.

**Histograms**: the states and rewards an agent meets while training in the SE
versus in the real environment (the paper's Figure on "cutting
non-informative paths").
"""

from __future__ import annotations

import dataclasses
from typing import Any
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["make_train_with_eval", "evaluation_curves", "steps_to_solve", "summarise_steps",
           "rollout_visits"]


def make_train_with_eval(agent_config, train_env, train_env_params, eval_env, eval_env_params,
                         eval_every: int, eval_episodes: int = 10, agent=None):
    """``train(key, hps, env_params)`` of an off-policy agent whose metrics add ``eval_return``.

    ``agent`` is the agent's module (:mod:`learnenv.agents.dqn`, the default, or
    :mod:`learnenv.agents.sac`): anything whose ``make_train`` hands its pieces
    to :func:`learnenv.agents.offpolicy.make_offpolicy_train`.
    ``eval_return`` is the mean greedy return on ``eval_env`` after the update
    that brings training to a multiple of ``eval_every`` env steps, NaN in other
    rounds. ``eval_every`` must be a multiple of ``num_envs * train_freq``.
    """
    import inspect

    from learnenv.agents import dqn, offpolicy
    from learnenv.agents.base import evaluate

    agent_mod = dqn if agent is None else agent

    spr = agent_config.steps_per_round
    if eval_every % spr or agent_config.gradient_steps != 1:
        raise ValueError(
            f"eval_every={eval_every} must be a multiple of num_envs * train_freq = {spr} "
            "(and gradient_steps must be 1)."
        )
    warmup = agent_config.num_warmup_rounds
    policy = agent_mod.make_policy(agent_config, eval_env, eval_env_params)

    # The agent's make_train hands its init/explore/update functions to the
    # shared off-policy loop; we intercept them (bound by name, so argument
    # order does not matter) and add the evaluation to ``update``.
    captured = {}
    signature = inspect.signature(offpolicy.make_offpolicy_train)

    def capture(*args, **kwargs):
        captured.update(signature.bind(*args, **kwargs).arguments)
        return None

    with mock.patch.object(agent_mod, "make_offpolicy_train", capture):
        agent_mod.make_train(agent_config, train_env, train_env_params)
    init, explore = captured["init"], captured["explore"]
    update, result_params = captured["update"], captured["result_params"]

    # The agent state is paired with a count of its updates (agents do not all
    # keep one), which says when an evaluation is due.
    def init_counted(key, hps, obs):
        return init(key, hps, obs), jnp.zeros((), jnp.int32)

    def explore_counted(agent, obs, key, timestep, hps):
        return explore(agent[0], obs, key, timestep, hps)

    def update_with_eval(agent, batch, key, hps):
        inner, count = agent
        inner, metrics = update(inner, batch, key, hps)
        count = count + 1
        step = (warmup + count) * spr  # env steps after this round
        due = step % eval_every == 0

        def run_eval(_):
            returns = evaluate(policy, result_params(inner), eval_env, eval_env_params,
                               jax.random.fold_in(key, 7), eval_episodes, greedy=True)
            return returns.mean()

        metrics["eval_return"] = jax.lax.cond(due, run_eval, lambda _: jnp.float32(jnp.nan), None)
        return (inner, count), metrics

    captured.update(init=init_counted, explore=explore_counted, update=update_with_eval,
                    result_params=lambda agent: result_params(agent[0]))
    return offpolicy.make_offpolicy_train(**captured)


@dataclasses.dataclass(frozen=True)
class StepsProtocol:
    eval_every: int
    eval_episodes: int
    solved_return: float
    budget: int

    def describe(self) -> str:
        return (f"greedy policy evaluated on the real env every {self.eval_every} training steps "
                f"({self.eval_episodes} episodes); solved = mean return >= {self.solved_return:g}; "
                f"budget {self.budget} steps")


def evaluation_curves(metrics, learning_starts: int) -> tuple[np.ndarray, np.ndarray]:
    """``(timesteps, curves)`` of the evaluations in :func:`make_train_with_eval`'s metrics.

    ``curves`` is (agents, evaluations). The warm-up rounds (up to
    ``learning_starts``) report a 0 placeholder rather than NaN, because the
    off-policy loop fills their metrics with zeros; they are dropped here, with
    the rounds that ran no evaluation.
    """
    curves = np.array(metrics["eval_return"], float, ndmin=2)
    steps = np.asarray(metrics["timesteps"])
    steps = steps[0] if steps.ndim == 2 else steps
    curves[:, steps <= learning_starts] = np.nan
    evaluated = ~np.isnan(curves[0])
    return steps[evaluated], curves[:, evaluated]


def steps_to_solve(curves: np.ndarray, timesteps: np.ndarray, solved_return: float) -> dict:
    """First-solve step and stays-solved flag per agent from evaluation curves.

    ``curves``: (agents, rounds) with NaN where no evaluation ran.
    """
    curves = np.asarray(curves, float)
    timesteps = np.asarray(timesteps)
    timesteps = timesteps[0] if timesteps.ndim == 2 else timesteps
    evaluated = ~np.isnan(curves[0])
    ev_curves, ev_steps = curves[:, evaluated], timesteps[evaluated]
    solved = ev_curves >= solved_return
    first = np.where(solved.any(axis=1), ev_steps[np.argmax(solved, axis=1)], np.nan)
    stays = np.array([
        bool(s.any()) and bool(s[np.argmax(s):].all()) for s in solved
    ])
    return {"first_solve": first, "stays_solved": stays, "final_solved": solved[:, -1],
            "eval_steps": ev_steps, "eval_curves": ev_curves}


def summarise_steps(result: dict) -> dict:
    first = result["first_solve"]
    ok = ~np.isnan(first)
    return {
        "agents": int(len(first)),
        "solved": int(ok.sum()),
        "stays_solved": int(result["stays_solved"].sum()),
        "mean_first_solve": float(np.mean(first[ok])) if ok.any() else float("nan"),
        "median_first_solve": float(np.median(first[ok])) if ok.any() else float("nan"),
        "std_first_solve": float(np.std(first[ok])) if ok.any() else float("nan"),
    }


def rollout_visits(policy, params, env, env_params, key, num_steps: int, epsilon: float = 0.0):
    """States and rewards an (epsilon-)greedy agent meets in ``num_steps`` steps of ``env``.

    Returns ``(obs, rewards, dones)`` arrays of length ``num_steps`` (episodes
    reset automatically), for histograms.
    """
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key, env_params)
    n = env.action_space(env_params).n

    def step(carry, key):
        obs, state = carry
        k_act, k_rand, k_eps, k_step = jax.random.split(key, 4)
        action = policy(params, obs, k_act, True)
        action = jnp.where(jax.random.uniform(k_eps) < epsilon,
                           jax.random.randint(k_rand, (), 0, n), action)
        next_obs, state, reward, terminated, truncated, _ = env.step(k_step, state, action, env_params)
        return (next_obs, state), (obs, reward, jnp.logical_or(terminated, truncated))

    _, (obs, rewards, dones) = jax.lax.scan(step, (obs, state), jax.random.split(key, num_steps))
    return obs, rewards, dones

