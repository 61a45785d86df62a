"""Proximal Policy Optimisation (Schulman et al., 2017), clipped objective.

Discrete actions use a categorical policy; continuous actions a diagonal
Gaussian whose log-std is a learned vector independent of the state, sampled in
a normalised space [-1, 1]^d and clipped (then rescaled to the action space's
bounds) only when stepping the environment, so the log-probabilities stay
those of the unclipped Gaussian. Actor and critic are separate MLPs.

Per update, following Spinning Up's pseudocode and purejaxrl's layout::

    collect num_steps steps in each of num_envs environments with pi_old
    V(s) and V(s') for every step, s' the real next observation (gymnax's
        info["final_observation"], also when the episode was cut by the time limit)
    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}      (GAE)
    repeat update_epochs times, over num_minibatches shuffled minibatches:
        ratio = pi(a|s) / pi_old(a|s),  A normalised per minibatch
        L = -min(ratio A, clip(ratio, 1 +- clip_eps) A)
            + vf_coef * max((V - R)^2, (V_old + clip(V - V_old, +-clip_eps) - R)^2) / 2
            - ent_coef * entropy,            R = A + V_old

Truncation is not termination: an episode cut by the time limit (CartPole-v1
after 500 steps) bootstraps from the value of its last real observation, while
a terminated one does not; both stop the GAE trace (``done``). Because
``info["final_observation"]`` is the real next observation on every step, V(s')
comes from one batched critic call after the rollout, and the rollout loop runs
only the actor.

The rollout's randomness (the Gumbel or Gaussian noise of the policy and the
environments' keys) is drawn for the whole rollout in one call before the loop,
which keeps the loop body short. On a CPU, one seed's cost is mostly the number
of sequential loop steps; with many seeds vmapped it is the minibatch gradients'
arithmetic (``benchmarks/ppo_cartpole.py`` measures both).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from learnenv.agents.base import EvalFn, TrainResult, make_eval_hook
from learnenv.agents.distributions import (
    categorical_entropy,
    categorical_log_prob,
    categorical_sample,
    gaussian_entropy,
    gaussian_log_prob,
)
from learnenv.agents.networks import ACTIVATIONS, MLP, check_hidden_sizes, dense
from learnenv.agents.offpolicy import ActionSpace, adam
from learnenv.config import Config, field
from learnenv.envs.wrappers import (
    EpisodeStatistics,
    FlattenObservation,
    NormalizeObservation,
    NormalizeObservationState,
)

__all__ = ["PPOConfig", "ActorCritic", "gae", "make_train", "make_policy"]


@dataclasses.dataclass(frozen=True)
class PPOConfig(Config):
    """PPO's structure and default hyperparameters.

    The defaults are purejaxrl's CartPole-v1 settings (4 envs x 128 steps, 4
    epochs of 4 minibatches, lr 2.5e-4 annealed to 0, 64x64 tanh MLPs), unchanged
    because they already solve CartPole-v1 here: greedy return 500 (mean of 16
    episodes) for 16 of 16 seeds after 500k steps (benchmarks/ppo_cartpole.py).

    Continuous control wants ``normalize_observations=True``, more environments
    and no entropy bonus (tests/test_ppo.py trains brax's inverted pendulum that
    way). The Gaussian lives in the
    normalised action space [-1, 1]^d, so its initial std of 1 is half the
    action range whatever the bounds.
    """

    total_timesteps: int = field(500_000, low=1, doc="environment steps, all envs together")
    num_envs: int = field(4, low=1, doc="environments stepped in parallel")
    num_steps: int = field(128, low=1, doc="steps per environment per update (rollout length)")
    update_epochs: int = field(4, low=1, doc="passes over each rollout")
    num_minibatches: int = field(4, low=1, doc="minibatches per pass")
    hidden_sizes: tuple = (64, 64)
    activation: str = field("tanh", choices=tuple(ACTIVATIONS))
    anneal_lr: bool = field(True, choices=(True, False), doc="decay the lr linearly to 0")
    normalize_observations: bool = field(
        False, choices=(True, False), doc="running mean/var per env copy (brax, Pendulum)"
    )
    max_grad_norm: float = field(0.5, low=0.0, low_inclusive=False)
    # The traced hyperparameters: ``config.hyperparams()`` holds them, and
    # ``train(key, hyperparams)`` reads them as traced values, so they can be vmapped.
    learning_rate: float = field(2.5e-4, low=0.0, low_inclusive=False, traced=True)
    gamma: float = field(0.99, low=0.0, high=1.0, traced=True)
    gae_lambda: float = field(0.95, low=0.0, high=1.0, traced=True)
    clip_eps: float = field(0.2, low=0.0, low_inclusive=False, traced=True)
    ent_coef: float = field(0.01, low=0.0, traced=True)
    vf_coef: float = field(0.5, low=0.0, traced=True)

    def validate(self) -> None:
        name = type(self).__name__
        check_hidden_sizes(name, self.hidden_sizes)
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"{name}: num_envs * num_steps = {self.num_envs} * {self.num_steps} = "
                f"{self.batch_size} must be divisible by num_minibatches="
                f"{self.num_minibatches}."
            )
        if self.total_timesteps < self.batch_size:
            raise ValueError(
                f"{name}.total_timesteps={self.total_timesteps} is less than one update of "
                f"num_envs * num_steps = {self.batch_size} steps."
            )

    @property
    def batch_size(self) -> int:
        """Transitions per update (one rollout of every environment)."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Length of every metrics array; the run is ``num_updates * batch_size`` steps."""
        return self.total_timesteps // self.batch_size


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs; ``actor`` gives logits, or (mean, log_std)."""

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    def setup(self):
        self.actor_torso = MLP(self.hidden_sizes, self.activation)
        self.actor_head = dense(self.action_dim, 0.01)  # near-uniform initial policy
        self.critic_torso = MLP(self.hidden_sizes, self.activation)
        self.critic_head = dense(1, 1.0)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def actor(self, obs):
        out = self.actor_head(self.actor_torso(obs))
        if self.discrete:
            return out
        return out, jnp.broadcast_to(self.log_std, out.shape)

    def value(self, obs):
        return self.critic_head(self.critic_torso(obs))[..., 0]

    def __call__(self, obs):
        return self.actor(obs), self.value(obs)


def _network(config: PPOConfig, actions: ActionSpace) -> ActorCritic:
    return ActorCritic(actions.dim, actions.discrete, tuple(config.hidden_sizes),
                       config.activation)


def _log_prob_entropy(discrete: bool, out, action):
    if discrete:
        return categorical_log_prob(out, action), categorical_entropy(out)
    mean, log_std = out
    return gaussian_log_prob(mean, log_std, action), gaussian_entropy(log_std)


def _env_action(actions: ActionSpace, action):
    """Normalised action -> what the environment gets (clipped and rescaled)."""
    if actions.discrete:
        return action
    return actions.to_env(jnp.clip(action, -1.0, 1.0))


def _wrap(config: PPOConfig, env, env_params):
    if len(env.observation_space(env_params).shape) > 1:
        env = FlattenObservation(env)
    if config.normalize_observations:
        env = NormalizeObservation(env)
    return env


@struct.dataclass
class _Rollout:
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    next_obs: jax.Array  # the real next observation (final_observation)


def make_train(config: PPOConfig, env, env_params, eval_every: int = 0,
               eval_fn: EvalFn | None = None):
    """``train(key, hyperparams=None, env_params=None) -> TrainResult``.

    ``TrainResult.params`` is ``{"network": ..., "obs_mean": ..., "obs_var": ...}``
    (the last two only with ``normalize_observations``; the per-copy statistics
    pooled over environments), which is all :func:`make_policy` needs on the raw
    environment. Metrics have one entry per update: ``timesteps``;
    ``episode_return``, the mean return of the episodes that finished in that
    update's rollout, carried over from the last update that finished one (NaN
    before the first); and ``policy_loss``, ``value_loss``, ``entropy``,
    ``approx_kl`` averaged over the update's minibatches. With ``eval_fn``, also
    ``eval_return``: ``eval_fn(policy_params, key)`` after each update that
    reaches a multiple of ``eval_every`` env steps, NaN after the others
    (:func:`learnenv.agents.base.make_eval_hook`).
    """
    actions = ActionSpace.of(env, env_params)
    network = _network(config, actions)
    inner = _wrap(config, env, env_params)
    wrapped = EpisodeStatistics(inner)
    default_env_params = env_params
    num_envs, num_steps = config.num_envs, config.num_steps
    num_updates, batch_size = config.num_updates, config.batch_size
    num_minibatches, update_epochs = config.num_minibatches, config.update_epochs
    discrete = actions.discrete
    eval_hook = make_eval_hook(eval_every, eval_fn)

    def policy_params(params, env_state):
        """What :func:`make_policy` needs: the network, and the observation statistics."""
        result = {"network": params}
        if config.normalize_observations:
            result.update(_pooled_obs_stats(env_state.env_state))
        return result

    def train(key, hyperparams=None, env_params=None) -> TrainResult:
        hp = config.hyperparams() if hyperparams is None else hyperparams
        ep = default_env_params if env_params is None else env_params
        key, init_key, reset_key, eval_key = jax.random.split(key, 4)
        obs, env_state = jax.vmap(wrapped.reset, in_axes=(0, None))(
            jax.random.split(reset_key, num_envs), ep
        )
        obs = obs.astype(jnp.float32)
        params = network.init(init_key, obs[0])
        tx = adam(
            hp.learning_rate, config.max_grad_norm,
            num_updates * update_epochs * num_minibatches if config.anneal_lr else None,
        )
        opt_state = tx.init(params)

        def rollout(params, env_state, obs, key):
            noise_key, env_key = jax.random.split(key)
            if discrete:
                noise = jax.random.gumbel(noise_key, (num_steps, num_envs, actions.dim))
            else:
                noise = jax.random.normal(noise_key, (num_steps, num_envs, actions.dim))
            env_keys = jax.random.split(env_key, num_steps * num_envs).reshape(
                (num_steps, num_envs) + env_key.shape
            )

            def env_step(carry, x):
                env_state, obs = carry
                step_keys, eps = x
                out = network.apply(params, obs, method=ActorCritic.actor)
                if discrete:
                    action = jnp.argmax(out + eps, axis=-1)  # Gumbel-max: a ~ softmax(out)
                    log_prob = categorical_log_prob(out, action)
                else:
                    mean, log_std = out
                    action = mean + jnp.exp(log_std) * eps
                    log_prob = gaussian_log_prob(mean, log_std, action)
                next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
                    wrapped.step, in_axes=(0, 0, 0, None)
                )(step_keys, env_state, _env_action(actions, action), ep)
                done = jnp.logical_or(terminated, truncated)
                step = _Rollout(
                    obs=obs, action=action, log_prob=log_prob,
                    reward=reward.astype(jnp.float32),
                    terminated=terminated.astype(jnp.float32),
                    done=done.astype(jnp.float32),
                    next_obs=info["final_observation"].astype(jnp.float32),
                )
                episodes = (info["returned_episode"], info["returned_episode_returns"])
                return (env_state, next_obs.astype(jnp.float32)), (step, episodes)

            (env_state, obs), (traj, episodes) = jax.lax.scan(
                env_step, (env_state, obs), (env_keys, noise)
            )
            return env_state, obs, traj, episodes

        def loss_fn(params, mb):
            out, value = network.apply(params, mb["obs"])
            log_prob, entropy = _log_prob_entropy(discrete, out, mb["action"])
            log_ratio = log_prob - mb["log_prob"]
            ratio = jnp.exp(log_ratio)
            adv = mb["advantage"]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            policy_loss = -jnp.minimum(
                ratio * adv, jnp.clip(ratio, 1.0 - hp.clip_eps, 1.0 + hp.clip_eps) * adv
            ).mean()
            value_clipped = mb["value"] + jnp.clip(value - mb["value"], -hp.clip_eps, hp.clip_eps)
            value_loss = 0.5 * jnp.maximum(
                jnp.square(value - mb["target"]), jnp.square(value_clipped - mb["target"])
            ).mean()
            entropy = entropy.mean()
            loss = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * entropy
            approx_kl = jnp.mean((ratio - 1.0) - log_ratio)
            return loss, dict(policy_loss=policy_loss, value_loss=value_loss,
                              entropy=entropy, approx_kl=approx_kl)

        def minibatch_step(carry, idx):
            params, opt_state, batch = carry
            mb = jax.tree.map(lambda x: jnp.take(x, idx, axis=0), batch)
            grads, losses = jax.grad(loss_fn, has_aux=True)(params, mb)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = jax.tree.map(lambda p, u: p + u, params, updates)
            return (params, opt_state, batch), losses

        def update(carry, _):
            params, opt_state, env_state, obs, last_return, timestep, key = carry
            key, rollout_key, shuffle_key = jax.random.split(key, 3)
            env_state, obs, traj, (finished, returns) = rollout(params, env_state, obs,
                                                                rollout_key)
            values = network.apply(params, traj.obs, method=ActorCritic.value)
            next_values = network.apply(params, traj.next_obs, method=ActorCritic.value)
            advantages = gae(traj.reward, values, next_values, traj.terminated, traj.done,
                             hp.gamma, hp.gae_lambda)
            targets = advantages + values

            batch = dict(obs=traj.obs, action=traj.action, log_prob=traj.log_prob,
                         value=values, advantage=advantages, target=targets)
            batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), batch)
            order = jax.vmap(lambda k: jax.random.permutation(k, batch_size))(
                jax.random.split(shuffle_key, update_epochs)
            )
            (params, opt_state, _), losses = jax.lax.scan(
                minibatch_step, (params, opt_state, batch),
                order.reshape(update_epochs * num_minibatches, -1),
            )

            n_done = finished.sum()
            mean_return = jnp.sum(returns * finished) / jnp.maximum(n_done, 1)
            last_return = jnp.where(n_done > 0, mean_return, last_return)
            timestep = timestep + batch_size
            metrics = {"timesteps": timestep, "episode_return": last_return,
                       **jax.tree.map(jnp.mean, losses)}
            if eval_hook is not None:
                metrics["eval_return"] = eval_hook(
                    policy_params(params, env_state), timestep, batch_size, eval_key
                )
            return (params, opt_state, env_state, obs, last_return, timestep, key), metrics

        carry = (params, opt_state, env_state, obs, jnp.full((), jnp.nan, jnp.float32),
                 jnp.zeros((), jnp.int32), key)
        carry, metrics = jax.lax.scan(update, carry, None, num_updates)
        params, _, env_state = carry[:3]
        return TrainResult(params=policy_params(params, env_state), metrics=metrics)

    return train


def gae(rewards, values, next_values, terminated, done, gamma, gae_lambda):
    """Generalised advantage estimates, time on axis 0.

    ``next_values`` is V of the real next observation of every step, so a step
    cut by the time limit (done, not terminated) still bootstraps from it; a
    terminated step does not. Either way the trace stops at ``done``: the next
    row belongs to a new episode.
    """
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    decays = gamma * gae_lambda * (1.0 - done)

    def backwards(next_advantage, x):
        delta, decay = x
        advantage = delta + decay * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backwards, jnp.zeros_like(deltas[0]), (deltas, decays), reverse=True, unroll=16
    )
    return advantages


def _pooled_obs_stats(state: NormalizeObservationState) -> dict:
    """Mean and variance of all env copies' observations (equal counts per copy)."""
    mean = state.mean.mean(axis=0)
    var = (state.var + jnp.square(state.mean)).mean(axis=0) - jnp.square(mean)
    return {"obs_mean": mean, "obs_var": jnp.maximum(var, 0.0)}


def make_policy(config: PPOConfig, env, env_params):
    """``policy(params, obs, key, greedy)`` on the raw environment.

    Greedy is the mode: argmax of the logits, or the Gaussian mean (clipped).
    """
    actions = ActionSpace.of(env, env_params)
    network = _network(config, actions)
    obs_ndim = len(env.observation_space(env_params).shape)
    normalizer = NormalizeObservation(env) if config.normalize_observations else None

    def policy(params, obs, key, greedy=True):
        obs = jnp.asarray(obs, jnp.float32)
        obs = obs.reshape(obs.shape[: obs.ndim - obs_ndim] + (-1,))
        if normalizer is not None:
            stats = NormalizeObservationState(None, params["obs_mean"], params["obs_var"],
                                              jnp.ones(()))
            obs = normalizer.normalize(obs, stats)
        out = network.apply(params["network"], obs, method=ActorCritic.actor)
        if actions.discrete:
            action = jnp.argmax(out, axis=-1) if greedy else categorical_sample(key, out)
        else:
            mean, log_std = out
            action = mean if greedy else mean + jnp.exp(log_std) * jax.random.normal(
                key, mean.shape)
        return _env_action(actions, action)

    return policy
