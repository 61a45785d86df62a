"""Training an agent inside a learned model: Dyna's loop, as MBPO runs it.

Model-based RL in its simplest complete form (Sutton's Dyna; MBPO and PETS
add the ensemble)::

    data <- episodes of a random policy in the real environment
    repeat iterations times:
        fit the world model to all the data so far
        train a fresh agent only inside the model           (no real steps)
        evaluate the agent in the real environment          (not counted: a test)
        data += episodes of the agent in the real environment   (if recollect)

Re-collecting with the improving agent is what lets the model learn the states
a good policy visits (a balanced pole far from the start, for CartPole), which
a random policy never shows it. Every real step used for data is counted;
evaluation episodes are not, as in the papers.

``make_train(config)`` returns a pure ``train(key)``: the whole loop is one
``lax.scan`` over iterations, so ``jax.jit(jax.vmap(train))`` runs many seeds
at once.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from learnenv import envs
from learnenv.agents import ppo
from learnenv.agents.base import evaluate
from learnenv.config import Config, field
from learnenv.worldmodels.data import Episodes, collect, random_policy
from learnenv.worldmodels.environment import WorldModelEnvironment
from learnenv.worldmodels.families import FAMILIES
from learnenv.worldmodels.fit import FitConfig, make_fit

__all__ = ["DynaConfig", "make_train"]


@dataclasses.dataclass(frozen=True)
class DynaConfig(Config):
    env_name: str = "CartPole-v1"
    family: str = field("one-step", choices=tuple(FAMILIES))
    hidden_sizes: tuple = (64, 64)
    ensemble_size: int = field(5, low=1)
    iterations: int = field(3, low=1, doc="collect, fit, train the agent: this many times")
    random_episodes: int = field(50, low=1, doc="real episodes of a random policy first")
    episodes_per_iteration: int = field(8, low=0, doc="real episodes of the agent per iteration")
    recollect: bool = field(True, choices=(True, False),
                            doc="collect with the agent (False: keep collecting at random)")
    collect_epsilon: float = field(0.1, low=0.0, high=1.0, doc="random actions while collecting")
    fit_steps: int = field(1_000, low=1)
    fit_batch_size: int = field(256, low=1)
    fit_window: int = field(1, low=1)
    fit_burn_in: int = field(0, low=0)
    agent_timesteps: int = field(100_000, low=1, doc="PPO steps inside the model per iteration")
    agent_learning_rate: float = field(2.5e-4, low=0.0, low_inclusive=False)
    eval_episodes: int = field(16, low=1)

    def fit_config(self) -> FitConfig:
        return FitConfig(steps=self.fit_steps, batch_size=self.fit_batch_size,
                         window=self.fit_window, burn_in=self.fit_burn_in,
                         ensemble_size=self.ensemble_size)

    def agent_config(self) -> ppo.PPOConfig:
        return ppo.PPOConfig(total_timesteps=self.agent_timesteps,
                             learning_rate=self.agent_learning_rate)


def make_train(config: DynaConfig):
    """``train(key) -> dict`` of per-iteration arrays: ``real_steps`` (data collected
    so far, every step counted), ``real_return`` (mean greedy return of the agent in
    the real environment) and ``model_return`` (its last training return inside the
    model), plus the final agent's ``policy_params``."""
    real_env, real_params = envs.make(config.env_name)
    model_env = WorldModelEnvironment(config.env_name, family=config.family,
                                      hidden_sizes=config.hidden_sizes,
                                      ensemble_size=config.ensemble_size)
    fit = make_fit(model_env.model, config.fit_config())
    agent_config = config.agent_config()
    agent_train = ppo.make_train(agent_config, model_env, model_env.default_params)
    agent_policy = ppo.make_policy(agent_config, real_env, real_params)
    explore = random_policy(real_env, real_params)
    n_random, n_iter = config.random_episodes, config.episodes_per_iteration

    def collect_with(policy_params, use_agent, key, n):
        def policy(params, obs, key, greedy):
            return jax.lax.cond(use_agent, lambda: agent_policy(params, obs, key, False),
                                lambda: explore(params, obs, key))
        return collect(real_env, real_params, policy, policy_params, key, n,
                       epsilon=config.collect_epsilon)

    def train(key):
        key, data_key, init_key = jax.random.split(key, 3)
        first = collect(real_env, real_params, explore, None, data_key, n_random)
        # Room for every episode of the run; episodes not yet collected are all-masked.
        empty = jax.tree.map(lambda x: jnp.zeros((n_iter * config.iterations,) + x.shape[1:],
                                                 x.dtype), first)
        buffer = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, empty)
        def iteration(carry, xs):
            buffer, _ = carry
            i, key = xs
            fit_key, agent_key, eval_key, data_key = jax.random.split(key, 4)
            nets, stats, _ = fit(fit_key, buffer)
            env_params = model_env.fitted_params(nets, stats)
            result = agent_train(agent_key, env_params=env_params)
            real_return = evaluate(agent_policy, result.params, real_env, real_params, eval_key,
                                   config.eval_episodes).mean()
            model_return = result.metrics["episode_return"][-1]
            if n_iter:
                new = collect_with(result.params, jnp.asarray(config.recollect), data_key, n_iter)
                start = n_random + i * n_iter
                buffer = jax.tree.map(
                    lambda b, x: jax.lax.dynamic_update_slice_in_dim(b, x, start, axis=0),
                    buffer, new)
            out = {"real_steps": buffer.mask.sum(), "real_return": real_return,
                   "model_return": model_return}
            return (buffer, result.params), out

        # The carry needs a policy of the right shape before the first agent exists.
        template = jax.eval_shape(lambda k: agent_train(k, env_params=model_env.default_params)
                                  .params, init_key)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
        (buffer, policy_params), outs = jax.lax.scan(
            iteration, (buffer, zeros),
            (jnp.arange(config.iterations), jax.random.split(key, config.iterations)))
        # real_steps after iteration i counts the data the *next* fit would see; the
        # agent of iteration i was trained on the data collected before it.
        steps_used = jnp.concatenate([first.mask.sum()[None], outs["real_steps"][:-1]])
        return {**outs, "real_steps": steps_used, "policy_params": policy_params}

    return train
