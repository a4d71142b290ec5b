"""``autocast(dtype)``: run each op in the precision the op-policy table gives it.

The policy is one table, ``OP_POLICY``, keyed by op name (``op_name`` of a
``Function``; the wrappers of conv2d, linear and batch_norm consult it too, before
they check dtypes):

- ``"low"``: the op's floating inputs are cast to the autocast dtype (the matrix
  products, where half precision pays: conv, linear, matmul);
- ``"float32"``: half inputs are cast to float32 (ops that accumulate or
  exponentiate: softmax, log-softmax, cross-entropy, reductions, LRN);
- ``"float32 statistics"``: the half activations pass as they are and the float32
  parameters stay float32; the op computes its statistics in float32 and returns
  the activations' dtype (batch norm, as PyTorch's autocast leaves it: no cast
  passes over the activations around every batch norm);
- any other op follows its inputs (NumPy's promotion: half with float32 gives
  float32).

Parameters stay float32 ("master weights"): a cast of a leaf tensor is made once per
autocast context and reused by every op in it (the per-step cast cache), and its
gradient flows back through the cast to the float32 leaf.  Outside the context
nothing changes.
"""
from __future__ import annotations

import contextlib

from ..autograd.function import set_autocast_policy
from ..autograd.math import Cast
from ..dtypes import HALF_DTYPES, dtype as as_dtype, float32, is_floating, is_half
from ..tensor import Tensor

LOW, FLOAT32, FLOAT32_STATISTICS = "low", "float32", "float32 statistics"

OP_POLICY = {
    "conv2d": LOW, "linear": LOW, "mat_mul": LOW,
    "softmax": FLOAT32, "log_softmax": FLOAT32, "cross_entropy": FLOAT32, "batch_norm": FLOAT32_STATISTICS,
    "local_response_norm": FLOAT32, "sum": FLOAT32, "mean": FLOAT32, "var": FLOAT32,
}


class _Policy:
    """The table applied with one low dtype and one cast cache (id(leaf) -> (leaf, cast))."""

    def __init__(self, low):
        self.low = low
        self.cache = {}

    def _cast(self, t, target):
        if not isinstance(t, Tensor) or not is_floating(t.dtype) or t.dtype == target:
            return t
        if not t.is_leaf:
            return Cast.apply(t, dtype=target)
        hit = self.cache.get(id(t))
        if hit is None or hit[0] is not t or hit[1].dtype != target:
            hit = (t, Cast.apply(t, dtype=target))
            self.cache[id(t)] = hit
        return hit[1]

    def __call__(self, op, inputs):
        rule = OP_POLICY.get(op)
        if rule == LOW:
            return [self._cast(t, self.low) for t in inputs]
        if rule == FLOAT32_STATISTICS:  # x as it is; half parameters (a half model) too
            return inputs
        if rule == FLOAT32:
            return [self._cast(t, float32) if isinstance(t, Tensor) and is_half(t.dtype) else t
                    for t in inputs]
        return inputs


@contextlib.contextmanager
def autocast(dtype="float16", enabled=True):
    """Within the block, ops run in the precision ``OP_POLICY`` gives them, the low one
    being ``dtype`` (float16 or bfloat16).  ``enabled=False`` leaves everything as is
    (and lifts an enclosing autocast for the block)."""
    low = as_dtype(dtype)
    if low not in HALF_DTYPES:
        raise ValueError(f"autocast: expected dtype float16 or bfloat16, got {low}")
    previous = set_autocast_policy(_Policy(low) if enabled else None)
    try:
        yield
    finally:
        set_autocast_policy(previous)
