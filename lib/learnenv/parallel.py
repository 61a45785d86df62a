"""Populations over every visible device, with JAX's own SPMD partitioner.

A population (meta-training members, vmapped agent seeds) is a batch on axis 0
of a jitted, vmapped function. Placing that batch on a one-axis ``Mesh`` over
``jax.devices()`` with ``NamedSharding(mesh, P("population"))`` is all it takes:
``jax.jit`` partitions the computation to follow its inputs, each device trains
its slice of the population, and nothing changes on one device. A population
that does not split evenly is refused with a message, because padding would
spend a device's time on members that do not exist.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["population_sharding", "shard_population"]

AXIS = "population"


def population_sharding(size: int) -> NamedSharding | None:
    """The sharding of a batch of ``size`` along axis 0 over every device (``None`` on one)."""
    devices = jax.devices()
    if len(devices) == 1:
        return None
    if size % len(devices):
        raise ValueError(
            f"A population of {size} does not split evenly over the {len(devices)} visible "
            f"devices: choose a multiple of {len(devices)} (or make fewer devices visible)."
        )
    return NamedSharding(Mesh(np.array(devices), (AXIS,)), PartitionSpec(AXIS))


def shard_population(*trees: Any) -> Any:
    """Place every leaf of ``trees`` (batched on axis 0) across the devices.

    Returns the trees unchanged on one device; one tree in, one tree out.
    """
    leaves = jax.tree_util.tree_leaves_with_path(trees)
    size = leaves[0][1].shape[0] if leaves and leaves[0][1].ndim else 0
    for path, leaf in leaves:  # checked on one device too, where nothing would fail
        if not leaf.ndim or leaf.shape[0] != size:
            raise ValueError(
                f"shard_population: leaf {jax.tree_util.keystr(path)} has shape {leaf.shape}, "
                f"not a batch of {size} on axis 0 like the first leaf.")
    sharding = population_sharding(size)
    if sharding is not None:
        trees = jax.device_put(trees, sharding)
    return trees[0] if len(trees) == 1 else trees
