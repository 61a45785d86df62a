"""The mirrored NES of Ferreira et al. (2022), as an evosax-style ask/tell strategy.

Per generation, each of ``num_workers`` workers draws one perturbation
``eps_i ~ N(0, sigma^2 I)`` of the centre ``psi``, evaluates both ``psi + eps_i``
and ``psi - eps_i`` and keeps the better of the two (flipping ``eps_i`` if the
minus side won). The kept scores are ranked and turned into NES utilities, and
the centre moves along the utility-weighted sum of the kept perturbations::

    s_i  = max(F(psi + eps_i), F(psi - eps_i)),  eps_i <- -eps_i if the minus side won
    u_k  = max(0, log(n/2 + 1) - log(k))          for the worker of rank k (1 = best)
    u    = u / sum(u);  u = u / max(u)            (so the best worker gets 1)
    psi <- psi + step_size * sum_i u_i eps_i

Why not evosax's ``Open_ES`` with antithetic sampling, which also draws
mirrored pairs? Three differences that change the search (evosax 0.3.2):

* Open_ES ranks all ``2n`` members and uses *both* members of every pair, a
  finite-difference estimate ``(F(+) - F(-)) eps``; the paper keeps only the
  better of each pair and throws the worse away, a greedy, hill-climbing flavour
  of NES.
* Open_ES uses centred ranks in [-0.5, 0.5] (bad members push the centre away);
  the paper uses the NES utilities above, which give the worse half weight
  zero.
* Open_ES divides the gradient by ``sigma`` (and by the population size) and
  passes it through an optax optimiser; the paper adds the raw perturbations,
  so the step length scales with ``sigma`` and ``step_size`` alone.

It is an evosax strategy: it subclasses evosax's ``DistributionBasedAlgorithm``
and overrides only its documented extension points ``_init``, ``_ask`` and
``_tell``, so ``init``/``ask``/``tell``/``get_mean``, the best-solution archive
and the metrics are evosax's own. Like evosax, ``tell`` *minimises* the fitness
it is given: pass the negative of a return. The population from ``ask`` holds
the ``n`` plus-members first, then the ``n`` minus-members in the same order.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from evosax.algorithms.distribution_based.base import (
    DistributionBasedAlgorithm,
    Params as BaseParams,
    State as BaseState,
)
from flax import struct

__all__ = ["MirroredNES", "MirroredNESParams", "MirroredNESState", "nes_utilities"]


@struct.dataclass
class MirroredNESParams(BaseParams):
    std_init: jax.Array  # sigma, fixed through the run
    step_size: jax.Array
    weight_decay: jax.Array  # psi <- (1 - weight_decay) psi before each step (paper's default 0)


@struct.dataclass
class MirroredNESState(BaseState):
    mean: jax.Array  # the flat centre psi
    std: jax.Array


def nes_utilities(n: int, zero_mean: bool = False) -> jax.Array:
    """NES rank utilities for ranks 1..n (best first), scaled so the best is 1.

    ``zero_mean`` subtracts ``1/n`` before the scaling (the paper's code offers
    both; the version without it gives the worse half exactly zero weight).
    """
    ranks = jnp.arange(1, n + 1, dtype=jnp.float32)
    u = jnp.maximum(0.0, jnp.log(n / 2 + 1) - jnp.log(ranks))
    u = u / u.sum()
    if zero_mean:
        u = u - 1.0 / n
    return u / u.max()


class MirroredNES(DistributionBasedAlgorithm):
    """Ferreira et al.'s NES: mirrored pairs, keep the better, NES utilities, fixed sigma.

    ``population_size`` counts evaluations (``2 * num_workers``), as in every
    evosax strategy; ``solution`` is a template pytree.
    """

    def __init__(self, population_size: int, solution: Any, zero_mean_utilities: bool = False):
        if population_size < 2 or population_size % 2:
            raise ValueError(
                f"MirroredNES needs an even population_size >= 2 (two per worker), "
                f"not {population_size}."
            )
        super().__init__(population_size, solution)
        self.num_workers = population_size // 2
        self.zero_mean_utilities = zero_mean_utilities

    @property
    def _default_params(self) -> MirroredNESParams:
        # The paper's "varied hyperparameter" setting: sigma 0.05, step 1.
        return MirroredNESParams(
            std_init=jnp.asarray(0.05), step_size=jnp.asarray(1.0), weight_decay=jnp.asarray(0.0)
        )

    def _init(self, key: jax.Array, params: MirroredNESParams) -> MirroredNESState:
        return MirroredNESState(
            mean=jnp.full((self.num_dims,), jnp.nan),  # set by ``init`` from its ``mean``
            std=jnp.asarray(params.std_init, jnp.float32),
            best_solution=jnp.full((self.num_dims,), jnp.nan),
            best_fitness=jnp.inf,
            generation_counter=0,
        )

    def _ask(self, key, state: MirroredNESState, params: MirroredNESParams):
        eps = state.std * jax.random.normal(key, (self.num_workers, self.num_dims))
        return jnp.concatenate([state.mean + eps, state.mean - eps]), state

    def _tell(self, key, population, fitness, state: MirroredNESState,
              params: MirroredNESParams) -> MirroredNESState:
        """Move the centre from the fitness (lower is better) of the ``ask`` population."""
        n = self.num_workers
        eps = population[:n] - state.mean
        # NaN (a diverged inner run) counts as the worst possible fitness.
        fitness = jnp.where(jnp.isnan(fitness), jnp.inf, fitness)
        f_plus, f_minus = fitness[:n], fitness[n:]
        minus_won = f_minus < f_plus
        kept = jnp.where(minus_won, f_minus, f_plus)
        eps = jnp.where(minus_won[:, None], -eps, eps)
        order = jnp.argsort(kept)  # best (lowest) first
        utilities = jnp.zeros((n,)).at[order].set(nes_utilities(n, self.zero_mean_utilities))
        utilities = jnp.where(jnp.isfinite(kept), utilities, 0.0)  # diverged pairs: no pull
        step = params.step_size * utilities @ eps
        return state.replace(mean=(1.0 - params.weight_decay) * state.mean + step)
