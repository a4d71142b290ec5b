"""The CPU's direct convolution forward (minidl/backend/cpu/direct.py): register tiles
over few input channels, against float64 references over strides, asymmetric padding,
tile shapes and edges; its masked stores against sentinels around y; its gradients (the
backward is im2col's) by finite differences; and where "auto" takes it."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.backend import get_backend
from minidl.backend.cpu import conv, direct
from minidl.backend.geometry import ConvGeometry
from test_conv import CASES as CONV_CASES
from test_conv import _pair, _random_case, as_pads, reference_conv2d

hypothesis = pytest.importorskip("hypothesis", reason="the property test needs hypothesis (pip install -e .[test])")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# (x shape, w shape, stride, padding (top, bottom, left, right)): every tile shape of
# ROWS_FOR_VECTORS (output widths of 1 to 7 vectors, and two tiles), output channels
# that fill no whole block of rows, row runs split over tasks (batch 1) and not.
CASES = {
    "stem_7x7_stride2": ((2, 3, 30, 38), (64, 3, 7, 7), 2, (3, 3, 3, 3)),  # 19 px: 2 vectors
    "stem_one_image": ((1, 3, 21, 224), (10, 3, 7, 7), 2, (3, 3, 3, 3)),  # 112 px: 7 vectors
    "3x3_stride1_gray": ((3, 1, 9, 96), (5, 1, 3, 3), 1, (1, 1, 1, 1)),  # 6 vectors
    "5x5_asymmetric": ((2, 2, 8, 70), (7, 2, 5, 5), 1, (2, 0, 3, 1)),  # 70 px: 5 vectors
    "3x3_stride2_unpadded": ((1, 3, 11, 125), (9, 3, 3, 3), 2, (0, 0, 0, 0)),  # 62 px: 4 vectors
    "11x11_stride4": ((2, 3, 23, 187), (4, 3, 11, 11), 4, (2, 2, 2, 2)),  # 45 px: 3 vectors
    "two_tiles": ((1, 4, 5, 250), (3, 4, 3, 3), 2, (1, 1, 1, 1)),  # 125 px: 2 tiles of 4 vectors
    "one_pixel_wide": ((2, 2, 6, 3), (17, 2, 3, 3), 1, (1, 1, 0, 0)),  # 1 px: 1 vector
    "stride3_rect": ((1, 3, 10, 31), (6, 3, 2, 4), 3, (1, 2, 0, 3)),
    "padding_beyond_window": ((1, 1, 4, 5), (2, 1, 3, 3), 1, (3, 2, 4, 3)),
}


def tap_sum_reference(x, w, g):
    """y in float64 as a sum over the window's taps of strided slices of the zero-padded
    input (checked against reference_conv2d's loops by the first test)."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (g.pt, g.pb), (g.pl, g.pr)))
    y = np.zeros(g.y_shape)
    for i in range(g.KH):
        for j in range(g.KW):
            window = padded[:, :, i:i + g.sh * (g.HO - 1) + 1:g.sh, j:j + g.sw * (g.WO - 1) + 1:g.sw]
            y += np.einsum("oc,nchw->nohw", w[:, :, i, j].astype(np.float64), window)
    return y


def _case(name, seed=0):
    x_shape, w_shape, stride, pads = CASES[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    return x, w, ConvGeometry.create(x_shape, w_shape, (stride,) * 2, pads, (1, 1), 1)


def _assert_close_float32(y, expected, taps):
    """float32 products summed over ``taps`` terms: within a few ulps of the largest."""
    assert y.dtype == np.float32 and y.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(y, expected, rtol=0, atol=4 * np.sqrt(taps) * 6e-8 * scale)


def test_tap_sum_reference_is_the_loops():
    x, w, g = _case("stride3_rect")
    expected = reference_conv2d(x.astype(np.float64), w.astype(np.float64), None, g.stride, g.padding, (1, 1), 1)
    np.testing.assert_allclose(tap_sum_reference(x, w, g), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_matches_float64(name):
    x, w, g = _case(name)
    assert direct.applies(g, x.dtype)
    expected = (reference_conv2d(x.astype(np.float64), w.astype(np.float64), None, g.stride, g.padding, (1, 1), 1)
                if x.size <= 1000 else tap_sum_reference(x, w, g))
    _assert_close_float32(direct.conv2d_forward(x, w, g), expected, g.C * g.KH * g.KW)


@pytest.mark.parametrize("name", [name for name, case in CONV_CASES.items() if case[4] == 1 and case[5] == 1])
@pytest.mark.parametrize("relu", [False, True])
def test_conv_family_cases_through_f_conv2d(name, relu, monkeypatch):
    """test_conv.py's ungrouped, undilated cases in float32 through F.conv2d with
    conv_algo "direct" (bias and the fused ReLU included) against its float64 loops."""
    monkeypatch.setattr(get_backend("cpu"), "conv_algo", "direct", raising=False)
    calls = []
    forward = direct.conv2d_forward
    monkeypatch.setattr(direct, "conv2d_forward", lambda *args: calls.append(1) or forward(*args))
    x, w, b, stride, padding, dilation, groups = _random_case(name, seed=6)
    got = F.conv2d(minidl.tensor(x, dtype="float32"), minidl.tensor(w, dtype="float32"),
                   minidl.tensor(b, dtype="float32"), stride=stride, padding=padding, relu=relu).numpy()
    expected = reference_conv2d(x, w, b, _pair(stride), as_pads(padding), (1, 1), 1)
    if relu:
        expected = np.maximum(expected, 0)
    assert calls == [1]
    _assert_close_float32(got, expected, w[0].size + 1)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), o=st.integers(1, 20), h=st.integers(1, 12),
       width=st.integers(1, 80), kh=st.integers(1, 7), kw=st.integers(1, 7), stride=st.integers(1, 4),
       pads=st.tuples(*[st.integers(0, 3)] * 4), seed=st.integers(0, 2**16))
def test_forward_matches_float64_on_random_geometries(n, c, o, h, width, kh, kw, stride, pads, seed):
    if h + pads[0] + pads[1] < kh or width + pads[2] + pads[3] < kw:
        return  # (no output: the geometry's own checks reject it)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, width)).astype(np.float32)
    w = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    g = ConvGeometry.create(x.shape, w.shape, (stride, stride), pads, (1, 1), 1)
    _assert_close_float32(direct.conv2d_forward(x, w, g), tap_sum_reference(x, w, g), c * kh * kw)


@pytest.mark.parametrize("name", ["stem_7x7_stride2", "5x5_asymmetric", "one_pixel_wide", "two_tiles"])
def test_masked_stores_stay_inside_y(name):
    """y inside a buffer of NaN sentinels: the edge tiles (the right edge of every row,
    the last block's rows past the last channel) write nothing outside y."""
    x, w, g = _case(name)
    guard, size = 4096, int(np.prod(g.y_shape))
    buf = np.full(size + 2 * guard, np.nan, dtype=np.float32)
    y = buf[guard:guard + size].reshape(g.y_shape)
    assert direct.conv2d_forward(x, w, g, out=y) is y
    assert np.isnan(buf[:guard]).all() and np.isnan(buf[-guard:]).all()
    _assert_close_float32(y, tap_sum_reference(x, w, g), g.C * g.KH * g.KW)


def test_gradients_through_the_direct_forward_match_finite_differences(monkeypatch):
    """F.conv2d with the forward on direct.py (float32) and the backward on im2col: the
    gradients of sum(y * gy) against central differences of the direct forward.  The
    convolution is linear in x and in w, so a large step has no truncation error and
    only float32 rounding remains."""
    monkeypatch.setattr(get_backend("cpu"), "conv_algo", "direct", raising=False)
    x, w, g = _case("5x5_asymmetric", seed=3)
    gy = np.random.default_rng(4).standard_normal(g.y_shape).astype(np.float32)
    kwargs = dict(stride=g.stride, padding=g.padding)
    xt = minidl.tensor(x, dtype="float32", requires_grad=True)
    wt = minidl.tensor(w, dtype="float32", requires_grad=True)
    y = F.conv2d(xt, wt, None, **kwargs)
    np.testing.assert_array_equal(y.numpy(), direct.conv2d_forward(x, w, g))
    y.backward(minidl.tensor(gy, dtype="float32"))

    def loss(xa, wa):
        out = F.conv2d(minidl.tensor(xa, dtype="float32"), minidl.tensor(wa, dtype="float32"), None, **kwargs)
        return float(np.sum(out.numpy().astype(np.float64) * gy))

    rng = np.random.default_rng(5)
    step = np.float32(0.5)
    for array, grad in ((x, xt.grad.numpy()), (w, wt.grad.numpy())):
        for flat_index in rng.choice(array.size, 12, replace=False):
            index = np.unravel_index(flat_index, array.shape)
            plus, minus = array.copy(), array.copy()
            plus[index] += step
            minus[index] -= step
            args = lambda a: (a, w) if array is x else (x, a)  # noqa: E731
            numeric = (loss(*args(plus)) - loss(*args(minus))) / (2 * step)
            assert abs(numeric - grad[index]) <= 1e-3 * max(1.0, abs(grad[index])), (index, numeric, grad[index])


@pytest.mark.parametrize("x_shape, w_shape, stride, dtype, dilation, groups, taken", [
    ((8, 3, 224, 224), (64, 3, 7, 7), 2, np.float32, 1, 1, True),  # ResNet's stem
    ((16, 3, 224, 224), (32, 3, 3, 3), 2, np.float32, 1, 1, True),  # MobileNet's, EfficientNet's
    ((64, 1, 28, 28), (6, 1, 5, 5), 1, np.float32, 1, 1, True),  # LeNet's: 28 of 32 lanes
    ((8, 8, 56, 56), (32, 8, 3, 3), 1, np.float32, 1, 1, True),
    ((8, 16, 56, 56), (32, 16, 3, 3), 1, np.float32, 1, 1, False),  # 16 channels: Winograd's
    ((8, 3, 224, 224), (64, 3, 7, 7), 2, np.float64, 1, 1, False),  # float64: im2col
    ((8, 4, 56, 56), (32, 2, 3, 3), 1, np.float32, 1, 2, False),  # grouped
    ((8, 3, 56, 56), (32, 3, 3, 3), 1, np.float32, 2, 1, False),  # dilated
    ((8, 3, 56, 56), (32, 3, 1, 1), 1, np.float32, 1, 1, False),  # 1x1: a GEMM on x
    ((8, 3, 16, 16), (32, 3, 3, 3), 2, np.float32, 1, 1, False),  # 8 px: half the lanes
])
def test_auto_takes_the_direct_forward_on_few_channels(x_shape, w_shape, stride, dtype, dilation, groups, taken,
                                                       monkeypatch):
    monkeypatch.setattr(direct, "FAST_VECTORS", True)
    g = ConvGeometry.create(x_shape, w_shape, (stride,) * 2, (1,) * 4, (dilation,) * 2, groups)
    assert (conv._path("auto", g, dtype, "forward") == "direct") == taken
    assert conv._path("auto", g, dtype, "input_grad") != "direct"
    assert conv._path("auto", g, dtype, "weight_grad") != "direct"
    assert (conv._path("direct", g, dtype, "forward") == "direct") == (dtype == np.float32 and dilation == groups == 1)


def test_auto_leaves_it_without_wide_vectors(monkeypatch):
    """Its tiles are sized for AVX-512's 32 registers: without them "auto" keeps im2col
    ("direct" still runs it, correctly, at LLVM's narrower vectors)."""
    monkeypatch.setattr(direct, "FAST_VECTORS", False)
    g = ConvGeometry.create((8, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3,) * 4, (1, 1), 1)
    assert conv._path("auto", g, np.float32, "forward") == "im2col"
    assert conv._path("direct", g, np.float32, "forward") == "direct"
