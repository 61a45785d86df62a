"""Exercises of the chapter "Discovering environments: synthetic contextual bandits"
(chapters/synthetic-bandits.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learnenv.exercises import Exercise, assert_close, register, rounded


def _shipped_scb():
    from learnenv import pretrained

    return pretrained.load("scb-cartpole-v1")


def check_scb(scb_reset, scb_reward) -> str:
    """Contexts and rewards against the shipped CartPole SCB's reset and reward."""
    env, params = _shipped_scb()
    net = params.network_params
    for i in range(8):
        key = jax.random.key(i)
        obs, _ = env.reset(key, params)
        assert_close("scb_reset(network_params, key)", scb_reset(net, key), obs,
                     f"key jax.random.key({i})")
        for action in (0, 1):
            assert_close("scb_reward(network_params, obs, action)", scb_reward(net, obs, action),
                         env.reward(net, obs, action), f"obs {rounded(obs, 3)}, action {action}")
    return "8 contexts and both actions on the shipped CartPole SCB"


register(Exercise(
    label="ex-scb-step", chapter="synthetic-bandits",
    objective="Write an SCB as two pure functions, and see how little an SCB is.",
    minutes=25, difficulty="easy",
    grading="The check covers both functions. A complete answer notes that step never changes "
            "the state and always terminates: an SCB has no dynamics.",
    names=("scb_reset", "scb_reward"),
    stub='''\
import jax
import jax.numpy as jnp


def scb_reset(network_params, key):
    """The context: network_params["context"] (an MLP 4 -> 32 -> 4, ReLU) applied to
    z ~ N(0, I) drawn with jax.random.normal(key, (4,))."""
    raise NotImplementedError("Exercise {n}: write scb_reset")


def scb_reward(network_params, obs, action):
    """The reward: network_params["reward"] (6 -> 32 -> 1, ReLU) applied to obs
    concatenated with the one-hot action; a scalar."""
    raise NotImplementedError("Exercise {n}: write scb_reward")
''',
    check=check_scb,
    mutants=(("jax.nn.one_hot(action, 2)", "jax.nn.one_hot(1 - action, 2)"),
             ("jax.nn.relu(", "jnp.tanh("),
             ("(key, (4,))", "(jax.random.split(key)[0], (4,))")),
))


def check_td_target(td_target) -> str:
    """Random batches against y = r + gamma (1 - terminated) max_a Q(s', a)."""
    for i, gamma in enumerate((0.99, 0.5, 0.0)):
        k1, k2, k3 = jax.random.split(jax.random.key(i), 3)
        reward = jax.random.normal(k1, (16,))
        terminated = jax.random.bernoulli(k2, 0.5, (16,)).astype(jnp.float32)
        next_q = jax.random.normal(k3, (16, 3))
        want = reward + gamma * (1.0 - terminated) * next_q.max(axis=1)
        assert_close("td_target(reward, terminated, next_q, gamma)",
                     td_target(reward, terminated, next_q, gamma), want,
                     f"gamma={gamma}, 16 transitions, half of them terminal")
    return "3 discounts, terminal and non-terminal transitions"


register(Exercise(
    label="ex-scb-q", chapter="synthetic-bandits",
    objective="See why an SCB's reward is the Q-value, whatever the discount.",
    minutes=35, difficulty="medium",
    grading="The check covers the target. The run shows |Q - r| small compared with the reward "
            "spread for both discounts, and the answer says why: every SCB transition is "
            "terminal, so the bootstrap term is multiplied by zero and gamma never enters.",
    names=("td_target",),
    stub='''\
def td_target(reward, terminated, next_q, gamma):
    """DQN's regression target for a batch: reward (B,), terminated (B,) in {0, 1},
    next_q (B, num_actions) from the target network, gamma a float."""
    raise NotImplementedError("Exercise {n}: write td_target")
''',
    check=check_td_target,
    mutants=(("(1.0 - terminated) * ", ""), ("next_q.max(axis=-1)", "next_q.mean(axis=-1)")),
))


def check_policy_fitness(scb_policy_fitness) -> str:
    """Mean SCB reward of random linear policies on contexts of the shipped SCB."""
    env, params = _shipped_scb()
    contexts = jax.vmap(lambda k: env.reset(k, params)[0])(jax.random.split(jax.random.key(0), 64))
    for i in range(4):
        kw, kb = jax.random.split(jax.random.key(10 + i))
        policy = {"w": jax.random.normal(kw, (4,)), "b": 0.1 * jax.random.normal(kb, ())}
        actions = (contexts @ policy["w"] + policy["b"] > 0).astype(jnp.int32)
        want = jax.vmap(env.reward, in_axes=(None, 0, 0))(params.network_params, contexts, actions)
        assert_close("scb_policy_fitness(policy, contexts, env, env_params)",
                     scb_policy_fitness(policy, contexts, env, params), want.mean(),
                     f"w={rounded(policy['w'], 2)}, b={float(policy['b']):.2f}, 64 contexts")
    return "4 random linear policies on 64 contexts of the shipped SCB"


register(Exercise(
    label="ex-scb-es", chapter="synthetic-bandits",
    objective="Train an agent of a kind meta-training never used (evolution) on an SCB and "
              "test it on the real environment.",
    minutes=40, difficulty="hard",
    grading="The check covers the fitness. The run evolves the linear policy with evosax's "
            "public ask/tell (get_mean for the result, no private API), evaluates it on the real "
            "CartPole-v1, and reports the generations it needed and the real return.",
    names=("scb_policy_fitness",),
    stub='''\
import jax
import jax.numpy as jnp


def scb_policy_fitness(policy, contexts, env, env_params):
    """Mean SCB reward of the linear policy a = [w . s + b > 0] (policy = {"w": (4,),
    "b": ()}) over a batch of contexts (N, 4); use env.reward(network_params, obs, action)."""
    raise NotImplementedError("Exercise {n}: write scb_policy_fitness")
''',
    check=check_policy_fitness,
    mutants=(('+ policy["b"] > 0', '+ policy["b"] < 0'), (' + policy["b"]', "")),
))
