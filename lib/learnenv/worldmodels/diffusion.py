"""An interactive simulator from action-conditioned diffusion (UniSim, DIAMOND).

The world model is a denoiser: given the last ``k`` frames, the action and a
noisy version of the next frame, it predicts the clean next frame. Sampling
starts from noise and denoises in a few steps, so the next frame is *drawn*
from ``p(x_{t+1} | x_{t-k+1..t}, a_t)`` instead of being its average; where
the future is uncertain, an average is a blur, and a sample is a sharp frame
of one possible future (DIAMOND, Alonso et al. 2024).

The recipe is DIAMOND's at laptop scale:

- **EDM** (Karras et al. 2022): the network ``F`` is wrapped as
  ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)``, with the scalings
  chosen so that ``F``'s input and target have unit variance at every noise
  level; training noise levels are log-normal (``p_mean``, ``p_std``).
- **Sampling**: Euler steps along Karras's noise schedule from ``sigma_max``
  to 0 (DIAMOND uses 3). With one step the sample is ``D(noise; sigma_max)``,
  close to the conditional mean: one-step diffusion behaves like a
  deterministic model.
- **The denoiser** is a small U-Net (:mod:`learnenv.nets.unet`) whose blocks
  get the noise level and the action as a scale and shift; the ``k`` context
  frames enter as extra input channels.
- **Reward and termination** come from a separate small head on the last and
  the next frame and the action, as DIAMOND predicts them from frames. Like
  DIAMOND's, it classifies the reward's sign (-1, 0 or +1: Atari agents train
  on clipped rewards) instead of regressing its value, so an ordinary step is
  exactly 0 rather than a small spurious amount an agent could farm.

**Several sources, one model** (UniSim's pre-training on data with different
action spaces, at toy scale): ``config.sources`` names environments whose
frames the model learns together. Each source's actions become vectors of one
size (:mod:`learnenv.worldmodels.pixels`), each source has its own linear map
from that vector into the action embedding, and a learned source embedding
tells the network whose frames it is predicting.

``objective="mse"`` trains the same network as a deterministic one-step
predictor (no noise input, squared error to the next frame): the baseline
that shows what diffusion buys.

:class:`DiffusionEnvironment` is the model as a gymnax environment with the
real action space: prompted by a real first frame, stepped by sampling.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from gymnax.environments import environment, spaces

from learnenv import kinds
from learnenv.config import Config, field
from learnenv.envs import render
from learnenv.nets.heads import head_losses, reward_of, sign_and_done
from learnenv.nets.unet import UNet
from learnenv.synthetic.base import LearnedEnvironment, SyntheticEnvParams
from learnenv.worldmodels import pixels
from learnenv.worldmodels.loop import adam_fit, fit_steps

__all__ = ["DiffusionConfig", "Denoiser", "Heads", "init_params", "denoise", "sigmas",
           "sample_next", "predict_heads", "rollout", "make_fit", "fit", "DiffusionEnvironment",
           "DiffusionState"]


@dataclasses.dataclass(frozen=True)
class DiffusionConfig(Config):
    """The world model: its sources, its networks, EDM and how it is trained."""

    sources: tuple = field(("Breakout-MinAtar",), doc="environments whose frames it learns")
    frame_size: int = field(10, low=8, doc="frames are frame_size x frame_size pixels")
    context: int = field(4, low=1, doc="k: past frames the next frame is conditioned on")
    action_dim: int = field(0, low=0, doc="entries of the action vectors (0: the largest "
                                          "action space among the sources)")
    channels: tuple = field((32, 64), doc="U-Net width per resolution")
    embed_dim: int = field(64, low=1, doc="width of the noise, action and source embedding")
    head_hidden: int = field(256, low=1, doc="width of the reward and termination head")
    objective: str = field("edm", choices=("edm", "mse"),
                           doc="diffusion (EDM), or a deterministic predictor (MSE)")
    sigma_data: float = field(0.5, low=0.0, low_inclusive=False)
    p_mean: float = field(-0.4, doc="mean of log sigma during training")
    p_std: float = field(1.2, low=0.0, low_inclusive=False, doc="std of log sigma in training")
    sigma_min: float = field(2e-3, low=0.0, low_inclusive=False)
    sigma_max: float = field(5.0, low=0.0, low_inclusive=False)
    rho: float = field(7.0, low=0.0, low_inclusive=False, doc="Karras schedule curvature")
    denoising_steps: int = field(3, low=1, doc="Euler steps per sampled frame")
    steps: int = field(3000, low=1, doc="gradient steps")
    batch_size: int = field(32, low=1, doc="transitions per gradient step")
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False)
    chunk: int = field(250, low=1, doc="gradient steps between progress updates and checkpoints")

    def validate(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError(f"DiffusionConfig: sources={self.sources!r} must name distinct "
                             "environments.")
        unknown = [s for s in self.sources if s not in render.names()]
        if unknown:
            raise ValueError(f"DiffusionConfig: no renderer for {unknown}; sources must be "
                             f"among {render.names()}.")
        for source in self.sources:
            render.renderer(source, self.frame_size)  # a size this source can be drawn at
        if not self.channels or any(not isinstance(c, int) or isinstance(c, bool) or c < 1
                                    for c in self.channels):
            raise ValueError(f"DiffusionConfig: channels={self.channels!r} must be a non-empty "
                             "tuple of positive ints.")
        if self.frame_size % 2 ** (len(self.channels) - 1):
            raise ValueError(f"DiffusionConfig: frame_size={self.frame_size} must halve "
                             f"{len(self.channels) - 1} times for channels={self.channels}.")
        largest = max(pixels.action_size(s) for s in self.sources)
        if self.action_dim and self.action_dim < largest:
            raise ValueError(f"DiffusionConfig: action_dim={self.action_dim} is smaller than "
                             f"the largest action space of {self.sources} ({largest}).")
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"DiffusionConfig: sigma_min={self.sigma_min} must be below "
                             f"sigma_max={self.sigma_max}.")

    @property
    def action_size(self) -> int:
        """Entries of the action vectors: ``action_dim``, or the largest action space."""
        return self.action_dim or max(pixels.action_size(s) for s in self.sources)

    def source_index(self, name: str) -> int:
        if name not in self.sources:
            raise ValueError(f"{name!r} is not a source of this model; its sources are "
                             f"{list(self.sources)}.")
        return self.sources.index(name)


class Denoiser(nn.Module):
    """``F(noisy next frame, context, c_noise, action, source)``: a U-Net over the
    context frames and the noisy frame as channels, conditioned on the noise level,
    the action (a linear map per source) and the source."""

    config: DiffusionConfig

    @nn.compact
    def __call__(self, noisy, context, c_noise, action, source):
        c = self.config
        num_sources, width = len(c.sources), c.embed_dim
        x = jnp.concatenate([jnp.moveaxis(context, -3, -1), noisy[..., None]], axis=-1)
        frequencies = 2.0 ** jnp.arange(8)
        angles = c_noise[..., None] * frequencies
        noise_embedding = nn.Dense(width)(jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], -1))
        action_map = self.param("action_map", nn.initializers.lecun_normal(),
                                (num_sources, c.action_size, width))
        source_embedding = self.param("source_embedding", nn.initializers.normal(1.0),
                                      (num_sources, width))
        action_embedding = jnp.einsum("...a,...ae->...e", action, action_map[source])
        cond = noise_embedding + action_embedding + source_embedding[source]
        return UNet(tuple(c.channels), out_channels=1)(x, cond)[..., 0]


class Heads(nn.Module):
    """Logits of the reward's sign (-1, 0, +1) and of termination from the last
    frame, the next frame, the action and the source."""

    config: DiffusionConfig

    @nn.compact
    def __call__(self, last, next_frame, action, source):
        lead = last.shape[:-2]
        x = jnp.concatenate([last.reshape(*lead, -1), next_frame.reshape(*lead, -1), action,
                             jax.nn.one_hot(source, len(self.config.sources))], axis=-1)
        return sign_and_done(x, self.config.head_hidden)


def init_params(config: DiffusionConfig, key: jax.Array) -> dict:
    """Untrained ``{"denoiser": ..., "heads": ...}`` (the template of a saved model)."""
    d_key, h_key = jax.random.split(key)
    size, k = config.frame_size, config.context
    frame = jnp.zeros((1, size, size))
    action, source = jnp.zeros((1, config.action_size)), jnp.zeros((1,), jnp.int32)
    return {"denoiser": Denoiser(config).init(d_key, frame, jnp.zeros((1, k, size, size)),
                                              jnp.zeros((1,)), action, source),
            "heads": Heads(config).init(h_key, frame, frame, action, source)}


def _preconditioning(config: DiffusionConfig, sigma):
    """EDM's ``c_in, c_skip, c_out, c_noise`` (Karras et al. 2022, Table 1)."""
    sd2 = config.sigma_data ** 2
    c_in = 1.0 / jnp.sqrt(sigma ** 2 + sd2)
    c_skip = sd2 / (sigma ** 2 + sd2)
    c_out = sigma * config.sigma_data * c_in
    return c_in, c_skip, c_out, jnp.log(sigma) / 4.0


