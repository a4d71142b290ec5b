"""Pooling kernels (kernels/pool.cu: max, average, adaptive and global average) against
the CPU backend, forward and backward, through the kernel backends (emu always, cuda
where a GPU is usable; MINIDL_KERNEL_DEVICES restricts them).
"""
from __future__ import annotations

import numpy as np
import pytest

from kernel_testing import be, close as _close, cpu, rand as _rand  # noqa: F401 (fixtures)
from minidl.backend.geometry import PoolGeometry


# ---------------------------------------------------------------- max pooling
# (x shape, kernel, stride, padding, ceil_mode)
MAX_CASES = {
    "3x3s2": ((2, 3, 9, 9), (3, 3), (2, 2), (0, 0), False),
    "2x2s2_odd": ((2, 3, 8, 7), (2, 2), (2, 2), (0, 0), False),
    "3x3s2_pad1_ceil": ((1, 2, 10, 10), (3, 3), (2, 2), (1, 1), True),
    "3x3s2_ceil_overhang": ((2, 2, 8, 8), (3, 3), (2, 2), (0, 0), True),
    "3x2_s21_many_blocks": ((2, 3, 20, 20), (3, 2), (2, 1), (1, 1), False),
    # staged row tiles: 5 forward tiles and 2 backward tiles per plane
    "3x3s2_pad1_row_tiles": ((1, 1, 80, 240), (3, 3), (2, 2), (1, 1), False),
    # a plane too wide for a row tile: the direct kernels
    "3x3s2_wide_plane_direct": ((1, 1, 3, 4200), (3, 3), (2, 2), (0, 0), False),
}


def _max_check(be, cpu, x, kernel, stride, padding, ceil_mode):
    g = PoolGeometry.create(x.shape, kernel, stride, padding, ceil_mode)
    y_ref, am_ref = cpu.max_pool2d_forward(x, g)
    gy = _rand(y_ref.shape, 7)
    dx_ref = cpu.max_pool2d_backward(gy, am_ref, g)
    y, am = be.max_pool2d_forward(be.asarray(x), g)
    dx = be.max_pool2d_backward(be.asarray(gy), am, g)
    _close(be.to_numpy(y), y_ref, 0, 0, "forward")
    np.testing.assert_array_equal(be.to_numpy(am), am_ref, err_msg="argmax")
    _close(be.to_numpy(dx), dx_ref, what="input gradient")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(MAX_CASES))
def test_max_pool2d(be, cpu, name):
    xs, kernel, stride, padding, ceil_mode = MAX_CASES[name]
    _max_check(be, cpu, _rand(xs, 8), kernel, stride, padding, ceil_mode)


@pytest.mark.timeout(120)
def test_max_pool2d_all_equal_ties(be, cpu):
    # ties keep the first maximum; overlapping 3x3/2 windows share argmax cells
    _max_check(be, cpu, np.full((2, 3, 9, 9), 0.5, np.float32), (3, 3), (2, 2), (1, 1), True)


