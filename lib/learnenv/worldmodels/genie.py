"""Genie's dynamics model and the playable environment it makes.

Genie (Bruce et al. 2024) predicts the next frame's *tokens* from past frames'
tokens and a latent action (:mod:`learnenv.worldmodels.latent_actions`). A
MinAtar frame is already tokenised: each cell is one token, the integer whose
bits are the cell's channels (:func:`tokens` and :func:`grids` convert), so a
frame is ``grid * grid`` tokens from a vocabulary of ``2 ** channels``.

**The dynamics model is MaskGIT** (Chang et al. 2022), as Genie's: a
bidirectional transformer sees the past frames' tokens, the latent action and
the next frame's tokens with some of them replaced by a ``MASK`` token, and
predicts the masked ones. Training masks a random fraction (drawn from a
cosine schedule) of the cells; sampling starts from a fully masked frame and
unmasks it in ``sample_steps`` rounds, keeping the most confident predictions
each round. Genie needs the rounds because its tokens are correlated and the
future is uncertain; given a frame and the paddle's move Breakout is
deterministic, so one round (every cell predicted at once) is the default here
and the rounds are a field to try (exercise). Each input token is the sum of
embeddings of its cell's past tokens, its next (or masked) token and the
latent action: the action is *added to every token*, which the Jasmine
re-implementation found matters for controllability.

**The backbone** (``DynamicsConfig.backbone``) is Genie's bidirectional
transformer (with position embeddings), or convolutions over the cell grid.
MinAtar's objects move one cell a step and follow the same rules in every
column, so a cell's next token depends only on its neighbourhood: the
convolutional backbone learns a bounce once for every position, where the
transformer must learn it position by position. On the quick preset's data the
convolutional one learned the game far better for less compute (the chapter
shows it); the transformer is the full preset's.

**Reward and termination**: Genie predicts neither. A small head on the
current and the next frame and the latent action classifies the reward's sign
and predicts termination, trained on the video's rewards (MinAtar records
them), as DIAMOND does (:mod:`learnenv.worldmodels.diffusion`).

:class:`GenieEnvironment` is the pair as a gymnax environment whose actions
are the latent actions, prompted by any frame.
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
from learnenv.nets.heads import head_losses, reward_of, sign_and_done
from learnenv.nets.transformer import Block
from learnenv.synthetic.base import LearnedEnvironment, SyntheticEnvParams
from learnenv.worldmodels import latent_actions
from learnenv.worldmodels.latent_actions import LAMConfig, Video
from learnenv.worldmodels.loop import adam_fit, fit_steps

__all__ = ["tokens", "grids", "DynamicsConfig", "Dynamics", "Heads", "init_params",
           "sample_next", "predict_heads", "rollout", "make_fit", "fit", "GenieEnvironment",
           "GenieState", "true_actions", "draw"]


def tokens(grid: jax.Array) -> jax.Array:
    """Grids ``(..., H, W, C)`` of {0, 1} as tokens ``(..., H * W)``: each cell's bits."""
    bits = (grid > 0.5).astype(jnp.int32)
    weights = 2 ** jnp.arange(grid.shape[-1], dtype=jnp.int32)
    return jnp.sum(bits * weights, axis=-1).reshape(*grid.shape[:-3], -1)


def grids(token: jax.Array, size: int, channels: int) -> jax.Array:
    """Tokens ``(..., size * size)`` back to grids ``(..., size, size, channels)`` of {0, 1}."""
    bits = (token[..., None] >> jnp.arange(channels, dtype=jnp.int32)) & 1
    return bits.astype(jnp.float32).reshape(*token.shape[:-1], size, size, channels)


