"""VIPER: a reward from the likelihood of a video model (Escontrela et al., 2023).

Train a video prediction model on videos of an expert only (no actions, no
rewards), then reward an agent by how likely its next frame is under that
model::

    r_t = log p(x_{t+1} | x_{t+1-s}, x_{t+1-2s}, ..., x_{t+1-ks})

with ``k`` frames of context taken every ``s`` steps (frame subsampling). The
model here has VIPER's two parts at laptop scale:

- a **tokenizer**: a VQ-VAE over ``patch x patch`` pixel patches
  (:mod:`learnenv.nets.vq`), so a frame is ``(size / patch)^2`` discrete
  tokens, as VIPER's VQ-GAN turns a 64 x 64 frame into 8 x 8 tokens;
- a **prior**: a causal transformer (:mod:`learnenv.nets.transformer`) over
  the tokens of ``k + 1`` frames, VideoGPT's role. The log-likelihood of a
  frame is the sum of its tokens' log-probabilities given everything before.
  Frames before an episode's start are a padding token, so the first steps of
  an episode are scored with the context they have.

The reward the agent sees is the log-likelihood rescaled with statistics of
the expert videos, as viper_rl rescales it per task (its ``reward_scale``
``[low, high]``): ``clip((log p - low) / (high - low), 0, 1)``, with ``low``
and ``high`` quantiles of the per-step log-likelihoods of the expert videos
(:func:`expert_range`). :class:`VideoReward` wraps the real environment with
it (a :class:`learnenv.rewards.replace.LearnedReward`), so any agent of the
engine trains on it, and it saves and loads in one call (kind
``"video-reward"``). Frames are drawn in JAX (:mod:`learnenv.envs.render`),
inside the agent's jitted step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from learnenv import kinds
from learnenv.config import Config, field
from learnenv.envs import make, render
from learnenv.nets import vq
from learnenv.nets.transformer import CausalTransformer, token_log_probs
from learnenv.rewards.replace import LearnedReward, Transition
from learnenv.worldmodels.data import Episodes

__all__ = ["VideoConfig", "PatchTokenizer", "make_fit", "frames", "tokenize", "decode",
           "frame_sequence", "window_log_prob", "step_log_likelihoods", "expert_range", "reward_fn",
           "VideoReward", "sample_frames", "init_params"]


@dataclasses.dataclass(frozen=True)
class VideoConfig(Config):
    """The video model: frames, tokenizer, prior, and how each is trained."""

    env_name: str = field("Pendulum-v1", choices=render.CLASSIC, doc="whose frames")
    frame_size: int = field(16, low=8, doc="frames are frame_size x frame_size pixels")
    score: bool = field(False, choices=(True, False), doc="draw a score display")
    mask_score: bool = field(False, choices=(True, False), doc="blank the score display")
    patch: int = field(8, low=1, doc="tokenizer patch side: (frame_size/patch)^2 tokens a frame")
    num_codes: int = field(64, low=2, doc="tokenizer codebook size (token vocabulary)")
    code_dim: int = field(16, low=1)
    tokenizer_hidden: int = field(128, low=1, doc="width of the patch encoder and decoder")
    context: int = field(3, low=1, doc="k: frames of context the prior conditions on")
    subsample: int = field(2, low=1, doc="s: steps between the frames the model sees")
    likelihood: str = field("joint", choices=("joint", "conditional"),
                            doc="score the whole window (viper_rl's default) or the next frame")
    d_model: int = field(64, low=1)
    num_layers: int = field(2, low=1)
    num_heads: int = field(4, low=1)
    tokenizer_steps: int = field(1500, low=1)
    prior_steps: int = field(2000, low=1)
    batch_size: int = field(64, low=1, doc="frames (tokenizer) or windows (prior) per step")
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False)
    reset_every: int = field(100, low=1, doc="tokenizer steps between dead-code resets")

    def validate(self) -> None:
        if self.frame_size % self.patch:
            raise ValueError(f"VideoConfig: patch={self.patch} must divide "
                             f"frame_size={self.frame_size}.")
        if self.d_model % self.num_heads:
            raise ValueError(f"VideoConfig: num_heads={self.num_heads} must divide "
                             f"d_model={self.d_model}.")

    @property
    def tokens_per_frame(self) -> int:
        return (self.frame_size // self.patch) ** 2

    @property
    def history(self) -> int:
        """Observations of the past the reward needs: k frames every s steps."""
        return self.context * self.subsample

    @property
    def pad(self) -> int:
        """The token of a frame before the episode began."""
        return self.num_codes


class PatchTokenizer(nn.Module):
    """A VQ-VAE over pixel patches: one MLP encodes every patch, one decodes it.

    The MLP is shared by all patches, as a convolution with stride ``patch``
    would be; the prior's position embeddings say where a patch is.
    """

    config: VideoConfig

    def setup(self):
        c = self.config
        self.encoder = nn.Sequential([nn.Dense(c.tokenizer_hidden), nn.gelu,
                                      nn.Dense(c.code_dim)])
        self.decoder = nn.Sequential([nn.Dense(c.tokenizer_hidden), nn.gelu,
                                      nn.Dense(c.patch * c.patch)])
        self.codebook = self.param("codebook", nn.initializers.normal(1.0),
                                   (c.num_codes, c.code_dim))

    def encode(self, patches):
        """``(..., n, patch^2) -> (..., n, code_dim)``, before quantisation."""
        return self.encoder(patches)

    def decode(self, z):
        """Quantised vectors ``(..., n, code_dim)`` to patch pixels in [0, 1]."""
        return nn.sigmoid(self.decoder(z))

    def __call__(self, patches):
        z = self.encode(patches)
        z_q, codes, vq_loss = vq.quantize(self.codebook, z)
        return self.decode(z_q), codes, vq_loss, z


def _to_patches(images, patch: int):
    """``(..., H, W) -> (..., (H/p)(W/p), p*p)``, row-major over patches."""
    *lead, h, w = images.shape
    x = images.reshape(*lead, h // patch, patch, w // patch, patch)
    x = jnp.moveaxis(x, -3, -2)
    return x.reshape(*lead, (h // patch) * (w // patch), patch * patch)


def _from_patches(patches, patch: int, size: int):
    *lead, _, _ = patches.shape
    per_side = size // patch
    x = patches.reshape(*lead, per_side, per_side, patch, patch)
    x = jnp.moveaxis(x, -2, -3)
    return x.reshape(*lead, size, size)


def frames(config: VideoConfig, obs: jax.Array) -> jax.Array:
    """The frames the video model sees of observations ``(..., obs_dim)``."""
    draw = render.renderer(config.env_name, config.frame_size, config.score)
    flat = obs.reshape(-1, obs.shape[-1])
    images = jax.vmap(draw)(flat).reshape(obs.shape[:-1] + (config.frame_size,) * 2)
    return render.mask_score(images) if config.mask_score else images


def _prior(config: VideoConfig) -> CausalTransformer:
    return CausalTransformer(vocab_size=config.num_codes + 1,
                             length=(config.context + 1) * config.tokens_per_frame,
                             d_model=config.d_model, num_layers=config.num_layers,
                             num_heads=config.num_heads)


def init_params(config: VideoConfig, key: jax.Array) -> dict:
    """Untrained parameters ``{"tokenizer": ..., "prior": ...}`` (the template of a
    saved model)."""
    tok_key, prior_key = jax.random.split(key)
    patches = jnp.zeros((config.tokens_per_frame, config.patch ** 2))
    window = jnp.zeros(((config.context + 1) * config.tokens_per_frame,), jnp.int32)
    return {"tokenizer": PatchTokenizer(config).init(tok_key, patches),
            "prior": _prior(config).init(prior_key, window)}


_init_params_jit = jax.jit(init_params, static_argnums=0)


def tokenize(config: VideoConfig, params: dict, images: jax.Array) -> jax.Array:
    """Frames ``(..., size, size)`` to tokens ``(..., tokens_per_frame)``."""
    _, codes, _, _ = PatchTokenizer(config).apply(params["tokenizer"],
                                                  _to_patches(images, config.patch))
    return codes


def decode(config: VideoConfig, params: dict, codes: jax.Array) -> jax.Array:
    """Tokens ``(..., tokens_per_frame)`` back to frames (padding decodes as blank)."""
    tokenizer = PatchTokenizer(config)
    codebook = params["tokenizer"]["params"]["codebook"]
    z = codebook[jnp.minimum(codes, config.num_codes - 1)]
    patches = tokenizer.apply(params["tokenizer"], z, method=PatchTokenizer.decode)
    patches = jnp.where((codes == config.pad)[..., None], 0.0, patches)
    return _from_patches(patches, config.patch, config.frame_size)


def frame_sequence(episodes: Episodes) -> tuple[jax.Array, jax.Array]:
    """Each episode's observations ``x_0 .. x_T`` (``(N, T + 1, obs_dim)``) and their
    mask: ``x_{t+1}`` is ``next_obs[t]``, real also on the last step."""
    obs = jnp.concatenate([episodes.obs[:, :1], episodes.next_obs], axis=1)
    mask = jnp.concatenate([episodes.mask[:, :1], episodes.mask], axis=1)
    return obs, mask


def _window(config: VideoConfig, codes: jax.Array, target: jax.Array) -> jax.Array:
    """The prior's input for frame ``target`` of one episode's tokens ``(T+1, n)``:
    ``k`` context frames every ``s`` steps, then the target, flattened; frames
    before the episode's start are padding."""
    offsets = config.subsample * jnp.arange(config.context, -1, -1)  # k*s, ..., s, 0
    index = target - offsets
    frames_codes = jnp.where((index >= 0)[:, None], codes[jnp.maximum(index, 0)], config.pad)
    return frames_codes.reshape(-1)


