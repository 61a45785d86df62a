"""learnenv: learned and synthetic RL environments in JAX.

The library behind the book "Learning Environments". Environments are gymnax
environments (``learnenv.envs.make``), agents are pure ``make_train(config, env,
env_params) -> train(key)`` functions (``learnenv.agents``), and experiments
have a ``quick`` and a ``full`` preset (``learnenv.config``).
"""

__version__ = "0.1.0"
