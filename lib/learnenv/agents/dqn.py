"""DQN (Mnih et al., 2015) with the double (van Hasselt et al., 2016) and dueling
(Wang et al., 2016) options, for discrete actions.

Per gradient step, on a replay batch (s, a, r, s', d)::

    y = r + gamma * (1 - d) * Q_targ(s', argmax_a' Q(s', a'))   # double
    y = r + gamma * (1 - d) * max_a' Q_targ(s', a')             # plain
    loss = (Q(s, a) - y)^2                                      # or Huber

with epsilon-greedy exploration, epsilon falling linearly from ``eps_start`` to
``eps_end`` over the first ``exploration_fraction`` of training, and the target
network moved towards the online one (``tau``; 1 = hard copy) every
``target_update_interval`` gradient steps. The loop itself is
:func:`learnenv.agents.offpolicy.make_offpolicy_train`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from learnenv.agents.base import EvalFn
from learnenv.agents.offpolicy import (
    ActionSpace,
    DiscreteQNetwork,
    OffPolicyConfig,
    Transition,
    adam,
    linear_schedule,
    make_offpolicy_train,
    polyak_update,
    require_discrete,
)
from learnenv.config import field


@dataclasses.dataclass(frozen=True)
class DQNConfig(OffPolicyConfig):
    """Defaults: double DQN that solves CartPole-v1 (greedy mean return >= 475).

    CleanRL's and purejaxrl's CartPole settings (one gradient step on a batch of
    128 every 10 env steps, 10k buffer, 10k random steps, lr 2.5e-4, a hard target
    copy every 50 gradient steps = 500 env steps, epsilon 1 -> 0.05 over half the
    run, a 120-84 ReLU network, squared TD error) plus LayerNorm in the torso
    (Gallici et al., 2024) and the lr annealed to 0, run for 300k steps: the last
    two are there to keep the *final* greedy policy good, not only the best one
    on the way. One env (``num_envs`` stays 1 because the SE inner loop relies on
    it); purejaxrl's 10 envs with ``train_freq=1`` is the same update ratio.
    ``benchmarks/offpolicy.py dqn`` measures it: results/benchmarks/offpolicy.json.

    ``loss="mse"``, not Huber: with Huber's gradient capped at 1 per sample, the
    few terminal transitions (target 1) cannot hold Q down while every other
    transition bootstraps it up towards a constant-action policy; the squared
    error keeps them in balance. ``loss="huber"`` is there to compare.
    """

    total_timesteps: int = field(300_000, low=1)
    buffer_size: int = field(10_000, low=1)
    batch_size: int = field(128, low=1)
    learning_starts: int = field(10_000, low=0)
    train_freq: int = field(10, low=1)
    gradient_steps: int = field(1, low=1)
    hidden_sizes: tuple = (120, 84)
    anneal_lr: bool = field(True, choices=(True, False), doc="decay the lr linearly to 0")
    double: bool = field(True, choices=(True, False), doc="double-DQN target")
    dueling: bool = field(False, choices=(True, False), doc="dueling V + A head")
    layer_norm: bool = field(True, choices=(True, False), doc="LayerNorm in the Q torso")
    loss: str = field("mse", choices=("mse", "huber"), doc="TD loss: squared error or Huber")
    target_update_interval: int = field(50, low=1, doc="gradient steps between target updates")
    max_grad_norm: float = field(10.0, low=0.0, doc="0 = no clipping")
    # The traced hyperparameters (``config.hyperparams()``, vmappable).
    learning_rate: float = field(2.5e-4, low=0.0, low_inclusive=False, traced=True)
    tau: float = field(1.0, low=0.0, high=1.0, low_inclusive=False, traced=True)
    eps_start: float = field(1.0, low=0.0, high=1.0, traced=True)
    eps_end: float = field(0.05, low=0.0, high=1.0, traced=True)
    exploration_fraction: float = field(0.5, low=0.0, high=1.0, traced=True)


@struct.dataclass
class DQNState:
    params: dict
    target_params: dict
    opt_state: optax.OptState
    num_updates: jax.Array


def _network(config: DQNConfig, actions: ActionSpace) -> DiscreteQNetwork:
    return DiscreteQNetwork(
        num_actions=actions.num_actions, hidden_sizes=config.hidden_sizes,
        activation=config.activation, dueling=config.dueling, layer_norm=config.layer_norm,
    )


def epsilon(config: DQNConfig, hps, timestep: jax.Array) -> jax.Array:
    """The exploration rate at ``timestep``; ``hps`` is ``config.hyperparams()`` or a traced copy."""
    duration = hps.exploration_fraction * config.total_timesteps
    return linear_schedule(hps.eps_start, hps.eps_end, duration, timestep)


def _epsilon_greedy(q_values, key, eps, num_actions):
    explore_key, action_key = jax.random.split(key)
    random = jax.random.randint(action_key, q_values.shape[:-1], 0, num_actions)
    explore = jax.random.uniform(explore_key, q_values.shape[:-1]) < eps
    return jnp.where(explore, random, jnp.argmax(q_values, axis=-1))


def make_train(config: DQNConfig, env, env_params, eval_every: int = 0,
               eval_fn: EvalFn | None = None):
    """``train(key, hyperparams=None, env_params=None) -> TrainResult`` (see
    :func:`learnenv.agents.offpolicy.make_offpolicy_train`, which also describes
    the metrics and the optional evaluation hook ``eval_every``, ``eval_fn``)."""
    actions = ActionSpace.of(env, env_params)
    require_discrete("DQN", actions, env)
    q_net = _network(config, actions)
    max_norm = config.max_grad_norm or None
    anneal = config.num_gradient_steps if config.anneal_lr else None

    def init(key, hps, obs):
        params = q_net.init(key, obs)
        opt_state = adam(hps.learning_rate, max_norm, anneal).init(params)
        return DQNState(params, params, opt_state, jnp.zeros((), jnp.int32))

    def explore(agent, obs, key, timestep, hps):
        q_values = q_net.apply(agent.params, obs)
        return _epsilon_greedy(q_values, key, epsilon(config, hps, timestep), actions.num_actions)

    def update(agent: DQNState, batch: Transition, key, hps):
        q_next_target = q_net.apply(agent.target_params, batch.next_obs)
        if config.double:
            best = jnp.argmax(q_net.apply(agent.params, batch.next_obs), axis=-1)
            q_next = jnp.take_along_axis(q_next_target, best[:, None], axis=-1)[:, 0]
        else:
            q_next = q_next_target.max(axis=-1)
        target = batch.reward + hps.gamma * (1.0 - batch.terminated) * q_next

        def loss_fn(params):
            q = q_net.apply(params, batch.obs)
            q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
            if config.loss == "huber":
                return optax.huber_loss(q_taken, target).mean(), q_taken.mean()
            return jnp.square(q_taken - target).mean(), q_taken.mean()

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(agent.params)
        updates, opt_state = adam(hps.learning_rate, max_norm, anneal).update(
            grads, agent.opt_state, agent.params
        )
        params = optax.apply_updates(agent.params, updates)
        num_updates = agent.num_updates + 1
        due = num_updates % config.target_update_interval == 0
        target_params = polyak_update(params, agent.target_params, jnp.where(due, hps.tau, 0.0))
        agent = DQNState(params, target_params, opt_state, num_updates)
        return agent, {"q_loss": loss, "q_value": q_mean}

    return make_offpolicy_train(
        config, env, env_params, actions, init, explore, update,
        result_params=lambda agent: {"q": agent.params},
        eval_every=eval_every, eval_fn=eval_fn,
    )


def make_q_function(config: DQNConfig, env, env_params):
    """``q_values(params, obs) -> (..., num_actions)`` of trained ``TrainResult.params``."""
    actions = ActionSpace.of(env, env_params)
    require_discrete("DQN", actions, env)
    q_net = _network(config, actions)
    return lambda params, obs: q_net.apply(params["q"], obs)


def make_policy(config: DQNConfig, env, env_params):
    """Greedy: argmax Q. Not greedy: epsilon-greedy with ``config.eps_end``."""
    actions = ActionSpace.of(env, env_params)
    q_function = make_q_function(config, env, env_params)

    def policy(params, obs, key, greedy=True):
        q_values = q_function(params, obs)
        if greedy:
            return jnp.argmax(q_values, axis=-1)
        return _epsilon_greedy(q_values, key, config.eps_end, actions.num_actions)

    return policy
