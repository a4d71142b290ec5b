"""Convolution and depthwise kernels (kernels/conv.cu, kernels/depthwise.cu) against
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

from kernel_testing import ATOL, RTOL, be, close as _close, cpu, rand as _rand  # noqa: F401 (fixtures)
from minidl.backend.geometry import ConvGeometry


@pytest.fixture(params=["igemm", "im2col"])
def algo(request, be):
    old = getattr(be, "conv_algo", None)
    be.conv_algo = request.param
    yield request.param
    be.conv_algo = old


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
    # several row tiles per plane (forward 6, backward-data 3, backward-weight 6)
    "depthwise_row_tiles": ((1, 2, 60, 200), (2, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "depthwise_row_tiles_stride2": ((1, 2, 70, 200), (2, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 2),
    # the direct kernels: a plane too wide for a tile, and more taps than a tile holds
    "depthwise_wide_plane_direct": ((1, 2, 4, 4200), (2, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "depthwise_9x9_taps_direct": ((1, 2, 10, 10), (2, 1, 9, 9), (1, 1), (4, 4, 4, 4), (1, 1), 2),
    "pointwise_gemm": ((2, 6, 5, 5), (4, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "pointwise_groups2": ((2, 6, 5, 4), (4, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2),
    "1x1_stride2": ((2, 6, 7, 7), (4, 6, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    "7x7_stride2_stem": ((1, 3, 13, 12), (8, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    # the tensor-core forward splits K = 57*9 = 513 over 2 blocks (a small map: 30 pixels)
    "split_k_forward": ((1, 57, 6, 5), (5, 57, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    # strided backward-data by input phase: stride 3 with 2 taps leaves a row phase with
    # no tap (its dx is 0), 11 rows are not a multiple of 3, dilation 2 steps the taps
    "stride3_phase_without_taps": ((2, 3, 11, 10), (4, 3, 2, 3), (3, 2), (1, 2, 0, 1), (2, 1), 1),
}


def _conv_check(be, cpu, case, dtype=np.float32, rtol=RTOL, atol=ATOL):
    xs, ws, stride, padding, dilation, groups = case
    x, w = _rand(xs, 1, dtype), _rand(ws, 2, dtype)
    g = ConvGeometry.create(xs, ws, stride, padding, dilation, groups)
    y_ref = cpu.conv2d_forward(x, w, g)
    gy = _rand(y_ref.shape, 3, dtype)
    dx_ref, dw_ref = cpu.conv2d_backward(x, w, gy, g)
    y = be.conv2d_forward(be.asarray(x), be.asarray(w), g)
    dx, dw = be.conv2d_backward(be.asarray(x), be.asarray(w), be.asarray(gy), g)
    assert y.dtype == dtype and dx.dtype == dtype and dw.dtype == dtype
    _close(be.to_numpy(y), y_ref, rtol, atol, "forward")
    _close(be.to_numpy(dx), dx_ref, rtol, atol, "input gradient")
    _close(be.to_numpy(dw), dw_ref, rtol, atol, "weight gradient")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d(be, cpu, algo, name):
    _conv_check(be, cpu, CONV_CASES[name], atol=3e-5)


def _tf32(a):
    """cvt.rna.tf32.f32 (tests/kernels/test_tensor_core.py checks it): nearest, ties
    away from zero, to 10 mantissa bits."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x1000) & 0xFFFFE000).astype(np.uint32).view(np.float32)


# the TF32 kernel covers what implicit GEMM covers (not 1x1 / depthwise), plus a tile
# edge in every direction: 70 output channels, 9x11 = 99 pixels per image
TF32_CASES = [n for n in CONV_CASES if not n.startswith(("pointwise", "depthwise"))]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", TF32_CASES)
def test_conv2d_tf32_tensor_cores(be, cpu, name):
    """With minidl.cuda.allow_tf32.conv the float32 forward, backward-data and
    backward-weight run on mma.sync TF32 (kernels/conv_tc.cuh): against a float64
    reference of the TF32-rounded inputs each agrees to fp32 summation error, and
    against the exact inputs to TF32's ~1e-3 (an error that shows the kernel ran)."""
    import minidl
    xs, ws, stride, padding, dilation, groups = CONV_CASES[name]
    x, w = _rand(xs, 21), _rand(ws, 22)
    g = ConvGeometry.create(xs, ws, stride, padding, dilation, groups)
    gy = _rand(g.y_shape, 23)
    old = (minidl.cuda.allow_tf32.conv, getattr(be, "conv_algo", None))
    minidl.cuda.allow_tf32.conv, be.conv_algo = True, "igemm"
    try:
        y = be.to_numpy(be.conv2d_forward(be.asarray(x), be.asarray(w), g))
        dx, dw = (be.to_numpy(a) for a in be.conv2d_backward(be.asarray(x), be.asarray(w), be.asarray(gy), g))
    finally:
        minidl.cuda.allow_tf32.conv, be.conv_algo = old
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    rounded = [cpu.conv2d_forward(f64(_tf32(x)), f64(_tf32(w)), g),
               *cpu.conv2d_backward(f64(_tf32(x)), f64(_tf32(w)), f64(_tf32(gy)), g)]
    exact = [cpu.conv2d_forward(f64(x), f64(w), g), *cpu.conv2d_backward(f64(x), f64(w), f64(gy), g)]
    for what, got, r, e in zip(("y", "dx", "dw"), (y, dx, dw), rounded, exact):
        scale = np.abs(e).max()
        np.testing.assert_allclose(got / scale, r / scale, rtol=0, atol=3e-6, err_msg=what)
        err = np.abs(got - e).max() / scale
        assert 1e-5 < err < 3e-3, (what, err)


