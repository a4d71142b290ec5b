"""Every kernel of the elementwise family (kernels/elementwise.cu: activations,
bias-add, dropout), forward and backward, through the kernel backends
against the CPU backend (or a float64 NumPy reference where noted).

Devices: 'emu' always (our CUDA kernels run by the host emulation); 'cuda' too when
a GPU is usable (skipped with the reason otherwise).  MINIDL_KERNEL_DEVICES=cuda (or
emu, or emu,cuda) restricts the list; benchmarks/gpu_check.sh uses it.
Shapes are tiny: emulation runs every CUDA thread as a fiber.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import KERNEL_DEVICES as DEVICES  # emu, cuda (skipped with the reason); see conftest
from kernel_testing import CPU, DTYPES, host, rng, to_dev, tol
from minidl.backend import get_backend


# ---------------------------------------------------------------- elementwise
SIZES = [1, 37, 256, 256 * 3 + 5, 4099]
ACTS = ["relu", "relu6", "sigmoid", "silu"]


def _act_input(n, dtype, seed=0):
    x = rng(seed).standard_normal(n) * 4
    x[: min(n, 4)] = [0.0, 6.0, -30.0, 40.0][: min(n, 4)]  # edges: 0, 6, saturation
    return x.astype(dtype)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("act", ACTS)
def test_activation_forward_backward(device, dtype, n, act):
    be = get_backend(device)
    x = _act_input(n, dtype)
    gy = rng(1).standard_normal(n).astype(dtype)
    y = host(be, getattr(be, act)(to_dev(be, x)))
    y_ref = getattr(CPU, act)(x)
    np.testing.assert_allclose(y, y_ref, **tol(dtype, device))
    saved = y_ref if act == "sigmoid" else x
    gx = host(be, getattr(be, act + "_backward")(to_dev(be, saved), to_dev(be, gy)))
    gx_ref = getattr(CPU, act + "_backward")(saved, gy)
    np.testing.assert_allclose(gx, gx_ref, **tol(dtype, device))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned_vectors", "unaligned_scalar"])
def test_map_kernel_vector_and_scalar_paths(device, dtype, offset):
    """The map kernel moves 16-byte vectors where every pointer is 16-byte aligned and
    falls back to scalars where one is not (a view one element into its allocation)."""
    be = get_backend(device)
    n = 4 * 1024 + 3  # several unrolled vectors per thread, and a tail
    full = [to_dev(be, rng(k).standard_normal(n + 1).astype(dtype)) for k in (5, 6)]
    a, b = (v[offset:offset + n] for v in full)
    ah, bh = host(be, a), host(be, b)
    np.testing.assert_allclose(host(be, be.add_relu(a, b)), np.maximum(ah + bh, 0), **tol(dtype, device))
    np.testing.assert_allclose(host(be, be.relu_backward(a, b)), np.where(ah > 0, bh, 0), **tol(dtype, device))
    np.testing.assert_allclose(host(be, be.relu(a)), np.maximum(ah, 0), **tol(dtype, device))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 7, 3, 5), (4, 33, 1, 1), (2, 3, 17, 19)])
def test_bias_add_and_backward(device, dtype, shape):
    be = get_backend(device)
    x = rng(2).standard_normal(shape).astype(dtype)
    b = rng(3).standard_normal(shape[1]).astype(dtype)
    bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
    y = host(be, be.bias_add(to_dev(be, x), to_dev(be, b)))
    np.testing.assert_allclose(y, x + b.reshape(bshape), **tol(dtype, device))
    gy = rng(4).standard_normal(shape).astype(dtype)
    db = host(be, be.bias_add_backward(to_dev(be, gy)))
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(db, CPU.sum(gy.astype(np.float64), axis=axes), **tol(dtype, device, 10))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,p", [(1, 0.5), (300, 0.1), (1000, 0.5), (513, 0.0)])
def test_dropout_apply_backward(device, dtype, n, p):
    be = get_backend(device)
    x = rng(5).standard_normal(n).astype(dtype)
    u = rng(6).uniform(0, 1, n).astype(dtype)
    y, mask = be.dropout_apply(to_dev(be, x), to_dev(be, u), p)
    keep = (u >= p) / (1 - p)
    np.testing.assert_allclose(host(be, mask), keep, **tol(dtype, device))
    np.testing.assert_allclose(host(be, y), x * keep, **tol(dtype, device))
    gy = rng(7).standard_normal(n).astype(dtype)
    gx = host(be, be.dropout_backward(to_dev(be, gy), mask))
    np.testing.assert_allclose(gx, gy * keep, **tol(dtype, device))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("act", ACTS + ["add_relu"])
def test_activation_kernels_take_16_bit_arrays(device, half, act):
    """The map kernel's float16/bfloat16 instances load and store 16 bits and compute in
    float32: the CPU backend's widen-compute-round result, to one rounding of the
    format, forward and backward (the ops autograd leaves unwidened: half_native)."""
    from minidl import dtypes
    dtype = dtypes.dtype(half)
    be = get_backend(device)
    assert act in be.half_native or act == "sigmoid"  # (sigmoid: kernels tested, autograd widens)
    n = 4 * 1024 + 5
    x = _act_input(n, np.float32).astype(dtype)
    gy = rng(1).standard_normal(n).astype(dtype)
    ulp = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[half]
    widen = lambda a: a.astype(np.float32)  # noqa: E731
    if act == "add_relu":
        got = getattr(be, act)(to_dev(be, x), to_dev(be, gy))
        want = CPU.add_relu(widen(x), widen(gy)).astype(dtype)
        saved, bwd = got, "relu_backward"
    else:
        got = getattr(be, act)(to_dev(be, x))
        want = getattr(CPU, act)(widen(x)).astype(dtype)
        saved, bwd = (got if act == "sigmoid" else to_dev(be, x)), act + "_backward"
    assert got.dtype == dtype
    np.testing.assert_allclose(widen(host(be, got)), widen(want), rtol=ulp, atol=ulp)
    gx = getattr(be, bwd)(saved, to_dev(be, gy))
    gx_want = getattr(CPU, bwd)(widen(host(be, saved)), widen(gy)).astype(dtype)
    assert gx.dtype == dtype
    np.testing.assert_allclose(widen(host(be, gx)), widen(gx_want), rtol=ulp, atol=ulp)
