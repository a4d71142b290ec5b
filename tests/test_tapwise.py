"""Convolution on tiny maps, one GEMM per kernel tap (minidl/backend/cpu/tapwise.py):
the forward and both gradients against naive float64 loops over strides, dilations and
asymmetric padding, the taps' output rectangles against every (output, tap) pair that
reads inside the map, and where "auto" takes the path."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.backend.cpu import tapwise
from minidl.backend.geometry import ConvGeometry
from test_conv import reference_conv2d

# (x shape, w shape, stride, padding (top, bottom, left, right), dilation)
CASES = {
    "3x3_on_2x2": ((2, 3, 2, 2), (4, 3, 3, 3), 1, (1, 1, 1, 1), 1),
    "3x3_on_1x1": ((3, 4, 1, 1), (2, 4, 3, 3), 1, (1, 1, 1, 1), 1),
    "stride2_asymmetric": ((2, 3, 3, 4), (4, 3, 3, 3), 2, (1, 0, 2, 1), 1),
    "stride3_dilation2_rect": ((1, 2, 4, 3), (3, 2, 3, 2), 3, (2, 1, 0, 2), 2),
    "1x1_stride2": ((2, 3, 5, 5), (2, 3, 1, 1), 2, (0, 0, 0, 0), 1),
    "5x5_pad2_on_2x3": ((1, 2, 2, 3), (2, 2, 5, 5), 1, (2, 2, 2, 2), 1),
    "pad_beyond_window": ((2, 2, 2, 2), (3, 2, 3, 3), 1, (3, 1, 0, 2), 1),
}


def reference_grads(x, w, gy, stride, pads, dilation):
    """dx and dw of reference_conv2d by naive float64 loops over outputs and taps."""
    top, _, left, _ = pads
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for n in range(gy.shape[0]):
        for oh in range(gy.shape[2]):
            for ow in range(gy.shape[3]):
                for i in range(w.shape[2]):
                    for j in range(w.shape[3]):
                        ih, iw = oh * stride - top + i * dilation, ow * stride - left + j * dilation
                        if 0 <= ih < x.shape[2] and 0 <= iw < x.shape[3]:
                            dw[:, :, i, j] += np.outer(gy[n, :, oh, ow], x[n, :, ih, iw])
                            dx[n, :, ih, iw] += w[:, :, i, j].T @ gy[n, :, oh, ow]
    return dx, dw


def _case(name, seed=0):
    x_shape, w_shape, stride, pads, dilation = CASES[name]
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    g = ConvGeometry.create(x.shape, w.shape, (stride,) * 2, pads, (dilation,) * 2, 1)
    gy = rng.standard_normal((x_shape[0], w_shape[0], g.HO, g.WO))
    return x, w, gy, stride, pads, dilation, g


@pytest.mark.parametrize("name", list(CASES))
def test_forward_and_backwards_match_float64_loops(name):
    x, w, gy, stride, pads, dilation, g = _case(name)
    y = tapwise.conv2d_forward(x, w, g)
    np.testing.assert_allclose(y, reference_conv2d(x, w, None, (stride,) * 2, pads, (dilation,) * 2, 1),
                               rtol=1e-12, atol=1e-12)
    dx, dw = tapwise.conv2d_backward(x, w, gy, g, True, True)
    ref_dx, ref_dw = reference_grads(x, w, gy, stride, pads, dilation)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-12, atol=1e-12)
    only_dx, only_dw = tapwise.conv2d_backward(x, w, gy, g, True, False), tapwise.conv2d_backward(x, w, gy, g,
                                                                                                 False, True)
    assert only_dx[1] is None and only_dw[0] is None
    assert np.array_equal(only_dx[0], dx) and np.array_equal(only_dw[1], dw)


@pytest.mark.parametrize("name", list(CASES))
def test_taps_cover_exactly_the_products_inside_the_map(name):
    *_, g = _case(name)
    covered = set()
    for i, j, (oh0, oh1), (ow0, ow1), (ih0, iw0) in tapwise.taps(g):
        for oh in range(oh0, oh1):
            for ow in range(ow0, ow1):
                assert (oh * g.sh - g.pt + i * g.dh, ow * g.sw - g.pl + j * g.dw) == (
                    ih0 + (oh - oh0) * g.sh, iw0 + (ow - ow0) * g.sw)
                covered.add((oh, ow, i, j))
    inside = {(oh, ow, i, j) for oh in range(g.HO) for ow in range(g.WO) for i in range(g.KH) for j in range(g.KW)
              if 0 <= oh * g.sh - g.pt + i * g.dh < g.H and 0 <= ow * g.sw - g.pl + j * g.dw < g.W}
    assert covered == inside
    assert tapwise.kept(g) == len(inside) / (g.HO * g.WO * g.KH * g.KW)


@pytest.mark.parametrize("x_shape, kernel, stride, padding, fwd, dx, dw", [
    ((2, 8, 1, 1), 3, 1, 1, True, True, True),      # 1x1 map: 1 of 9 products kept
    ((2, 8, 2, 2), 3, 1, 1, False, False, True),    # 2x2: 4 of 9, the weight gradient only
    ((2, 8, 3, 3), 3, 1, 1, False, False, False),   # 3x3: 49 of 81, none
    ((2, 8, 4, 4), 1, 2, 0, False, False, False),   # 1x1/2: nothing to skip
])
def test_auto_takes_the_taps_where_they_measured_faster(monkeypatch, x_shape, kernel, stride, padding, fwd, dx,
                                                        dw):
    calls = []
    real_forward, real_backward = tapwise.conv2d_forward, tapwise.conv2d_backward
    monkeypatch.setattr(tapwise, "conv2d_forward", lambda *a: calls.append("fwd") or real_forward(*a))
    monkeypatch.setattr(tapwise, "conv2d_backward",
                        lambda *a: calls.extend(d for d, on in zip(("dx", "dw"), a[4:6]) if on) or real_backward(*a))
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal((6, x_shape[1], kernel, kernel)) * 0.3).astype(np.float32)
    xt, wt = minidl.tensor(x, requires_grad=True), minidl.tensor(w, requires_grad=True)
    y = F.conv2d(xt, wt, stride=stride, padding=padding)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(minidl.tensor(gy))
    assert calls == [d for d, on in (("fwd", fwd), ("dx", dx), ("dw", dw)) if on]
    pads = (padding,) * 4
    ref_dx, ref_dw = reference_grads(x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64), stride, pads,
                                     1)
    np.testing.assert_allclose(y.numpy(), reference_conv2d(x.astype(np.float64), w.astype(np.float64), None,
                                                           (stride,) * 2, pads, (1, 1), 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), ref_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(wt.grad.numpy(), ref_dw, rtol=1e-5, atol=1e-5)


def test_grouped_and_im2col_choices_keep_off_the_taps(monkeypatch):
    """Grouped convolutions (depthwise has its own loops) and conv_algo "im2col" never take it."""
    from minidl.backend import get_backend
    assert not tapwise.applies(ConvGeometry.create((2, 4, 1, 1), (4, 2, 3, 3), (1, 1), (1,) * 4, (1, 1), 2))
    monkeypatch.setattr(get_backend("cpu"), "conv_algo", "im2col", raising=False)
    monkeypatch.setattr(tapwise, "conv2d_forward", lambda *a: pytest.fail("took the taps"))
    x = np.random.default_rng(2).standard_normal((2, 3, 1, 1))
    w = np.random.default_rng(3).standard_normal((4, 3, 3, 3))
    y = F.conv2d(minidl.tensor(x), minidl.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(y, reference_conv2d(x, w, None, (1, 1), (1,) * 4, (1, 1), 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("parts", [1, 2, 3, 4])
def test_taps_are_dealt_once_each_in_near_equal_areas(parts):
    """The weight gradient's fixed deal of taps to threads: every tap exactly once, and
    no list heavier than the lightest by more than the largest tap's area."""
    g = ConvGeometry.create((4, 8, 2, 2), (8, 8, 3, 3), (1, 1), (1,) * 4, (1, 1), 1)
    plan = tapwise.taps(g)
    lists = tapwise._balanced(plan, parts)
    assert sorted(k for part in lists for k in part) == list(range(len(plan)))
    areas = [(oh1 - oh0) * (ow1 - ow0) for _, _, (oh0, oh1), (ow0, ow1), _ in plan]
    loads = [sum(areas[k] for k in part) for part in lists]
    assert len(lists) == min(parts, len(plan)) and max(loads) - min(loads) <= max(areas)
