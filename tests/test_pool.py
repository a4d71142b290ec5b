"""Pooling against naive float64 loop references that spell out PyTorch's rules,
plus finite-difference gradient checks, on every device (the ``device`` fixture:
cpu, emu, and cuda where there is a GPU)."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import gradcheck


# ---------------------------------------------------------------- naive references
def ref_out_size(size, kernel, stride, pad, ceil_mode):
    span = (size + 2 * pad - kernel) / stride
    out = (math.ceil(span) if ceil_mode else math.floor(span)) + 1
    # PyTorch: the last window must start inside the input or the left padding
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def ref_max_pool(x, kernel, stride, pad, ceil_mode):
    """-> (y, winners): winners[n, c, oh, ow] = (h, w) of the first maximum of the window."""
    n_img, chans, height, width = x.shape
    out_h = ref_out_size(height, kernel[0], stride[0], pad[0], ceil_mode)
    out_w = ref_out_size(width, kernel[1], stride[1], pad[1], ceil_mode)
    y = np.zeros((n_img, chans, out_h, out_w))
    winners = np.zeros((n_img, chans, out_h, out_w, 2), dtype=int)
    for n in range(n_img):
        for c in range(chans):
            for oh in range(out_h):
                for ow in range(out_w):
                    best, where = None, None
                    for i in range(oh * stride[0] - pad[0], oh * stride[0] - pad[0] + kernel[0]):
                        for j in range(ow * stride[1] - pad[1], ow * stride[1] - pad[1] + kernel[1]):
                            if 0 <= i < height and 0 <= j < width and (best is None or x[n, c, i, j] > best):
                                best, where = x[n, c, i, j], (i, j)
                    y[n, c, oh, ow] = best
                    winners[n, c, oh, ow] = where
    return y, winners


def ref_max_pool_grad(x_shape, winners, gy):
    dx = np.zeros(x_shape)
    n_img, chans, out_h, out_w = gy.shape
    for n in range(n_img):
        for c in range(chans):
            for oh in range(out_h):
                for ow in range(out_w):
                    i, j = winners[n, c, oh, ow]
                    dx[n, c, i, j] += gy[n, c, oh, ow]
    return dx


def ref_avg_windows(x_shape, kernel, stride, pad, ceil_mode, count_include_pad):
    """Yield (oh, ow, cells, divisor) with PyTorch's divisor: padded cells count only up
    to the padded input's edge, the ceil_mode overhang never does."""
    height, width = x_shape[2], x_shape[3]
    out_h = ref_out_size(height, kernel[0], stride[0], pad[0], ceil_mode)
    out_w = ref_out_size(width, kernel[1], stride[1], pad[1], ceil_mode)
    for oh in range(out_h):
        for ow in range(out_w):
            h_start, w_start = oh * stride[0] - pad[0], ow * stride[1] - pad[1]
            cells, padded = [], 0
            for i in range(h_start, h_start + kernel[0]):
                for j in range(w_start, w_start + kernel[1]):
                    if -pad[0] <= i < height + pad[0] and -pad[1] <= j < width + pad[1]:
                        padded += 1
                    if 0 <= i < height and 0 <= j < width:
                        cells.append((i, j))
            yield oh, ow, cells, (padded if count_include_pad else len(cells))


def ref_avg_pool(x, kernel, stride, pad, ceil_mode, count_include_pad):
    out_h = ref_out_size(x.shape[2], kernel[0], stride[0], pad[0], ceil_mode)
    out_w = ref_out_size(x.shape[3], kernel[1], stride[1], pad[1], ceil_mode)
    y = np.zeros(x.shape[:2] + (out_h, out_w))
    for oh, ow, cells, divisor in ref_avg_windows(x.shape, kernel, stride, pad, ceil_mode, count_include_pad):
        for i, j in cells:
            y[:, :, oh, ow] += x[:, :, i, j]
        y[:, :, oh, ow] /= divisor
    return y


