"""Learned and synthetic environments: each one a gymnax environment whose
network weights are its ``env_params`` (see :mod:`learnenv.synthetic.base`)."""

from learnenv.synthetic.bandit import SyntheticContextualBandit, SyntheticMDP
from learnenv.synthetic.base import LearnedEnvironment, SyntheticEnvParams, SyntheticEnvState

__all__ = ["LearnedEnvironment", "SyntheticContextualBandit", "SyntheticMDP", "SyntheticEnvParams",
           "SyntheticEnvState"]
