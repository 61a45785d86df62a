"""The evolved linear policy: an agent without a value function, and the table helper."""

from __future__ import annotations

import jax
import pytest

from learnenv import envs, pretrained
from learnenv.agents import linear_es
from learnenv.agents.base import evaluate
from learnenv.display import markdown_table


def test_act_is_argmax_of_a_linear_score():
    params = {"w": jax.numpy.array([[1.0, -1.0], [0.0, 2.0]]), "b": jax.numpy.array([0.0, 0.5])}
    assert int(linear_es.act(params, jax.numpy.array([1.0, 0.0]))) == 0  # scores 1 vs -0.5
    assert int(linear_es.act(params, jax.numpy.array([0.0, 1.0]))) == 1  # scores 0 vs 2.5


@pytest.mark.slow
def test_linear_policy_evolved_on_the_paper_scb_balances_cartpole():
    """The paper reports that SCBs train evolved policies; seeds vmapped in one call."""
    scb, params = pretrained.load("paper-scb-cartpole")
    real, real_params = envs.make("CartPole-v1")
    policies = jax.jit(jax.vmap(linear_es.make_train(scb, params, 30, 16, 16)))(
        jax.random.split(jax.random.key(0), 2))
    returns = jax.vmap(lambda p: evaluate(linear_es.act, p, real, real_params,
                                          jax.random.key(1), 8).mean())(policies)
    assert float(returns.min()) >= 400, returns


def test_markdown_table_has_a_header_and_a_row_per_dict():
    text = markdown_table([{"a": 1, "b": None}, {"a": 2.5, "b": "x"}]).data
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 |  |", "| 2.5 | x |"]


def test_say_wraps_long_sentences(capsys):
    from learnenv.display import say

    say("word " * 40)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= 88
