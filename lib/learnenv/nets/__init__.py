"""Shared network blocks of the "Beyond simulators" chapters.

- :mod:`~learnenv.nets.vq`: vector quantisation (a codebook, the straight-through
  gradient, dead-code reset), which turns frames into discrete tokens (VIPER's
  tokenizer) and transitions into discrete latent actions (Genie's LAM);
- :mod:`~learnenv.nets.transformer`: transformer blocks, causal over token
  sequences (VIPER's video model) or bidirectional (Genie's MaskGIT);
- :mod:`~learnenv.nets.unet`: a conditional U-Net (the diffusion simulator's
  denoiser);
- :mod:`~learnenv.nets.heads`: reward-sign and termination heads of world
  models that predict frames.
"""
