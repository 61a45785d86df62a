"""Genie's latent action model: actions inferred from unlabelled video.

A video has frames but no actions. Genie (Bruce et al. 2024) still learns a
controllable model from it by *inventing* the actions: an encoder looks at
frame ``x_t`` and the next frame ``x_{t+1}`` and names what happened with one
of a few codes (``num_latents``, fixed in advance; 8 in Genie), and a decoder
must predict ``x_{t+1}`` from the past frames and that code alone. The code is
a bottleneck of ``log2(num_latents)`` bits, so the cheapest thing for it to
carry is what the past cannot predict: in a game, what the player did.

The videos here are MinAtar games (:class:`Video`): each frame is a
``(10, 10, channels)`` grid of booleans, already a perfect tokenisation (one
token per cell, the channels' bits), so the chapter needs no video tokenizer.
The true actions are recorded but kept aside: only evaluation reads them.

Two architectures (``LAMConfig.network``):

- ``"conv"``: a translation-equivariant encoder (convolutions, then pooling
  over all cells) and a decoder that adds the latent's embedding at every cell.
  A move of the paddle looks the same wherever the paddle is, so the code can
  only say *which way* it moved.
- ``"mlp"``: the same bottleneck with dense layers. It reconstructs frames as
  well, but nothing stops its codes from naming *where* the paddle went
  instead of which way: the chapter's counter-example.

Evaluation: :func:`normalized_mutual_information` between codes and true
actions, and :func:`fit_mapping` / :func:`mapped_accuracy` (a latent-to-true
map fitted on a few labelled pairs, as Genie's behaviour-cloning experiment
does with about 200).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from learnenv.config import Config, field
from learnenv.nets import vq
from learnenv.worldmodels.data import Episodes
from learnenv.worldmodels import pixels
from learnenv.worldmodels.loop import fit_steps

__all__ = ["Video", "video", "sample_transitions", "LAMConfig", "Encoder", "Decoder",
           "init_params", "encode", "decode", "make_fit", "fit", "infer", "Labels",
           "normalized_mutual_information", "fit_mapping", "preferred_latents", "mapped_accuracy"]


@struct.dataclass
class Video:
    """Episodes as frames: ``frames`` ``(N, T + 1, H, W, C)`` in {0, 1}, and per step
    ``(N, T)`` the reward, termination and mask. ``true_action`` ``(N, T)`` is
    for evaluation only: no model is trained on it (except the true-action
    upper bound, which says so)."""

    frames: jax.Array
    reward: jax.Array
    terminated: jax.Array
    mask: jax.Array
    true_action: jax.Array

    @property
    def num_steps(self) -> int:
        return int(self.mask.sum())

    def take(self, index) -> "Video":
        return jax.tree.map(lambda x: x[index], self)


def video(episodes: Episodes) -> Video:
    """Recorded MinAtar ``episodes`` (grid observations) as a :class:`Video`."""
    if episodes.obs.ndim != 5:
        raise ValueError(f"video: observations of shape {episodes.obs.shape[2:]}; a video "
                         "needs grid frames (H, W, C), as MinAtar's.")
    frames = jnp.concatenate([episodes.obs[:, :1], episodes.next_obs], axis=1)
    return Video(frames=frames.astype(jnp.float32), reward=episodes.reward,
                 terminated=episodes.terminated.astype(jnp.float32), mask=episodes.mask,
                 true_action=episodes.action.astype(jnp.int32))


def sample_transitions(data: Video, key: jax.Array, n: int, context: int) -> dict:
    """``n`` real steps drawn uniformly: past frames (the first frame repeated before
    the start), next frame, reward, termination and the (evaluation-only) true action."""
    episode, t = pixels.draw_steps(data.mask, key, n)
    return {"context": jax.vmap(lambda e, t: pixels.window(data.frames[e], t, context))(episode, t),
            "next": data.frames[episode, t + 1], "reward": data.reward[episode, t],
            "terminated": data.terminated[episode, t],
            "true_action": data.true_action[episode, t]}


@dataclasses.dataclass(frozen=True)
class LAMConfig(Config):
    """The latent action model: codebook, networks, training."""

    channels: int = field(4, low=1, doc="binary channels per cell (Breakout-MinAtar: 4)")
    grid: int = field(10, low=3, doc="cells per side")
    num_latents: int = field(4, low=2, doc="|A|: latent actions (Genie: 8)")
    code_dim: int = field(16, low=1, doc="width of a code")
    context: int = field(1, low=1, doc="past frames the decoder sees")
    network: str = field("conv", choices=("conv", "mlp"),
                         doc="translation-equivariant convolutions, or dense layers")
    width: int = field(32, low=1, doc="conv channels (the MLP uses 8x as many units)")
    commitment: float = field(0.25, low=0.0, doc="VQ commitment weight")
    reset_every: int = field(100, low=0, doc="steps between resets of unused codes (0: never)")
    steps: int = field(2000, low=1, doc="gradient steps")
    batch_size: int = field(128, low=1)
    learning_rate: float = field(2e-3, low=0.0, low_inclusive=False,
                                  doc="peak of a cosine decay to a tenth")
    chunk: int = field(250, low=1, doc="steps between progress updates and checkpoints")


class Encoder(nn.Module):
    """``(x_t, x_{t+1}) -> z``: a continuous vector, quantised to a latent action."""

    config: LAMConfig

    @nn.compact
    def __call__(self, before, after):
        c = self.config
        x = jnp.concatenate([before, after, after - before], axis=-1)  # (..., H, W, 3C)
        if c.network == "mlp":
            x = x.reshape(*x.shape[:-3], -1)
            return nn.Dense(c.code_dim)(nn.relu(nn.Dense(8 * c.width)(x)))
        for _ in range(2):
            x = nn.relu(nn.Conv(c.width, (3, 3))(x))
        # Pooling over every cell: the same move anywhere gives the same code.
        pooled = jnp.concatenate([x.mean(axis=(-3, -2)), x.max(axis=(-3, -2))], axis=-1)
        return nn.Dense(c.code_dim)(pooled)


class Decoder(nn.Module):
    """``(x_{t-k+1..t}, code) -> logits of x_{t+1}``, one Bernoulli per cell and channel."""

    config: LAMConfig

    @nn.compact
    def __call__(self, context, code):
        c = self.config
        x = jnp.concatenate(jnp.unstack(context, axis=-4), axis=-1)  # (..., H, W, kC)
        if c.network == "mlp":
            shape = x.shape[-3:-1] + (c.channels,)
            h = nn.Dense(8 * c.width)(x.reshape(*x.shape[:-3], -1)) + nn.Dense(8 * c.width)(code)
            h = nn.Dense(8 * c.width)(nn.relu(h))
            return nn.Dense(int(np.prod(shape)))(nn.relu(h)).reshape(*x.shape[:-3], *shape)
        h = nn.Conv(c.width, (3, 3))(x)
        h = nn.relu(h + nn.Dense(c.width)(code)[..., None, None, :])  # the latent at every cell
        for _ in range(2):
            h = nn.relu(nn.Conv(c.width, (3, 3))(h))
        return nn.Conv(c.channels, (3, 3))(h)


def init_params(config: LAMConfig, key: jax.Array) -> dict:
    """Untrained ``{"encoder", "decoder", "codebook"}``."""
    e_key, d_key, c_key = jax.random.split(key, 3)
    g, ch = config.grid, config.channels
    frame = jnp.zeros((1, g, g, ch))
    return {"encoder": Encoder(config).init(e_key, frame, frame),
            "decoder": Decoder(config).init(d_key, jnp.zeros((1, config.context, g, g, ch)),
                                            jnp.zeros((1, config.code_dim))),
            "codebook": jax.random.normal(c_key, (config.num_latents, config.code_dim))}


def encode(config: LAMConfig, params: dict, before, after):
    """``(z, z_q, codes, vq_loss)`` for frame pairs (batched)."""
    z = Encoder(config).apply(params["encoder"], before, after)
    z_q, codes, vq_loss = vq.quantize(params["codebook"], z, config.commitment)
    return z, z_q, codes, vq_loss


def decode(config: LAMConfig, params: dict, context, code_vectors):
    """Logits of the next frame from past frames and (quantised) code vectors."""
    return Decoder(config).apply(params["decoder"], context, code_vectors)


def infer(config: LAMConfig, params: dict, before, after) -> jax.Array:
    """The latent action of each transition ``before -> after`` (batched)."""
    return encode(config, params, before, after)[2]


@dataclasses.dataclass(frozen=True)
class Labels:
    """``Labels(config)(params, batch)``: a frozen model's latent action for each
    transition of a batch, the action label a Genie dynamics model trains on
    (:func:`learnenv.worldmodels.genie.fit`). Hashable, so one jitted step serves
    every fit with the same config."""

    config: LAMConfig

    def __call__(self, params: dict, batch: dict) -> jax.Array:
        return infer(self.config, params, batch["context"][:, -1], batch["next"])


def _loss(config: LAMConfig, params: dict, batch: dict):
    before = batch["context"][:, -1]
    z, z_q, codes, vq_loss = encode(config, params, before, batch["next"])
    logits = decode(config, params, batch["context"], z_q)
    # Summed over the frame: a paddle move is 2 of its 400 bits, and a per-bit mean
    # would let the VQ losses drown the only signal that needs the latent.
    reconstruction = optax.sigmoid_binary_cross_entropy(logits, batch["next"]).sum(
        axis=(-3, -2, -1)).mean()
    return reconstruction + vq_loss, (z, codes, {"reconstruction": reconstruction,
                                                 "vq_loss": vq_loss})


def make_fit(config: LAMConfig):
    """``(init, update)``: ``init(key) -> state`` and the jittable
    ``update(state, data) -> (state, metrics)``: one Adam step on a batch of
    transitions of the :class:`Video` ``data``, then, every ``reset_every``
    steps, the codes unused since the last reset moved onto this batch's
    encoder outputs."""
    tx = optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.steps, 0.1))

    def init(key):
        init_key, loop_key = jax.random.split(key)
        params = init_params(config, init_key)
        return {"params": params, "opt_state": tx.init(params), "key": loop_key,
                "step": jnp.zeros((), jnp.int32),
                "counts": jnp.zeros((config.num_latents,), jnp.int32)}

    def update(state, data):
        key, batch_key, reset_key = jax.random.split(state["key"], 3)
        batch = sample_transitions(data, batch_key, config.batch_size, config.context)
        grads, (z, codes, metrics) = jax.grad(lambda p: _loss(config, p, batch),
                                              has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        batch_counts = vq.usage(codes, config.num_latents)
        # Usage is summed over the steps since the last reset: a code chosen rarely but
        # regularly (a real, rare action) is not dead and keeps its meaning.
        counts = state["counts"] + batch_counts
        step = state["step"] + 1
        if config.reset_every:
            due = step % config.reset_every == 0
            reset = vq.reset_unused(params["codebook"], counts, z, reset_key)
            params = {**params, "codebook": jnp.where(due, reset, params["codebook"])}
            counts = jnp.where(due, 0, counts)
        metrics = {**metrics, "codes_used": jnp.sum(batch_counts > 0),
                   "perplexity": vq.perplexity(batch_counts)}
        return {"params": params, "opt_state": opt_state, "key": key, "step": step,
                "counts": counts}, metrics

    return init, update


@functools.lru_cache(maxsize=16)
def _jitted_fit(config: LAMConfig):
    init, update = make_fit(config)
    return jax.jit(init), jax.jit(update)


def fit(config: LAMConfig, key: jax.Array, data: Video, checkpoint_dir=None,
        progress: bool | None = None, evaluate=None) -> tuple[dict, dict]:
    """Train for ``config.steps`` steps on ``data`` (never its true actions):
    ``(params, metrics)``, the metrics one per step (``reconstruction``,
    ``vq_loss``, ``codes_used``, ``perplexity``) and the fit's ``wall_clock_s``.
    ``evaluate(params) -> dict`` (for example NMI on held-out transitions) runs
    every ``config.chunk`` steps; its results are ``metrics["evaluation"]``."""
    shape = data.frames.shape[-3:]
    if shape != (config.grid, config.grid, config.channels):
        raise ValueError(f"LAM fit: frames of shape {shape}; the config expects "
                         f"({config.grid}, {config.grid}, {config.channels}).")
    init, update = _jitted_fit(config)
    state, metrics, seconds = fit_steps(
        update, init(key), (data,), config.steps, config.chunk, checkpoint_dir, config=config,
        progress=progress, desc=f"latent action model ({config.network})",
        evaluate=(lambda state: evaluate(state["params"])) if evaluate else None)
    return state["params"], {**metrics, "wall_clock_s": seconds}


def normalized_mutual_information(a, b) -> float:
    """``I(a; b) / ((H(a) + H(b)) / 2)`` of two label arrays (the arithmetic-mean
    normalisation, scikit-learn's default): 1 when each determines the other, 0
    when independent. Written out (a contingency table) rather than adding
    scikit-learn for one function."""
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mutual = float(np.sum(joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])))
    entropy = lambda p: float(-np.sum(p[p > 0] * np.log(p[p > 0])))  # noqa: E731
    denominator = (entropy(pa) + entropy(pb)) / 2.0
    return mutual / denominator if denominator > 0 else 1.0


def fit_mapping(latents, actions, num_latents: int) -> np.ndarray:
    """The latent-to-true map from labelled pairs: each latent goes to the true
    action it was seen with most often; a latent never seen goes to the most
    common action overall."""
    latents, actions = np.asarray(latents).reshape(-1), np.asarray(actions).reshape(-1)
    overall = np.bincount(actions).argmax()
    mapping = np.full(num_latents, overall, dtype=np.int32)
    for z in range(num_latents):
        seen = actions[latents == z]
        if seen.size:
            mapping[z] = np.bincount(seen).argmax()
    return mapping


def preferred_latents(latents, actions, num_actions: int) -> np.ndarray:
    """For each true action, the latent action seen with it most often: how a
    scripted player of the real game, or a person, picks a latent action for
    the action they mean."""
    latents, actions = np.asarray(latents).reshape(-1), np.asarray(actions).reshape(-1)
    return np.array([np.bincount(latents[actions == a], minlength=1).argmax()
                     if np.any(actions == a) else 0 for a in range(num_actions)], np.int32)


def mapped_accuracy(mapping, latents, actions) -> float:
    """The fraction of transitions whose latent maps to the true action."""
    return float(np.mean(np.asarray(mapping)[np.asarray(latents)] == np.asarray(actions)))
