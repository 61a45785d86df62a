"""Soft Actor-Critic (Haarnoja et al., 2018) for continuous and discrete actions.

Continuous actions use a tanh-squashed Gaussian policy; discrete actions use a
categorical policy whose expectations over actions are computed exactly
(Christodoulou, 2019), as Liesen et al. do on CartPole. Per gradient step, on a
replay batch (s, a, r, s', d), following Spinning Up::

    y = r + gamma * (1 - d) * E_{a'~pi(s')}[min_i Q_targ_i(s', a') - alpha * log pi(a'|s')]
    critics:  minimise sum_i (Q_i(s, a) - y)^2
    actor:    minimise E_{a~pi(s)}[alpha * log pi(a|s) - min_i Q_i(s, a)]
    alpha:    minimise log(alpha) * (entropy(pi(s)) - target_entropy)   (if autotuned)
    Q_targ <- tau * Q + (1 - tau) * Q_targ

The target entropy is ``-action_dim`` for continuous actions (Haarnoja et al.)
and ``target_entropy_ratio * log(num_actions)`` for discrete ones (a fraction
of the uniform policy's entropy). Christodoulou and rejax use 0.98; on CartPole
that drove alpha above 10 here, so the default is 0.5. With
``autotune_alpha=False`` the entropy coefficient stays at ``alpha``.

On CartPole use a faster target update than the default (``tau=0.02``): with
tau=0.005 and a few thousand updates the soft targets propagate value over
only about tau * updates Bellman backups, too few for a 500-step horizon.
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
from learnenv.agents.distributions import (
    categorical_sample,
    tanh_gaussian_sample_and_log_prob,
)
from learnenv.agents.networks import MLP, dense
from learnenv.agents.offpolicy import (
    ActionSpace,
    ContinuousQNetwork,
    DiscreteQNetwork,
    OffPolicyConfig,
    Transition,
    adam,
    apply_gradients,
    critic_loss,
    ensemble,
    make_offpolicy_train,
    polyak_update,
)
from learnenv.config import field


@dataclasses.dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    """Defaults are the paper's (256x256 ReLU MLPs, batch 256, lr 3e-4, tau 0.005).

    On a CPU, ``hidden_sizes=(64, 64), batch_size=128, learning_rate=1e-3`` reaches
    a greedy return of about -150 on Pendulum-v1 in 10-20k steps (benchmarks/offpolicy.py).
    """

    autotune_alpha: bool = field(
        True, choices=(True, False), doc="learn alpha towards the target entropy"
    )
    num_critics: int = field(2, low=1, doc="clipped double-Q over this many critics")
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    # More traced hyperparameters (learning_rate, gamma, tau: OffPolicyConfig's).
    alpha: float = field(1.0, low=0.0, traced=True,
                         doc="initial (autotuned) or fixed entropy coefficient")
    target_entropy_ratio: float = field(0.5, low=0.0, high=1.0, traced=True,
                                        doc="discrete actions only")

    def validate(self) -> None:
        super().validate()
        if self.autotune_alpha and self.alpha <= 0:
            raise ValueError(
                f"{type(self).__name__}.alpha={self.alpha} must be > 0 when autotune_alpha "
                "is on (alpha is learned in log space)."
            )
        if self.log_std_min >= self.log_std_max:
            raise ValueError(
                f"{type(self).__name__}.log_std_min={self.log_std_min} must be below "
                f"log_std_max={self.log_std_max}."
            )


class SquashedGaussianActor(nn.Module):
    """Mean and log-std of u; the action is tanh(u) in [-1, 1]^d."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs):
        x = MLP(self.hidden_sizes, self.activation)(obs)
        mean = dense(self.action_dim, 0.01)(x)
        # tanh-rescaled log-std (CleanRL): bounded and smooth, unlike clipping.
        log_std = jnp.tanh(dense(self.action_dim, 0.01)(x))
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        return mean, log_std


class CategoricalActor(nn.Module):
    num_actions: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        return dense(self.num_actions, 0.01)(MLP(self.hidden_sizes, self.activation)(obs))


@struct.dataclass
class SACState:
    actor_params: dict
    critic_params: dict
    target_critic_params: dict
    log_alpha: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState


def _networks(config: SACConfig, actions: ActionSpace):
    kw = dict(hidden_sizes=config.hidden_sizes, activation=config.activation)
    if actions.discrete:
        actor = CategoricalActor(actions.num_actions, **kw)
        critic = ensemble(DiscreteQNetwork, config.num_critics)(actions.num_actions, **kw)
    else:
        actor = SquashedGaussianActor(
            actions.dim, log_std_min=config.log_std_min, log_std_max=config.log_std_max, **kw
        )
        critic = ensemble(ContinuousQNetwork, config.num_critics)(**kw)
    return actor, critic