def _scale(frames):
    """Frames in [0, 1] to the model's [-1, 1]."""
    return 2.0 * frames - 1.0


def denoise(config: DiffusionConfig, params: dict, noisy, sigma, context, action, source):
    """``D(noisy; sigma)``: the denoised next frame (model units, [-1, 1]); batched."""
    c_in, c_skip, c_out, c_noise = _preconditioning(config, sigma)
    expand = lambda v: v[..., None, None]  # noqa: E731
    out = Denoiser(config).apply(params["denoiser"], expand(c_in) * noisy, _scale(context),
                                 c_noise, action, source)
    return expand(c_skip) * noisy + expand(c_out) * out


def sigmas(config: DiffusionConfig, steps: int) -> jax.Array:
    """Karras's schedule: ``steps`` noise levels from ``sigma_max`` down to
    ``sigma_min``, then 0."""
    ramp = jnp.linspace(0.0, 1.0, steps)
    lo, hi = config.sigma_min ** (1 / config.rho), config.sigma_max ** (1 / config.rho)
    return jnp.append((hi + ramp * (lo - hi)) ** config.rho, 0.0)


def sample_next(config: DiffusionConfig, params: dict, context, action, source, key,
                steps: int | None = None) -> jax.Array:
    """The next frames ``(B, H, W)`` in [0, 1] for contexts ``(B, k, H, W)``: Euler
    steps from noise along :func:`sigmas` (``steps`` defaults to the config's), or
    the MSE model's prediction."""
    batch = context.shape[0]
    if config.objective == "mse":
        out = Denoiser(config).apply(params["denoiser"], jnp.zeros(context.shape[:1] +
                                     context.shape[2:]), _scale(context), jnp.zeros((batch,)),
                                     action, source)
        return jnp.clip((out + 1.0) / 2.0, 0.0, 1.0)
    levels = sigmas(config, config.denoising_steps if steps is None else steps)
    x = levels[0] * jax.random.normal(key, context.shape[:1] + context.shape[2:])

    def euler(x, i):
        sigma, next_sigma = levels[i], levels[i + 1]
        denoised = denoise(config, params, x, jnp.full((batch,), sigma), context, action, source)
        return x + (x - denoised) / sigma * (next_sigma - sigma), None

    x, _ = jax.lax.scan(euler, x, jnp.arange(levels.shape[0] - 1))
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)


