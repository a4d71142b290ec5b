"""exp for the CPU kernels' float32 loops, in a form LLVM vectorizes.

Numba compiles math.exp to a call of libm's scalar exp per element (there is no SVML
here), ~7x slower than a SIMD exp.  ``exp_nonpositive`` is math.exp for float64 and,
for float32, Cody-Waite's range reduction v = n ln 2 + r (|r| <= ln 2 / 2), Cephes'
expf polynomial for exp(r), and 2^n built from its exponent bits, all in float32
arithmetic: within 0.99 ulp of exp (float64 reference, 2M points over [-110, 0]).
Every constant is a float32: a Python float in the expression would make Numba
compute in float64, at half the vector width (silu on 16x96x112x112 ran 2.9x slower
that way, with 2^n gathered from a table).  Used by the activations (elementwise.py) and
softmax / cross-entropy (softmax.py), whose arguments are never positive.

Of fastmath, FMA contraction only (softmax.py's own copy had it, among others), whatever
the caller's flags: reassociation would fold the two-part ln 2 of the reduction into one
and lose its extra bits.  Without contraction cross-entropy's gradients moved by an
ulp here and there, and tests/test_train_amp.py's 200 LeNet steps took another path:
bf16's final loss 7.6% from float32's (its bound 5%; float32's own 0.587, where the
test records 0.604).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

ZERO, ONE, HALF = np.float32(0.0), np.float32(1.0), np.float32(0.5)
LOG2E = np.float32(1.4426950408889634)
LN2_HI, LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # (LN2_HI times n <= 150 is exact)
EXP_POLY = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                          1.6666665459e-1, 5.0000001201e-1))
EXP_MIN = np.float32(-150.0)  # (v / ln 2 below this: exp(v) rounds to 0 in float32)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits`` (a bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


def exp_nonpositive(v):
    """exp(v) for v <= 0 (or NaN, which passes); in Numba code only."""
    return math.exp(v)


@overload(exp_nonpositive, jit_options={"fastmath": {"contract"}})
def _exp_nonpositive_impl(v):
    if v != types.float32:
        return lambda v: math.exp(v)

    def exp32(v):
        t = v * LOG2E
        if t >= EXP_MIN:
            n = np.floor(t + HALF)
            r = (v - n * LN2_HI) - n * LN2_LO
            p0, p1, p2, p3, p4, p5 = EXP_POLY
            p = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + ONE
            # 2^n in two halves, each a normal float32 (n >= -150): a denormal result rounds once
            k = np.int32(n)
            k1 = k >> 1
            return (p * _float32_from_bits((k1 + 127) << 23)) * _float32_from_bits((k - k1 + 127) << 23)
        return ZERO if t < EXP_MIN else t  # (-inf -> 0; NaN passes)
    return exp32
