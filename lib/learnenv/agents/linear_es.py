"""A linear policy found by an evolution strategy: an agent with no value function.

SNES (evosax) searches the weights of ``a = argmax(s @ w + b)`` to maximise the
mean return of the policy over a few episodes of the environment it trains in.
It never regresses a reward or a value, so it learns what the environment's
returns reward and nothing a network could extrapolate: a probe of what a
learned environment teaches (the SE and SCB chapters use it so).

``make_train(env, env_params, ...)`` returns a pure ``train(key) -> params``,
to ``jit`` and ``vmap`` over seeds like the other agents; ``act`` is its policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from evosax.algorithms import SNES

from learnenv.agents.base import evaluate

__all__ = ["act", "make_train"]


def act(params, obs, key=None, greedy=True):
    """The greedy linear policy (it is deterministic: ``key`` and ``greedy`` are unused)."""
    return jnp.argmax(obs @ params["w"] + params["b"], axis=-1)


def make_train(env, env_params, num_generations: int = 60, population_size: int = 32,
               num_episodes: int = 8):
    """``train(key) -> params``: SNES over linear policies of a discrete-action env.

    Fitness is the mean return over ``num_episodes`` episodes of ``env`` (the same
    episodes for every member of a generation, so they differ by their weights only).
    """
    obs_dim = env.observation_space(env_params).shape[0]
    num_actions = env.action_space(env_params).n
    template = {"w": jnp.zeros((obs_dim, num_actions)), "b": jnp.zeros(num_actions)}
    es = SNES(population_size=population_size, solution=template)
    es_params = es.default_params

    def train(key):
        k_init, k_loop = jax.random.split(key)
        state = es.init(k_init, template, es_params)

        def generation(state, key):
            k_ask, k_episodes, k_tell = jax.random.split(key, 3)
            members, state = es.ask(k_ask, state, es_params)
            fitness = jax.vmap(lambda p: evaluate(act, p, env, env_params, k_episodes,
                                                  num_episodes).mean())(members)
            state, _ = es.tell(k_tell, members, -fitness, state, es_params)  # evosax minimises
            return state, None

        state, _ = jax.lax.scan(generation, state, jax.random.split(k_loop, num_generations))
        return es.get_mean(state)

    return train
