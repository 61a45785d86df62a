"""State abstraction: learn an encoder phi(obs) that keeps what matters, then train on it.

An agent that sees 4 informative numbers next to 32 loud, meaningless ones
has to learn to ignore the 32 from its reward alone. A *state abstraction*
phi maps observations to a small latent ``z`` first, fitted to transitions
collected once, and the agent then trains on ``z`` through
:class:`Abstracted`, an environment wrapper (the encoder's weights travel in
``env_params``, so each seed can bring its own encoder to one vmapped call).

What phi keeps depends entirely on what it is trained to predict
(:func:`make_fit`):

- ``"reconstruction"``: an autoencoder, ``decoder(phi(o)) ~ o``. A bottleneck
  that must reconstruct ``o`` keeps the directions with the most variance,
  in the units of the loss. Loud distractors have the most, so it keeps them
  and drops the small numbers the task depends on: the instructive failure.
- ``"predictive"``: a latent model, ``z' ~ T(z, a)``, with heads that predict
  reward and termination from the predicted latent, unrolled ``horizon``
  steps along the collected action sequences (DeepMDP, Gelada et al., 2019;
  value-equivalent models). The latent must tell two observations apart when
  some action sequence leads to different rewards or terminations from them,
  and is never asked to tell apart observations that behave the same: the
  bisimulation idea (Givan et al., 2003; Zhang et al., 2021), *states are the
  same if they behave the same*. Noise that never changes a reward or a
  termination is not needed for any prediction, so the encoder is free to
  drop it.

Both encoders see observations standardised with the statistics of the
collected data (so the network's inputs are of order 1 whatever the units);
the reconstruction target stays in raw units, as an autoencoder's usually is.
The data come from a uniformly random policy, so "behaves the same" means
"under these action sequences": states a random policy never reaches are not
told apart (a limit that on-policy bisimulation shares).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from learnenv.agents.offpolicy import ActionSpace, adam
from learnenv.envs.wrappers import Wrapper

__all__ = ["KINDS", "Transitions", "collect", "Encoder", "EncoderParams", "abstraction_loss",
           "make_fit", "encode", "Abstracted", "AbstractedParams", "linear_probe_r2"]

KINDS = ("reconstruction", "predictive")


@struct.dataclass
class Transitions:
    """Steps of ``num_envs`` streams, time on axis 0: ``(num_steps, num_envs, ...)``."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array  # terminated or truncated: the next row starts a new episode
    next_obs: jax.Array  # the real next observation (final_observation at an episode's end)


def collect(env: Environment, env_params: Any, key: jax.Array, num_envs: int,
            num_steps: int) -> Transitions:
    """Transitions of a uniformly random policy; pure and jittable (sizes static)."""
    actions = ActionSpace.of(env, env_params)
    if not actions.discrete:
        raise ValueError(f"collect: {env.name} has continuous actions; the abstractions "
                         "here condition on one-hot discrete actions.")
    reset_key, loop_key = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_envs), env_params)

    def step(carry, key):
        obs, state = carry
        act_key, env_key = jax.random.split(key)
        action = actions.sample(act_key, (num_envs,))
        next_obs, state, reward, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(jax.random.split(env_key, num_envs), state,
                                               action, env_params)
        row = Transitions(obs=obs.astype(jnp.float32), action=action,
                          reward=reward.astype(jnp.float32),
                          terminated=terminated.astype(jnp.float32),
                          done=jnp.logical_or(terminated, truncated).astype(jnp.float32),
                          next_obs=info["final_observation"].astype(jnp.float32))
        return (next_obs, state), row

    _, data = jax.lax.scan(step, (obs, state), jax.random.split(loop_key, num_steps))
    return data


class _Net(nn.Module):
    """ReLU MLP with a linear output, flax's default init (orthogonal init, which
    the agents use, costs seconds of compilation here for nothing measurable)."""

    hidden_sizes: Sequence[int]
    out: int

    @nn.compact
    def __call__(self, x):
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        return nn.Dense(self.out)(x)


class Encoder(nn.Module):
    """phi: standardised observation -> latent of ``latent_dim`` numbers."""

    latent_dim: int
    hidden_sizes: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs):
        return _Net(tuple(self.hidden_sizes), self.latent_dim)(obs)


class _Heads(nn.Module):
    """What each kind of abstraction predicts from the latent."""

    kind: str
    obs_dim: int
    latent_dim: int
    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)

    def setup(self):
        hidden = tuple(self.hidden_sizes)
        if self.kind == "reconstruction":
            self.decoder = _Net(hidden, self.obs_dim)
        else:
            self.transition = _Net(hidden, self.latent_dim)
            self.outcome = _Net(hidden[:1], 2)  # reward, termination logit

    def decode(self, z):
        return self.decoder(z)

    def next_latent(self, z, action):
        return z + self.transition(jnp.concatenate(
            [z, jax.nn.one_hot(action, self.num_actions)], axis=-1))

    def outcomes(self, z_next):
        out = self.outcome(z_next)
        return out[..., 0], out[..., 1]

    def __call__(self, z, action):  # touches every layer, for init
        if self.kind == "reconstruction":
            return self.decode(z)
        return self.outcomes(self.next_latent(z, action))


