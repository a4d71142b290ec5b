"""How the family modules hand arrays to KernelBackend.launch: ``Operand`` (the name
errors use, the array, and the shape and dtype the launcher trusts it to have; it
must also be C-contiguous) and ``contiguous`` (inputs made C-contiguous in one dtype)."""
from __future__ import annotations

from dataclasses import dataclass


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
    """(N, C, S) of an (N, C, ...) array, S the product of the trailing sizes."""
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an array of shape (N, C, ...), got {tuple(x.shape)}")
    s = 1
    for d in x.shape[2:]:
        s *= int(d)
    return int(x.shape[0]), int(x.shape[1]), s
