"""Exercises of the chapter "Environments as functions" (chapters/primer.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from learnenv.exercises import CheckFailed, Exercise, assert_close, register


def check_corridor(Corridor) -> str:
    """Random action sequences through gymnax's ``step`` (auto-reset, truncation),
    compared with the corridor's rules simulated in NumPy."""
    env = Corridor()
    try:
        params = env.default_params.replace(length=5, max_steps_in_episode=12)
    except (AttributeError, TypeError, ValueError) as err:
        raise CheckFailed("default_params must be a struct with fields `length` and "
                          f"`max_steps_in_episode` ({err}).") from None
    obs, state = env.reset(jax.random.key(0), params)
    assert_close("the first observation", obs, [0.0], "length=5")
    num_steps, num_episodes = 40, 32
    actions = jax.random.bernoulli(jax.random.key(1), 0.7, (num_episodes, num_steps)).astype(jnp.int32)

    def run(key, actions):
        _, state = env.reset(key, params)

        def one(state, a):
            obs, state, reward, terminated, truncated, _ = env.step(key, state, a, params)
            return state, (obs, reward, terminated, truncated)

        return jax.lax.scan(one, state, actions)[1]

    keys = jax.random.split(jax.random.key(2), num_episodes)
    got = jax.jit(jax.vmap(run))(keys, actions)
    for e, acts in enumerate(np.asarray(actions)):
        position, t = 0, 0
        for i, a in enumerate(acts):
            position, t = min(max(position + 2 * int(a) - 1, 0), 5), t + 1
            terminated, truncated = position == 5, t >= 12
            inputs = f"actions {acts[: i + 1].tolist()} (length=5, max_steps_in_episode=12)"
            assert_close("reward", got[1][e, i], float(terminated), inputs)
            assert_close("terminated", got[2][e, i], terminated, inputs)
            assert_close("truncated", got[3][e, i], truncated, inputs)
            if terminated or truncated:
                position, t = 0, 0  # gymnax's step returns the reset observation
            assert_close("observation", got[0][e, i], [position / 5], inputs)
    return f"{num_episodes} random episodes of {num_steps} steps, jitted and vmapped"


register(Exercise(
    label="ex-primer-corridor", chapter="primer",
    objective="Write an environment as pure reset/step functions with explicit params, and "
              "train an unmodified agent in it.",
    minutes=40, difficulty="medium",
    grading="The check covers the dynamics. The answer must also train PPO on the corridor, "
            "and say that the mean training return is the fraction of episodes that reach the "
            "end (rewards are 0 or 1), so the first point of the curve estimates how often a "
            "random walk reaches the end in time.",
    names=("Corridor",),
    stub='''\
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


class Corridor(environment.Environment):
    """Cells 0..length; start in 0; action 1 moves right, 0 left (not past 0); reward 1
    and the end of the episode on reaching cell `length`. Observation: position / length."""

    def __init__(self):
        raise NotImplementedError("Exercise {n}: write Corridor (see the exercise text)")
''',
    check=check_corridor,
    mutants=(("jnp.clip(state.position + 2 * action - 1, 0, params.length)",
              "jnp.minimum(state.position + 2 * action - 1, params.length)"),
             ("2 * action - 1", "1 - 2 * action"),
             ("reward = terminated.astype(jnp.float32)", "reward = jnp.float32(0.0)")),
))


def _tiny_ppo():
    from learnenv.agents import ppo

    return ppo.PPOConfig(total_timesteps=4 * 32 * 3, num_envs=4, num_steps=32, update_epochs=1,
                         num_minibatches=2, hidden_sizes=(16,))


def check_grid(grid_returns) -> str:
    """A 2 x 3 grid on a tiny PPO, against every pair trained on its own."""
    from learnenv import envs
    from learnenv.agents import ppo

    config = _tiny_ppo()
    lrs, ents = jnp.array([1e-4, 3e-2]), jnp.array([0.0, 0.2, 1.0])
    key = jax.random.key(3)
    got = grid_returns(config, lrs, ents, key)
    env, env_params = envs.make("CartPole-v1")
    train = jax.jit(ppo.make_train(config, env, env_params))
    want = np.array([[train(key, config.hyperparams().replace(learning_rate=lr, ent_coef=ent))
                      .metrics["episode_return"][-1] for ent in ents] for lr in lrs])
    assert_close("grid_returns(config, learning_rates, ent_coefs, key)", got, want,
                 "learning_rates (1e-4, 3e-2) as rows, ent_coefs (0, 0.2, 1) as columns",
                 atol=1e-3, rtol=1e-3)
    return "a 2 x 3 grid matches six separate runs"