def window_log_prob(config: VideoConfig, params: dict, window: jax.Array) -> jax.Array:
    """The score of one window: ``log p(x_{t+1} | context)`` (the sum over the last
    frame's tokens), or with ``likelihood="joint"`` the log-likelihood of every
    real frame of the window, ``log p(x_{t+1-ks}, ..., x_{t+1})``."""
    log_probs = token_log_probs(_prior(config).apply(params["prior"], window), window)
    if config.likelihood == "conditional":
        return log_probs[-config.tokens_per_frame:].sum()
    return jnp.sum(jnp.where(window != config.pad, log_probs, 0.0))


def step_log_likelihoods(config: VideoConfig, params: dict, episodes: Episodes) -> jax.Array:
    """``log p(x_{t+1} | context)`` for every step of every episode: ``(N, T)``
    (zeros where ``episodes.mask`` is 0). Jittable; episodes are mapped one at a
    time to bound memory."""
    obs, _ = frame_sequence(episodes)
    length = episodes.mask.shape[1]

    def one_episode(episode_obs):
        codes = tokenize(config, params, frames(config, episode_obs))
        windows = jax.vmap(lambda t: _window(config, codes, t))(jnp.arange(1, length + 1))
        return jax.vmap(lambda w: window_log_prob(config, params, w))(windows)

    return jax.lax.map(one_episode, obs) * episodes.mask