def _check_16_bit(be, cpu, case, half, algo=None):
    """Forward, backward-data and backward-weight of a CONV_CASES case on 16-bit inputs:
    each output within one rounding of the format (eps relative, plus float32 summation
    error) of the float64 result, in the 16-bit dtype; -> the (launcher, dtype) pairs
    the backend launched."""
    from minidl import dtypes
    dtype = dtypes.dtype(half)
    eps = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[half]
    xs, ws, stride, padding, dilation, groups = case
    g = ConvGeometry.create(xs, ws, stride, padding, dilation, groups)
    x, w, gy = (_rand(s, seed).astype(dtype) for s, seed in ((xs, 31), (ws, 32), (g.y_shape, 33)))
    old, launched, launch = getattr(be, "conv_algo", None), [], be.launch
    be.conv_algo = algo or old
    be.launch = lambda op, dt, *args: (launched.append((op, np.dtype(dt))), launch(op, dt, *args))[1]
    try:
        got = [be.conv2d_forward(be.asarray(x), be.asarray(w), g),
               *be.conv2d_backward(be.asarray(x), be.asarray(w), be.asarray(gy), g)]
    finally:
        be.conv_algo = old
        del be.launch
    f64 = lambda a: np.asarray(a).astype(np.float64)  # noqa: E731
    want = [cpu.conv2d_forward(f64(x), f64(w), g), *cpu.conv2d_backward(f64(x), f64(w), f64(gy), g)]
    for what, a, r in zip(("y", "dx", "dw"), got, want):
        assert a.dtype == dtype, what
        a = f64(be.to_numpy(a))
        bad = np.abs(a - r) > eps * np.abs(r) + 1e-5 * np.abs(r).max()
        assert not bad.any(), (what, float(np.abs(a - r).max()))
    return launched, dtype


@pytest.mark.timeout(120)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", TF32_CASES)
def test_conv2d_16_bit_tensor_cores(be, cpu, name, half):
    """float16/bfloat16 convolutions on mma.sync m16n8k16 (kernels/conv_tc.cuh), the 16-bit
    tensor-core kernels launched on the 16-bit arrays themselves."""
    launched, dtype = _check_16_bit(be, cpu, CONV_CASES[name], half, algo="igemm")
    assert launched == [(f"conv2d_tc_{p}", dtype) for p in ("forward", "backward_data", "backward_weight")]


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_16_bit_convolutions_stay_on_tensor_cores_under_auto(be, cpu, half):
    """conv_algo "auto" keeps 16-bit inputs on the tensor-core kernels where float32
    takes im2col (small maps, strided backwards): that path would compute them in
    float32, off the 16-bit tensor cores; conv_algo "im2col" still selects it."""
    launched, dtype = _check_16_bit(be, cpu, CONV_CASES["stride2_asym_pad"], half, algo="auto")
    assert launched == [(f"conv2d_tc_{p}", dtype) for p in ("forward", "backward_data", "backward_weight")]
    launched, _ = _check_16_bit(be, cpu, CONV_CASES["stride2_asym_pad"], half, algo="im2col")
    assert launched and all(op in ("conv2d_im2col", "conv2d_col2im") and dt == np.float32
                            for op, dt in launched), launched