@dataclasses.dataclass(frozen=True)
class DynamicsConfig(Config):
    """The dynamics model: frames, actions, the transformer, MaskGIT, training."""

    source: str = field("Breakout-MinAtar", doc="the game whose videos it learns")
    channels: int = field(4, low=1, doc="binary channels per cell")
    grid: int = field(10, low=2, doc="cells per side")
    num_actions: int = field(4, low=1, doc="latent actions (or true ones, for the bound)")
    context: int = field(1, low=1, doc="past frames the next frame is predicted from")
    backbone: str = field("transformer", choices=("transformer", "conv"),
                          doc="a bidirectional transformer (Genie's), or convolutions over the "
                              "cell grid")
    d_model: int = field(64, low=8)
    num_layers: int = field(2, low=1)
    num_heads: int = field(4, low=1)
    head_hidden: int = field(128, low=1, doc="width of the reward and termination head")
    sample_steps: int = field(1, low=1, doc="MaskGIT rounds per sampled frame")
    temperature: float = field(0.0, low=0.0, doc="sampling temperature (0: the likeliest token)")
    steps: int = field(2000, low=1, doc="gradient steps")
    batch_size: int = field(64, low=1)
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False,
                                  doc="peak of a cosine decay to a tenth")
    chunk: int = field(250, low=1, doc="steps between progress updates and checkpoints")

    def validate(self) -> None:
        if self.d_model % self.num_heads:
            raise ValueError(f"DynamicsConfig: d_model={self.d_model} must divide into "
                             f"num_heads={self.num_heads}.")

    @property
    def vocab_size(self) -> int:
        return 2 ** self.channels

    @property
    def num_cells(self) -> int:
        return self.grid * self.grid


class Dynamics(nn.Module):
    """``(past tokens (..., k, N), next tokens or MASK (..., N), action) -> logits (..., N, V)``."""

    config: DynamicsConfig

    @nn.compact
    def __call__(self, context, target, action):
        c = self.config
        d = c.d_model
        past = nn.Embed(c.vocab_size, d)(context)  # (..., k, N, d)
        slot = self.param("slot", nn.initializers.normal(0.02), (c.context, 1, d))
        x = (past + slot).sum(axis=-3)
        x = x + nn.Embed(c.vocab_size + 1, d)(target)  # vocab_size is MASK
        x = x + nn.Embed(c.num_actions, d)(action)[..., None, :]  # added to every token
        if c.backbone == "conv":
            # The same rule at every cell: what a cell becomes depends on its
            # neighbourhood (objects move one cell a step), and the grid's edge is
            # the zero padding.
            h = x.reshape(*x.shape[:-2], c.grid, c.grid, d)
            for _ in range(c.num_layers):
                h = h + nn.Conv(d, (3, 3))(nn.relu(nn.LayerNorm()(h)))
            x = h.reshape(x.shape)
        else:
            x = x + self.param("position", nn.initializers.normal(0.02), (c.num_cells, d))
            for _ in range(c.num_layers):
                x = Block(d, c.num_heads)(x, None)  # bidirectional: no mask
        return nn.Dense(c.vocab_size)(nn.LayerNorm()(x))


class Heads(nn.Module):
    """Logits of the reward's sign (-1, 0, +1) and of termination from the current
    and the next frame's grids and the action."""

    config: DynamicsConfig

    @nn.compact
    def __call__(self, current, next_grid, action):
        lead = current.shape[:-3]
        x = jnp.concatenate([current.reshape(*lead, -1), next_grid.reshape(*lead, -1),
                             jax.nn.one_hot(action, self.config.num_actions)], axis=-1)
        return sign_and_done(x, self.config.head_hidden)


def init_params(config: DynamicsConfig, key: jax.Array) -> dict:
    """Untrained ``{"dynamics", "heads"}`` (the template of a saved model)."""
    d_key, h_key = jax.random.split(key)
    n, g, ch = config.num_cells, config.grid, config.channels
    action = jnp.zeros((1,), jnp.int32)
    grid = jnp.zeros((1, g, g, ch))
    return {"dynamics": Dynamics(config).init(d_key, jnp.zeros((1, config.context, n), jnp.int32),
                                              jnp.zeros((1, n), jnp.int32), action),
            "heads": Heads(config).init(h_key, grid, grid, action)}


def _masked_count(config: DynamicsConfig, fraction):
    """MaskGIT's cosine schedule: cells still masked after a ``fraction`` of the rounds."""
    return jnp.floor(config.num_cells * jnp.cos(0.5 * jnp.pi * fraction)).astype(jnp.int32)


