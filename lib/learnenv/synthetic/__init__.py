"""Learned and synthetic environments: each one a gymnax environment whose
network weights are its ``env_params``."""

from learnenv.synthetic.bandit import (
    SyntheticContextualBandit,
    SyntheticEnvParams,
    SyntheticMDP,
)

__all__ = ["SyntheticContextualBandit", "SyntheticMDP", "SyntheticEnvParams"]