def expert_range(log_likelihoods: jax.Array, mask: jax.Array, low: float = 0.01,
                 high: float = 0.99) -> tuple[jax.Array, jax.Array]:
    """The ``low`` and ``high`` quantiles of the expert's per-step log-likelihoods:
    the ``[low, high]`` that the reward maps to ``[0, 1]``."""
    values = log_likelihoods.reshape(-1)
    weights = mask.reshape(-1)
    order = jnp.argsort(values)
    cdf = jnp.cumsum(weights[order]) / weights.sum()
    pick = lambda q: values[order][jnp.searchsorted(cdf, q)]  # noqa: E731
    return pick(low), pick(high)


def make_fit(config: VideoConfig):
    """``fit(key, episodes, tokenizer_obs=None) -> (params, info)``: tokenizer, then
    prior. Pure, jittable.

    The tokenizer learns from the episodes' frames, or from the frames of
    ``tokenizer_obs`` (observations ``(n, obs_dim)``), e.g. states spread evenly
    over the scene: a codebook fitted to expert frames spends its codes where
    the expert spends its time, and finer codes there make the model's
    likelihood lower exactly on the expert's frames.

    ``info`` holds the loss curves (``tokenizer_loss``, ``prior_loss``, per step)
    and the tokenizer's codebook usage on the dataset (``usage``).
    """
    tokenizer, prior = PatchTokenizer(config), _prior(config)
    tx = optax.adam(config.learning_rate)

    def fit_tokenizer(key, images, weights):
        init_key, loop_key = jax.random.split(key)
        cumulative = jnp.cumsum(weights)
        params = init_params(config, init_key)["tokenizer"]

        def loss_fn(params, batch):
            patches = _to_patches(batch, config.patch)
            recon, codes, vq_loss, z = tokenizer.apply(params, patches)
            return jnp.mean(jnp.square(recon - patches)) + vq_loss, (codes, z)

        def update(carry, inputs):
            params, opt_state = carry
            step, key = inputs
            batch_key, reset_key = jax.random.split(key)
            u = jax.random.uniform(batch_key, (config.batch_size,)) * cumulative[-1]
            batch = images[jnp.searchsorted(cumulative, u, side="right")]  # real frames only
            (loss, (codes, z)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            codebook = params["params"]["codebook"]
            reset = vq.reset_unused(codebook, vq.usage(codes, config.num_codes), z, reset_key)
            due = (step + 1) % config.reset_every == 0
            codebook = jnp.where(due & (step + 1 < config.tokenizer_steps), reset, codebook)
            params = {"params": {**params["params"], "codebook": codebook}}
            return (params, opt_state), loss

        steps = jnp.arange(config.tokenizer_steps)
        keys = jax.random.split(loop_key, config.tokenizer_steps)
        (params, _), losses = jax.lax.scan(update, (params, tx.init(params)), (steps, keys))
        return params, losses

    def fit_prior(key, params, codes, mask):
        init_key, loop_key = jax.random.split(key)
        prior_params = init_params(config, init_key)["prior"]
        num_episodes, length = mask.shape
        cumulative = jnp.cumsum(mask.reshape(-1))

        def loss_fn(prior_params, windows, weights):
            logits = prior.apply(prior_params, windows)
            nll = -token_log_probs(logits, windows)
            return jnp.sum(nll * weights) / jnp.maximum(weights.sum(), 1.0)

        def update(carry, key):
            prior_params, opt_state = carry
            u = jax.random.uniform(key, (config.batch_size,)) * cumulative[-1]
            flat = jnp.searchsorted(cumulative, u, side="right")
            episode, target = flat // length, flat % length
            windows = jax.vmap(lambda e, t: _window(config, codes[e], t))(episode, target)
            weights = (windows != config.pad).astype(jnp.float32)  # learn real frames only
            loss, grads = jax.value_and_grad(loss_fn)(prior_params, windows, weights)
            updates, opt_state = tx.update(grads, opt_state, prior_params)
            return (optax.apply_updates(prior_params, updates), opt_state), loss

        (prior_params, _), losses = jax.lax.scan(
            update, (prior_params, tx.init(prior_params)),
            jax.random.split(loop_key, config.prior_steps))
        return {**params, "prior": prior_params}, losses

    def fit(key, episodes: Episodes, tokenizer_obs: jax.Array | None = None):
        tok_key, prior_key = jax.random.split(key)
        obs, mask = frame_sequence(episodes)
        images = frames(config, obs)
        if tokenizer_obs is None:
            tokenizer_images, weights = images.reshape((-1,) + images.shape[-2:]), mask.reshape(-1)
        else:
            tokenizer_images = frames(config, tokenizer_obs)
            weights = jnp.ones(tokenizer_images.shape[0])
        tokenizer_params, tokenizer_loss = fit_tokenizer(tok_key, tokenizer_images, weights)
        params = {"tokenizer": tokenizer_params}
        codes = tokenize(config, params, images)
        params, prior_loss = fit_prior(prior_key, params, codes, mask)
        info = {"tokenizer_loss": tokenizer_loss, "prior_loss": prior_loss,
                "usage": vq.usage(jnp.where(mask[..., None] > 0, codes, config.num_codes),
                                  config.num_codes + 1)[: config.num_codes]}
        return params, info

    return fit


def sample_frames(config: VideoConfig, params: dict, context_obs: jax.Array,
                  num_frames: int, key: jax.Array, temperature: float = 1.0) -> jax.Array:
    """Continue a video open loop: ``num_frames`` frames sampled token by token.

    ``context_obs`` holds the last ``history`` observations (oldest first); the
    model sees every ``subsample``-th of them and imagines what follows, one
    frame at a time, feeding its own frames back. Frames are ``subsample``
    steps apart. Returns the decoded frames ``(num_frames, size, size)``.
    """
    n, k = config.tokens_per_frame, config.context
    seen = frames(config, context_obs[config.subsample - 1 :: config.subsample][-k:])
    context = tokenize(config, params, seen)

    def next_frame(context, key):
        def next_token(window, inputs):
            i, key = inputs
            logits = _prior(config).apply(params["prior"], window)[k * n + i, : config.num_codes]
            token = jax.random.categorical(key, logits / temperature)
            return window.at[k * n + i].set(token), None

        window = jnp.concatenate([context.reshape(-1), jnp.zeros((n,), jnp.int32)])
        window, _ = jax.lax.scan(next_token, window, (jnp.arange(n), jax.random.split(key, n)))
        new = window[k * n:].reshape(1, n)
        return jnp.concatenate([context[1:], new]), new[0]

    _, codes = jax.lax.scan(next_frame, context, jax.random.split(key, num_frames))
    return decode(config, params, codes)


def reward_fn(config: VideoConfig):
    """``reward(reward_params, transition)`` for :class:`LearnedReward` with
    ``context=config.history``: the rescaled log-likelihood of the next frame.
    ``reward_params`` is ``{"model": params, "low": low, "high": high, "floor": floor}``:
    viper_rl's clip to [0, 1] is ``floor=0``; a lower floor keeps a slope below
    the expert's range."""
    s = config.subsample

    def reward(reward_params, transition: Transition):
        history, mask = transition.history, transition.history_mask
        # history[-j] is x_{t+1-j}; the context is x_{t+1-ks}, ..., x_{t+1-s}.
        picks = jnp.arange(config.context, 0, -1) * s
        context_obs = history[history.shape[0] - picks]
        context_real = mask[history.shape[0] - picks] > 0
        obs = jnp.concatenate([context_obs, transition.next_obs[None]])
        codes = tokenize(config, reward_params["model"], frames(config, obs))
        real = jnp.concatenate([context_real, jnp.ones((1,), bool)])
        window = jnp.where(real[:, None], codes, config.pad).reshape(-1)
        log_p = window_log_prob(config, reward_params["model"], window)
        low, high = reward_params["low"], reward_params["high"]
        return jnp.clip((log_p - low) / (high - low), reward_params["floor"], 1.0)

    return reward


@kinds.register("video-reward")
class VideoReward(LearnedReward):
    """The real environment ``config.env_name`` with the VIPER reward (see the module
    docstring). ``default_params.reward_params`` holds the video model and the
    expert range; build one with trained weights through :meth:`with_model`.
    ``info["extrinsic_reward"]`` keeps the task's reward for evaluation."""

    kind = "video-reward"

    def __init__(self, config: dict | VideoConfig | None = None, **env_kwargs: Any):
        self.config = config = VideoConfig.coerce(config, "VideoReward")
        self.env_kwargs = dict(env_kwargs)
        env, env_params = make(config.env_name, **env_kwargs)
        reward_params = {"model": _init_params_jit(config, jax.random.key(0)),
                         "low": jnp.float32(-10.0), "high": jnp.float32(0.0),
                         "floor": jnp.float32(0.0)}
        super().__init__(env, reward_fn(config), reward_params, env_params=env_params,
                         context=config.history)
        # Every leaf an array (gymnax's params hold Python floats), so that the params
        # a checkpoint saves and the template it is restored into agree.
        self._default = jax.tree.map(jnp.asarray, self._default)

    @property
    def name(self) -> str:
        return f"VIPER[{self.config.env_name}]"

    def spec(self) -> dict:
        return {"config": self.config.to_dict(), **self.env_kwargs}

    def with_model(self, params: dict, low, high, floor: float = 0.0):
        """``env_params`` with a trained video model, its expert range and floor."""
        if not float(low) < float(high):
            raise ValueError(f"VideoReward: low={float(low)} must be below high={float(high)}.")
        if not float(floor) < 1.0:
            raise ValueError(f"VideoReward: floor={float(floor)} must be below 1, the "
                             "reward's top; at or above it every step would pay 1.")
        return self.default_params.replace(reward_params={
            "model": params, "low": jnp.float32(low), "high": jnp.float32(high),
            "floor": jnp.float32(floor)})
