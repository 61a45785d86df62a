"""``learnenv.envs``: names and construction."""

from __future__ import annotations

import pytest

from learnenv import envs


@pytest.mark.parametrize("name", envs.BRAX_ENVS)
def test_every_listed_brax_name_is_one_brax_builds(name):
    """The names are written out (brax has no public listing); brax must know each."""
    from brax import envs as brax_envs

    # make_brax's positional backend (fast to build); brax's swimmer needs another
    backend = "generalized" if name == "swimmer" else "positional"
    env = brax_envs.get_environment(name, backend=backend)
    assert env.observation_size > 0 and env.action_size > 0


def test_unknown_names_are_refused_with_a_hint():
    with pytest.raises(ValueError, match="Did you mean 'brax/hopper'"):
        envs.make("brax/hoper")
    with pytest.raises(ValueError, match="Did you mean 'CartPole-v1'"):
        envs.make("Cartpole-v1")
