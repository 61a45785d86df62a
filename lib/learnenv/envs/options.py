"""Options: actions that last several primitive steps (Sutton, Precup & Singh, 1999).

An *option* here is an open-loop one: a fixed sequence of primitive actions
(``[a, a, a, a]`` is an action repeat, ``[2, 2, 0, 0]`` a macro-action). The
:class:`Options` wrapper makes each option one action of a new environment, so
an unchanged agent chooses among options, and one of its steps runs the whole
sequence in the wrapped environment. That changes what a step *means*: the
agent decides less often, its discount ``gamma`` now applies per option (the
effective horizon in primitive steps grows with the option's length), and its
random exploration moves coherently instead of dithering. On a sparse task
(MountainCar: -1 per step until the goal) the last effect decides whether the
goal is ever seen at all.

The contract stays gymnax's: ``step`` returns the summed (undiscounted) reward
of the primitive steps it ran, stops the sequence early when the episode
terminates or is truncated (the rest of the option is dropped), auto-resets as
the wrapped ``step`` does, and puts the finished episode's last observation in
``info["final_observation"]``. ``info["primitive_steps"]`` says how many
primitive steps the option really took, so budgets are counted in primitive
steps. Episode returns are the real task's returns: the same rewards, summed
differently.

Options can also be *found from data* (:func:`discover_macros`): the most
frequent action sequences in the episodes that reached the goal, a minimal
instance of learning a part of the environment (its action set) from
experience.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from learnenv.envs.wrappers import Wrapper

__all__ = ["Options", "action_repeats", "macro_actions", "discover_macros"]


def _primitive_actions(env: Environment, env_params: Any) -> int:
    space = env.action_space(env_params)
    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"Options need discrete primitive actions; {env.name} has a "
            f"{type(space).__name__} action space."
        )
    return int(space.n)


class Options(Wrapper):
    """Each action of this environment runs one fixed sequence of primitive actions.

    ``options[i]`` is the sequence option ``i`` runs (lengths may differ).
    Sequences are padded to the longest; a padded step, like every step after
    the episode ended, is computed and then discarded, so one option step
    costs ``max_length`` inner steps of compute whatever it does.
    """

    def __init__(self, env: Environment, options: Sequence[Sequence[int]],
                 env_params: Any = None):
        super().__init__(env)
        options = [tuple(int(a) for a in seq) for seq in options]
        if not options:
            raise ValueError("Options needs at least one option (a sequence of actions).")
        empty = [i for i, seq in enumerate(options) if not seq]
        if empty:
            raise ValueError(f"Options: option(s) {empty} are empty sequences.")
        n = _primitive_actions(env, env.default_params if env_params is None else env_params)
        bad = sorted({a for seq in options for a in seq if not 0 <= a < n})
        if bad:
            raise ValueError(f"Options: primitive action(s) {bad} are outside 0..{n - 1} "
                             f"of {env.name}.")
        self.options = tuple(options)
        self.max_length = max(len(seq) for seq in options)
        table = np.zeros((len(options), self.max_length), np.int32)
        for i, seq in enumerate(options):
            table[i, :len(seq)] = seq
        self._table = table
        self._lengths = np.array([len(seq) for seq in options], np.int32)

    @property
    def num_actions(self) -> int:
        return len(self.options)

    def action_space(self, params: Any = None):
        return spaces.Discrete(len(self.options))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key, state, action, params=None):
        sequence = jnp.asarray(self._table)[action]
        length = jnp.asarray(self._lengths)[action]
        keys = jax.random.split(key, self.max_length)
        # The first primitive step always runs; it fixes the shapes of the carry.
        obs, state, reward, terminated, truncated, info = self._env.step(
            keys[0], state, sequence[0], params)
        running = jnp.logical_not(jnp.logical_or(terminated, truncated))
        carry = (obs, state, reward.astype(jnp.float32), terminated, truncated, info, running,
                 jnp.ones((), jnp.int32))

        def substep(carry, x):
            obs, state, total, term, trunc, info, running, n = carry
            k, a, i = x
            o2, s2, r, te, tr, info2 = self._env.step(k, state, a, params)
            active = jnp.logical_and(running, i < length)
            keep = lambda new, old: jax.tree.map(  # noqa: E731
                lambda x, y: jnp.where(active, x, y), new, old)
            obs, state, info = keep(o2, obs), keep(s2, state), keep(info2, info)
            total = total + jnp.where(active, r, 0.0).astype(jnp.float32)
            term = jnp.logical_or(term, jnp.logical_and(active, te))
            trunc = jnp.logical_or(trunc, jnp.logical_and(active, tr))
            running = jnp.logical_and(active, jnp.logical_not(jnp.logical_or(te, tr)))
            return (obs, state, total, term, trunc, info, running, n + active), None

        if self.max_length > 1:
            rest = (keys[1:], sequence[1:], jnp.arange(1, self.max_length))
            carry, _ = jax.lax.scan(substep, carry, rest)
        obs, state, total, terminated, truncated, info, _, n = carry
        info = {**info, "terminated": terminated, "truncated": truncated, "primitive_steps": n}
        return obs, state, total, terminated, truncated, info


def action_repeats(env: Environment, repeat: int, env_params: Any = None) -> Options:
    """Every primitive action, repeated ``repeat`` times: frame-skip as options."""
    if not isinstance(repeat, (int, np.integer)) or isinstance(repeat, bool) or repeat < 1:
        raise ValueError(f"action_repeats: repeat={repeat!r} must be a positive int.")
    n = _primitive_actions(env, env.default_params if env_params is None else env_params)
    return Options(env, [[a] * int(repeat) for a in range(n)], env_params)


def macro_actions(env: Environment, sequences: Sequence[Sequence[int]],
                  keep_primitives: bool = True, env_params: Any = None) -> Options:
    """The given action sequences as options, after the primitive actions (if kept)."""
    n = _primitive_actions(env, env.default_params if env_params is None else env_params)
    primitives = [[a] for a in range(n)] if keep_primitives else []
    return Options(env, primitives + [list(seq) for seq in sequences], env_params)


def discover_macros(actions: Any, starts: Any, successful: Any, length: int,
                    count: int) -> list[tuple[int, ...]]:
    """The ``count`` most frequent ``length``-step action sequences of successful episodes.

    ``actions`` is one stream of primitive actions (time on axis 0, or
    ``(time, streams)``), ``starts`` marks the first step of each episode and
    ``successful`` marks, per step, whether its episode reached the goal.
    Sequences that cross an episode boundary are not counted. Ties are broken
    by the sequence itself, so the result is deterministic. This is the
    simplest learned option: it assumes that what succeeded often recurs, and it
    learns nothing about *when* to use each macro (the agent learns that).
    """
    if not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"discover_macros: length={length!r} must be a positive int.")
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"discover_macros: count={count!r} must be a positive int.")
    actions, starts, successful = (np.asarray(x) for x in (actions, starts, successful))
    if not actions.shape == starts.shape == successful.shape:
        raise ValueError(f"discover_macros: actions {actions.shape}, starts {starts.shape} and "
                         f"successful {successful.shape} must have the same shape.")
    if actions.ndim == 1:
        actions, starts, successful = actions[:, None], starts[:, None], successful[:, None]
    counts: Counter = Counter()
    horizon = actions.shape[0]
    for t in range(horizon - length + 1):
        window = slice(t, t + length)
        # One episode throughout (no new start after the first step) and successful.
        ok = successful[window].all(axis=0) & ~starts[t + 1:t + length].any(axis=0)
        for col in np.flatnonzero(ok):
            counts[tuple(int(a) for a in actions[window, col])] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [seq for seq, _ in ranked[:count]]