def sample_next(config: DynamicsConfig, params: dict, context, action, key,
                steps: int | None = None) -> jax.Array:
    """Tokens ``(B, N)`` of the next frame after past tokens ``(B, k, N)`` and actions
    ``(B,)``: MaskGIT decoding in ``steps`` rounds (default ``config.sample_steps``)."""
    steps = config.sample_steps if steps is None else steps
    mask_token = config.vocab_size
    apply = functools.partial(Dynamics(config).apply, params["dynamics"])
    batch = context.shape[0]
    target = jnp.full((batch, config.num_cells), mask_token, jnp.int32)

    def round_(target, inputs):
        i, key = inputs
        logits = apply(context, target, action)
        if config.temperature > 0:
            drawn = jax.random.categorical(key, logits / config.temperature)
        else:
            drawn = jnp.argmax(logits, axis=-1)
        confidence = jnp.take_along_axis(jax.nn.log_softmax(logits), drawn[..., None], -1)[..., 0]
        masked = target == mask_token
        # Keep the most confident of the still-masked cells; leave the rest masked.
        confidence = jnp.where(masked, confidence, jnp.inf)
        keep_masked = _masked_count(config, (i + 1) / steps)
        rank = jnp.argsort(jnp.argsort(confidence, axis=-1), axis=-1)  # 0 = least confident
        stays = masked & (rank < keep_masked)
        return jnp.where(masked & ~stays, drawn, target), None

    target, _ = jax.lax.scan(round_, target, (jnp.arange(steps), jax.random.split(key, steps)))
    return target


def predict_heads(config: DynamicsConfig, params: dict, current, next_tokens, action):
    """``(reward, termination logit)`` of transitions: current grids, next tokens, actions."""
    next_grid = grids(next_tokens, config.grid, config.channels)
    reward_logits, done_logit = Heads(config).apply(params["heads"], current, next_grid, action)
    return reward_of(reward_logits), done_logit


def rollout(config: DynamicsConfig, params: dict, context, actions, key) -> jax.Array:
    """Open loop: past tokens ``(B, k, N)`` and actions ``(B, T)`` to predicted tokens
    ``(B, T, N)``, each step fed back as the newest past frame."""

    def step(context, inputs):
        action, key = inputs
        nxt = sample_next(config, params, context, action, key)
        return jnp.concatenate([context[:, 1:], nxt[:, None]], axis=1), nxt

    keys = jax.random.split(key, actions.shape[1])
    _, predicted = jax.lax.scan(step, context, (actions.T, keys))
    return jnp.swapaxes(predicted, 0, 1)


def _loss(config: DynamicsConfig, params: dict, batch: dict, key):
    """MaskGIT's loss on the masked cells, and the heads' losses."""
    context, target = tokens(batch["context"]), tokens(batch["next"])
    ratio_key, mask_key = jax.random.split(key)
    ratio = jnp.cos(0.5 * jnp.pi * jax.random.uniform(ratio_key, (target.shape[0], 1)))
    masked = jax.random.uniform(mask_key, target.shape) < jnp.maximum(ratio, 1.0 / target.shape[1])
    inputs = jnp.where(masked, config.vocab_size, target)
    logits = Dynamics(config).apply(params["dynamics"], context, inputs, batch["action"])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, target)
    token_loss = jnp.sum(ce * masked) / jnp.maximum(masked.sum(), 1)
    reward_logits, done_logit = Heads(config).apply(params["heads"], batch["context"][:, -1],
                                                    batch["next"], batch["action"])
    reward_loss, done_loss = head_losses(reward_logits, done_logit, batch["reward"],
                                         batch["terminated"])
    return token_loss + reward_loss + done_loss, {"token_loss": token_loss,
                                                  "reward_loss": reward_loss,
                                                  "done_loss": done_loss}