def ref_avg_pool_grad(x_shape, gy, kernel, stride, pad, ceil_mode, count_include_pad):
    dx = np.zeros(x_shape)
    for oh, ow, cells, divisor in ref_avg_windows(x_shape, kernel, stride, pad, ceil_mode, count_include_pad):
        for i, j in cells:
            dx[:, :, i, j] += gy[:, :, oh, ow] / divisor
    return dx


def ref_adaptive_avg_pool(x, out_h, out_w):
    height, width = x.shape[2], x.shape[3]
    y = np.zeros(x.shape[:2] + (out_h, out_w))
    for oh in range(out_h):
        h0, h1 = math.floor(oh * height / out_h), math.ceil((oh + 1) * height / out_h)
        for ow in range(out_w):
            w0, w1 = math.floor(ow * width / out_w), math.ceil((ow + 1) * width / out_w)
            total = np.zeros(x.shape[:2])
            for i in range(h0, h1):
                for j in range(w0, w1):
                    total += x[:, :, i, j]
            y[:, :, oh, ow] = total / ((h1 - h0) * (w1 - w0))
    return y


def distinct_values(shape, seed):
    """A shuffled ramp: no ties, gaps of 1/size, so finite differences never flip a max."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return rng.permutation(size).reshape(shape) / size


# ---------------------------------------------------------------- cases
# (input shape, kernel, stride, padding, ceil_mode)
POOL_CASES = [
    ((2, 3, 13, 13), 3, 2, 0, False),        # AlexNet overlapping 3x3/2
    ((2, 2, 8, 8), 2, 2, 0, False),          # non-overlapping 2x2/2
    ((1, 2, 9, 9), 3, 3, 0, False),          # OverFeat 3x3/3, batch 1
    ((2, 2, 7, 9), 3, 2, 1, False),          # padding == kernel // 2, odd sizes
    ((1, 3, 8, 8), 3, 2, 0, True),           # ceil_mode adds a partial last window
    ((1, 2, 5, 5), 2, 2, 1, True),           # ceil_mode's extra window dropped (PyTorch rule)
    ((2, 2, 11, 10), 2, 3, 0, False),        # stride > kernel
    ((1, 2, 11, 10), 2, 3, 1, True),         # stride > kernel, padding, ceil_mode
    ((1, 1, 6, 7), (2, 3), (1, 2), (1, 1), False),  # rectangular everything
    ((3, 2, 5, 7), 3, 1, 1, True),           # stride 1
]


def _pairs(kernel, stride, pad):
    as_pair = lambda v: tuple(v) if isinstance(v, tuple) else (v, v)
    return as_pair(kernel), as_pair(stride), as_pair(pad)


@pytest.mark.parametrize("shape,kernel,stride,pad,ceil_mode", POOL_CASES)
def test_max_pool_matches_reference(shape, kernel, stride, pad, ceil_mode, device):
    x = np.random.default_rng(0).standard_normal(shape)
    k2, s2, p2 = _pairs(kernel, stride, pad)
    want, winners = ref_max_pool(x, k2, s2, p2, ceil_mode)
    gy = np.random.default_rng(1).standard_normal(want.shape)
    for dtype in ("float64", "float32"):
        xt = minidl.tensor(x, dtype=dtype, requires_grad=True, device=device)
        y = F.max_pool2d(xt, kernel, stride, pad, ceil_mode)
        assert y.shape == want.shape and y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-6)
        y.backward(minidl.tensor(gy, dtype=dtype, device=device))
        np.testing.assert_allclose(xt.grad.numpy(), ref_max_pool_grad(shape, winners, gy), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,kernel,stride,pad,ceil_mode", POOL_CASES)
def test_max_pool_gradcheck(shape, kernel, stride, pad, ceil_mode, device):
    # one plane keeps finite differences cheap; batches and channels are covered above
    x = distinct_values((1, 1) + shape[2:], seed=2)
    gradcheck(lambda t: F.max_pool2d(t, kernel, stride, pad, ceil_mode), x, device=device)


@pytest.mark.parametrize("shape,kernel,stride,pad,ceil_mode",
                         [((2, 2, 9, 9), 3, 2, 1, False), ((1, 2, 8, 7), 3, 2, 0, True), ((1, 1, 4, 4), 2, 2, 0, False)])
def test_max_pool_all_equal_sends_gradient_to_first_cell(shape, kernel, stride, pad, ceil_mode, device):
    x = np.full(shape, 0.5)
    k2, s2, p2 = _pairs(kernel, stride, pad)
    want, winners = ref_max_pool(x, k2, s2, p2, ceil_mode)
    xt = minidl.tensor(x, dtype="float64", requires_grad=True, device=device)
    y = F.max_pool2d(xt, kernel, stride, pad, ceil_mode)
    np.testing.assert_array_equal(y.numpy(), want)
    gy = np.ones(want.shape)
    y.backward(minidl.tensor(gy, dtype="float64", device=device))
    dx = xt.grad.numpy()
    # one unit of gradient per window, at the window's first (top-left valid) cell
    assert dx.sum() == want.size
    np.testing.assert_array_equal(dx, ref_max_pool_grad(shape, winners, gy))
    assert tuple(winners[0, 0, 0, 0]) == (0, 0)  # the top-left window's first valid cell


def test_max_pool_ignores_padding_for_negative_inputs(device):
    x = -np.ones((1, 1, 3, 3)) - np.arange(9).reshape(1, 1, 3, 3)
    y = F.max_pool2d(minidl.tensor(x, dtype="float64", device=device), 3, 1, 1).numpy()
    want, _ = ref_max_pool(x, (3, 3), (1, 1), (1, 1), False)
    np.testing.assert_array_equal(y, want)
    assert y.max() == -1.0  # a padded zero never wins


@pytest.mark.parametrize("size,kernel,stride,pad,ceil_mode,expected", [
    (55, 3, 2, 0, False, 27),   # AlexNet
    (112, 3, 2, 1, False, 56),  # ResNet stem pool
    (8, 3, 2, 0, True, 4),
    (5, 2, 2, 1, True, 3),      # ceil_mode's last window would start in the right padding
    (13, 3, 2, 0, True, 6),
    (14, 3, 2, 0, True, 7),     # GoogLeNet-style ceil_mode
])
def test_output_sizes_follow_pytorch(size, kernel, stride, pad, ceil_mode, expected, device):
    assert ref_out_size(size, kernel, stride, pad, ceil_mode) == expected
    x = minidl.tensor(np.zeros((1, 1, size, size), dtype=np.float32), device=device)
    assert F.max_pool2d(x, kernel, stride, pad, ceil_mode).shape == (1, 1, expected, expected)
    assert F.avg_pool2d(x, kernel, stride, pad, ceil_mode).shape == (1, 1, expected, expected)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,kernel,stride,pad,ceil_mode", POOL_CASES)
def test_avg_pool_matches_reference(shape, kernel, stride, pad, ceil_mode, count_include_pad, device):
    x = np.random.default_rng(3).standard_normal(shape)
    k2, s2, p2 = _pairs(kernel, stride, pad)
    want = ref_avg_pool(x, k2, s2, p2, ceil_mode, count_include_pad)
    gy = np.random.default_rng(4).standard_normal(want.shape)
    for dtype in ("float64", "float32"):
        xt = minidl.tensor(x, dtype=dtype, requires_grad=True, device=device)
        y = F.avg_pool2d(xt, kernel, stride, pad, ceil_mode, count_include_pad)
        assert y.shape == want.shape
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-6)
        y.backward(minidl.tensor(gy, dtype=dtype, device=device))
        np.testing.assert_allclose(
            xt.grad.numpy(), ref_avg_pool_grad(shape, gy, k2, s2, p2, ceil_mode, count_include_pad),
            rtol=1e-5, atol=1e-6)


def test_avg_pool_divisor_excludes_ceil_mode_overhang(device):
    # width 6, kernel 3, stride 2, pad 1, ceil_mode: windows start at -1, 1, 3, 5; the last
    # covers input column 5, padding column 6 and the ceil overhang column 7, which never counts.
    x = minidl.tensor(np.ones((1, 1, 1, 6)), dtype="float64", device=device)
    y = F.avg_pool2d(x, (1, 3), (1, 2), (0, 1), ceil_mode=True, count_include_pad=True).numpy()
    np.testing.assert_allclose(y[0, 0, 0], [2 / 3, 1.0, 1.0, 0.5])
    y = F.avg_pool2d(x, (1, 3), (1, 2), (0, 1), ceil_mode=True, count_include_pad=False).numpy()
    np.testing.assert_allclose(y[0, 0, 0], [1.0, 1.0, 1.0, 1.0])
    # no padding: the overhang window [4, 6) divides by 2, not 3
    y = F.avg_pool2d(x, (1, 3), (1, 2), 0, ceil_mode=True, count_include_pad=True).numpy()
    np.testing.assert_allclose(y[0, 0, 0], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,kernel,stride,pad,ceil_mode", POOL_CASES)
def test_avg_pool_gradcheck(shape, kernel, stride, pad, ceil_mode, count_include_pad, device):
    x = np.random.default_rng(5).standard_normal((1, 1) + shape[2:])
    gradcheck(lambda t: F.avg_pool2d(t, kernel, stride, pad, ceil_mode, count_include_pad), x,
              device=device)


# ---------------------------------------------------------------- adaptive / global
@pytest.mark.parametrize("shape,output_size,expected_hw", [
    ((2, 3, 13, 13), 6, (6, 6)),          # AlexNet's avgpool to 6x6
    ((1, 2, 7, 7), 1, (1, 1)),
    ((2, 2, 7, 5), (3, 2), (3, 2)),       # non-divisible: 7 -> 3, 5 -> 2
    ((1, 2, 6, 7), (None, 3), (6, 3)),    # None keeps the input size
    ((1, 1, 3, 4), (5, 6), (5, 6)),       # bigger than the input: bins repeat cells
    ((1, 2, 12, 12), (6, 6), (6, 6)),     # divisible
])
def test_adaptive_avg_pool_matches_reference(shape, output_size, expected_hw, device):
    x = np.random.default_rng(6).standard_normal(shape)
    want = ref_adaptive_avg_pool(x, *expected_hw)
    for dtype in ("float64", "float32"):
        y = F.adaptive_avg_pool2d(minidl.tensor(x, dtype=dtype, device=device), output_size)
        assert y.shape == shape[:2] + expected_hw
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-6)
    small = x[:1, :1, :7, :5]
    gradcheck(lambda t: F.adaptive_avg_pool2d(t, output_size), small, device=device)


def test_global_avg_pool_matches_reference_and_gradients(device):
    x = np.random.default_rng(7).standard_normal((2, 3, 5, 7))
    want = np.zeros((2, 3, 1, 1))
    for i in range(5):
        for j in range(7):
            want[:, :, 0, 0] += x[:, :, i, j] / 35
    y = F.global_avg_pool2d(minidl.tensor(x, dtype="float64", device=device))
    assert y.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12)
    gradcheck(F.global_avg_pool2d, x[:1, :2], device=device)


# ---------------------------------------------------------------- errors
def _x(shape):
    return minidl.tensor(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("call,message", [
    (lambda: F.max_pool2d(_x((3, 8, 8)), 2),
     r"max_pool2d: expected a 4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"),
    (lambda: F.avg_pool2d(_x((1, 3, 8, 8)), 0),
     r"avg_pool2d: expected a positive kernel_size, got \(0, 0\)"),
    (lambda: F.max_pool2d(_x((1, 3, 8, 8)), 2, stride=(1, 0)),
     r"max_pool2d: expected a positive stride, got \(1, 0\)"),
    (lambda: F.max_pool2d(_x((1, 3, 8, 8)), 3, padding=2),
     r"max_pool2d: padding must be at most half the kernel size, got padding \(2, 2\) for kernel_size \(3, 3\)"),
    (lambda: F.avg_pool2d(_x((1, 3, 2, 8)), 3),
     r"avg_pool2d: input size \(2, 8\) is too small for kernel_size \(3, 3\), stride \(3, 3\), "
     r"padding \(0, 0\): the output size would be \(0, 2\)"),
    (lambda: F.adaptive_avg_pool2d(_x((1, 3, 8, 8)), (0, 2)),
     r"adaptive_avg_pool2d: expected a positive output_size, got \(0, 2\)"),
    (lambda: F.global_avg_pool2d(_x((8, 8))),
     r"global_avg_pool2d: expected a 4-D input \(N, C, H, W\), got shape \(8, 8\)"),
])
def test_errors_name_op_expected_and_given(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_type_errors_name_op_expected_and_given():
    with pytest.raises(TypeError, match="max_pool2d: expected a Tensor input, got ndarray"):
        F.max_pool2d(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(TypeError, match="max_pool2d: expected kernel_size to be an int or a pair of ints, got 2.5"):
        F.max_pool2d(_x((1, 3, 8, 8)), 2.5)


# ---------------------------------------------------------------- parallel kernels
# cpu only: these shapes exist to reach the CPU backend's threaded Numba kernels, and the
# kernel backends' pooling is checked on small shapes above on every device.
def test_large_inputs_take_the_parallel_kernels_and_match_references():
    # inputs above the backend's small-input cutoff run the threaded kernels
    x = distinct_values((2, 16, 35, 33), seed=8) - 0.5
    gy = np.random.default_rng(9).standard_normal((2, 16, 17, 16))
    xt = minidl.tensor(x, dtype="float32", requires_grad=True)
    y = F.max_pool2d(xt, 3, 2)
    want, winners = ref_max_pool(x, (3, 3), (2, 2), (0, 0), False)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-7)
    y.backward(minidl.tensor(gy, dtype="float32"))
    np.testing.assert_allclose(xt.grad.numpy(), ref_max_pool_grad(x.shape, winners, gy), rtol=1e-5, atol=1e-6)

    xt.grad = None
    y = F.avg_pool2d(xt, 3, 2, 1, True, False)
    k, s, p = (3, 3), (2, 2), (1, 1)
    np.testing.assert_allclose(y.numpy(), ref_avg_pool(x, k, s, p, True, False), rtol=1e-5, atol=1e-6)
    gy = np.random.default_rng(10).standard_normal(y.shape)
    y.backward(minidl.tensor(gy, dtype="float32"))
    np.testing.assert_allclose(xt.grad.numpy(), ref_avg_pool_grad(x.shape, gy, k, s, p, True, False),
                               rtol=1e-5, atol=1e-6)

    xt.grad = None
    y = F.adaptive_avg_pool2d(xt, (6, 5))
    np.testing.assert_allclose(y.numpy(), ref_adaptive_avg_pool(x, 6, 5), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    # each input cell's gradient: the sum over the bins that contain it of 1 / bin area
    ones = np.zeros(x.shape)
    for oh in range(6):
        h0, h1 = math.floor(oh * 35 / 6), math.ceil((oh + 1) * 35 / 6)
        for ow in range(5):
            w0, w1 = math.floor(ow * 33 / 5), math.ceil((ow + 1) * 33 / 5)
            ones[:, :, h0:h1, w0:w1] += 1 / ((h1 - h0) * (w1 - w0))
    np.testing.assert_allclose(xt.grad.numpy(), ones, rtol=1e-5)
