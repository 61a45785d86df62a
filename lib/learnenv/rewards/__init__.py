"""Rewards learned from data: curiosity bonuses, preferences, video likelihoods.

One module per idea. Each turns a signal that is not the task's reward into a
reward an unchanged agent can train on, as an environment wrapper.
"""
