"""Measuring what a synthetic environment buys: steps to solve, and what it shows agents.

**Steps to solve** (the paper's central measurement). An agent trains on some
environment (the SE or the real one) and is *evaluated on the real
environment* every ``eval_every`` of its training steps: the mean greedy return
over ``eval_episodes`` episodes. It *first solves* at the first evaluation
whose mean reaches the threshold (195 for CartPole-200), and *stays solved*
if every later evaluation up to the end of its budget does too. Both numbers
depend on the protocol (how often one looks, how many episodes), so the
protocol is returned with them.

The evaluation runs inside the jitted, vmapped training, through the agents'
evaluation hook (``make_train(..., eval_every, eval_fn)``, see
:func:`learnenv.agents.base.make_eval_hook`): whenever the step count reaches a
multiple of ``eval_every``, the current greedy policy is rolled out on the real
environment, and only those updates pay for it.

For histograms of the states an agent meets in the SE versus the real
environment (the paper's figure on "cutting non-informative paths"), roll it
out with :func:`learnenv.agents.base.rollout`.
"""

from __future__ import annotations

import numpy as np

from learnenv.agents.base import evaluate

__all__ = ["make_train_with_eval", "evaluation_curves", "steps_to_solve", "summarise_steps"]


def make_train_with_eval(agent_config, train_env, train_env_params, eval_env, eval_env_params,
                         eval_every: int, eval_episodes: int = 10, agent=None):
    """``train(key, hps, env_params)`` of an agent whose metrics add ``eval_return``.

    ``agent`` is the agent's module (:mod:`learnenv.agents.dqn`, the default,
    or any other agent module: its ``make_train`` takes the evaluation hook).
    ``eval_return`` is the mean greedy return over ``eval_episodes`` episodes
    on ``eval_env`` after each round of updates that brings training to (or
    past) a multiple of ``eval_every`` env steps, NaN after the others.
    """
    from learnenv.agents import dqn

    agent = dqn if agent is None else agent
    policy = agent.make_policy(agent_config, eval_env, eval_env_params)

    def mean_greedy_return(params, key):
        return evaluate(policy, params, eval_env, eval_env_params, key, eval_episodes).mean()

    return agent.make_train(agent_config, train_env, train_env_params,
                            eval_every=eval_every, eval_fn=mean_greedy_return)


def evaluation_curves(metrics, learning_starts: int) -> tuple[np.ndarray, np.ndarray]:
    """``(timesteps, curves)`` of the evaluations in :func:`make_train_with_eval`'s metrics.

    ``curves`` is (agents, evaluations). Evaluations of the warm-up rounds (up
    to ``learning_starts``, an untrained policy) are dropped, with the rounds
    that ran no evaluation.
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
    stays = np.array([bool(s.any()) and bool(s[np.argmax(s):].all()) for s in solved])
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