def test_tf32_auto_takes_the_tensor_cores_on_small_maps_and_strided_backwards(be, cpu):
    """conv_algo "auto" with TF32 on: the small-map forward (split over K) and the strided
    backward-data (by phase) run on the tensor-core kernels, not im2col."""
    import minidl
    launched, launch = [], be.launch
    old = (minidl.cuda.allow_tf32.conv, getattr(be, "conv_algo", None))
    minidl.cuda.allow_tf32.conv, be.conv_algo = True, "auto"
    be.launch = lambda op, dt, *args: (launched.append(op), launch(op, dt, *args))[1]
    try:
        for name in ("split_k_forward", "stride2_asym_pad"):
            xs, ws, stride, padding, dilation, groups = CONV_CASES[name]
            g = ConvGeometry.create(xs, ws, stride, padding, dilation, groups)
            x, w, gy = be.asarray(_rand(xs, 1)), be.asarray(_rand(ws, 2)), be.asarray(_rand(g.y_shape, 3))
            be.conv2d_forward(x, w, g)
            be.conv2d_backward(x, w, gy, g)
    finally:
        minidl.cuda.allow_tf32.conv, be.conv_algo = old
        del be.launch
    assert launched == [f"conv2d_tc_{p}" for p in ("forward", "backward_data", "backward_weight")] * 2, launched


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("name", ["groups2", "split_k_forward"])
@pytest.mark.parametrize("dtype", ["tf32", "float16", "bfloat16"])
def test_tensor_core_forward_adds_bias_and_relu_in_its_epilogue(be, cpu, dtype, name, relu):
    """conv2d_forward(..., bias, relu) on the tensor-core kernels: the bias and the ReLU
    are applied to the float accumulator before the store (or by the split-K sum), so a
    16-bit result is rounded once (within one rounding of the float64 max(conv + bias,
    0)) and no separate bias or ReLU pass is launched."""
    import minidl
    from minidl import dtypes
    xs, ws, stride, padding, dilation, groups = CONV_CASES[name]
    g = ConvGeometry.create(xs, ws, stride, padding, dilation, groups)
    data = np.float32 if dtype == "tf32" else dtypes.dtype(dtype)
    x, w = _rand(xs, 41).astype(data), _rand(ws, 42).astype(data)
    b = (_rand((ws[0],), 43) * 4).astype(data)
    launched, launch = [], be.launch
    old = (minidl.cuda.allow_tf32.conv, getattr(be, "conv_algo", None))
    minidl.cuda.allow_tf32.conv, be.conv_algo = True, "igemm"
    be.launch = lambda op, dt, *args: (launched.append(op), launch(op, dt, *args))[1]
    try:
        y = be.to_numpy(be.conv2d_forward(be.asarray(x), be.asarray(w), g, be.asarray(b), relu=relu))
    finally:
        minidl.cuda.allow_tf32.conv, be.conv_algo = old
        del be.launch
    assert launched == ["conv2d_tc_forward"], launched
    y = y.astype(np.float64)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    xr, wr = (f64(_tf32(x)), f64(_tf32(w))) if dtype == "tf32" else (f64(x), f64(w))
    want = cpu.conv2d_forward(xr, wr, g) + f64(b).reshape(-1, 1, 1)
    if relu:
        assert (want < 0).any()
        want = np.maximum(want, 0)
    eps = {"tf32": 1e-6, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[dtype]
    bad = np.abs(y - want) > eps * np.abs(want) + 1e-5 * np.abs(want).max()
    assert not bad.any(), float(np.abs(y - want).max())


DEPTHWISE_CASES = [n for n in CONV_CASES if n.startswith("depthwise")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", DEPTHWISE_CASES)
def test_depthwise_16_bit(be, cpu, name, half):
    """The depthwise kernels' float16/bfloat16 instances (row tiles and direct kernels;
    float compute, float32 weight-gradient partials), launched on the 16-bit arrays."""
    launched, dtype = _check_16_bit(be, cpu, CONV_CASES[name], half)
    assert launched and all(dt == dtype and op.startswith("depthwise") for op, dt in launched), launched


@pytest.mark.timeout(120)
def test_conv2d_float64(be, cpu, algo):
    _conv_check(be, cpu, CONV_CASES["groups2"], dtype=np.float64, rtol=1e-12, atol=1e-12)


@pytest.mark.timeout(120)
def test_conv2d_backward_partial(be, cpu, algo):
    xs, ws, stride, padding, dilation, groups = CONV_CASES["stride2_asym_pad"]
    x, w = _rand(xs, 4), _rand(ws, 5)
    g = ConvGeometry.create(xs, ws, stride, padding, dilation, groups)
    gy = _rand(cpu.conv2d_forward(x, w, g).shape, 6)
    dx_ref, dw_ref = cpu.conv2d_backward(x, w, gy, g)
    args = (be.asarray(x), be.asarray(w), be.asarray(gy), g)
    dx, dw = be.conv2d_backward(*args, need_dx=True, need_dw=False)
    assert dw is None
    _close(be.to_numpy(dx), dx_ref, atol=3e-5)
    dx, dw = be.conv2d_backward(*args, need_dx=False, need_dw=True)
    assert dx is None
    _close(be.to_numpy(dw), dw_ref, atol=3e-5)


@pytest.mark.timeout(120)
def test_conv2d_channel_mismatch_names_both(be):
    with pytest.raises(ValueError, match="input has 4 channels, weight expects 3"):
        g = ConvGeometry.create((1, 4, 5, 5), (2, 3, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1)
        be.conv2d_forward(be.asarray(_rand((1, 4, 5, 5), 0)), be.asarray(_rand((2, 3, 3, 3), 0)), g)
