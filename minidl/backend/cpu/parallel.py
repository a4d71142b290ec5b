"""Parallel Numba kernels that fall back to one thread on small inputs.

Waking a thread pool costs more than a small loop: on this 2-core machine a
parallel region over a 7x7 feature map took 15-30 ms when OpenBLAS's threads
were still spinning from the previous GEMM, against well under 1 ms serially.
So every CPU kernel is compiled twice, with and without ``parallel=True``, and
``kernel.sized(n)`` picks one by the amount of work.

Numba's OpenMP pool also spin-waits by default, stealing the cores from
OpenBLAS between calls; ``OMP_WAIT_POLICY=PASSIVE`` makes idle workers sleep
instead.  It must be in the environment before Numba starts its threading layer
(the first parallel call, or ``numba.set_num_threads``), which can come before this
module's import, so ``import minidl`` sets it (minidl/backend/__init__.py).

Loops that vectorize.  LLVM vectorizes a Numba loop only where it can see the
addresses advance by a fixed step; measured here, these decide it:

* every index is a loop variable (plus a constant), or unsigned (``np.uint64``): Numba
  wraps negative indices, and the select it emits for a signed computed index such as
  ``base + i`` made LLVM leave the loop scalar or use gathers and scatters;
* an inner loop writes one array (several need a run-time overlap check per pair,
  and LLVM gives up beyond a few);
* no views are made inside hot loops (each one updates a reference count);
* a stride-2 read is split into even and odd rows by a loop that does nothing else
  (it compiles to permutes).
"""
from __future__ import annotations

import types

from numba import njit

# Below this many elements a kernel runs on one thread.
SMALL_WORK = 1 << 15


class TwinKernel:
    """A Numba kernel compiled parallel and serial (the serial twin gets its own
    qualified name, so the two on-disk cache entries never collide)."""

    def __init__(self, func, options):
        self.parallel = njit(parallel=True, cache=True, **options)(func)
        twin = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial",
                                  func.__defaults__, func.__closure__)
        twin.__qualname__ = func.__qualname__ + "_serial"
        twin.__doc__ = func.__doc__
        self.serial = njit(cache=True, **options)(twin)
        self.__doc__ = func.__doc__

    def sized(self, n_elements, threshold=SMALL_WORK):
        return self.parallel if n_elements >= threshold else self.serial


def parallel_kernel(**options):
    """Decorator: ``@parallel_kernel(fastmath=True)`` on a function using ``prange``."""
    return lambda func: TwinKernel(func, options)