def predict_heads(config: DiffusionConfig, params: dict, last, next_frame, action, source):
    """``(reward, termination logit)`` of transitions ``last -> next_frame``: the
    reward is the most likely sign, -1.0, 0.0 or 1.0."""
    reward_logits, logit = Heads(config).apply(params["heads"], last, next_frame, action, source)
    return reward_of(reward_logits), logit


def rollout(config: DiffusionConfig, params: dict, context, actions, source, key,
            steps: int | None = None) -> jax.Array:
    """Open loop: from contexts ``(B, k, H, W)`` and action vectors
    ``(B, T, action_dim)``, feed the model its own frames for ``T`` steps; returns
    the imagined frames ``(B, T, H, W)``."""

    def step(context, inputs):
        action, key = inputs
        frame = sample_next(config, params, context, action, source, key, steps)
        return jnp.concatenate([context[:, 1:], frame[:, None]], axis=1), frame

    keys = jax.random.split(key, actions.shape[1])
    _, frames = jax.lax.scan(step, context, (jnp.moveaxis(actions, 1, 0), keys))
    return jnp.moveaxis(frames, 0, 1)


def _batch(config: DiffusionConfig, data: tuple, weights, key):
    """``batch_size`` transitions, each from a source drawn with ``weights``."""
    source_key, *keys = jax.random.split(key, len(data) + 1)
    per_source = [pixels.sample_windows(d, k, config.batch_size, config.context)
                  for d, k in zip(data, keys)]
    source = jax.random.categorical(source_key, jnp.log(weights), shape=(config.batch_size,))
    rows = jnp.arange(config.batch_size)
    batch = jax.tree.map(lambda *xs: jnp.stack(xs)[source, rows], *per_source)
    return {**batch, "source": source}


