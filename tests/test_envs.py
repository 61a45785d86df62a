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


def test_swimmer_builds_with_its_only_backend_and_steps():
    """brax supports only "generalized" for swimmer, and brax 0.14.2's fluid forces
    call jnp.clip(a_min=...), which jax 0.10 removed: make_brax handles both. The
    step is traced abstractly (no compilation), which is where the TypeError was."""
    import jax

    env, params = envs.make("brax/swimmer")
    assert env._brax_env.backend == "generalized"
    obs, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    step = jax.eval_shape(env.step, jax.random.key(1), state, jax.numpy.zeros(2), params)
    assert obs.shape == (8,) and step[0].shape == (8,)