register(Exercise(
    label="ex-primer-grid", chapter="primer",
    objective="Vectorise whole training runs over hyperparameters with vmap: a grid in one "
              "compiled call.",
    minutes=30, difficulty="medium",
    grading="The check covers the grid function. The table must have learning rates as rows "
            "and entropy coefficients as columns, and the answer should note that one seed per "
            "cell is noisy (a third vmap over keys averages it).",
    names=("grid_returns",),
    stub='''\
def grid_returns(config, learning_rates, ent_coefs, key):
    """Train PPO on CartPole-v1 with `config` for every (learning rate, ent_coef) pair in ONE
    jitted call (the same `key` for all) and return an array of shape
    (len(learning_rates), len(ent_coefs)): each run's metrics["episode_return"][-1]."""
    raise NotImplementedError("Exercise {n}: write grid_returns")
''',
    check=check_grid,
    mutants=(('indexing="ij"', 'indexing="xy"'),
             ("learning_rate=lr, ent_coef=ent_coef", "learning_rate=ent_coef, ent_coef=lr")),
))


register(Exercise(
    label="ex-primer-timing", chapter="primer",
    objective="Measure the speed of jitted code correctly.",
    minutes=15, difficulty="easy",
    grading="Names dead-code elimination: XLA deletes work whose result reaches no output, so "
            "the timing would report an empty program (absurd steps per second, growing with "
            "the batch). Names asynchronous dispatch for block_until_ready, and compilation "
            "in the first call as the reason to discard it.",
))


def check_pole_params(pole_params) -> str:
    """Batched CartPole params with the derived field, and in_axes that vmap accepts."""
    from learnenv import envs

    env, env_params = envs.make("CartPole-v1")
    lengths = jnp.array([0.25, 0.6, 1.1, 2.0])
    batched, axes = pole_params(env_params, lengths)
    inputs = f"lengths {lengths.tolist()}"
    assert_close("batched.length", batched.length, lengths, inputs)
    assert_close("batched.polemass_length", batched.polemass_length,
                 env_params.masspole * lengths, inputs + " (it is masspole * length)")
    for name in ("gravity", "masscart", "masspole", "force_mag", "tau"):
        assert_close(f"batched.{name}", getattr(batched, name), getattr(env_params, name), inputs)
    want_axes = jax.tree.map(lambda _: None, env_params).replace(length=0, polemass_length=0)
    if axes != want_axes:
        raise CheckFailed(f"in_axes should be 0 for length and polemass_length and None for "
                          f"every other field; got {axes}.")
    obs, _ = jax.vmap(env.reset, in_axes=(None, axes))(jax.random.key(0), batched)
    if obs.shape != (4, 4):
        raise CheckFailed(f"vmapping reset over your params gave observations {obs.shape}, "
                          "expected (4, 4).")
    return "4 pole lengths, derived field and in_axes"


register(Exercise(
    label="ex-primer-poles", chapter="primer",
    objective="Batch environment parameters, including derived fields, to train a population "
              "of agents on a population of environments.",
    minutes=30, difficulty="medium",
    grading="The check covers the parameters. The answer trains the 8 agents in one call, "
            "evaluates each on the default CartPole, and reads the result as an empirical "
            "question (which lengths teach a policy that transfers), not a rule.",
    names=("pole_params",),
    stub='''\
def pole_params(env_params, lengths):
    """Return (batched, in_axes): CartPole params with one pole half-length per entry of
    `lengths` (derived fields too), and the in_axes tree that vmap needs for them."""
    raise NotImplementedError("Exercise {n}: write pole_params")
''',
    check=check_pole_params,
    mutants=(("polemass_length=env_params.masspole * lengths",
              "polemass_length=env_params.polemass_length"),
             ("jax.tree.map(lambda _: None, env_params)", "jax.tree.map(lambda _: 0, env_params)")),
))
