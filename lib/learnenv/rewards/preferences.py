"""Rewards learned from pairwise preferences (Motif, Klissarov et al., 2023).

Motif turns a large language model's common sense into a reward in three
steps, none of which needs the task's reward:

1. collect observations with some policies, pair them up, and ask the LLM,
   for each pair of (captioned) observations, which one it prefers;
2. fit a reward model r_phi to those answers with the Bradley-Terry model,
   P(a preferred to b) = sigmoid(R_phi(a) - R_phi(b));
3. train an agent with RL on r_phi (:class:`learnenv.rewards.replace.LearnedReward`).

Here a *segment* is a short stretch of ``length`` consecutive steps and
R_phi(segment) = sum_t r_phi(o_t) over the observations it reaches (Christiano
et al., 2017); Motif's pairs of single observations are ``length=1``.

The labeller stands in for the LLM. :class:`RuleLabeller` applies a rule a
person or an LLM might state from the pictures alone ("keep the paddle under
the ball, above all when the ball is low", :func:`catch_rule`); it sees the
observations only, never the environment's reward, and it is not that reward
rewritten: it judges every frame, while Catch pays +-1 on the last one only.
Label noise (a share of answers flipped) imitates an unreliable annotator.
:class:`LLMLabeller` shows where a real LLM plugs in: it captions each
segment, writes the prompt, and parses the answer, and takes the model as one
function ``complete(prompt) -> answer`` that this module never calls on its
own (no network here).

Everything but the LLM labeller is pure and jittable, so the whole pipeline,
data to reward model, vmaps over seeds.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from learnenv.agents.networks import ACTIVATIONS, MLP, check_hidden_sizes, dense
from learnenv.config import Config, field
from learnenv.rewards.replace import RewardFn, Transition
from learnenv.worldmodels.data import Episodes, collect

__all__ = [
    "Segments", "Preferences", "segments_from", "collect_segments", "split_pairs",
    "Labeller", "RuleLabeller", "catch_rule", "catch_caption", "LLMLabeller",
    "parse_preference", "label", "agreement", "RewardModelConfig", "RewardModel",
    "bradley_terry_loss", "segment_returns", "make_fit", "FitResult", "observation_reward",
]

Policy = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]


# Data -------------------------------------------------------------------------
@struct.dataclass
class Segments:
    """``length`` consecutive steps of one episode each, as arrays ``(N, length, ...)``.

    ``obs`` is the observation each step reaches (the real next observation,
    the last one of an episode too): what a labeller is shown. ``reward`` is the
    environment's, kept for measuring the labeller, never shown to it.
    ``valid`` is 0 for a segment of an episode shorter than ``length``.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    valid: jax.Array

    def returns(self) -> jax.Array:
        return self.reward.sum(axis=1)

    def take(self, index) -> "Segments":
        return jax.tree.map(lambda x: x[index], self)


def segments_from(episodes: Episodes, length: int, key: jax.Array) -> Segments:
    """One segment of ``length`` steps per episode, starting at a uniformly random step."""
    steps = episodes.obs.shape[1]
    if not 1 <= length <= steps:
        raise ValueError(f"segment length={length} must be in [1, {steps}] (the episodes' "
                         "step cap).")
    lengths = episodes.lengths().astype(jnp.int32)
    starts = jax.random.randint(key, lengths.shape, 0, jnp.maximum(lengths - length, 0) + 1)

    def cut(x):
        return jax.vmap(lambda row, s: jax.lax.dynamic_slice_in_dim(row, s, length))(x, starts)

    return Segments(obs=cut(episodes.next_obs), action=cut(episodes.action),
                    reward=cut(episodes.reward), valid=(lengths >= length).astype(jnp.float32))


