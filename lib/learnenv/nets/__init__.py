"""Shared network blocks of the "Beyond simulators" chapters.

- :mod:`~learnenv.nets.vq`: vector quantisation (a codebook, the straight-through
  gradient, dead-code reset), which turns frames into discrete tokens (VIPER's
  tokenizer) and transitions into discrete latent actions (Genie's LAM);
- :mod:`~learnenv.nets.transformer`: a causal transformer over token
  sequences (VIPER's video model).
"""