def _loss(config: DiffusionConfig, params: dict, batch: dict, key):
    target = _scale(batch["next"])
    if config.objective == "edm":
        sigma_key, noise_key = jax.random.split(key)
        sigma = jnp.exp(config.p_mean + config.p_std *
                        jax.random.normal(sigma_key, (config.batch_size,)))
        noisy = target + sigma[:, None, None] * jax.random.normal(noise_key, target.shape)
        c_in, c_skip, c_out, c_noise = _preconditioning(config, sigma)
        out = Denoiser(config).apply(params["denoiser"], c_in[:, None, None] * noisy,
                                     _scale(batch["context"]), c_noise, batch["action"],
                                     batch["source"])
        frame_loss = jnp.mean(jnp.square(out - (target - c_skip[:, None, None] * noisy)
                                         / c_out[:, None, None]))
    else:
        out = Denoiser(config).apply(params["denoiser"], jnp.zeros_like(target),
                                     _scale(batch["context"]), jnp.zeros((config.batch_size,)),
                                     batch["action"], batch["source"])
        frame_loss = jnp.mean(jnp.square(out - target))
    reward_logits, logit = Heads(config).apply(params["heads"], batch["context"][:, -1],
                                               batch["next"], batch["action"], batch["source"])
    reward_loss, done_loss = head_losses(reward_logits, logit, batch["reward"],
                                         batch["terminated"])
    return frame_loss + reward_loss + done_loss, {"frame_loss": frame_loss,
                                                  "reward_loss": reward_loss,
                                                  "done_loss": done_loss}


def make_fit(config: DiffusionConfig):
    """``(init, update)``: ``init(key) -> state`` and the jittable
    ``update(state, data, weights) -> (state, metrics)``, one Adam step on a batch
    of transitions of the sources ``data`` (one
    :class:`~learnenv.worldmodels.pixels.FrameData` per source) drawn with
    probabilities ``weights``."""
    return adam_fit(optax.adam(config.learning_rate), functools.partial(init_params, config),
                    lambda key, data, weights: _batch(config, data, weights, key),
                    functools.partial(_loss, config))


@functools.lru_cache(maxsize=16)
def _jitted_fit(config: DiffusionConfig):
    init, update = make_fit(config)
    return jax.jit(init), jax.jit(update)


def fit(config: DiffusionConfig, key: jax.Array, data: tuple, weights=None,
        checkpoint_dir=None, progress: bool | None = None) -> tuple[dict, dict]:
    """Train for ``config.steps`` gradient steps: ``(params, metrics)``, the metrics
    (``frame_loss``, ``reward_loss``, ``done_loss``) one per step, and the fit's
    ``wall_clock_s``. ``data`` holds one
    :class:`~learnenv.worldmodels.pixels.FrameData` per source of the config;
    ``weights`` (default: equal) says how often each is drawn. With
    ``checkpoint_dir``, an interrupted fit resumes where it stopped. The steps
    run as a Python loop over one jitted update (:mod:`learnenv.worldmodels.loop`
    says why).
    """
    data = tuple(data)
    if len(data) != len(config.sources):
        raise ValueError(f"fit: {len(data)} datasets for {len(config.sources)} sources "
                         f"{list(config.sources)}.")
    weights = jnp.ones(len(data)) if weights is None else jnp.asarray(weights, jnp.float32)
    if weights.shape != (len(data),) or not bool(jnp.all(weights >= 0)) or not weights.sum() > 0:
        raise ValueError(f"fit: weights={weights} must be {len(data)} non-negative numbers, "
                         "not all zero.")
    weights = weights / weights.sum()
    init, update = _jitted_fit(config)
    state, metrics, seconds = fit_steps(
        update, init(key), (data, weights), config.steps, config.chunk, checkpoint_dir,
        config=config, fingerprint={"weights": weights}, progress=progress,
        desc=f"diffusion world model ({config.objective})")
    return state["params"], {**metrics, "wall_clock_s": seconds}


