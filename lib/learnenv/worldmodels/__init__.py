"""Environments learned from data: models fitted to transitions of a real one.

Unlike :mod:`learnenv.synthetic` (weights searched so that agents trained
inside do well), these models are fitted by gradient descent to predict what
the real environment does, as in model-based RL. One module per idea.
"""