def collect_segments(env, env_params, policies: Sequence[tuple[Policy, Any]], key: jax.Array,
                     num_segments: int, length: int, max_steps: int | None = None) -> Segments:
    """``num_segments`` segments, an equal share from each ``(policy, params)``.

    Each segment comes from its own episode (:func:`learnenv.worldmodels.data.collect`,
    stochastic actions), so segments are independent. Pure and jittable.
    ``max_steps`` bounds the episodes (default: the step cap).
    """
    if not policies:
        raise ValueError("collect_segments needs at least one (policy, params) pair.")
    if num_segments < 1 or num_segments % len(policies):
        raise ValueError(f"num_segments={num_segments} must be a positive multiple of the "
                         f"{len(policies)} policies.")
    parts = []
    for (policy, params), k in zip(policies, jax.random.split(key, len(policies))):
        k_collect, k_cut = jax.random.split(k)
        episodes = collect(env, env_params, policy, params, k_collect,
                           num_segments // len(policies), max_steps=max_steps)
        parts.append(segments_from(episodes, length, k_cut))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


def split_pairs(segments: Segments, key: jax.Array) -> tuple[Segments, Segments]:
    """Shuffle the segments and pair the first half with the second."""
    n = segments.valid.shape[0]
    if n < 2 or n % 2:
        raise ValueError(f"split_pairs needs an even number (>= 2) of segments, got {n}.")
    order = jax.random.permutation(key, n)
    return segments.take(order[: n // 2]), segments.take(order[n // 2:])


# Labellers ---------------------------------------------------------------------
@runtime_checkable
class Labeller(Protocol):
    """``labeller(obs_a, obs_b, key=None) -> preference``.

    ``obs_a`` and ``obs_b`` are the observations of a batch of segments,
    ``(num_pairs, length, *obs_shape)``: what an annotator is shown, nothing
    else. ``preference[i]`` in [0, 1] is how much segment ``a[i]`` is preferred
    to ``b[i]`` (1: a, 0: b, 0.5: no preference); NaN marks an answer that could
    not be read (:func:`label` drops it). ``key`` drives label noise.
    """

    def __call__(self, obs_a: jax.Array, obs_b: jax.Array,
                 key: jax.Array | None = None) -> jax.Array: ...


def _check_pair(name: str, obs_a, obs_b, frame_ndim: int) -> None:
    shape_a, shape_b = np.shape(obs_a), np.shape(obs_b)
    if shape_a != shape_b:
        raise ValueError(f"{name}: the two batches of segments differ in shape, {shape_a} "
                         f"vs {shape_b}.")
    if len(shape_a) != 2 + frame_ndim:
        raise ValueError(
            f"{name}: expected batched segments (num_pairs, length, *frame_shape) with "
            f"{frame_ndim}-d frames, i.e. {2 + frame_ndim} axes; got shape {shape_a}.")


class RuleLabeller:
    """Prefers the segment whose frames score higher on average under ``rule``.

    ``rule(frame) -> score`` looks at one observation. Equal mean scores
    (within 1e-6) are a tie (0.5). With ``noise`` > 0 each answer is flipped
    with that probability (a tie stays a tie), which needs a ``key``. Pure and
    jittable.
    """

    def __init__(self, rule: Callable[[jax.Array], jax.Array], frame_ndim: int,
                 noise: float = 0.0):
        if not callable(rule):
            raise TypeError(f"RuleLabeller: rule must be callable, not {type(rule).__name__}.")
        if isinstance(frame_ndim, bool) or not isinstance(frame_ndim, int) or frame_ndim < 0:
            raise ValueError(f"RuleLabeller: frame_ndim={frame_ndim!r} must be an int >= 0.")
        if not 0.0 <= noise <= 0.5:
            raise ValueError(f"RuleLabeller: noise={noise} must be in [0, 0.5] (the share "
                             "of answers flipped; 0.5 is pure noise).")
        self.rule, self.frame_ndim, self.noise = rule, frame_ndim, float(noise)

    def score(self, obs: jax.Array) -> jax.Array:
        """Mean rule score of each segment, ``(num_segments,)``."""
        return jax.vmap(jax.vmap(self.rule))(jnp.asarray(obs, jnp.float32)).mean(axis=1)

    def __call__(self, obs_a, obs_b, key=None):
        _check_pair("RuleLabeller", obs_a, obs_b, self.frame_ndim)
        diff = self.score(obs_a) - self.score(obs_b)
        preference = jnp.where(jnp.abs(diff) < 1e-6, 0.5, (diff > 0).astype(jnp.float32))
        if self.noise > 0:
            if key is None:
                raise ValueError(f"RuleLabeller: noise={self.noise} needs a key.")
            flip = jax.random.uniform(key, preference.shape) < self.noise
            preference = jnp.where(flip, 1.0 - preference, preference)
        return preference


def catch_rule(frame: jax.Array) -> jax.Array:
    """A Catch player's rule of thumb from one frame: keep the paddle under the ball.

    Minus the column gap between the lit cells (ball and paddle; one cell when
    the ball sits on the paddle), weighted by how low the highest lit cell (the
    ball) is: (row + 1) / rows, so a gap counts fully when the ball is at the
    bottom and little when it has just appeared.
    """
    rows, cols = frame.shape
    lit = frame > 0.5
    in_col, in_row = lit.any(axis=0), lit.any(axis=1)
    left = jnp.min(jnp.where(in_col, jnp.arange(cols), cols))
    right = jnp.max(jnp.where(in_col, jnp.arange(cols), -1))
    top = jnp.min(jnp.where(in_row, jnp.arange(rows), rows - 1))
    return -jnp.maximum(right - left, 0).astype(jnp.float32) * (top + 1) / rows


def catch_caption(segment: np.ndarray) -> str:
    """A Catch segment ``(length, rows, cols)`` in words, one line per frame (what an
    LLM would read in place of the pictures)."""
    lines = []
    segment = np.asarray(segment)
    rows = segment.shape[1]
    for t, frame in enumerate(segment, 1):
        cells = sorted(zip(*np.nonzero(frame > 0.5)))
        if len(cells) == 1:
            text = f"the ball lands on the paddle in column {cells[0][1]}"
        elif len(cells) == 2 and cells[0][0] == cells[1][0]:
            text = (f"the ball and the paddle are both in the bottom row, in columns "
                    f"{cells[0][1]} and {cells[1][1]}")
        elif len(cells) == 2:
            (ball_row, ball_col), (_, paddle_col) = cells
            text = (f"ball in column {ball_col}, {rows - 1 - ball_row} rows above the "
                    f"paddle, which is in column {paddle_col}")
        else:
            text = f"{len(cells)} lit cells"
        lines.append(f"Frame {t}: {text}.")
    return "\n".join(lines)


PROMPT = """You will see two short clips of a game, each described frame by frame.
{task}

Clip 1:
{a}

Clip 2:
{b}

Which clip shows better play? Think briefly, then end with one line that is
exactly "Preferred: 1", "Preferred: 2" or "Preferred: none"."""

CATCH_TASK = ("In the game, a ball falls from the top of a 10 x 5 grid, one row per frame, "
              "and the player moves a paddle along the bottom row to catch it.")


def parse_preference(answer: str) -> float:
    """The preference in an answer's last "Preferred: ..." line: 1 -> 1.0, 2 -> 0.0,
    none -> 0.5; NaN when there is no such line."""
    found = re.findall(r"preferred\s*:\s*(1|2|none)\b", answer, flags=re.IGNORECASE)
    if not found:
        return float("nan")
    return {"1": 1.0, "2": 0.0}.get(found[-1].lower(), 0.5)


class LLMLabeller:
    """Where an LLM labeller plugs in (not used by the book's runs: no network here).

    Motif captions each observation (NetHack's message line), puts two captions
    in a prompt with a description of the task, and reads the LLM's choice.
    This class does the same for batches of segments: ``caption(segment) -> str``
    describes one segment (:func:`catch_caption`), the prompt is :data:`PROMPT`
    with ``task`` filled in, and ``complete(prompt) -> answer`` is the LLM: a
    function you supply (a local model, an API client). Answers are read with
    :func:`parse_preference`; unreadable ones become NaN and are dropped by
    :func:`label`. It runs on the host, once per pair, so call it outside
    ``jit``, before fitting the reward model. ``key`` is ignored (sampling
    randomness lives in ``complete``).
    """

    def __init__(self, caption: Callable[[np.ndarray], str], task: str,
                 complete: Callable[[str], str] | None = None, frame_ndim: int = 2):
        self.caption, self.task, self.complete = caption, task, complete
        self.frame_ndim = frame_ndim

    def prompt(self, segment_a: np.ndarray, segment_b: np.ndarray) -> str:
        return PROMPT.format(task=self.task, a=self.caption(segment_a),
                             b=self.caption(segment_b))

    def __call__(self, obs_a, obs_b, key=None):
        _check_pair("LLMLabeller", obs_a, obs_b, self.frame_ndim)
        if self.complete is None:
            raise NotImplementedError(
                "LLMLabeller needs complete(prompt) -> answer, the LLM call: pass a function "
                "that sends the prompt to a model and returns its text.")
        obs_a, obs_b = np.asarray(obs_a), np.asarray(obs_b)
        answers = [self.complete(self.prompt(a, b)) for a, b in zip(obs_a, obs_b)]
        return jnp.asarray([parse_preference(answer) for answer in answers], jnp.float32)


@struct.dataclass
class Preferences:
    """Labelled pairs: the observations of segments a and b, how much a is preferred,
    and a weight (0 for a pair with an invalid segment or an unreadable answer)."""

    obs_a: jax.Array
    obs_b: jax.Array
    preference: jax.Array
    weight: jax.Array

    @property
    def num_pairs(self) -> int:
        return self.preference.shape[0]


def label(segments_a: Segments, segments_b: Segments, labeller: Labeller,
          key: jax.Array | None = None) -> Preferences:
    """Ask ``labeller`` about each pair; the labeller sees the observations only."""
    preference = jnp.asarray(labeller(segments_a.obs, segments_b.obs, key), jnp.float32)
    readable = jnp.isfinite(preference)
    return Preferences(obs_a=segments_a.obs, obs_b=segments_b.obs,
                       preference=jnp.where(readable, preference, 0.5),
                       weight=segments_a.valid * segments_b.valid * readable)


def agreement(preference: jax.Array, return_a: jax.Array, return_b: jax.Array,
              weight: jax.Array | None = None) -> jax.Array:
    """How often ``preference`` orders a pair as the true returns do.

    Over the (weighted) pairs whose returns differ: 1 when the preference
    leans to the segment with the higher return, 0 when it leans the other way,
    1/2 for no preference. Pairs of equal returns are left out (NaN if none is left).
    """
    weight = jnp.ones_like(return_a) if weight is None else weight
    differ = weight * (return_a != return_b)
    lean = jnp.sign(jnp.asarray(preference) - 0.5) * jnp.sign(return_a - return_b)
    return jnp.sum(differ * 0.5 * (1.0 + lean)) / jnp.sum(differ)


# Reward model ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RewardModelConfig(Config):
    """The reward model r_phi(o) and its Bradley-Terry fit (Adam, minibatches of pairs)."""

    hidden_sizes: tuple = (64, 64)
    activation: str = field("relu", choices=tuple(ACTIVATIONS))
    num_steps: int = field(500, low=1, doc="gradient steps")
    batch_size: int = field(128, low=1, doc="pairs per gradient step (drawn with replacement)")
    learning_rate: float = field(1e-3, low=0.0, low_inclusive=False, traced=True)

    def validate(self) -> None:
        check_hidden_sizes(type(self).__name__, self.hidden_sizes)


class RewardModel(nn.Module):
    """r_phi(o): an MLP on the flattened observation, one scalar per observation."""

    hidden_sizes: Sequence[int]
    activation: str
    obs_ndim: int  # trailing axes of one observation; leading axes are batch axes

    @nn.compact
    def __call__(self, obs):
        obs = jnp.asarray(obs, jnp.float32)
        x = obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,))
        return dense(1, 1.0)(MLP(tuple(self.hidden_sizes), self.activation)(x))[..., 0]


def bradley_terry_loss(return_a: jax.Array, return_b: jax.Array, preference: jax.Array,
                       weight: jax.Array | None = None) -> jax.Array:
    """Cross-entropy of the Bradley-Terry model against (soft) preferences.

    P(a preferred to b) = sigmoid(R(a) - R(b)); a preference p in [0, 1] is the
    target probability, so a tie (0.5) asks for R(a) = R(b).
    """
    logits = return_a - return_b
    nll = -(preference * jax.nn.log_sigmoid(logits)
            + (1.0 - preference) * jax.nn.log_sigmoid(-logits))
    weight = jnp.ones_like(nll) if weight is None else weight
    return jnp.sum(weight * nll) / jnp.maximum(jnp.sum(weight), 1.0)


def segment_returns(model: RewardModel, params: Any, obs: jax.Array) -> jax.Array:
    """R_phi of each segment: r_phi summed over its frames, ``(N, length, *obs) -> (N,)``."""
    return model.apply(params, obs).sum(axis=1)


@struct.dataclass
class FitResult:
    params: Any
    losses: jax.Array  # (num_steps,) the minibatch loss of each step


def make_fit(config: RewardModelConfig, obs_shape: Sequence[int]):
    """``(model, fit)`` with ``fit(key, preferences, learning_rate=None) -> FitResult``.

    Pure and jittable; vmap ``fit`` over keys (and preference sets) for seeds.
    """
    model = RewardModel(tuple(config.hidden_sizes), config.activation, len(obs_shape))

    def loss_fn(params, batch: Preferences):
        return bradley_terry_loss(segment_returns(model, params, batch.obs_a),
                                  segment_returns(model, params, batch.obs_b),
                                  batch.preference, batch.weight)

    def fit(key, preferences: Preferences, learning_rate=None) -> FitResult:
        lr = config.learning_rate if learning_rate is None else learning_rate
        init_key, loop_key = jax.random.split(key)
        params = model.init(init_key, jnp.zeros(tuple(obs_shape), jnp.float32))
        tx = optax.adam(lr)

        def step(carry, key):
            params, opt_state = carry
            index = jax.random.randint(key, (config.batch_size,), 0, preferences.num_pairs)
            batch = jax.tree.map(lambda x: x[index], preferences)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)),
                                           jax.random.split(loop_key, config.num_steps))
        return FitResult(params=params, losses=losses)

    return model, fit


def observation_reward(model: RewardModel) -> RewardFn:
    """The learned reward for :class:`~learnenv.rewards.replace.LearnedReward`:
    r_phi of the observation a step reaches, as the model was fitted."""

    def reward_fn(params: Any, transition: Transition) -> jax.Array:
        return model.apply(params, transition.next_obs)

    return reward_fn