# ---------------------------------------------------------------- average pooling
AVG_CASES = {
    "3x3s2_pad1_ceil": ((2, 3, 10, 10), (3, 3), (2, 2), (1, 1), True),
    "3x3s2_pad1_floor": ((2, 3, 9, 9), (3, 3), (2, 2), (1, 1), False),
    "2x2s2_odd": ((2, 3, 8, 7), (2, 2), (2, 2), (0, 0), False),
    "3x3s2_ceil_overhang": ((1, 2, 8, 8), (3, 3), (2, 2), (0, 0), True),
    "3x2_s21_pad_many_blocks": ((2, 3, 20, 20), (3, 2), (2, 1), (1, 1), True),
    # staged row tiles (5 forward, 2 backward per plane), and a plane too wide for one
    "3x3s2_pad1_row_tiles": ((1, 1, 80, 240), (3, 3), (2, 2), (1, 1), False),
    "3x3s2_wide_plane_direct": ((1, 1, 3, 4200), (3, 3), (2, 2), (0, 0), False),
    "3x3s1_pad1_inception": ((1, 2, 35, 35), (3, 3), (1, 1), (1, 1), False),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("name", list(AVG_CASES))
def test_avg_pool2d(be, cpu, name, count_include_pad):
    xs, kernel, stride, padding, ceil_mode = AVG_CASES[name]
    x = _rand(xs, 11)
    g = PoolGeometry.create(xs, kernel, stride, padding, ceil_mode)
    y_ref = cpu.avg_pool2d_forward(x, g, count_include_pad)
    gy = _rand(y_ref.shape, 12)
    y = be.avg_pool2d_forward(be.asarray(x), g, count_include_pad)
    dx = be.avg_pool2d_backward(be.asarray(gy), g, count_include_pad)
    _close(be.to_numpy(y), y_ref, what="forward")
    _close(be.to_numpy(dx), cpu.avg_pool2d_backward(gy, g, count_include_pad), what="input gradient")


@pytest.mark.timeout(120)
def test_avg_pool2d_all_equal(be):
    x = np.full((1, 2, 7, 7), 3.0, np.float32)
    g = PoolGeometry.create(x.shape, (3, 3), (2, 2), (1, 1), True)
    y = be.to_numpy(be.avg_pool2d_forward(be.asarray(x), g, False))
    _close(y, np.full(y.shape, 3.0, np.float32))


# ---------------------------------------------------------------- adaptive / global average
@pytest.mark.timeout(120)
@pytest.mark.parametrize("xs,out", [((2, 3, 7, 7), (1, 1)), ((2, 3, 7, 7), (3, 3)),
                                    ((1, 2, 9, 7), (4, 5)), ((2, 2, 5, 5), (2, 2)),
                                    ((4, 70, 6, 5), (1, 1)), ((1, 2, 3, 3), (5, 4)),
                                    ((2, 3, 40, 40), (1, 1)), ((3, 300, 1, 2), (1, 1))])
def test_adaptive_avg_pool2d(be, cpu, xs, out):
    x = _rand(xs, 13)
    g = PoolGeometry.adaptive(xs, out)
    y_ref = cpu.adaptive_avg_pool2d_forward(x, g)
    gy = _rand(y_ref.shape, 14)
    y = be.adaptive_avg_pool2d_forward(be.asarray(x), g)
    dx = be.adaptive_avg_pool2d_backward(be.asarray(gy), g)
    _close(be.to_numpy(y), y_ref, what="forward")
    _close(be.to_numpy(dx), cpu.adaptive_avg_pool2d_backward(gy, g), what="input gradient")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["3x3s2_pad1_ceil", "3x3s2_pad1_row_tiles", "3x3s2_wide_plane_direct"])
def test_max_and_avg_pool_take_16_bit_arrays(be, cpu, name, half):
    """The pooling kernels' float16/bfloat16 instances (16-bit storage, float compute; row
    tiles and direct kernels): the CPU backend's widen-compute-round result within one
    rounding of the format, the argmax exactly, the 16-bit dtype kept."""
    from minidl import dtypes
    dtype = dtypes.dtype(half)
    ulp = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[half]
    xs, kernel, stride, padding, ceil_mode = MAX_CASES[name]
    g = PoolGeometry.create(xs, kernel, stride, padding, ceil_mode)
    x = _rand(xs, 41).astype(dtype)
    gy = _rand(g.y_shape, 42).astype(dtype)
    x32, gy32 = x.astype(np.float32), gy.astype(np.float32)
    y, am = be.max_pool2d_forward(be.asarray(x), g)
    y_ref, am_ref = cpu.max_pool2d_forward(x32, g)
    assert y.dtype == dtype
    np.testing.assert_array_equal(be.to_numpy(y).astype(np.float32), y_ref)  # a max is one of the inputs
    np.testing.assert_array_equal(be.to_numpy(am), am_ref)
    checks = [(be.max_pool2d_backward(be.asarray(gy), am, g), cpu.max_pool2d_backward(gy32, am_ref, g)),
              (be.avg_pool2d_forward(be.asarray(x), g, True), cpu.avg_pool2d_forward(x32, g, True)),
              (be.avg_pool2d_backward(be.asarray(gy), g, False), cpu.avg_pool2d_backward(gy32, g, False))]
    for got, want in checks:
        assert got.dtype == dtype
        want = np.asarray(want).astype(dtype).astype(np.float32)
        np.testing.assert_allclose(be.to_numpy(got).astype(np.float32), want, rtol=ulp, atol=ulp)