@struct.dataclass
class DiffusionState(environment.EnvState):
    frames: jax.Array  # the last k frames, oldest first: the observation
    time: int


@kinds.register("diffusion-world-model")
class DiffusionEnvironment(LearnedEnvironment):
    """The world model of one source as a gymnax environment with its real actions.

    An episode starts from a real first frame (the real environment's reset,
    rendered) repeated ``k`` times; every step samples the next frame with
    ``denoising_steps`` Euler steps and reads the reward and termination from
    the heads. The observation is the last ``k`` frames ``(k, size, size)``.
    """

    short_name = "Diffusion"
    flat_observations = False

    def __init__(self, config: dict | DiffusionConfig | None = None,
                 source: str | None = None, denoising_steps: int | None = None,
                 max_steps_in_episode: int | None = None):
        config = DiffusionConfig.coerce(config, "DiffusionEnvironment")
        source = config.sources[0] if source is None else source
        self.source_index = config.source_index(source)
        if denoising_steps is not None and (isinstance(denoising_steps, bool) or
                                            int(denoising_steps) != denoising_steps or
                                            denoising_steps < 1):
            raise ValueError(f"denoising_steps={denoising_steps!r} must be a positive int.")
        super().__init__(source, max_steps_in_episode)
        self.config, self.source = config, source
        self.denoising_steps = config.denoising_steps if denoising_steps is None else int(
            denoising_steps)
        self._draw = render.renderer(source, config.frame_size)

    def spec(self) -> dict:
        cap = {"max_steps_in_episode": self.max_steps_in_episode} if self.max_steps_in_episode else {}
        # As JSON holds it (tuples as lists), so a loaded checkpoint's spec compares equal.
        config = json.loads(json.dumps(self.config.to_dict()))
        return {"config": config, "source": self.source,
                "denoising_steps": self.denoising_steps, **cap}

    @property
    def name(self) -> str:
        return f"{self.short_name}[{self.source}]"

    def observation_space(self, params=None):
        size = self.config.frame_size
        return spaces.Box(0.0, 1.0, (self.config.context, size, size), jnp.float32)

    def init_network_params(self, key: jax.Array) -> dict:
        return init_params(self.config, key)

    def with_model(self, params: dict) -> SyntheticEnvParams:
        """``env_params`` holding trained weights from :func:`fit`."""
        return SyntheticEnvParams(params, max_steps_in_episode=self.episode_cap)

    def prompt(self, frame: jax.Array) -> tuple[jax.Array, DiffusionState]:
        """Start from any frame ``(size, size)`` (a real one, another seed's, a
        hand-edited one): the observation and state of a new episode."""
        frame = jnp.asarray(frame, jnp.float32)
        size = self.config.frame_size
        if frame.shape != (size, size):
            raise ValueError(f"prompt: a frame of shape {frame.shape}; this model draws "
                             f"({size}, {size}).")
        frames = jnp.broadcast_to(frame, (self.config.context, size, size))
        return frames, DiffusionState(frames=frames, time=0)

    def reset_env(self, key, params):
        obs, _ = self.real_env.reset(key, self.real_env_params)
        return self.prompt(self._draw(obs))

    def step_env(self, key, state, action, params):
        p = params.network_params
        vector = pixels.action_vector(self.source, action, self.config.action_size)[None]
        source = jnp.full((1,), self.source_index)
        frame = sample_next(self.config, p, state.frames[None], vector, source, key,
                            self.denoising_steps)
        reward, logit = predict_heads(self.config, p, state.frames[None, -1], frame, vector,
                                      source)
        frames = jnp.concatenate([state.frames[1:], frame], axis=0)
        new_state = DiffusionState(frames=frames, time=state.time + 1)
        return frames, new_state, reward[0], logit[0] > 0.0, {}

    def is_terminated(self, state, params):
        # Termination is predicted from the transition in step_env.
        return jnp.array(False)

    def get_obs(self, state, params=None, key=None):
        return state.frames
