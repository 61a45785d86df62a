"""What a learned reward says about the action, for SEs and SCBs alike.

With two actions, what an agent can learn from a reward at a state s is the
difference d(s) = r(s, 1) - r(s, 0). Three measurements read it:

- **sign agreement** with a hand-written controller: the fraction of states
  where the better-rewarded action is the controller's (0.5 is chance);
- a **linear fit** d(s) = w . s + b: if R^2 is near 1, the reward difference
  *is* a linear controller, whose decision boundary w . s + b = 0 may lie
  outside the states the environment ever shows;
- both **on the states the environment shows** (an SE's or SCB's own start
  states) and **on the states a real agent visits**: an agent that only picks
  the better-rewarded action where it is shown learns the first; an agent that
  regresses the reward and extrapolates (a Q-network) can learn the second.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["reward_difference", "linear_fit", "sign_agreement", "cartpole_controller",
           "probe"]


def reward_difference(env, env_params, states: np.ndarray) -> np.ndarray:
    """``r(s, 1) - r(s, 0)`` at every state (rows of ``states``) of a two-action learned
    environment with a ``reward(network_params, obs, action)`` method."""
    net = env_params.network_params
    states = jnp.asarray(states, jnp.float32)
    diff = jax.vmap(lambda s: env.reward(net, s, 1) - env.reward(net, s, 0))(states)
    return np.asarray(diff)


def linear_fit(states: np.ndarray, values: np.ndarray) -> dict:
    """Least-squares ``values ~ states @ slope + offset``, with its R^2."""
    states, values = np.asarray(states, np.float64), np.asarray(values, np.float64)
    design = np.column_stack([states, np.ones(len(states))])
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    residual = values - design @ coef
    total = ((values - values.mean()) ** 2).sum()
    return {"slope": coef[:-1], "offset": float(coef[-1]),
            "r2": float(1.0 - (residual ** 2).sum() / total) if total > 0 else float("nan")}


def sign_agreement(values: np.ndarray, actions: np.ndarray) -> float:
    """Fraction of states where ``values > 0`` (action 1 is rewarded more) matches ``actions``."""
    return float(np.mean((np.asarray(values) > 0) == (np.asarray(actions) == 1)))


def cartpole_controller(obs: jax.Array) -> jax.Array:
    """Push towards the side the pole is falling to: right (1) when the pole angle
    plus its angular velocity is positive. It balances CartPole for 500 steps."""
    return (obs[..., 2] + obs[..., 3] > 0).astype(jnp.int32)


def probe(env, env_params, states: np.ndarray, controller=cartpole_controller) -> dict:
    """The three measurements on ``states``: ``{"difference", "agreement", "fit",
    "share_action_1"}`` (the last: fraction of states where action 1 is rewarded more)."""
    diff = reward_difference(env, env_params, states)
    return {"difference": diff,
            "agreement": sign_agreement(diff, np.asarray(controller(jnp.asarray(states)))),
            "fit": linear_fit(states, diff), "share_action_1": float(np.mean(diff > 0))}
