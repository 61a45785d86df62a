"""What DQN, SAC and TD3/DDPG share: the replay loop, the buffer, Q-heads, targets.

Every off-policy agent here is the same loop (Spinning Up's pseudocode for DDPG,
TD3 and SAC, and DQN's too)::

    observe s, act a (random while t < learning_starts), step, store (s, a, r, s', d)
    every train_freq steps: repeat gradient_steps times
        sample a batch uniformly (with replacement) from the buffer, update

so the loop is written once (:func:`make_offpolicy_train`) and each algorithm
module only supplies three pure functions: ``init`` (networks and optimiser
states), ``explore`` (the behaviour policy) and ``update`` (one gradient step on
a batch, including its own target-network updates).

Truncation is not termination: a transition that ends because of the time limit
is stored with ``terminated = 0`` and the last real observation (gymnax's
``info["final_observation"]``), so its target bootstraps from the state the agent
really reached, not from the next episode's first observation.

The replay buffer is flashbax's item buffer (InstaDeep): a fixed-size circular
array in the scan carry, sampled uniformly with replacement over its filled part,
so one sample costs the same whatever the buffer size; it runs under jit and
vmap (over seeds and over traced hyperparameters) as fast as a hand-written one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import flashbax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from gymnax.environments import spaces

from learnenv.agents.base import EvalFn, TrainResult, make_eval_hook
from learnenv.agents.networks import MLP, activation, check_hidden_sizes, dense
from learnenv.config import Config, field
from learnenv.envs.wrappers import EpisodeStatistics


# Config fields every off-policy agent has -----------------------------------
@dataclasses.dataclass(frozen=True)
class OffPolicyConfig(Config):
    """The loop's static structure; each agent's config adds its own fields."""

    total_timesteps: int = field(100_000, low=1, doc="environment steps, all envs together")
    num_envs: int = field(1, low=1, doc="environments stepped in parallel")
    buffer_size: int = field(100_000, low=1, doc="replay capacity in transitions")
    batch_size: int = field(256, low=1)
    learning_starts: int = field(1_000, low=0, doc="random-action steps before learning")
    train_freq: int = field(1, low=1, doc="vector-env steps between rounds of updates")
    gradient_steps: int = field(1, low=1, doc="gradient updates per round")
    hidden_sizes: tuple = (256, 256)
    activation: str = field("relu", choices=("tanh", "relu", "leaky_relu", "elu", "swish"))
    anneal_lr: bool = field(False, choices=(True, False), doc="decay the lr linearly to 0")
    # Traced hyperparameters every off-policy agent has (``config.hyperparams()``).
    learning_rate: float = field(3e-4, low=0.0, low_inclusive=False, traced=True)
    gamma: float = field(0.99, low=0.0, high=1.0, traced=True)
    tau: float = field(0.005, low=0.0, high=1.0, low_inclusive=False, traced=True,
                       doc="weight of the online network in the target update")

    def validate(self) -> None:
        name = type(self).__name__
        check_hidden_sizes(name, self.hidden_sizes)
        if self.batch_size > self.buffer_size:
            raise ValueError(
                f"{name}.batch_size={self.batch_size} must not exceed "
                f"{name}.buffer_size={self.buffer_size}."
            )
        if self.num_envs * self.train_freq > self.buffer_size:
            raise ValueError(
                f"{name}.buffer_size={self.buffer_size} must hold one round of "
                f"num_envs * train_freq = {self.num_envs * self.train_freq} transitions."
            )
        if self.total_timesteps < self.learning_starts + self.steps_per_round:
            raise ValueError(
                f"{name}.total_timesteps={self.total_timesteps} leaves no update after "
                f"learning_starts={self.learning_starts}; it must be at least "
                f"learning_starts + num_envs * train_freq = "
                f"{self.learning_starts + self.steps_per_round}."
            )

    @property
    def steps_per_round(self) -> int:
        return self.num_envs * self.train_freq

    @property
    def num_warmup_rounds(self) -> int:
        return math.ceil(self.learning_starts / self.steps_per_round)

    @property
    def num_gradient_steps(self) -> int:
        """Gradient steps in the whole run (the length of an annealed lr schedule)."""
        return (self.num_rounds - self.num_warmup_rounds) * self.gradient_steps

    @property
    def num_rounds(self) -> int:
        """Length of every metrics array: warm-up rounds plus learning rounds."""
        return self.total_timesteps // self.steps_per_round


# Replay ---------------------------------------------------------------------
@struct.dataclass
class Transition:
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array  # the real next observation, also on truncation
    terminated: jax.Array  # 1.0 only at a true terminal state: no bootstrap


def make_replay_buffer(buffer_size: int, batch_size: int):
    """flashbax item buffer: ``init(example)``, ``add(state, batch)``, ``sample(state, key)``."""
    return flashbax.make_item_buffer(
        max_length=buffer_size, min_length=1, sample_batch_size=batch_size, add_batches=True
    )


# Target networks and schedules -------------------------------------------------
def polyak_update(online: Any, target: Any, tau: jax.Array) -> Any:
    """target <- tau * online + (1 - tau) * target.

    ``tau`` is the weight of the online network (SB3/CleanRL convention; tau=1 is
    a hard copy). Spinning Up and rejax call ``1 - tau`` "polyak": the values
    .99 ... .7 that Liesen et al. sample are polyak values, i.e. tau .01 ... .3.
    """
    return jax.tree.map(lambda o, t: t + tau * (o - t), online, target)


def linear_schedule(start, end, duration, t):
    """``start`` at t=0, linearly to ``end`` at t=duration, then constant."""
    frac = jnp.clip(t / jnp.maximum(duration, 1.0), 0.0, 1.0)
    return start + frac * (end - start)


def adam(learning_rate: jax.Array, max_grad_norm: float | None = None,
         anneal_steps: int | None = None):
    """Adam with a (possibly traced) learning rate, optional clipping and linear decay.

    With ``anneal_steps`` the rate falls linearly to 0 over that many updates,
    which freezes the final policy instead of leaving it to drift.
    """
    if anneal_steps:
        lr = learning_rate

        def learning_rate(count):
            return lr * jnp.maximum(1.0 - count / anneal_steps, 0.0)

    tx = optax.adam(learning_rate=learning_rate)
    if max_grad_norm is not None and max_grad_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), tx)
    return tx


# Q-heads ----------------------------------------------------------------------
class DiscreteQNetwork(nn.Module):
    """Q(s, .) for every discrete action; ``dueling`` splits it into V(s) + A(s, .).

    The dueling head (Wang et al., 2016) shares the torso and subtracts the mean
    advantage so that V and A are identifiable. ``layer_norm`` normalises each
    hidden layer before its activation, which keeps bootstrapped Q-learning from
    overestimating and diverging (Gallici et al., 2024, "Simplifying Deep
    Temporal Difference Learning"); with an annealed lr it keeps DQN's final CartPole
    policy solved (see :class:`learnenv.agents.dqn.DQNConfig`).
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "relu"
    dueling: bool = False
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if self.layer_norm:
            act = activation(self.activation)
            x = obs.reshape(obs.shape[: obs.ndim - 1] + (-1,)) if obs.ndim else obs[None]
            for size in self.hidden_sizes:
                x = act(nn.LayerNorm()(dense(size)(x)))
        else:
            x = MLP(self.hidden_sizes, self.activation)(obs)
        if not self.dueling:
            return dense(self.num_actions, 1.0)(x)
        value = dense(1, 1.0)(x)
        advantage = dense(self.num_actions, 1.0)(x)
        return value + advantage - advantage.mean(axis=-1, keepdims=True)


class ContinuousQNetwork(nn.Module):
    """Q(s, a) for a continuous action vector (a in [-1, 1]^d)."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        obs = obs.reshape(obs.shape[: action.ndim - 1] + (-1,))
        x = MLP(self.hidden_sizes, self.activation)(jnp.concatenate([obs, action], axis=-1))
        return dense(1, 1.0)(x)[..., 0]


def ensemble(module: type[nn.Module], num: int) -> type[nn.Module]:
    """``num`` independent copies of ``module`` (twin critics): outputs stack on axis 0."""
    return nn.vmap(module, variable_axes={"params": 0}, split_rngs={"params": True},
                   in_axes=None, out_axes=0, axis_size=num)


def critic_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """Sum over the ensemble (axis 0) of each critic's mean squared TD error, halved."""
    return 0.5 * jnp.mean(jnp.square(q - jax.lax.stop_gradient(target)), axis=-1).sum()


def apply_gradients(tx, loss_fn, params, opt_state):
    """One optimiser step on ``loss_fn(params) -> (loss, aux)``."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, aux


# Action spaces --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ActionSpace:
    """What the loop needs to know about actions.

    Agents act in a normalised space: discrete ints, or continuous vectors in
    [-1, 1]^d that ``to_env`` rescales to the environment's bounds.
    """

    discrete: bool
    num_actions: int  # discrete: number of actions; continuous: 0
    shape: tuple[int, ...]  # continuous action shape; discrete: ()
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @classmethod
    def of(cls, env, env_params) -> "ActionSpace":
        space = env.action_space(env_params)
        if isinstance(space, spaces.Discrete):
            return cls(True, int(space.n), ())
        shape = tuple(space.shape) if len(space.shape) else (1,)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return cls(False, 0, shape, low, high)

    @property
    def dim(self) -> int:
        return self.num_actions if self.discrete else int(np.prod(self.shape))

    def to_env(self, action: jax.Array) -> jax.Array:
        if self.discrete:
            return action
        return self.low + 0.5 * (action + 1.0) * (self.high - self.low)

    def sample(self, key: jax.Array, batch: tuple[int, ...] = ()) -> jax.Array:
        if self.discrete:
            return jax.random.randint(key, batch, 0, self.num_actions)
        return jax.random.uniform(key, batch + self.shape, minval=-1.0, maxval=1.0)

    def example(self) -> jax.Array:
        if self.discrete:
            return jnp.zeros((), jnp.int32)
        return jnp.zeros(self.shape, jnp.float32)


def require_discrete(name: str, actions: ActionSpace, env) -> None:
    if not actions.discrete:
        raise ValueError(f"{name} needs discrete actions; {env.name} has continuous ones.")


def require_continuous(name: str, actions: ActionSpace, env) -> None:
    if actions.discrete:
        raise ValueError(f"{name} needs continuous actions; {env.name} has discrete ones.")


# The loop ------------------------------------------------------------------------------
# init(key, hps, obs_example) -> agent
# explore(agent, obs_batch, key, timestep, hps) -> action batch (normalised space)
# update(agent, batch, key, hps) -> (agent, metrics dict of scalars)
# result_params(agent) -> TrainResult.params
InitFn = Callable[[jax.Array, Any, jax.Array], Any]
ExploreFn = Callable[[Any, jax.Array, jax.Array, jax.Array, Any], jax.Array]
UpdateFn = Callable[[Any, Transition, jax.Array, Any], tuple[Any, dict]]


@struct.dataclass
class _LoopState:
    agent: Any
    buffer: Any
    env_state: Any
    obs: jax.Array
    timestep: jax.Array
    last_return: jax.Array
    key: jax.Array


def make_offpolicy_train(config: OffPolicyConfig, env, env_params, actions: ActionSpace,
                         init: InitFn, explore: ExploreFn, update: UpdateFn,
                         result_params: Callable[[Any], Any], eval_every: int = 0,
                         eval_fn: EvalFn | None = None):
    """The shared ``train(key, hyperparams=None, env_params=None)`` of every off-policy agent.

    Metrics have one entry per round of ``num_envs * train_freq`` env steps
    (``config.num_rounds`` in all, warm-up rounds included with zero losses):
    ``timesteps``; ``episode_return``, the mean return of the episodes that
    finished in that round, carried over from the last round that finished one
    (NaN before the first); and the algorithm's losses, averaged over the
    round's gradient steps. With ``eval_fn``, also ``eval_return``:
    ``eval_fn(result_params(agent), key)`` after each round that reaches a
    multiple of ``eval_every`` env steps (warm-up rounds included), NaN in the
    others (:func:`learnenv.agents.base.make_eval_hook`).
    """
    wrapped = EpisodeStatistics(env)
    eval_hook = make_eval_hook(eval_every, eval_fn)
    default_env_params = env_params
    buffer = make_replay_buffer(config.buffer_size, config.batch_size)
    num_envs, train_freq = config.num_envs, config.train_freq
    warmup_rounds = config.num_warmup_rounds
    learn_rounds = config.num_rounds - warmup_rounds

    def train(key, hyperparams=None, env_params=None) -> TrainResult:
        hps = config.hyperparams() if hyperparams is None else hyperparams
        ep = default_env_params if env_params is None else env_params
        key, init_key, reset_key, eval_key = jax.random.split(key, 4)
        obs, env_state = jax.vmap(wrapped.reset, in_axes=(0, None))(
            jax.random.split(reset_key, num_envs), ep
        )
        obs = obs.astype(jnp.float32)
        agent = init(init_key, hps, obs[0])
        example = Transition(
            obs=obs[0], action=actions.example(), reward=jnp.zeros((), jnp.float32),
            next_obs=obs[0], terminated=jnp.zeros((), jnp.float32),
        )
        state = _LoopState(agent=agent, buffer=buffer.init(example), env_state=env_state,
                           obs=obs, timestep=jnp.zeros((), jnp.int32),
                           last_return=jnp.full((), jnp.nan, jnp.float32), key=key)

        def env_step(learning, carry, _):
            state = carry
            key, act_key, step_key = jax.random.split(state.key, 3)
            if learning:
                action = explore(state.agent, state.obs, act_key, state.timestep, hps)
            else:
                action = actions.sample(act_key, (num_envs,))
            next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
                wrapped.step, in_axes=(0, 0, 0, None)
            )(jax.random.split(step_key, num_envs), state.env_state, actions.to_env(action), ep)
            transition = Transition(
                obs=state.obs,
                action=action.astype(example.action.dtype),
                reward=reward.astype(jnp.float32),
                next_obs=info["final_observation"].astype(jnp.float32),
                terminated=terminated.astype(jnp.float32),
            )
            state = state.replace(
                env_state=env_state, obs=next_obs.astype(jnp.float32),
                timestep=state.timestep + num_envs, key=key,
            )
            finished = (info["returned_episode"], info["returned_episode_returns"])
            return state, (transition, finished)

        def round_(learning, state, _):
            state, (transitions, (done, returns)) = jax.lax.scan(
                lambda c, x: env_step(learning, c, x), state, None, train_freq
            )
            flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), transitions)
            state = state.replace(buffer=buffer.add(state.buffer, flat))
            if learning:

                def gradient_step(agent, key):
                    sample_key, update_key = jax.random.split(key)
                    batch = buffer.sample(state.buffer, sample_key).experience
                    return update(agent, batch, update_key, hps)

                key, grad_key = jax.random.split(state.key)
                agent, metrics = jax.lax.scan(
                    gradient_step, state.agent, jax.random.split(grad_key, config.gradient_steps)
                )
                metrics = jax.tree.map(jnp.mean, metrics)
                state = state.replace(agent=agent, key=key)
            else:
                metrics = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), loss_shapes)
            n_done = done.sum()
            mean_return = jnp.sum(returns * done) / jnp.maximum(n_done, 1)
            last_return = jnp.where(n_done > 0, mean_return, state.last_return)
            state = state.replace(last_return=last_return)
            metrics = {"timesteps": state.timestep, "episode_return": last_return, **metrics}
            if eval_hook is not None:
                metrics["eval_return"] = eval_hook(
                    result_params(state.agent), state.timestep, config.steps_per_round, eval_key
                )
            return state, metrics

        # The loss names and shapes, for the warm-up rounds' placeholder metrics.
        loss_shapes = jax.eval_shape(
            lambda a, k: update(a, buffer.sample(state.buffer, k).experience, k, hps)[1],
            state.agent, state.key,
        )
        state, warm_metrics = jax.lax.scan(
            lambda c, x: round_(False, c, x), state, None, warmup_rounds
        )
        state, learn_metrics = jax.lax.scan(
            lambda c, x: round_(True, c, x), state, None, learn_rounds
        )
        metrics = jax.tree.map(
            lambda a, b: jnp.concatenate([a, b]), warm_metrics, learn_metrics
        )
        return TrainResult(params=result_params(state.agent), metrics=metrics)

    return train