def make_fit(config: DynamicsConfig, label):
    """``(init, update)``: ``init(key) -> state`` and the jittable
    ``update(state, data, labeller) -> (state, metrics)``, one Adam step on a batch
    of transitions of the :class:`~learnenv.worldmodels.latent_actions.Video`
    ``data``. ``label(labeller, batch) -> actions`` names each transition's
    action: a frozen latent action model's code (Genie), or the true action
    (the upper bound)."""
    from learnenv.worldmodels.latent_actions import sample_transitions

    def sample(key, data, labeller):
        batch = sample_transitions(data, key, config.batch_size, config.context)
        return {**batch, "action": label(labeller, batch)}

    tx = optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.steps, 0.1))
    return adam_fit(tx, functools.partial(init_params, config), sample,
                    functools.partial(_loss, config))


def true_actions(_, batch):
    """The label of the upper bound: the recorded action."""
    return batch["true_action"]


@functools.lru_cache(maxsize=16)
def _jitted_fit(config: DynamicsConfig, label):
    init, update = make_fit(config, label)
    return jax.jit(init), jax.jit(update)


def fit(config: DynamicsConfig, key: jax.Array, data: Video, label=true_actions, labeller=None,
        checkpoint_dir=None, progress: bool | None = None) -> tuple[dict, dict]:
    """Train for ``config.steps`` steps: ``(params, metrics)``, the metrics one per
    step (``token_loss``, ``reward_loss``, ``done_loss``) and ``wall_clock_s``.
    ``label`` (a module-level function, so that the jitted step is reused) and
    its ``labeller`` pytree name the actions: see :func:`make_fit`."""
    shape = data.frames.shape[-3:]
    if shape != (config.grid, config.grid, config.channels):
        raise ValueError(f"dynamics fit: frames of shape {shape}; the config expects "
                         f"({config.grid}, {config.grid}, {config.channels}).")
    init, update = _jitted_fit(config, label)
    state, metrics, seconds = fit_steps(update, init(key), (data, labeller), config.steps,
                                        config.chunk, checkpoint_dir, config=config,
                                        progress=progress, desc="dynamics (MaskGIT)")
    return state["params"], {**metrics, "wall_clock_s": seconds}


@struct.dataclass
class GenieState(environment.EnvState):
    context: jax.Array  # tokens of the last k frames, oldest first (k, N)
    time: int


