"""A reward learned from preferences teaches PPO to play Catch (Motif's loop, small).

    python -m learnenv run preference-reward --preset quick --out runs/preference-reward

Per seed, all seeds in one vmapped call: random play in bsuite's Catch is cut
into segments (by default single frames, as Motif compares single
observations), pairs of segments are labelled by a rule-based stand-in for an
LLM that sees the frames only (:func:`learnenv.rewards.preferences.catch_rule`,
with a share of answers flipped), and a reward model r_phi(o) is fitted to the
labels with the Bradley-Terry loss. PPO (unchanged; its learning rate raised to
1e-3 so that 51k steps suffice) then trains on

- the true reward (+1 for a catch, -1 for a miss, on an episode's last step),
- the learned reward, normalised to mean 0 and std 1 on the labelled frames,
- a constant reward of +1 per step,

three arms that differ only in the :class:`~learnenv.rewards.replace.LearnedReward`
parameters, so they train in one compiled call; a uniformly random policy is the
fourth arm. Every arm is scored on the true return (greedy policies).

Why Catch: every episode lasts 9 steps whatever the agent does, so a constant
reward carries no information (unlike CartPole, where +1 per step rewards
survival, or MountainCar and Acrobot, where -1 per step *is* the task's
reward), and the true reward is sparse, so the learned one has something to
add. PPO learns it in tens of thousands of steps, so the quick preset (8 seeds,
all arms) takes about half a minute of one CPU core. Why random data: random play already shows
every ball column over every paddle column at every height, and catches in
about a fifth of its episodes, so the labeller sees both outcomes; a task where
random play never reaches the interesting states (Motif's NetHack, whose data
came from agents trained on the game score) would add segments of trained
policies (``collect_segments`` takes several). Why single frames: with the
same number of labels, whole-episode segments (``segment_length=9``, Christiano
et al.'s setting) leave the model to work out which frame earned the
preference, and in our trials it learned a visibly worse reward.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

from learnenv.config import Config, field
from learnenv.experiments import register

ARMS = ("true reward", "learned reward", "constant reward", "random policy")
# LearnedReward mixes (extrinsic_weight, learned_weight, offset) of the three PPO arms.
MIXES = {"true reward": (1.0, 0.0, 0.0), "learned reward": (0.0, 1.0, 0.0),
         "constant reward": (0.0, 0.0, 1.0)}


@dataclasses.dataclass(frozen=True)
class PreferenceReward(Config):
    env_name: str = field("Catch-bsuite", choices=("Catch-bsuite",),
                          doc="the task (the labeller's rule is written for Catch)")
    num_seeds: int = field(8, low=1, doc="independent pipelines (data, labels, model, PPO)")
    num_pairs: int = field(1024, low=1, doc="preference labels per seed")
    test_pairs: int = field(1024, low=1, doc="held-out pairs, to score the reward model")
    segment_length: int = field(1, low=1, high=9,
                                doc="steps per segment (1: Motif's single observations; "
                                    "9: a whole Catch episode)")
    label_noise: float = field(0.1, low=0.0, high=0.5, doc="share of labels flipped")
    reward_hidden: int = field(32, low=1, doc="width of the reward model's two hidden layers")
    reward_steps: int = field(1000, low=1, doc="Bradley-Terry gradient steps")
    reward_batch: int = field(64, low=1, doc="pairs per gradient step")
    ppo_timesteps: int = field(51_200, low=512, doc="PPO environment steps per arm and seed")
    ppo_learning_rate: float = field(1e-3, low=0.0, low_inclusive=False,
                                     doc="PPO's (other settings: PPOConfig's defaults)")
    eval_episodes: int = field(64, low=1, doc="greedy evaluation episodes per agent")


PRESETS = {
    "quick": PreferenceReward(),
    "full": PreferenceReward(num_seeds=32, num_pairs=4096, test_pairs=4096, reward_hidden=64,
                             reward_steps=4000, reward_batch=256, ppo_timesteps=204_800,
                             eval_episodes=256),
}

EPISODE_STEPS = 9  # Catch's 10 rows: the ball reaches the paddle's row after 9 steps
ROWS, COLUMNS = 10, 5


def catch_frames():
    """Every frame Catch can show, with the ball's row and the column gap to the paddle.

    Rows 0-8: the ball above the paddle (any columns); row 9: the ball in the
    paddle's row, caught (one lit cell) or missed. ``(frames, rows, gaps)`` as
    NumPy arrays, ``frames`` of shape (250, 10, 5).
    """
    import numpy as np

    frames, rows, gaps = [], [], []
    for row in range(ROWS):
        for ball in range(COLUMNS):
            for paddle in range(COLUMNS):
                frame = np.zeros((ROWS, COLUMNS), np.float32)
                frame[row, ball] = frame[ROWS - 1, paddle] = 1.0
                frames.append(frame)
                rows.append(row)
                gaps.append(abs(ball - paddle))
    return np.stack(frames), np.array(rows), np.array(gaps)


def reward_map(values, rows, gaps):
    """Mean of ``values`` (one per frame of :func:`catch_frames`) by (ball row, column
    gap): an array (10, 5), row 9 and gap 0 being a catch."""
    import numpy as np

    values = np.asarray(values, np.float64)
    out = np.full((ROWS, COLUMNS), np.nan)
    for row in range(ROWS):
        for gap in range(COLUMNS):
            chosen = (rows == row) & (gaps == gap)
            out[row, gap] = values[..., chosen].mean()
    return out


def make_reward_learner(config: PreferenceReward, env, env_params):
    """``(model, learn)``; ``learn(key) -> (reward params, frame rewards, stats)`` is one
    seed's data, labels and fit, pure.

    Frame rewards: r_phi on the labelled frames (to normalise the reward) and on
    every frame of :func:`catch_frames` (to show it). Stats: the labeller's
    agreement with the true return ordering on the labelled pairs (noise
    included) and on held-out pairs (noise-free), the reward model's on held-out
    pairs, the share of labelled pairs whose returns differ, and the fit's first
    and last losses.
    """
    import jax
    import jax.numpy as jnp

    from learnenv.rewards import preferences as prefs
    from learnenv.worldmodels.data import random_policy

    labeller = prefs.RuleLabeller(prefs.catch_rule, frame_ndim=2, noise=config.label_noise)
    clean = prefs.RuleLabeller(prefs.catch_rule, frame_ndim=2)
    model_config = prefs.RewardModelConfig(hidden_sizes=(config.reward_hidden,) * 2,
                                           num_steps=config.reward_steps,
                                           batch_size=config.reward_batch)
    model, fit = prefs.make_fit(model_config, env.observation_space(env_params).shape)
    sources = [(random_policy(env, env_params), None)]
    num_segments = 2 * (config.num_pairs + config.test_pairs)
    every_frame = jnp.asarray(catch_frames()[0])

    def learn(key):
        k_data, k_pairs, k_label, k_fit = jax.random.split(key, 4)
        segments = prefs.collect_segments(env, env_params, sources, k_data, num_segments,
                                          config.segment_length, max_steps=EPISODE_STEPS)
        a, b = prefs.split_pairs(segments, k_pairs)
        train, test = slice(0, config.num_pairs), slice(config.num_pairs, None)
        a_train, b_train, a_test, b_test = a.take(train), b.take(train), a.take(test), b.take(test)
        labels = prefs.label(a_train, b_train, labeller, k_label)
        result = fit(k_fit, labels)
        predicted = jax.nn.sigmoid(prefs.segment_returns(model, result.params, a_test.obs)
                                   - prefs.segment_returns(model, result.params, b_test.obs))
        rewards = {"labelled": model.apply(result.params, jnp.concatenate([labels.obs_a,
                                                                           labels.obs_b])),
                   "every_frame": model.apply(result.params, every_frame)}
        stats = {
            "labeller_agreement": prefs.agreement(labels.preference, a_train.returns(),
                                                  b_train.returns()),
            "labeller_agreement_clean": prefs.agreement(clean(a_test.obs, b_test.obs),
                                                        a_test.returns(), b_test.returns()),
            "model_agreement": prefs.agreement(predicted, a_test.returns(), b_test.returns()),
            "pairs_with_different_returns": jnp.mean(a_train.returns() != b_train.returns()),
            "first_loss": result.losses[0], "last_loss": result.losses[-1],
        }
        return result.params, rewards, stats

    return model, learn


def run(config: PreferenceReward, out_dir: Path, key: Any) -> dict[str, Any]:
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    from scipy.stats import spearmanr

    from learnenv import envs
    from learnenv.agents import ppo
    from learnenv.agents.base import evaluate
    from learnenv.rewards.preferences import catch_rule, observation_reward
    from learnenv.rewards.replace import LearnedReward
    from learnenv.worldmodels.data import random_policy

    env, env_params = envs.make(config.env_name)
    model, learn = make_reward_learner(config, env, env_params)
    k_reward, k_ppo, k_eval, k_random = jax.random.split(key, 4)
    seeds = config.num_seeds

    t0 = time.perf_counter()
    reward_params, rewards, stats = jax.jit(jax.vmap(learn))(jax.random.split(k_reward, seeds))
    jax.block_until_ready(stats)
    reward_seconds = time.perf_counter() - t0

    wrapped = LearnedReward(env, observation_reward(model),
                            jax.tree.map(lambda x: x[0], reward_params))
    mixes = jnp.asarray([MIXES[arm] for arm in ARMS[:3]], jnp.float32)

    def arm_params(mix, params, labelled):
        """One seed's reward model in one arm's mix, normalised on its labelled frames."""
        return wrapped.default_params.replace(reward_params=params).normalised(labelled).replace(
            extrinsic_weight=mix[0], learned_weight=mix[1], offset=mix[2])

    # (arms, seeds): the three arms of a seed share its reward model and its PPO key.
    per_arm = jax.vmap(lambda mix: jax.vmap(partial(arm_params, mix))(
        reward_params, rewards["labelled"]))(mixes)
    ppo_config = ppo.PPOConfig(total_timesteps=config.ppo_timesteps,
                               learning_rate=config.ppo_learning_rate)
    train = ppo.make_train(ppo_config, wrapped, wrapped.default_params)
    policy = ppo.make_policy(ppo_config, env, env_params)

    # Training and evaluation are two programs: XLA compiles them faster apart.
    t0 = time.perf_counter()
    trained = jax.jit(jax.vmap(jax.vmap(lambda k, p: train(k, env_params=p).params),
                               in_axes=(None, 0)))(jax.random.split(k_ppo, seeds), per_arm)
    returns = np.asarray(jax.jit(jax.vmap(jax.vmap(
        lambda p, k: evaluate(policy, p, env, env_params, k, config.eval_episodes).mean()),
        in_axes=(0, None)))(trained, jax.random.split(k_eval, seeds)))
    randomly = random_policy(env, env_params)
    random_returns = np.asarray(jax.jit(jax.vmap(
        lambda k: evaluate(randomly, None, env, env_params, k, config.eval_episodes,
                           greedy=False).mean()))(jax.random.split(k_random, seeds)))
    ppo_seconds = time.perf_counter() - t0

    table = {arm: returns[i] for i, arm in enumerate(ARMS[:3])}
    table["random policy"] = random_returns
    means = {arm: float(np.mean(r)) for arm, r in table.items()}
    span = means["true reward"] - means["random policy"]
    normalised = {arm: (m - means["random policy"]) / span if span > 0 else float("nan")
                  for arm, m in means.items()}

    frames, rows, gaps = catch_frames()
    labelled = np.asarray(rewards["labelled"]).reshape(seeds, -1)
    learned = ((np.asarray(rewards["every_frame"]) - labelled.mean(1, keepdims=True))
               / np.maximum(labelled.std(1, keepdims=True), 1e-6))  # as PPO saw it
    rule = np.asarray(jax.vmap(catch_rule)(jnp.asarray(frames)))
    stats = {k: np.asarray(v) for k, v in stats.items()}
    results = {
        "env_name": config.env_name,
        "num_seeds": seeds,
        "labels_per_seed": config.num_pairs,
        "segment_length": config.segment_length,
        "returns": {arm: r.tolist() for arm, r in table.items()},
        "mean_return": means,
        "normalised_score": normalised,
        "labeller_agreement": float(np.nanmean(stats["labeller_agreement"])),
        "labeller_agreement_clean": float(np.nanmean(stats["labeller_agreement_clean"])),
        "model_agreement": float(np.nanmean(stats["model_agreement"])),
        "pairs_with_different_returns": float(np.mean(stats["pairs_with_different_returns"])),
        "rule_rank_correlation": [float(spearmanr(rule, r)[0]) for r in learned],
        "rule_map": reward_map(rule, rows, gaps).tolist(),
        "learned_map": reward_map(learned.mean(0), rows, gaps).tolist(),
        "per_seed": {k: v.tolist() for k, v in stats.items()},
        "seconds": {"reward_learning": reward_seconds, "ppo_and_evaluation": ppo_seconds},
    }
    figure(results).savefig(Path(out_dir) / "preference-reward.png", dpi=120)
    return results


def figure(results):
    """The labeller's rule and the learned reward (mean over seeds) by ball row and gap."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("labeller's rule (per frame)", results["rule_map"]),
              (f"learned reward, mean of {results['num_seeds']} seeds", results["learned_map"]))
    for ax, (title, values) in zip(axes, panels):
        image = ax.imshow(np.asarray(values), cmap="viridis", aspect="auto")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("column gap, ball to paddle")
        ax.set_xticks(range(COLUMNS))
        ax.set_yticks([0, ROWS - 1], ["top", "bottom"])
        fig.colorbar(image, ax=ax, shrink=0.8)
    axes[0].set_ylabel("ball row")
    return fig


register("preference-reward",
         "PPO on Catch with a reward learned from rule-labelled preferences (Motif-style), "
         "vs the true reward, a constant reward and a random policy.",
         presets=PRESETS, run=run)
