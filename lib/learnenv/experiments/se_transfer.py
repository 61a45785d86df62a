"""Does a learned SE teach agents that use it differently? (issue: what the SE teaches)

    python -m learnenv run se-transfer --preset quick --out runs/se-transfer

Five kinds of agent train only on a shipped SE and are evaluated, greedy, on the
real environment (CartPole-200 for ``se-cartpole``):

- DDQN at the budget of SE training (10k steps), the agent the SE was trained for;
- DDQN trained ten times longer (100k steps), to convergence on the SE's reward;
- PPO, an on-policy agent that SE training never used;
- discrete SAC, an actor-critic that SE training never used;
- a linear policy a = [w . s + b > 0] found by SNES maximising the SE's return,
  an agent that never regresses a value function.

Next to it, the SE's reward is probed (:mod:`learnenv.synthetic.reward_probe`)
on the states the SE shows and on those a real controller visits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register

KINDS = ("DDQN 10k", "DDQN 100k", "PPO", "SAC (discrete)", "linear policy (SNES)")


@dataclasses.dataclass(frozen=True)
class SETransfer(Config):
    synthetic: str = "se-cartpole"  # a pretrained name or a checkpoint path
    num_agents: int = field(8, low=1, doc="seeds per kind of agent")
    short_budget: int = field(10_000, low=1, doc="DDQN and SAC steps (SE training's budget)")
    long_budget: int = field(100_000, low=1, doc="the long DDQN's steps")
    ppo_budget: int = field(50_000, low=1)
    es_generations: int = field(60, low=1)
    es_population: int = field(32, low=2)
    eval_episodes: int = field(16, low=1)
    probe_states: int = field(2048, low=16)


PRESETS = {"quick": SETransfer(), "full": SETransfer(num_agents=32)}


def _steps_config(se_config):
    """The steps-to-solve experiment's agent settings, for the SE's environment."""
    from learnenv.experiments.se_steps import StepsToSolve

    return StepsToSolve(env_name=se_config["env_name"],
                        max_steps_in_episode=se_config["max_steps_in_episode"],
                        solved_return=se_config["solved_return"])


def train_value_agents(agent: str, budget: int, se, se_params, real, real_params, config, key):
    """Greedy real returns of ``num_agents`` DQN-family or SAC agents trained on the SE."""
    import jax

    from learnenv.agents.base import evaluate
    from learnenv.experiments.se_steps import agent_config, agent_module
    from learnenv.synthetic.se_training import sample_learning_rates

    steps = _steps_config(config["se_config"])
    name = "DDQN" if agent.startswith("DDQN") else agent
    cfg = agent_config(steps, name, budget)
    module = agent_module(name)
    train = module.make_train(cfg, se, se_params)
    policy = module.make_policy(cfg, real, real_params)
    k_seed, k_lr, k_eval = jax.random.split(key, 3)
    lrs = sample_learning_rates(k_lr, config["num_agents"], steps.learning_rate, steps.lr_factor)
    hps = jax.vmap(lambda lr: cfg.hyperparams().replace(learning_rate=lr))(lrs)

    def one(key, hps):
        params = train(key, hps).params
        return evaluate(policy, params, real, real_params, k_eval, config["eval_episodes"]).mean()

    return jax.jit(jax.vmap(one))(jax.random.split(k_seed, config["num_agents"]), hps)


def train_ppo(budget: int, se, se_params, real, real_params, config, key):
    import jax

    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate

    cfg = ppo.PPOConfig(total_timesteps=budget)
    train, policy = ppo.make_train(cfg, se, se_params), ppo.make_policy(cfg, real, real_params)
    k_seed, k_eval = jax.random.split(key)

    def one(key):
        params = train(key).params
        return evaluate(policy, params, real, real_params, k_eval, config["eval_episodes"]).mean()

    return jax.jit(jax.vmap(one))(jax.random.split(k_seed, config["num_agents"]))


def train_linear_es(generations: int, population: int, se, se_params, real, real_params,
                    config, key):
    """SNES over linear policies (:mod:`learnenv.agents.linear_es`) on the SE's return."""
    import jax

    from learnenv.agents import linear_es
    from learnenv.agents.base import evaluate

    train = linear_es.make_train(se, se_params, generations, population)

    def one(key):
        k_train, k_eval = jax.random.split(key)
        return evaluate(linear_es.act, train(k_train), real, real_params, k_eval,
                        config["eval_episodes"]).mean()

    return jax.jit(jax.vmap(one))(jax.random.split(key, config["num_agents"]))


def run(config: SETransfer, out_dir: Path, key: Any) -> dict[str, Any]:
    import time

    import jax
    import numpy as np

    from learnenv import envs, io, pretrained
    from learnenv.experiments.se_steps import load_synthetic
    from learnenv.synthetic import reward_probe, scb_eval
    from learnenv.synthetic.se_training import real_env_kwargs

    se, se_params = load_synthetic(config.synthetic)
    meta = (pretrained.load_checkpoint(config.synthetic) if config.synthetic in pretrained.names()
            else io.load(config.synthetic))
    se_config = dict(meta.config)
    real, real_params = envs.make(se_config["env_name"], **real_env_kwargs(_steps_config(se_config)))
    shared = {"se_config": se_config, "num_agents": config.num_agents,
              "eval_episodes": config.eval_episodes}
    keys = dict(zip(KINDS, jax.random.split(key, len(KINDS) + 1)))
    jobs = {
        "DDQN 10k": lambda k: train_value_agents("DDQN", config.short_budget, se, se_params, real,
                                                 real_params, shared, k),
        "DDQN 100k": lambda k: train_value_agents("DDQN", config.long_budget, se, se_params, real,
                                                  real_params, shared, k),
        "PPO": lambda k: train_ppo(config.ppo_budget, se, se_params, real, real_params, shared, k),
        "SAC (discrete)": lambda k: train_value_agents("SAC (discrete)", config.short_budget, se,
                                                       se_params, real, real_params, shared, k),
        "linear policy (SNES)": lambda k: train_linear_es(
            config.es_generations, config.es_population, se, se_params, real, real_params,
            shared, k),
    }
    solved_return = float(se_config["solved_return"])
    table = {}
    for kind, job in jobs.items():
        t0 = time.perf_counter()
        returns = np.asarray(job(keys[kind]))
        table[kind] = {"returns": returns, "solved": int((returns >= solved_return).sum()),
                       "agents": len(returns), "mean_return": float(returns.mean()),
                       "seconds": time.perf_counter() - t0}
        print(f"{kind}: {table[kind]['solved']}/{len(returns)} solved, mean {returns.mean():.1f}")

    controller = reward_probe.cartpole_controller
    shown = scb_eval.context_samples(se, se_params, jax.random.key(1), config.probe_states)
    visited = scb_eval.real_state_samples(lambda p, o, k, g: controller(o), None, real, real_params,
                                          jax.random.key(2), 16)
    probes = {}
    for where, states in (("states the SE shows", shown), ("states a controller visits", visited)):
        p = reward_probe.probe(se, se_params, states)
        probes[where] = {"states": len(states), "sign_agreement": p["agreement"],
                         "share_action_1": p["share_action_1"], "slope": p["fit"]["slope"],
                         "offset": p["fit"]["offset"], "r2": p["fit"]["r2"]}
    return {"solved_return": solved_return, "transfer": table, "probe": probes}


register("se-transfer", "Five kinds of agent trained only on a shipped SE, tested on the real env.",
         presets=PRESETS, run=run)
