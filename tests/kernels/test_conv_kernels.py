"""Conv, depthwise, pooling and LRN kernels (kernels/{conv,depthwise,pool,lrn}.cu) against
the CPU backend, forward and backward, through the kernel backends: ``emu`` (the CUDA
kernels run by the host emulation, always) and ``cuda`` (skipped, with the reason,
without a usable GPU); MINIDL_KERNEL_DEVICES=cuda (or emu) restricts the devices.

Shapes are tiny because the emulation runs every CUDA thread on the CPU; they still
cover a single block, many blocks, sizes that are not multiples of the 64x64x16 conv
tiles, and the split-K weight gradient.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import KERNEL_DEVICES  # emu, cuda (skipped with the reason); see conftest
from minidl.backend import get_backend

RTOL, ATOL = 1e-5, 1e-5


@pytest.fixture(params=KERNEL_DEVICES)
def be(request):
    return get_backend(request.param)


@pytest.fixture(scope="module")
def cpu():
    return get_backend("cpu")


@pytest.fixture(params=["igemm", "im2col"])
def algo(request, be):
    old = getattr(be, "conv_algo", None)
    be.conv_algo = request.param
    yield request.param
    be.conv_algo = old


def _rand(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _close(got, expected, rtol=RTOL, atol=ATOL, what=""):
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------- convolution
# (x shape, w shape, stride, padding (t, b, l, r), dilation, groups)
CONV_CASES = {
    "3x3_pad1_single_block": ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "stride2_asym_pad": ((2, 4, 9, 8), (6, 4, 3, 3), (2, 2), (0, 2, 1, 0), (1, 1), 1),
    "dilation2": ((1, 3, 9, 9), (5, 3, 3, 2), (1, 2), (2, 1, 0, 1), (2, 2), 1),
    "groups2": ((2, 4, 9, 8), (6, 2, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),
    "many_blocks_ragged": ((2, 5, 10, 9), (70, 5, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "split_k_wgrad": ((2, 3, 16, 16), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "depthwise_mult2": ((2, 4, 6, 5), (8, 1, 3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 4),
    "depthwise_stride2_asym": ((2, 3, 9, 8), (3, 1, 3, 3), (2, 2), (1, 0, 0, 1), (1, 1), 3),
    "depthwise_5x5_dil2_many": ((2, 5, 12, 11), (5, 1, 5, 5), (1, 1), (4, 4, 4, 4), (2, 2), 5),
    "pointwise_gemm": ((2, 6, 5, 5), (4, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "pointwise_groups2": ((2, 6, 5, 4), (4, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2),
    "1x1_stride2": ((2, 6, 7, 7), (4, 6, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    "7x7_stride2_stem": ((1, 3, 13, 12), (8, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
}


def _conv_check(be, cpu, case, dtype=np.float32, rtol=RTOL, atol=ATOL):
    xs, ws, stride, padding, dilation, groups = case
    x, w = _rand(xs, 1, dtype), _rand(ws, 2, dtype)
    y_ref = cpu.conv2d_forward(x, w, stride, padding, dilation, groups)
    gy = _rand(y_ref.shape, 3, dtype)
    dx_ref, dw_ref = cpu.conv2d_backward(x, w, gy, stride, padding, dilation, groups)
    y = be.conv2d_forward(be.asarray(x), be.asarray(w), stride, padding, dilation, groups)
    dx, dw = be.conv2d_backward(be.asarray(x), be.asarray(w), be.asarray(gy), stride, padding,
                                dilation, groups)
    assert y.dtype == dtype and dx.dtype == dtype and dw.dtype == dtype
    _close(be.to_numpy(y), y_ref, rtol, atol, "forward")
    _close(be.to_numpy(dx), dx_ref, rtol, atol, "input gradient")
    _close(be.to_numpy(dw), dw_ref, rtol, atol, "weight gradient")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d(be, cpu, algo, name):
    _conv_check(be, cpu, CONV_CASES[name], atol=3e-5)


@pytest.mark.timeout(120)
def test_conv2d_float64(be, cpu, algo):
    _conv_check(be, cpu, CONV_CASES["groups2"], dtype=np.float64, rtol=1e-12, atol=1e-12)


@pytest.mark.timeout(120)
def test_conv2d_backward_partial(be, cpu, algo):
    xs, ws, stride, padding, dilation, groups = CONV_CASES["stride2_asym_pad"]
    x, w = _rand(xs, 4), _rand(ws, 5)
    gy = _rand(cpu.conv2d_forward(x, w, stride, padding, dilation, groups).shape, 6)
    dx_ref, dw_ref = cpu.conv2d_backward(x, w, gy, stride, padding, dilation, groups)
    args = (be.asarray(x), be.asarray(w), be.asarray(gy), stride, padding, dilation, groups)
    dx, dw = be.conv2d_backward(*args, need_dx=True, need_dw=False)
    assert dw is None
    _close(be.to_numpy(dx), dx_ref, atol=3e-5)
    dx, dw = be.conv2d_backward(*args, need_dx=False, need_dw=True)
    assert dx is None
    _close(be.to_numpy(dw), dw_ref, atol=3e-5)


@pytest.mark.timeout(120)
def test_conv2d_channel_mismatch_names_both(be):
    with pytest.raises(ValueError, match="input has 4 channels, weight expects 3"):
        be.conv2d_forward(be.asarray(_rand((1, 4, 5, 5), 0)), be.asarray(_rand((2, 3, 3, 3), 0)),
                          (1, 1), (0, 0, 0, 0), (1, 1), 1)


# ---------------------------------------------------------------- max pooling
# (x shape, kernel, stride, padding, ceil_mode)
MAX_CASES = {
    "3x3s2": ((2, 3, 9, 9), (3, 3), (2, 2), (0, 0), False),
    "2x2s2_odd": ((2, 3, 8, 7), (2, 2), (2, 2), (0, 0), False),
    "3x3s2_pad1_ceil": ((1, 2, 10, 10), (3, 3), (2, 2), (1, 1), True),
    "3x3s2_ceil_overhang": ((2, 2, 8, 8), (3, 3), (2, 2), (0, 0), True),
    "3x2_s21_many_blocks": ((2, 3, 20, 20), (3, 2), (2, 1), (1, 1), False),
}


def _max_check(be, cpu, x, kernel, stride, padding, ceil_mode):
    y_ref, am_ref = cpu.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)
    gy = _rand(y_ref.shape, 7)
    dx_ref = cpu.max_pool2d_backward(gy, am_ref, x.shape, kernel, stride, padding)
    y, am = be.max_pool2d_forward(be.asarray(x), kernel, stride, padding, ceil_mode)
    dx = be.max_pool2d_backward(be.asarray(gy), am, x.shape, kernel, stride, padding)
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
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("name", list(AVG_CASES))
def test_avg_pool2d(be, cpu, name, count_include_pad):
    xs, kernel, stride, padding, ceil_mode = AVG_CASES[name]
    x = _rand(xs, 11)
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    y_ref = cpu.avg_pool2d_forward(x, *args)
    gy = _rand(y_ref.shape, 12)
    y = be.avg_pool2d_forward(be.asarray(x), *args)
    dx = be.avg_pool2d_backward(be.asarray(gy), x.shape, *args)
    _close(be.to_numpy(y), y_ref, what="forward")
    _close(be.to_numpy(dx), cpu.avg_pool2d_backward(gy, x.shape, *args), what="input gradient")


@pytest.mark.timeout(120)
def test_avg_pool2d_all_equal(be):
    x = np.full((1, 2, 7, 7), 3.0, np.float32)
    y = be.to_numpy(be.avg_pool2d_forward(be.asarray(x), (3, 3), (2, 2), (1, 1), True, False))
    _close(y, np.full(y.shape, 3.0, np.float32))


# ---------------------------------------------------------------- adaptive / global average
@pytest.mark.timeout(120)
@pytest.mark.parametrize("xs,out", [((2, 3, 7, 7), (1, 1)), ((2, 3, 7, 7), (3, 3)),
                                    ((1, 2, 9, 7), (4, 5)), ((2, 2, 5, 5), (2, 2)),
                                    ((4, 70, 6, 5), (1, 1)), ((1, 2, 3, 3), (5, 4))])
def test_adaptive_avg_pool2d(be, cpu, xs, out):
    x = _rand(xs, 13)
    y_ref = cpu.adaptive_avg_pool2d_forward(x, out)
    gy = _rand(y_ref.shape, 14)
    y = be.adaptive_avg_pool2d_forward(be.asarray(x), out)
    dx = be.adaptive_avg_pool2d_backward(be.asarray(gy), x.shape)
    _close(be.to_numpy(y), y_ref, what="forward")
    _close(be.to_numpy(dx), cpu.adaptive_avg_pool2d_backward(gy, x.shape), what="input gradient")


# ---------------------------------------------------------------- LRN
@pytest.mark.timeout(120)
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 0.5, 0.75, 2.0), (4, 0.3, 0.6, 1.0),
                                               (1, 0.2, 0.75, 1.0), (9, 1e-2, 0.75, 1.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lrn(be, cpu, size, alpha, beta, k, dtype):
    x = _rand((2, 7, 3, 5), 15, dtype)
    y_ref, s_ref = cpu.lrn_forward(x, size, alpha, beta, k)
    gy = _rand(x.shape, 16, dtype)
    dx_ref = cpu.lrn_backward(x, y_ref, s_ref, gy, size, alpha, beta, k)
    y, s = be.lrn_forward(be.asarray(x), size, alpha, beta, k)
    dx = be.lrn_backward(be.asarray(x), y, s, be.asarray(gy), size, alpha, beta, k)
    tol = RTOL if dtype == np.float32 else 1e-12
    _close(be.to_numpy(y), y_ref, tol, tol, "forward")
    _close(be.to_numpy(s), s_ref, tol, tol, "scale")
    _close(be.to_numpy(dx), dx_ref, tol, tol, "input gradient")
