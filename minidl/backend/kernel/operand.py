"""How the family modules hand arrays to KernelBackend.launch: ``Operand`` (the name
errors use, the array, and the shape and dtype the launcher trusts it to have; it
must also be C-contiguous) and ``contiguous`` (inputs made C-contiguous in one dtype)."""
from __future__ import annotations

from dataclasses import dataclass

from ..geometry import check_int32_sizes


@dataclass(frozen=True)
class Operand:
    name: str
    array: object
    shape: tuple
    dtype: object


def contiguous(be, first, *rest):
    """C-contiguous arrays, the rest cast to the first one's dtype."""
    first = be.c(first)
    return (first,) + tuple(be.c(be.cast_like(a, first)) for a in rest)


def ncs(x, op):
    """(N, C, S) of an (N, C, ...) array, S the product of the trailing sizes; N and C
    are the launchers' 32-bit ints."""
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an array of shape (N, C, ...), got {tuple(x.shape)}")
    s = 1
    for d in x.shape[2:]:
        s *= int(d)
    n, c = int(x.shape[0]), int(x.shape[1])
    check_int32_sizes(op, {"N": n, "C": c})
    return n, c, s
