"""The one reading of convolution and pooling arguments (minidl/autograd/geometry.py)
and the geometry built from it (minidl/backend/geometry.py)."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn
from minidl.autograd.geometry import conv_geometry, pool_geometry
from minidl.backend.geometry import INT32_MAX, ConvGeometry, PoolGeometry, check_int32


def _x(shape):
    return minidl.tensor(np.zeros(shape, np.float32))


@pytest.mark.parametrize("call", [
    lambda: F.conv2d(_x((1, 2, 5, 5)), _x((3, 2, 3, 3)), stride=True),
    lambda: F.conv2d(_x((1, 2, 5, 5)), _x((3, 2, 3, 3)), dilation=(1, False)),
    lambda: F.conv2d(_x((1, 2, 5, 5)), _x((3, 2, 3, 3)), padding=True),
    lambda: F.conv2d(_x((1, 2, 5, 5)), _x((3, 2, 3, 3)), groups=True),
    lambda: F.max_pool2d(_x((1, 2, 5, 5)), True),
    lambda: F.avg_pool2d(_x((1, 2, 5, 5)), 2, stride=(True, 1)),
    lambda: F.adaptive_avg_pool2d(_x((1, 2, 5, 5)), True),
    lambda: nn.Conv2d(2, 3, kernel_size=True),
    lambda: nn.MaxPool2d((2, True)),
], ids=["conv_stride", "conv_dilation", "conv_padding", "conv_groups", "max_pool_kernel", "avg_pool_stride",
        "adaptive_output_size", "Conv2d_kernel_size", "MaxPool2d_kernel_size"])
def test_bools_are_not_ints(call):
    with pytest.raises(TypeError, match=r"(conv2d|max_pool2d|avg_pool2d|adaptive_avg_pool2d|Conv2d|MaxPool2d): "):
        call()


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups", [
    ((2, 4, 9, 8), (6, 2, 3, 3), (2, 1), (0, 2, 1, 0), (1, 2), 2),
    ((1, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1, 1),
    ((1, 8, 7, 7), (8, 1, 3, 3), 1, "same", 2, 8),
])
def test_conv_geometry_matches_naive_sizes(x_shape, w_shape, stride, padding, dilation, groups):
    g = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    assert g.x_shape == x_shape and g.w_shape == w_shape
    for size, k, s, d, before, after, out in ((g.H, g.KH, g.sh, g.dh, g.pt, g.pb, g.HO),
                                               (g.W, g.KW, g.sw, g.dw, g.pl, g.pr, g.WO)):
        span = d * (k - 1) + 1
        starts = [o for o in range(size + before + after) if o % s == 0 and o + span <= size + before + after]
        assert out == len(starts)
    if padding == "same":
        assert (g.HO, g.WO) == (7, 7)


def test_pool_geometry_ceil_mode_and_adaptive():
    g = pool_geometry((1, 1, 13, 14), 3, None, 0, True, "max_pool2d")
    assert (g.OH, g.OW, g.sh, g.sw) == (5, 5, 3, 3)  # ceil(10 / 3) + 1, ceil(11 / 3) + 1
    assert PoolGeometry.adaptive((2, 3, 7, 7), (1, 1)).y_shape == (2, 3, 1, 1)


def test_int32_overflow_names_op_value_and_limit():
    g = ConvGeometry.create((1, 1, 70000, 70000), (1, 1, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=rf"conv2d_forward: ConvGeometry.H\*W = 4900000000 is outside the "
                                         rf"kernels' 32-bit index range \[0, {INT32_MAX}\]"):
        check_int32("conv2d_forward", g)
