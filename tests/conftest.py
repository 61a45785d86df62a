"""Set-up shared by every test module."""

from __future__ import annotations

import gc

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    XLA's CPU backend maps the machine code of every compiled program into the
    process, tens of memory mappings for a convolution's gradient. The whole
    suite runs in one process and compiles thousands of programs; it crossed
    the kernel's limit on mappings per process (``vm.max_map_count``, 65,530 by
    default) and segfaulted inside XLA's compiler, in whichever test compiled
    next (measured: one module, the diffusion world model's, held 13,000
    mappings). A module's programs are not reused by the next module, so they
    are freed here (``jax.clear_caches`` and a garbage collection return the
    mappings).
    """
    yield
    jax.clear_caches()
    gc.collect()
