"""The agents, by name.

Every agent module has the same shape (see :mod:`learnenv.agents.base`):
``XConfig`` (its ``traced=True`` fields are the vmappable hyperparameters,
``config.hyperparams()``), ``make_train(config, env, env_params)`` and
``make_policy(config, env, env_params)``. Look one up by name::

    from learnenv import agents
    spec = agents.get("ppo")
    config = spec.Config(total_timesteps=100_000)
    train = spec.make_train(config, env, env_params)

Modules are imported only when an agent is first looked up, so a broken or
slow-to-import agent never affects the others. To add an agent, add one line
to ``_REGISTRY``: its name, its module and its config class (two names may
share a module, as DDPG and TD3 do).
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any, Callable

# name -> (module, config class). One line per agent.
_REGISTRY: dict[str, tuple[str, str]] = {
    "ppo": ("learnenv.agents.ppo", "PPOConfig"),
    "dqn": ("learnenv.agents.dqn", "DQNConfig"),
    "sac": ("learnenv.agents.sac", "SACConfig"),
    "td3": ("learnenv.agents.td3", "TD3Config"),
    "ddpg": ("learnenv.agents.td3", "DDPGConfig"),
}


class UnknownAgentError(KeyError, ValueError):
    """Raised by :func:`get` for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would show the message's repr
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """One agent: its module and the pieces every agent module provides."""

    name: str
    module: ModuleType
    Config: type  # noqa: N815 - the config class, e.g. PPOConfig

    @property
    def make_train(self) -> Callable[..., Any]:
        return self.module.make_train

    @property
    def make_policy(self) -> Callable[..., Any]:
        return self.module.make_policy


def names() -> list[str]:
    """Every registered agent name (imports nothing)."""
    return sorted(_REGISTRY)


def get(name: str) -> AgentSpec:
    """The agent registered as ``name``; a clear error lists the valid names."""
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, names(), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownAgentError(
            f"Unknown agent {name!r}.{hint} Valid agents: {', '.join(names())}."
        )
    module_name, config_name = _REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"Agent {name!r} could not be imported from {module_name}: {err}"
        ) from err
    try:
        config_class = getattr(module, config_name)
    except AttributeError as err:
        raise ImportError(f"Agent {name!r}: {module_name} defines no {config_name}.") from err
    return AgentSpec(name=name, module=module, Config=config_class)


__all__ = ["AgentSpec", "UnknownAgentError", "get", "names"]