def make_train(config: SACConfig, env, env_params, eval_every: int = 0,
               eval_fn: EvalFn | None = None):
    """``train(key, hyperparams=None, env_params=None) -> TrainResult`` (see
    :func:`learnenv.agents.offpolicy.make_offpolicy_train`, which also describes
    the metrics and the optional evaluation hook ``eval_every``, ``eval_fn``)."""
    actions = ActionSpace.of(env, env_params)
    actor, critic = _networks(config, actions)
    discrete = actions.discrete
    anneal = config.num_gradient_steps if config.anneal_lr else None

    def target_entropy(hps):
        if discrete:
            return hps.target_entropy_ratio * jnp.log(float(actions.num_actions))
        return -float(actions.dim)

    def init(key, hps, obs):
        actor_key, critic_key = jax.random.split(key)
        actor_params = actor.init(actor_key, obs)
        if discrete:
            critic_params = critic.init(critic_key, obs)
        else:
            critic_params = critic.init(critic_key, obs, actions.example())
        log_alpha = jnp.log(jnp.asarray(hps.alpha, jnp.float32))
        tx = adam(hps.learning_rate, anneal_steps=anneal)
        return SACState(
            actor_params, critic_params, critic_params, log_alpha,
            tx.init(actor_params), tx.init(critic_params), tx.init(log_alpha),
        )

    def explore(agent, obs, key, timestep, hps):
        return _sample(actor, discrete, agent.actor_params, obs, key)[0]

    def soft_value(agent, critic_params, obs, key, alpha):
        """E_{a~pi}[min_i Q_i(s, a) - alpha log pi(a|s)] and the entropy, per state."""
        if discrete:
            log_p = jax.nn.log_softmax(actor.apply(agent.actor_params, obs))
            q = critic.apply(critic_params, obs).min(axis=0)
            p = jnp.exp(log_p)
            return jnp.sum(p * (q - alpha * log_p), axis=-1), -jnp.sum(p * log_p, axis=-1)
        mean, log_std = actor.apply(agent.actor_params, obs)
        a, log_p = tanh_gaussian_sample_and_log_prob(key, mean, log_std)
        return critic.apply(critic_params, obs, a).min(axis=0) - alpha * log_p, -log_p

    def update(agent: SACState, batch: Transition, key, hps):
        target_key, actor_key = jax.random.split(key)
        tx = adam(hps.learning_rate, anneal_steps=anneal)
        alpha = jnp.exp(agent.log_alpha) if config.autotune_alpha else hps.alpha

        next_v, _ = soft_value(agent, agent.target_critic_params, batch.next_obs, target_key, alpha)
        y = batch.reward + hps.gamma * (1.0 - batch.terminated) * next_v

        def critic_loss_fn(params):
            if discrete:
                q_all = critic.apply(params, batch.obs)
                q = jnp.take_along_axis(q_all, batch.action[None, :, None], axis=-1)[..., 0]
            else:
                q = critic.apply(params, batch.obs, batch.action)
            return critic_loss(q, y), q.mean()

        critic_params, critic_opt, c_loss, q_mean = apply_gradients(
            tx, critic_loss_fn, agent.critic_params, agent.critic_opt
        )

        def actor_loss_fn(params):
            value, entropy = soft_value(agent.replace(actor_params=params), critic_params,
                                        batch.obs, actor_key, alpha)
            return -value.mean(), entropy.mean()

        actor_params, actor_opt, a_loss, entropy = apply_gradients(
            tx, actor_loss_fn, agent.actor_params, agent.actor_opt
        )

        log_alpha, alpha_opt = agent.log_alpha, agent.alpha_opt
        if config.autotune_alpha:
            gap = jax.lax.stop_gradient(entropy - target_entropy(hps))
            log_alpha, alpha_opt, _, _ = apply_gradients(
                tx, lambda la: (la * gap, None), log_alpha, alpha_opt
            )

        agent = SACState(
            actor_params=actor_params, critic_params=critic_params,
            target_critic_params=polyak_update(critic_params, agent.target_critic_params, hps.tau),
            log_alpha=log_alpha, actor_opt=actor_opt, critic_opt=critic_opt, alpha_opt=alpha_opt,
        )
        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "q_value": q_mean,
                   "entropy": entropy, "alpha": jnp.exp(log_alpha) if config.autotune_alpha
                   else jnp.asarray(hps.alpha, jnp.float32)}
        return agent, metrics

    return make_offpolicy_train(
        config, env, env_params, actions, init, explore, update,
        result_params=lambda agent: {"actor": agent.actor_params, "critic": agent.critic_params,
                                     "log_alpha": agent.log_alpha},
        eval_every=eval_every, eval_fn=eval_fn,
    )


def _sample(actor, discrete, params, obs, key):
    """A stochastic action (normalised space) and, for continuous actions, its log-prob."""
    if discrete:
        return categorical_sample(key, actor.apply(params, obs)), None
    mean, log_std = actor.apply(params, obs)
    return tanh_gaussian_sample_and_log_prob(key, mean, log_std)


def make_policy(config: SACConfig, env, env_params):
    """Greedy: the mode (argmax logits, or tanh of the Gaussian mean). Else a sample."""
    actions = ActionSpace.of(env, env_params)
    actor, _ = _networks(config, actions)

    def policy(params, obs, key, greedy=True):
        if greedy:
            out = actor.apply(params["actor"], obs)
            if actions.discrete:
                return jnp.argmax(out, axis=-1)
            return actions.to_env(jnp.tanh(out[0]))
        action, _ = _sample(actor, actions.discrete, params["actor"], obs, key)
        return actions.to_env(action)

    return policy
