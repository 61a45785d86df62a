"""Curiosity: a bonus for transitions a small network cannot yet predict.

An agent that only sees the task's reward explores by chance, and in a task
whose reward lies at the end of a long, specific action sequence (DeepSea)
chance never gets there. A curious agent adds ``beta * bonus`` to the reward,
where the bonus is a novelty: the error of a network trained online on the
transitions seen so far. The error is large where the agent has rarely been
and shrinks as it comes back, a learned stand-in for a visit count that works
on any observation. Both kinds here learn a part of the environment:

- ``"forward"``, a forward model (Pathak et al., 2017, on raw observations):
  f(s, a) regresses s'. It *is* the transition function, learned; its error is
  large where the model of the environment is still wrong.
- ``"rnd"``, random network distillation (Burda et al., 2019): f(s') regresses
  g(s'), the features of a fixed, randomly initialised network g. It learns no
  dynamics, only the part of the environment's state space the agent has
  reached: the error is low exactly on the next states the environment has
  already produced, a density model of its transitions. Unlike the forward
  model it does not reward noise the model cannot predict (a random
  transition, a noisy TV), since g(s') is a deterministic function of s'.

The bonus is the raw novelty divided by the root mean square of all novelties
so far, so that it starts near 1 and ``beta`` means the same on every
environment; as the predictor learns, novelty falls and so does the bonus.

The wrapper is a pure gymnax ``Environment``: the predictor's parameters, its
optax state and the running scale live in :class:`CuriosityState`, next to the
inner environment's state, so they outlive the inner environment's automatic
resets (only :meth:`Curiosity.reset` starts them afresh), and any agent of the
engine trains on the shaped reward unchanged. ``info["extrinsic_reward"]``
keeps the task's reward, for reporting real returns.

Under ``jax.vmap`` over environment copies (what every agent does), each copy
has its own predictor, trained on its own stream. That is fine here: the
copies share one policy and so see the same distribution of transitions; each
predictor learns from 1/num_envs of the data, so novelty decays more slowly,
as with a smaller learning rate, and a state one copy has not visited is still
new to it. A predictor shared by all copies would need the batch of copies
inside one ``step`` (the agent's rollout loop, not a wrapper); it is what
Burda et al. do with 128 copies. The cost of a copy each is memory: a quarter
of a megabyte per copy on a 12 x 12 DeepSea (two networks and Adam's moments).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from learnenv.agents.networks import MLP, check_hidden_sizes, dense
from learnenv.envs.wrappers import Wrapper

__all__ = ["Curiosity", "CuriosityState", "KINDS"]

KINDS = ("rnd", "forward")


class _Net(nn.Module):
    """An MLP with a linear output layer."""

    hidden_sizes: Sequence[int]
    out: int

    @nn.compact
    def __call__(self, x):
        return dense(self.out, 1.0)(MLP(self.hidden_sizes, "relu")(x))


@struct.dataclass
class CuriosityState:
    env_state: Any
    obs: jax.Array  # the current observation, flattened (the forward model's input)
    predictor: Any  # parameters of the network trained online
    opt_state: Any
    target: Any  # RND: the fixed random network's parameters; forward: None
    mean_sq: jax.Array  # running mean of novelty^2, the bonus's scale
    count: jax.Array


class Curiosity(Wrapper):
    """``reward + beta * novelty / rms(novelty)``, novelty from a predictor trained online.

    ``kind`` is ``"rnd"`` or ``"forward"`` (see the module docstring);
    ``learning_rate`` is the predictor's (Adam), ``hidden_sizes`` the hidden
    layers of both networks and ``features`` the size of RND's random features.
    Image-like observations are flattened for the networks (use them scaled to
    [0, 1]); the observations the agent sees and the spaces are unchanged.
    ``view`` (a function of one observation) changes what the networks see,
    e.g. a renderer for a bonus on frames (the VIPER chapter), while the agent
    still sees states.
    ``info`` gains ``novelty`` (raw), ``bonus`` (scaled) and ``extrinsic_reward``:
    the task's reward, kept from an inner wrapper's ``info`` when it has one.
    Only :meth:`reset` initialises the networks (from its key), so keep it for
    the start of training, as the agents of the engine do.
    """

    def __init__(self, env: Environment, env_params: Any = None, kind: str = "rnd",
                 beta: float = 0.1, learning_rate: float = 1e-3,
                 hidden_sizes: Sequence[int] = (64, 64), features: int = 32,
                 view: Callable[[jax.Array], jax.Array] | None = None):
        super().__init__(env)
        if kind not in KINDS:
            raise ValueError(f"Curiosity: unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}.")
        if not beta >= 0:
            raise ValueError(f"Curiosity: beta={beta} must be >= 0.")
        if not learning_rate > 0:
            raise ValueError(f"Curiosity: learning_rate={learning_rate} must be > 0.")
        if not (isinstance(features, int) and features >= 1):
            raise ValueError(f"Curiosity: features={features!r} must be a positive int.")
        check_hidden_sizes("Curiosity", tuple(hidden_sizes))
        params = env.default_params if env_params is None else env_params
        if view is not None and not callable(view):
            raise TypeError(f"Curiosity: view must be a function of an observation, not "
                            f"{type(view).__name__}.")
        self.kind, self.beta = kind, float(beta)
        self._view = view
        example = jnp.zeros(env.observation_space(params).shape, jnp.float32)
        self.obs_size = math.prod(jax.eval_shape(self._flat, example).shape)
        space = env.action_space(params)
        self._discrete = int(space.n) if isinstance(space, spaces.Discrete) else None
        self._action_size = self._discrete or math.prod(space.shape)
        out = features if kind == "rnd" else self.obs_size
        self._predictor = _Net(tuple(hidden_sizes), out)
        self._target = _Net(tuple(hidden_sizes), features)
        self._tx = optax.adam(learning_rate)

    def _flat(self, obs):
        """What the networks see of one observation, as a flat float vector."""
        obs = jnp.asarray(obs, jnp.float32)
        return jnp.ravel(obs if self._view is None else self._view(obs)).astype(jnp.float32)

    def _input(self, obs, action):
        """What the predictor sees: s' for RND, (s, a) for the forward model."""
        if self.kind == "rnd":
            return obs
        if self._discrete is not None:
            action = jax.nn.one_hot(action, self._discrete)
        return jnp.concatenate([obs, jnp.ravel(action).astype(jnp.float32)])

    def novelty(self, predictor, target, obs, action, next_obs):
        """Mean squared prediction error on one transition (flat observations)."""
        if self.kind == "rnd":
            x, y = next_obs, self._target.apply(target, next_obs)
        else:
            x, y = self._input(obs, action), next_obs
        return jnp.mean(jnp.square(self._predictor.apply(predictor, x) - y))

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        env_key, predictor_key, target_key = jax.random.split(key, 3)
        obs, env_state = self._env.reset(env_key, params)
        flat = self._flat(obs)
        example = self._input(flat, jnp.zeros((), jnp.int32) if self._discrete
                              else jnp.zeros(self._action_size))
        predictor = self._predictor.init(predictor_key, example)
        target = self._target.init(target_key, flat) if self.kind == "rnd" else None
        state = CuriosityState(env_state=env_state, obs=flat, predictor=predictor,
                               opt_state=self._tx.init(predictor), target=target,
                               mean_sq=jnp.zeros(()), count=jnp.zeros(()))
        return obs, state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        # The real next state, also when the episode ended and obs is a new episode's.
        next_obs = self._flat(info["final_observation"])
        novelty, grads = jax.value_and_grad(self.novelty)(
            state.predictor, state.target, state.obs, action, next_obs)
        updates, opt_state = self._tx.update(grads, state.opt_state, state.predictor)
        count = state.count + 1.0
        mean_sq = state.mean_sq + (jnp.square(novelty) - state.mean_sq) / count
        bonus = novelty / jnp.sqrt(mean_sq + 1e-12)
        state = state.replace(env_state=env_state, obs=self._flat(obs),
                              predictor=optax.apply_updates(state.predictor, updates),
                              opt_state=opt_state, mean_sq=mean_sq, count=count)
        info = {**info, "extrinsic_reward": info.get("extrinsic_reward", reward),
                "novelty": novelty, "bonus": bonus}
        return obs, state, reward + self.beta * bonus, terminated, truncated, info