@struct.dataclass
class EncoderParams:
    """The encoder's weights and the input statistics it standardises with."""

    network: Any
    obs_mean: jax.Array
    obs_std: jax.Array


def encode(params: EncoderParams, obs: jax.Array, latent_dim: int,
           hidden_sizes: Sequence[int] = (64, 64)) -> jax.Array:
    """phi(obs) for observations of any batch shape."""
    x = (obs - params.obs_mean) / params.obs_std
    return Encoder(latent_dim, tuple(hidden_sizes)).apply(params.network, x)


def _windows(data: Transitions, horizon: int):
    """Every ``horizon``-step window of every stream, flattened to a batch axis.

    ``valid[i]`` is 0 once an earlier step of the window ended its episode
    (the steps after it belong to another episode and are not predicted).
    """
    num_steps = data.obs.shape[0]
    starts = jnp.arange(num_steps - horizon + 1)
    idx = starts[:, None] + jnp.arange(horizon)[None, :]  # (W, H)

    def window(x):  # (T, E, ...) -> (W * E, H, ...)
        w = x[idx]  # (W, H, E, ...)
        w = jnp.moveaxis(w, 2, 1)  # (W, E, H, ...)
        return w.reshape((-1, horizon) + x.shape[2:])

    win = jax.tree.map(window, data)
    alive_before = jnp.cumprod(1.0 - win.done, axis=1)
    valid = jnp.concatenate([jnp.ones_like(alive_before[:, :1]), alive_before[:, :-1]], axis=1)
    return win, valid


def abstraction_loss(encoder: Encoder, heads: _Heads, params: dict, stats: tuple,
                     batch: Transitions, valid: jax.Array) -> jax.Array:
    """The loss of one batch of windows ``(batch, window, ...)``; the kind is ``heads.kind``.

    reconstruction: squared error of ``decoder(phi(o))`` against the raw ``o``.
    predictive: from ``z = phi(o_t)``, step the latent model along the window's
    actions; at every step, squared error of the predicted latent against
    ``phi`` of the real next observation (a fixed target), of the predicted
    reward, and cross-entropy of the predicted termination. Steps after the
    episode ended (``valid == 0``) do not count.
    """
    phi = lambda o: encoder.apply(params["encoder"], (o - stats[0]) / stats[1])  # noqa: E731
    z = phi(batch.obs[:, 0])
    if heads.kind == "reconstruction":
        decoded = heads.apply(params["heads"], z, method=_Heads.decode)
        return jnp.mean(jnp.square(decoded - batch.obs[:, 0]))
    targets = jax.lax.stop_gradient(phi(batch.next_obs))  # (batch, window, latent)
    losses = []
    for i in range(batch.obs.shape[1]):  # a short window: unrolled, compiles faster than scan
        z = heads.apply(params["heads"], z, batch.action[:, i], method=_Heads.next_latent)
        reward, logit = heads.apply(params["heads"], z, method=_Heads.outcomes)
        loss = (jnp.mean(jnp.square(z - targets[:, i]), axis=-1)
                + jnp.square(reward - batch.reward[:, i])
                + optax.sigmoid_binary_cross_entropy(logit, batch.terminated[:, i]))
        losses.append(jnp.sum(valid[:, i] * loss) / jnp.maximum(jnp.sum(valid[:, i]), 1.0))
    return jnp.mean(jnp.stack(losses))


