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

Like evosax, :meth:`MirroredNES.tell` *minimises* the fitness it is given: pass
the negative of a return. The population from :meth:`MirroredNES.ask` holds the
``n`` plus-members first, then the ``n`` minus-members in the same order.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax import flatten_util

__all__ = ["MirroredNES", "MirroredNESParams", "MirroredNESState", "nes_utilities"]


@struct.dataclass
class MirroredNESParams:
    std_init: jax.Array  # sigma, fixed through the run
    step_size: jax.Array
    weight_decay: jax.Array  # psi <- (1 - weight_decay) psi before each step (paper's default 0)


@struct.dataclass
class MirroredNESState:
    mean: jax.Array  # the flat centre psi
    std: jax.Array
    best_solution: jax.Array
    best_fitness: jax.Array
    generation_counter: jax.Array


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


class MirroredNES:
    """Ferreira et al.'s NES: mirrored pairs, keep the better, NES utilities, fixed sigma.

    ``population_size`` counts evaluations (``2 * num_workers``) so that it
    reads like an evosax strategy; ``solution`` is a template pytree.
    """

    def __init__(self, population_size: int, solution: Any, zero_mean_utilities: bool = False):
        if population_size < 2 or population_size % 2:
            raise ValueError(
                f"MirroredNES needs an even population_size >= 2 (two per worker), "
                f"not {population_size}."
            )
        self.population_size = int(population_size)
        self.num_workers = self.population_size // 2
        self.solution = solution
        flat, self._unravel = flatten_util.ravel_pytree(solution)
        self.num_dims = int(flat.size)
        self.zero_mean_utilities = zero_mean_utilities

    def _ravel(self, tree):
        return flatten_util.ravel_pytree(tree)[0]

    @property
    def default_params(self) -> MirroredNESParams:
        # The paper's "varied hyperparameter" setting: sigma 0.05, step 1.
        return MirroredNESParams(
            std_init=jnp.asarray(0.05), step_size=jnp.asarray(1.0), weight_decay=jnp.asarray(0.0)
        )

    @partial(jax.jit, static_argnames=("self",))
    def init(self, key: jax.Array, mean: Any, params: MirroredNESParams) -> MirroredNESState:
        flat = self._ravel(mean)
        return MirroredNESState(
            mean=flat,
            std=jnp.asarray(params.std_init, jnp.float32),
            best_solution=jnp.full_like(flat, jnp.nan),
            best_fitness=jnp.asarray(jnp.inf, jnp.float32),
            generation_counter=jnp.zeros((), jnp.int32),
        )

    def get_mean(self, state: MirroredNESState) -> Any:
        return self._unravel(state.mean)

    @partial(jax.jit, static_argnames=("self",))
    def ask(self, key, state: MirroredNESState, params: MirroredNESParams):
        eps = state.std * jax.random.normal(key, (self.num_workers, self.num_dims))
        flat = jnp.concatenate([state.mean + eps, state.mean - eps])
        return jax.vmap(self._unravel)(flat), state

    @partial(jax.jit, static_argnames=("self",))
    def tell(self, key, population, fitness, state: MirroredNESState, params: MirroredNESParams):
        """Update from the fitness (lower is better) of the ``ask`` population."""
        flat = jax.vmap(self._ravel)(population)
        n = self.num_workers
        eps = flat[:n] - state.mean
        # NaN (a diverged inner run) counts as the worst possible fitness.
        fitness = jnp.where(jnp.isnan(fitness), jnp.inf, fitness)
        f_plus, f_minus = fitness[:n], fitness[n:]
        minus_won = f_minus < f_plus
        kept = jnp.where(minus_won, f_minus, f_plus)
        eps = jnp.where(minus_won[:, None], -eps, eps)
        order = jnp.argsort(kept)  # best (lowest) first
        utilities = jnp.zeros((n,)).at[order].set(nes_utilities(n, self.zero_mean_utilities))
        step = params.step_size * utilities @ eps
        mean = (1.0 - params.weight_decay) * state.mean + step
        i_best = jnp.argmin(fitness)
        improved = fitness[i_best] < state.best_fitness
        state = state.replace(
            mean=mean,
            best_solution=jnp.where(improved, flat[i_best], state.best_solution),
            best_fitness=jnp.where(improved, fitness[i_best], state.best_fitness),
            generation_counter=state.generation_counter + 1,
        )
        metrics = {
            "best_fitness_in_generation": fitness[i_best],
            "best_fitness": state.best_fitness,
            "kept_fitness_mean": kept.mean(),
            "minus_won_fraction": minus_won.mean(),
            "step_norm": jnp.linalg.norm(step),
        }
        return state, metrics
