"""TD3 (Fujimoto et al., 2018) and DDPG (Lillicrap et al., 2016), continuous actions.

DDPG is TD3 without TD3's three fixes, so both live here and
``DDPGConfig`` is ``TD3Config`` with other defaults: one critic instead of the
clipped double-Q pair, no target policy smoothing (``policy_noise=0``) and an
actor update after every critic update (``policy_delay=1``). Exploration is
Gaussian noise on the deterministic action (the TD3 paper's DDPG baseline, not
the original Ornstein-Uhlenbeck noise). Per gradient step, following Spinning Up::

    a' = clip(mu_targ(s') + clip(eps, -c, c), -1, 1),  eps ~ N(0, policy_noise^2)
    y  = r + gamma * (1 - d) * min_i Q_targ_i(s', a')
    critics: minimise sum_i (Q_i(s, a) - y)^2
    every policy_delay steps:
        actor: maximise Q_1(s, mu(s));  targets <- tau * online + (1 - tau) * targets

Actions are in [-1, 1]^d inside the agent (noise scales are in those units) and
rescaled to the environment's bounds when stepping.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from learnenv.agents.base import EvalFn
from learnenv.agents.networks import MLP, dense
from learnenv.agents.offpolicy import (
    ActionSpace,
    ContinuousQNetwork,
    OffPolicyConfig,
    Transition,
    adam,
    apply_gradients,
    critic_loss,
    ensemble,
    make_offpolicy_train,
    polyak_update,
    require_continuous,
)
from learnenv.config import field


@dataclasses.dataclass(frozen=True)
class TD3Config(OffPolicyConfig):
    """Defaults are the paper's (256x256 ReLU MLPs, lr 3e-4, tau 0.005, noise 0.1/0.2/0.5).

    On a CPU, ``hidden_sizes=(64, 64), batch_size=128, learning_rate=1e-3`` reaches
    a greedy return of about -150 on Pendulum-v1 in 10-20k steps (benchmarks/offpolicy.py).
    """

    num_critics: int = field(2, low=1, doc="clipped double-Q over this many critics")
    policy_delay: int = field(2, low=1, doc="critic updates per actor/target update")
    # More traced hyperparameters (learning_rate, gamma, tau: OffPolicyConfig's).
    exploration_noise: float = field(0.1, low=0.0, traced=True, doc="std of behaviour noise")
    policy_noise: float = field(0.2, low=0.0, traced=True,
                                doc="std of target smoothing noise; 0 = off")
    noise_clip: float = field(0.5, low=0.0, traced=True)


@dataclasses.dataclass(frozen=True)
class DDPGConfig(TD3Config):
    """TD3Config with one critic, no target smoothing and no policy delay."""

    num_critics: int = field(1, low=1)
    policy_delay: int = field(1, low=1)
    policy_noise: float = field(0.0, low=0.0, traced=True)


class DeterministicActor(nn.Module):
    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        x = MLP(self.hidden_sizes, self.activation)(obs)
        return jnp.tanh(dense(self.action_dim, 0.01)(x))


@struct.dataclass
class TD3State:
    actor_params: dict
    critic_params: dict
    target_actor_params: dict
    target_critic_params: dict
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    num_updates: jax.Array
    actor_loss: jax.Array  # from the last actor update (they are policy_delay apart)


def _networks(config: TD3Config, actions: ActionSpace):
    kw = dict(hidden_sizes=config.hidden_sizes, activation=config.activation)
    actor = DeterministicActor(actions.dim, **kw)
    critic = ensemble(ContinuousQNetwork, config.num_critics)(**kw)
    return actor, critic


def _add_noise(action, key, std):
    return jnp.clip(action + std * jax.random.normal(key, action.shape), -1.0, 1.0)


def make_train(config: TD3Config, env, env_params, eval_every: int = 0,
               eval_fn: EvalFn | None = None):
    """``train(key, hyperparams=None, env_params=None) -> TrainResult`` (see
    :func:`learnenv.agents.offpolicy.make_offpolicy_train`, which also describes
    the metrics and the optional evaluation hook ``eval_every``, ``eval_fn``)."""
    actions = ActionSpace.of(env, env_params)
    require_continuous(type(config).__name__[:-6], actions, env)
    actor, critic = _networks(config, actions)
    anneal = config.num_gradient_steps if config.anneal_lr else None
    actor_anneal = -(-config.num_gradient_steps // config.policy_delay) if anneal else None

    def init(key, hps, obs):
        actor_key, critic_key = jax.random.split(key)
        actor_params = actor.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, actions.example())
        return TD3State(
            actor_params, critic_params, actor_params, critic_params,
            adam(hps.learning_rate, anneal_steps=actor_anneal).init(actor_params),
            adam(hps.learning_rate, anneal_steps=anneal).init(critic_params),
            jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32),
        )

    def explore(agent, obs, key, timestep, hps):
        return _add_noise(actor.apply(agent.actor_params, obs), key, hps.exploration_noise)

    def update(agent: TD3State, batch: Transition, key, hps):
        noise = jnp.clip(
            hps.policy_noise * jax.random.normal(key, batch.action.shape),
            -hps.noise_clip, hps.noise_clip,
        )
        next_action = jnp.clip(
            actor.apply(agent.target_actor_params, batch.next_obs) + noise, -1.0, 1.0
        )
        next_q = critic.apply(agent.target_critic_params, batch.next_obs, next_action).min(axis=0)
        y = batch.reward + hps.gamma * (1.0 - batch.terminated) * next_q

        def critic_loss_fn(params):
            q = critic.apply(params, batch.obs, batch.action)
            return critic_loss(q, y), q.mean()

        critic_params, critic_opt, c_loss, q_mean = apply_gradients(
            adam(hps.learning_rate, anneal_steps=anneal), critic_loss_fn,
            agent.critic_params, agent.critic_opt,
        )
        agent = agent.replace(
            critic_params=critic_params, critic_opt=critic_opt, num_updates=agent.num_updates + 1
        )

        def actor_and_targets(agent):
            def actor_loss_fn(params):
                q = critic.apply(agent.critic_params, batch.obs, actor.apply(params, batch.obs))
                return -q[0].mean(), None

            actor_params, actor_opt, a_loss, _ = apply_gradients(
                adam(hps.learning_rate, anneal_steps=actor_anneal), actor_loss_fn,
                agent.actor_params, agent.actor_opt,
            )
            return agent.replace(
                actor_params=actor_params,
                actor_opt=actor_opt,
                target_actor_params=polyak_update(actor_params, agent.target_actor_params, hps.tau),
                target_critic_params=polyak_update(
                    agent.critic_params, agent.target_critic_params, hps.tau
                ),
                actor_loss=a_loss,
            )

        if config.policy_delay == 1:
            agent = actor_and_targets(agent)
        else:
            agent = jax.lax.cond(
                agent.num_updates % config.policy_delay == 0,
                actor_and_targets, lambda agent: agent, agent,
            )
        return agent, {"critic_loss": c_loss, "actor_loss": agent.actor_loss, "q_value": q_mean}

    return make_offpolicy_train(
        config, env, env_params, actions, init, explore, update,
        result_params=lambda agent: {"actor": agent.actor_params, "critic": agent.critic_params},
        eval_every=eval_every, eval_fn=eval_fn,
    )


def make_policy(config: TD3Config, env, env_params):
    """Greedy: mu(s). Not greedy: mu(s) plus ``config.exploration_noise``."""
    actions = ActionSpace.of(env, env_params)
    require_continuous(type(config).__name__[:-6], actions, env)
    actor, _ = _networks(config, actions)

    def policy(params, obs, key, greedy=True):
        action = actor.apply(params["actor"], obs)
        if not greedy:
            action = _add_noise(action, key, config.exploration_noise)
        return actions.to_env(action)

    return policy