def make_fit(kind: str, obs_dim: int, num_actions: int, latent_dim: int = 8,
             hidden_sizes: Sequence[int] = (64, 64), horizon: int = 5, num_updates: int = 2000,
             batch_size: int = 256, learning_rate: float = 1e-3):
    """``fit(key, data: Transitions) -> (EncoderParams, losses)`` for one kind of abstraction.

    Pure and jittable; vmap it over keys and data for one encoder per seed.
    ``losses`` is the training loss after each update.
    """
    if kind not in KINDS:
        raise ValueError(f"make_fit: unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}.")
    for name, value, low in (("latent_dim", latent_dim, 1), ("horizon", horizon, 1),
                             ("num_updates", num_updates, 1), ("batch_size", batch_size, 1),
                             ("obs_dim", obs_dim, 1), ("num_actions", num_actions, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"make_fit: {name}={value!r} must be an int >= {low}.")
    hidden = tuple(hidden_sizes)
    encoder = Encoder(latent_dim, hidden)
    heads = _Heads(kind, obs_dim, latent_dim, num_actions, hidden)
    window = 1 if kind == "reconstruction" else horizon
    tx = adam(learning_rate, 1.0)

    def fit(key, data: Transitions):
        if data.obs.shape[0] < window:
            raise ValueError(f"make_fit: {data.obs.shape[0]} steps per stream are fewer than "
                             f"horizon={window}.")
        flat_obs = data.obs.reshape(-1, data.obs.shape[-1])
        stats = (flat_obs.mean(axis=0), flat_obs.std(axis=0) + 1e-6)
        windows, valid = _windows(data, window)
        num = valid.shape[0]
        init_key, loop_key = jax.random.split(key)
        k_enc, k_heads = jax.random.split(init_key)
        z0 = jnp.zeros((latent_dim,))
        params = {"encoder": encoder.init(k_enc, flat_obs[0]),
                  "heads": heads.init(k_heads, z0, jnp.zeros((), jnp.int32))}
        opt_state = tx.init(params)

        def update(carry, key):
            params, opt_state = carry
            idx = jax.random.randint(key, (batch_size,), 0, num)
            batch = jax.tree.map(lambda x: x[idx], windows)
            loss, grads = jax.value_and_grad(abstraction_loss, argnums=2)(
                encoder, heads, params, stats, batch, valid[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            params = jax.tree.map(lambda p, u: p + u, params, updates)
            return (params, opt_state), loss

        (params, _), losses = jax.lax.scan(update, (params, opt_state),
                                           jax.random.split(loop_key, num_updates))
        return EncoderParams(params["encoder"], stats[0], stats[1]), losses

    return fit


@struct.dataclass
class AbstractedParams:
    """The wrapped environment's params and the encoder's, as one ``env_params``."""

    env_params: Any
    encoder: EncoderParams

    @property
    def max_steps_in_episode(self):
        return self.env_params.max_steps_in_episode


class Abstracted(Wrapper):
    """The agent sees phi(obs) instead of obs; dynamics and rewards are untouched.

    ``params(env_params, encoder_params)`` builds the ``env_params`` this
    environment takes. Returns are the wrapped environment's returns, so an
    agent trained here is scored on the real task.
    """

    def __init__(self, env: Environment, latent_dim: int, hidden_sizes: Sequence[int] = (64, 64)):
        super().__init__(env)
        self.latent_dim = latent_dim
        self.hidden_sizes = tuple(hidden_sizes)

    @staticmethod
    def params(env_params: Any, encoder: EncoderParams) -> AbstractedParams:
        return AbstractedParams(env_params, encoder)

    @property
    def default_params(self):
        raise ValueError("Abstracted has no default params: pass "
                         "Abstracted.params(env_params, encoder_params).")

    def _check(self, params):
        if not isinstance(params, AbstractedParams):
            raise TypeError(f"Abstracted needs AbstractedParams (Abstracted.params(env_params, "
                            f"encoder)), not {type(params).__name__}.")

    def action_space(self, params: Any = None):
        return self._env.action_space(None if params is None else params.env_params)

    def observation_space(self, params: Any = None):
        return spaces.Box(-jnp.inf, jnp.inf, (self.latent_dim,), jnp.float32)

    def _phi(self, params, obs):
        return encode(params.encoder, obs.astype(jnp.float32), self.latent_dim, self.hidden_sizes)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key, params=None):
        self._check(params)
        obs, state = self._env.reset(key, params.env_params)
        return self._phi(params, obs), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        self._check(params)
        obs, state, reward, terminated, truncated, info = self._env.step(
            key, state, action, params.env_params)
        info = {**info, "final_observation": self._phi(params, info["final_observation"])}
        return self._phi(params, obs), state, reward, terminated, truncated, info


def linear_probe_r2(features: Any, targets: Any, train_fraction: float = 0.5,
                    ridge: float = 1e-3) -> np.ndarray:
    """How much of ``targets`` a linear map of ``features`` explains, per target column.

    Ridge regression (with a bias) fitted on the first ``train_fraction`` of the
    rows; R^2 = 1 - residual variance / variance, measured on the other rows.
    1: the features hold the target linearly; 0 or below: nothing usable. NumPy,
    not JAX: a diagnostic run once per encoder (LAPACK inside ``jax.vmap`` can
    hang on small CPUs, see :func:`learnenv.agents.networks.orthogonal`).
    """
    features = np.asarray(features, np.float64)
    targets = np.asarray(targets, np.float64)
    if features.ndim != 2 or targets.ndim != 2 or features.shape[0] != targets.shape[0]:
        raise ValueError(f"linear_probe_r2: features {features.shape} and targets "
                         f"{targets.shape} must be (rows, columns) with the same rows.")
    split = int(features.shape[0] * train_fraction)
    if not 2 <= split <= features.shape[0] - 2:
        raise ValueError(f"linear_probe_r2: train_fraction={train_fraction} leaves too few rows "
                         f"of {features.shape[0]} to fit or to test.")
    mean, std = features[:split].mean(0), features[:split].std(0) + 1e-6
    x = np.concatenate([(features - mean) / std, np.ones((len(features), 1))], axis=1)
    xt, yt = x[:split], targets[:split]
    w = np.linalg.solve(xt.T @ xt + ridge * split * np.eye(x.shape[1]), xt.T @ yt)
    residual = targets[split:] - x[split:] @ w
    return 1.0 - residual.var(0) / (targets[split:].var(0) + 1e-12)