@kinds.register("genie-world-model")
class GenieEnvironment(LearnedEnvironment):
    """Genie's pair, the latent action model and the dynamics model of one game, as
    a gymnax environment whose actions are the latent actions.

    An episode starts from a frame (the real game's reset, or any ``prompt``)
    repeated ``k`` times; a step samples the next frame's tokens for the chosen
    latent action and reads reward and termination from the heads. The
    observation is the newest frame as a grid ``(H, W, C)`` in {0, 1}, like the
    real game's. ``latent_to_real`` (optional) records the latent-to-true map
    fitted on labelled pairs, so that a policy trained here can act in the real
    game (:meth:`real_action`).
    """

    short_name = "Genie"
    flat_observations = False

    def __init__(self, config: dict | DynamicsConfig | None = None,
                 lam: dict | LAMConfig | None = None,
                 latent_to_real: tuple | list | None = None,
                 max_steps_in_episode: int | None = None):
        config = DynamicsConfig.coerce(config, "GenieEnvironment")
        lam = LAMConfig.coerce(lam, "GenieEnvironment")
        super().__init__(config.source, max_steps_in_episode)
        frame = (config.grid, config.grid, config.channels)
        if self.obs_shape != frame or (lam.grid, lam.grid, lam.channels) != frame:
            raise ValueError(f"GenieEnvironment: {config.source} has frames {self.obs_shape}; "
                             f"the dynamics config says {frame}, the LAM config "
                             f"{(lam.grid, lam.grid, lam.channels)}.")
        if lam.num_latents != config.num_actions:
            raise ValueError(f"GenieEnvironment: the LAM has {lam.num_latents} latent actions, "
                             f"the dynamics model {config.num_actions}.")
        if latent_to_real is not None:
            latent_to_real = tuple(int(a) for a in latent_to_real)
            if len(latent_to_real) != config.num_actions or not all(
                    0 <= a < self.action_size for a in latent_to_real):
                raise ValueError(f"GenieEnvironment: latent_to_real={latent_to_real} must give "
                                 f"each of {config.num_actions} latent actions one of "
                                 f"{config.source}'s {self.action_size} actions.")
        self.config, self.lam, self.latent_to_real = config, lam, latent_to_real

    def spec(self) -> dict:
        cap = {"max_steps_in_episode": self.max_steps_in_episode} if self.max_steps_in_episode else {}
        mapping = {"latent_to_real": list(self.latent_to_real)} if self.latent_to_real else {}
        # As JSON holds them, so a loaded checkpoint's spec compares equal.
        configs = json.loads(json.dumps({"config": self.config.to_dict(),
                                         "lam": self.lam.to_dict()}))
        return {**configs, **mapping, **cap}

    @property
    def num_actions(self) -> int:
        return self.config.num_actions

    def action_space(self, params=None):
        return spaces.Discrete(self.config.num_actions)

    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, self.obs_shape, jnp.float32)

    def real_action(self, latent: jax.Array) -> jax.Array:
        """The real game's action for a latent action, through ``latent_to_real``."""
        if self.latent_to_real is None:
            raise ValueError("This GenieEnvironment has no latent_to_real map; pass one "
                             "(latent_actions.fit_mapping on labelled pairs).")
        return jnp.asarray(self.latent_to_real, jnp.int32)[latent]

    def init_network_params(self, key: jax.Array) -> dict:
        lam_key, key = jax.random.split(key)
        return {"lam": latent_actions.init_params(self.lam, lam_key),
                **init_params(self.config, key)}

    def with_model(self, params: dict, lam_params: dict) -> SyntheticEnvParams:
        """``env_params`` holding trained weights: the dynamics model's and heads' from
        :func:`fit`, and the latent action model's (it labels new videos)."""
        return SyntheticEnvParams({"lam": lam_params, **params},
                                  max_steps_in_episode=self.episode_cap)

    def infer(self, env_params, before: jax.Array, after: jax.Array) -> jax.Array:
        """The latent action of each transition ``before -> after`` (grids, batched),
        by the environment's own latent action model."""
        return latent_actions.infer(self.lam, env_params.network_params["lam"], before, after)

    def prompt(self, frame: jax.Array) -> tuple[jax.Array, GenieState]:
        """Start from any grid ``(H, W, C)`` (a real frame, another seed's, a
        hand-edited one): the observation and state of a new episode."""
        frame = jnp.asarray(frame, jnp.float32)
        if frame.shape != self.obs_shape:
            raise ValueError(f"prompt: a frame of shape {frame.shape}; this model's frames "
                             f"are {self.obs_shape}.")
        context = jnp.broadcast_to(tokens(frame), (self.config.context, self.config.num_cells))
        return self.get_obs(GenieState(context=context, time=0)), GenieState(context=context,
                                                                             time=0)

    def reset_env(self, key, params):
        obs, _ = self.real_env.reset(key, self.real_env_params)
        return self.prompt(obs)

    def step_env(self, key, state, action, params):
        p, c = params.network_params, self.config
        action = jnp.asarray(action, jnp.int32)[None]
        nxt = sample_next(c, p, state.context[None], action, key)
        current = grids(state.context[-1], c.grid, c.channels)[None]
        reward, logit = predict_heads(c, p, current, nxt, action)
        context = jnp.concatenate([state.context[1:], nxt], axis=0)
        new_state = GenieState(context=context, time=state.time + 1)
        return self.get_obs(new_state), new_state, reward[0], logit[0] > 0.0, {}

    def is_terminated(self, state, params):
        # Termination is predicted from the transition in step_env.
        return jnp.array(False)

    def get_obs(self, state, params=None, key=None):
        return grids(state.context[-1], self.config.grid, self.config.channels)


def draw(frames: jax.Array) -> jax.Array:
    """Grids ``(..., H, W, C)`` as grayscale frames ``(..., H, W)`` for PSNR and display."""
    from learnenv.envs.render import minatar

    return minatar(frames)
