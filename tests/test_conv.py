"""conv2d and linear against naive float64 loop references, plus gradient checks.

The CPU backend has four convolution paths (batch-inner im2col for small maps,
image-major im2col for large ones, plain GEMM for 1x1, Winograd F(2x2, 3x3) for
3x3 stride-1 float32 convolutions) and a direct depthwise path; small float64 test
shapes normally take the first, so ``conv_path`` forces the others by lowering the
small-map threshold or setting ``conv_algo`` to "winograd" (which takes the 3x3
stride-1 cases and leaves the others on im2col).  The kernel backends (emu, and cuda where
there is a GPU) have two general paths, the implicit-GEMM kernels ("igemm") and
im2col + GEMM ("im2col"), picked by ``backend.conv_algo``; ``conv_path`` runs the
forward checks over every device and path, the gradient checks run on every device.
"""
import itertools

import numpy as np
import pytest

import minidl
import minidl.functional as F
from conftest import device_params
from helpers import as_tensor, gradcheck
from minidl.backend import get_backend
from minidl.backend.cpu import conv as cpu_conv
from minidl.backend.cpu import im2col as cpu_im2col
from minidl.backend.geometry import ConvGeometry


def reference_conv2d(x, w, b, stride, pads, dilation, groups):
    """Plain-loop cross-correlation: explicit zero padding, dilation and groups."""
    n_img, channels, height, width = x.shape
    out_ch, group_ch, kh, kw = w.shape
    top, bottom, left, right = pads
    padded = np.zeros((n_img, channels, height + top + bottom, width + left + right))
    padded[:, :, top:top + height, left:left + width] = x
    out_h = (padded.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (padded.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    per_group = out_ch // groups
    y = np.zeros((n_img, out_ch, out_h, out_w))
    for n in range(n_img):
        for o in range(out_ch):
            first_channel = (o // per_group) * group_ch
            for oh in range(out_h):
                for ow in range(out_w):
                    total = 0.0 if b is None else float(b[o])
                    for ci in range(group_ch):
                        for i in range(kh):
                            for j in range(kw):
                                total += (w[o, ci, i, j] * padded[n, first_channel + ci,
                                                                  oh * stride[0] + i * dilation[0],
                                                                  ow * stride[1] + j * dilation[1]])
                    y[n, o, oh, ow] = total
    return y


def reference_linear(x, w, b):
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1])
    y = np.zeros((rows.shape[0], w.shape[0]))
    for r in range(rows.shape[0]):
        for o in range(w.shape[0]):
            total = 0.0 if b is None else float(b[o])
            for i in range(w.shape[1]):
                total += rows[r, i] * w[o, i]
            y[r, o] = total
    return y.reshape(lead + (w.shape[0],))


def as_pads(padding):
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


# (x shape, weight shape, stride, padding, dilation, groups)
CASES = {
    "basic_3x3_pad1": ((2, 3, 5, 4), (3, 3, 3, 3), 1, 1, 1, 1),
    "batch1_odd": ((1, 2, 7, 5), (3, 2, 3, 2), 1, 0, 1, 1),
    "stride_gt_kernel": ((2, 2, 7, 7), (2, 2, 2, 2), 3, 0, 1, 1),
    "pad_half_kernel_5x5": ((1, 1, 6, 5), (2, 1, 5, 5), 1, 2, 1, 1),
    "asymmetric_pad": ((2, 2, 5, 6), (3, 2, 3, 3), (2, 1), (0, 2, 1, 0), 1, 1),
    "dilation2": ((2, 2, 7, 7), (3, 2, 3, 3), 1, 2, 2, 1),
    "dilation_rect_stride": ((1, 2, 7, 6), (2, 2, 2, 3), (1, 2), (1, 1), (2, 1), 1),
    "groups2": ((2, 4, 5, 5), (6, 2, 3, 3), 1, 1, 1, 2),
    "depthwise": ((2, 4, 5, 4), (4, 1, 3, 3), 1, 1, 1, 4),
    "depthwise_mult2_stride2": ((2, 3, 7, 7), (6, 1, 3, 3), 2, (1, 2, 0, 1), 1, 3),
    "depthwise_dilation2": ((1, 3, 7, 6), (3, 1, 3, 3), 1, 2, 2, 3),
    # the CPU's phase planes: stride 3 with dilation 2 reads all three row phases
    "depthwise_stride3_dilation2": ((2, 3, 11, 10), (3, 1, 3, 3), 3, (2, 0, 1, 2), 2, 3),
    "depthwise_pad_beyond_window": ((1, 2, 5, 4), (4, 1, 3, 3), 2, 3, 1, 2),
    # the CPU forward sums three taps a pass: 25 taps (8 passes and one tap), 2 taps (single taps only)
    "depthwise_5x5_mult2": ((2, 2, 7, 6), (4, 1, 5, 5), 1, 2, 1, 2),
    "depthwise_2x1": ((1, 3, 6, 5), (3, 1, 2, 1), 1, (1, 0, 0, 0), 1, 3),
    "pointwise_1x1": ((2, 4, 5, 6), (3, 4, 1, 1), 1, 0, 1, 1),
    "pointwise_groups2": ((2, 4, 4, 4), (6, 2, 1, 1), 1, 0, 1, 2),
    "strided_1x1": ((2, 3, 7, 7), (2, 3, 1, 1), 2, 0, 1, 1),
    # the CPU's stride-2 im2col through phase rows: a stem-like window, and one dilated
    "stem_7x7_stride2": ((2, 3, 11, 10), (4, 3, 7, 7), 2, 3, 1, 1),
    "stride2_dilation2_5x5": ((1, 2, 13, 12), (3, 2, 5, 5), 2, (2, 1, 3, 0), 2, 1),
}


def _path_params(cpu_paths, kernel_paths):
    """(device, path) params: CPU column layouts, kernel-backend conv algorithms."""
    out = []
    for p in device_params("cpu", "emu", "cuda"):
        device = p.values[0]
        for path in (cpu_paths if device == "cpu" else kernel_paths):
            out.append(pytest.param((device, path), id=f"{device}-{path}", marks=p.marks))
    return out


def _use_path(device, path, monkeypatch):
    """CPU "batch_inner": small-map columns and channels-major pointwise GEMMs over
    the batch; "image_major": columns and pointwise GEMMs per image."""
    if path in ("batch_inner", "image_major"):
        channels_major = path == "batch_inner"
        monkeypatch.setattr(cpu_conv, "_pointwise_channels_major", lambda geo, direction: channels_major)
    if path == "image_major":
        monkeypatch.setattr(cpu_conv, "SMALL_MAP_PIXELS", 0)
    elif path in ("igemm", "im2col", "winograd"):
        monkeypatch.setattr(get_backend(device), "conv_algo", path, raising=False)
    return device


@pytest.fixture(params=_path_params(("batch_inner", "image_major", "winograd"), ("igemm", "im2col")))
def conv_path(request, monkeypatch):
    """-> the device, with its convolution path selected (every path of every device)."""
    return _use_path(*request.param, monkeypatch)


@pytest.fixture(params=_path_params(("batch_inner", "image_major", "winograd"), ("im2col",)))
def other_conv_path(request, monkeypatch):
    """-> the device, with a non-default general path selected (CPU image-major
    columns, Winograd, and both forced pointwise layouts, channels-major included;
    im2col on the kernel backends, whose default is igemm)."""
    return _use_path(*request.param, monkeypatch)


def _random_case(name, seed=0):
    x_shape, w_shape, stride, padding, dilation, groups = CASES[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    return x, w, b, stride, padding, dilation, groups


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_forward_matches_reference(name, conv_path):
    x, w, b, stride, padding, dilation, groups = _random_case(name)
    dev = conv_path
    got = F.conv2d(as_tensor(x, False, dev), as_tensor(w, False, dev), as_tensor(b, False, dev),
                   stride=stride, padding=padding, dilation=dilation, groups=groups).numpy()
    expected = reference_conv2d(x, w, b, _pair(stride), as_pads(padding), _pair(dilation), groups)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_gradients(name, device):
    x, w, b, stride, padding, dilation, groups = _random_case(name, seed=1)

    def op(x_t, w_t, b_t):
        return F.conv2d(x_t, w_t, b_t, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)

    gradcheck(op, x, w, b, rtol=1e-5, atol=1e-7, device=device)


@pytest.mark.parametrize("name", ["basic_3x3_pad1", "groups2", "pointwise_1x1", "asymmetric_pad"])
def test_conv2d_relu_is_relu_of_the_convolution(name, conv_path):
    """F.conv2d(..., relu=True): max(conv + bias, 0) of the float64 reference (NaN kept),
    on every path; its gradients by finite differences (the mask is y > 0)."""
    x, w, b, stride, padding, dilation, groups = _random_case(name, seed=2)
    dev = conv_path
    x[0, 0, 0, 0] = np.nan
    got = F.conv2d(as_tensor(x, False, dev), as_tensor(w, False, dev), as_tensor(b, False, dev),
                   stride=stride, padding=padding, dilation=dilation, groups=groups, relu=True).numpy()
    ref = reference_conv2d(x, w, b, _pair(stride), as_pads(padding), _pair(dilation), groups)
    expected = np.where(ref < 0, 0.0, ref)
    assert np.isnan(expected).any() and (expected == 0).any() and (expected > 0).any()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)

    x, w, b, *_ = _random_case(name, seed=3)

    def op(x_t, w_t, b_t):
        return F.conv2d(x_t, w_t, b_t, stride=stride, padding=padding, dilation=dilation, groups=groups,
                        relu=True)

    gradcheck(op, x, w, b, rtol=1e-5, atol=1e-7, device=dev)


@pytest.mark.parametrize("name", ["basic_3x3_pad1", "groups2", "pointwise_1x1", "asymmetric_pad"])
def test_conv2d_gradients_other_path(name, other_conv_path):
    x, w, b, stride, padding, dilation, groups = _random_case(name, seed=2)

    def op(x_t, w_t):
        return F.conv2d(x_t, w_t, stride=stride, padding=padding, dilation=dilation, groups=groups)

    gradcheck(op, x, w, rtol=1e-5, atol=1e-7, device=other_conv_path)


@pytest.mark.parametrize("name", ["basic_3x3_pad1", "groups2", "pointwise_1x1", "depthwise_mult2_stride2"])
def test_backward_returns_contiguous_arrays(name, conv_path):
    """The contract's gradients are C-contiguous on every path, alone and together (a
    transposed view of the weight gradient once made the SGD step 9x slower)."""
    x, w, _, stride, padding, dilation, groups = _random_case(name, seed=4)
    be = get_backend(conv_path)
    g = ConvGeometry.create(x.shape, w.shape, _pair(stride), as_pads(padding), _pair(dilation), groups)
    x_d, w_d = be.asarray(x.astype(np.float32)), be.asarray(w.astype(np.float32))
    gy = be.asarray(np.random.default_rng(4).standard_normal(g.y_shape).astype(np.float32))
    for need_dx, need_dw in ((True, True), (False, True), (True, False)):
        dx, dw = be.conv2d_backward(x_d, w_d, gy, g, need_dx, need_dw)
        for grad, needed, shape in ((dx, need_dx, x.shape), (dw, need_dw, w.shape)):
            assert (grad is not None) == needed
            if needed:
                assert grad.shape == shape and grad.flags.c_contiguous


@pytest.mark.parametrize("name", ["basic_3x3_pad1", "depthwise_mult2_stride2", "groups2"])
def test_conv2d_weight_grad_only_when_input_is_constant(name, device):
    x, w, _, stride, padding, dilation, groups = _random_case(name, seed=3)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_const, w_t = as_tensor(x, False, device), as_tensor(w, True, device)
    F.conv2d(x_const, w_t, **kwargs).sum().backward()
    x_t, w_full = as_tensor(x, True, device), as_tensor(w, True, device)
    F.conv2d(x_t, w_full, **kwargs).sum().backward()
    assert x_const.grad is None
    np.testing.assert_allclose(w_t.grad.numpy(), w_full.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("size", [(7, 6), (8, 5)])
def test_same_padding_gives_ceil_output_and_tf_pads(stride, size, device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2) + size)
    w = rng.standard_normal((3, 2, 3, 4))
    got = F.conv2d(as_tensor(x, False, device), as_tensor(w, False, device), stride=stride,
                   padding="same").numpy()
    pads = []
    for length, k in zip(size, w.shape[2:]):  # TF: total = max((ceil(in/s)-1)*s + k - in, 0)
        out = -(-length // stride)
        total = max((out - 1) * stride + k - length, 0)
        pads += [total // 2, total - total // 2]
    expected = reference_conv2d(x, w, None, (stride, stride), tuple(pads), (1, 1), 1)
    assert got.shape[2:] == (-(-size[0] // stride), -(-size[1] // stride))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_same_padding_with_stride2_gradients(device):
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((2, 2, 3, 3))
    gradcheck(lambda a, k: F.conv2d(a, k, stride=2, padding="same"), x, w, device=device)


def test_valid_padding_is_zero_padding(device):
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((2, 2, 3, 3))
    got = F.conv2d(as_tensor(x, False, device), as_tensor(w, False, device), padding="valid").numpy()
    np.testing.assert_allclose(got, reference_conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("budget_bytes", [1, 3000])
def test_chunked_columns_give_the_same_results(budget_bytes, monkeypatch):
    """A tiny column budget forces several batch chunks (3000 B) or row blocks (1 B);
    on the image-major layout the forward's L2 row blocks shrink with it (one output
    row per block at 1 B)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    kwargs = dict(stride=1, padding=(1, 2, 0, 1), dilation=1)
    gy = rng.standard_normal((5, 4, 10, 7))

    def run():
        x_t, w_t = as_tensor(x), as_tensor(w)
        y = F.conv2d(x_t, w_t, **kwargs)
        y.backward(minidl.tensor(gy, dtype="float64"))
        return y.numpy(), x_t.grad.numpy(), w_t.grad.numpy()

    for small_map_pixels in (1024, 0):  # both column layouts
        monkeypatch.setattr(cpu_conv, "SMALL_MAP_PIXELS", small_map_pixels)
        whole = run()
        geo = cpu_conv._Im2col(ConvGeometry.create(x.shape, w.shape, (1, 1), (1, 2, 0, 1), (1, 1), 1))
        assert len(list(geo.blocks(x.dtype))) == 1
        monkeypatch.setattr(cpu_conv, "COLUMN_BUFFER_BYTES", budget_bytes)
        monkeypatch.setattr(cpu_conv, "L2_BLOCK_BYTES", budget_bytes)
        assert len(list(geo.blocks(x.dtype))) > 2
        chunked = run()
        monkeypatch.undo()
        for a, b in zip(whole, chunked):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    expected = reference_conv2d(x, w, None, (1, 1), (1, 2, 0, 1), (1, 1), 1)
    np.testing.assert_allclose(whole[0], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, groups", [
    ((3, 4, 5, 5), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 6, 8, 7), (4, 3, 3, 2), (2, 3), (0, 2, 1, 0), (1, 1), 2),
    ((2, 3, 9, 9), (5, 3, 3, 3), (2, 2), (2, 2, 2, 2), (2, 2), 1),
    ((4, 5, 4, 4), (3, 5, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    ((2, 2, 3, 3), (2, 2, 5, 5), (1, 1), (4, 4, 4, 4), (1, 1), 1),  # windows mostly on the padding
])
def test_tap_table_columns_equal_the_row_loops(shape, kernel, stride, padding, dilation, groups):
    """Tiny batch-inner maps gather their columns through a tap table (_im2col_by_taps)
    and scatter them back through it: exactly the row loops' columns and sums, for the
    whole batch and for a block of images and output rows."""
    g = ConvGeometry.create(shape, kernel, stride, padding, dilation, groups)
    geo = cpu_conv._Im2col(g)
    assert geo.taps is not None
    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape)
    for (n0, n1, oh0, oh1), serial in itertools.product(((0, g.N, 0, g.HO), (1, 2, 1, g.HO)), (True, False)):
        assert geo._by_taps(serial) == (serial or g.HO * g.WO <= cpu_conv.TAP_TABLE_PARALLEL_MAX_PIXELS)
        size = (n1 - n0) * geo.g * geo.k * (oh1 - oh0) * geo.wo
        by_table = geo.im2col(x, np.full(size, np.nan), n0, n1, oh0, oh1, serial=serial)
        by_rows = np.full(size, np.nan)
        cpu_im2col.by_rows.serial(x, by_rows, n0, n1 - n0, oh0, oh1 - oh0, *geo.loop_args,
                                  *geo.strides(n1 - n0, oh1 - oh0))
        np.testing.assert_array_equal(by_table.reshape(-1), by_rows)
        dcols = rng.standard_normal(size)
        dx_table, dx_rows = np.ones(shape), np.ones(shape)
        geo.col2im_add(dcols, dx_table, n0, n1, oh0, oh1, serial=serial)
        cpu_im2col.add_back_by_rows.serial(dcols, dx_rows, n0, n1 - n0, oh0, oh1 - oh0, *geo.loop_args,
                                           *geo.strides(n1 - n0, oh1 - oh0))
        np.testing.assert_allclose(dx_table, dx_rows, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("kernel, padding", [(3, 1), (1, 0)])
def test_small_map_forward_in_blocks_or_whole_batch(kernel, padding, monkeypatch):
    """Batch-inner maps (here 4x4 outputs of 7 images, stride 2) run the forward in L2
    blocks of whole images where the weights are small, else as one whole-batch GEMM;
    both against float64 loops."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((7, 5, 8, 8))
    w = rng.standard_normal((6, 5, kernel, kernel))
    expected = reference_conv2d(x, w, None, (2, 2), (padding,) * 4, (1, 1), 1)
    geo = cpu_conv._Im2col(ConvGeometry.create(x.shape, w.shape, (2, 2), (padding,) * 4, (1, 1), 1))
    assert geo.batch_inner
    calls = []
    monkeypatch.setattr(cpu_conv, "in_threads", lambda jobs: calls.append(len(jobs)) or [job() for job in jobs])
    for most_bytes in (w.nbytes, w.nbytes - 1):  # blocks / whole batch
        monkeypatch.setattr(cpu_conv, "BLOCKS_MAX_WEIGHT_BYTES", most_bytes)
        calls.clear()
        got = F.conv2d(as_tensor(x, False), as_tensor(w, False), stride=2, padding=padding).numpy()
        assert calls == ([min(cpu_conv.THREADS, geo.n)] if most_bytes == w.nbytes else [])
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_img, row_blocks", [(3, False), (3, True), (1, True)])
def test_small_map_backward_in_blocks_matches_float64(n_img, row_blocks, monkeypatch):
    """Batch-inner maps' backward in L2 blocks per thread: whole images per thread, and
    row blocks of one image where its columns exceed the budget; fewer images than
    threads take the whole-batch loop.  Both gradients against float64 references made
    from the forward's loops by linearity: dx[i] = <conv(e_i, w), gy>, dw likewise."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((n_img, 3, 9, 9))
    w = rng.standard_normal((2, 3, 3, 3))
    g = ConvGeometry.create(x.shape, w.shape, (2, 2), (1, 1, 1, 1), (1, 1), 1)
    gy = rng.standard_normal(g.y_shape)
    assert cpu_conv._Im2col(g).batch_inner
    if row_blocks:  # an image's columns (27 x 25 values) over the budget, the weights (54) within it
        monkeypatch.setattr(cpu_conv, "L2_BLOCK_BYTES", w.nbytes)
    blocked = []
    real = cpu_conv._backward_in_blocks
    monkeypatch.setattr(cpu_conv, "_backward_in_blocks", lambda *a: blocked.append(1) or real(*a))
    dx, dw = cpu_conv.conv2d_backward(x, w, gy, g)
    assert bool(blocked) == (n_img >= cpu_conv.THREADS)
    expected_dx = np.zeros_like(x)
    expected_dw = np.zeros_like(w)
    for index in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[index] = 1
        expected_dx[index] = np.sum(reference_conv2d(e, w, None, (2, 2), (1,) * 4, (1, 1), 1) * gy)
    for index in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[index] = 1
        expected_dw[index] = np.sum(reference_conv2d(x, e, None, (2, 2), (1,) * 4, (1, 1), 1) * gy)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, expected_dw, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["basic_3x3_pad1", "depthwise_mult2_stride2", "pointwise_1x1",
                                  "dilation2"])
def test_float32_agrees_with_float64(name, conv_path):
    x, w, b, stride, padding, dilation, groups = _random_case(name, seed=8)
    dev = conv_path
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gy = None
    results = {}
    for dtype in ("float32", "float64"):
        x_t = minidl.tensor(x, dtype=dtype, device=dev, requires_grad=True)
        w_t = minidl.tensor(w, dtype=dtype, device=dev, requires_grad=True)
        b_t = minidl.tensor(b, dtype=dtype, device=dev, requires_grad=True)
        y = F.conv2d(x_t, w_t, b_t, **kwargs)
        assert y.dtype == np.dtype(dtype)
        if gy is None:
            gy = np.random.default_rng(9).standard_normal(y.shape)
        y.backward(minidl.tensor(gy, dtype=dtype, device=dev))
        results[dtype] = [y.numpy(), x_t.grad.numpy(), w_t.grad.numpy(), b_t.grad.numpy()]
    for single, double in zip(results["float32"], results["float64"]):
        assert single.dtype == np.float32
        np.testing.assert_allclose(single, double, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- errors
def _t(shape, dtype="float32"):
    return minidl.tensor(np.zeros(shape), dtype=dtype)


def test_conv2d_channel_mismatch_message():
    with pytest.raises(ValueError, match=r"conv2d: input has 4 channels but weight expects 3 "
                                         r"\(weight shape \(64, 3, 7, 7\)\)"):
        F.conv2d(_t((1, 4, 16, 16)), _t((64, 3, 7, 7)))
    with pytest.raises(ValueError, match=r"input has 6 channels but weight expects 4"):
        F.conv2d(_t((1, 6, 8, 8)), _t((4, 2, 3, 3)), groups=2)


def test_conv2d_argument_errors():
    x = _t((1, 4, 8, 8))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input .* got shape \(4, 8, 8\)"):
        F.conv2d(_t((4, 8, 8)), _t((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D weight .* got shape \(2, 4, 3\)"):
        F.conv2d(x, _t((2, 4, 3)))
    with pytest.raises(ValueError, match=r"conv2d: groups=3 must divide .* input channels \(4\)"):
        F.conv2d(x, _t((3, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match=r"output channels \(3\)"):
        F.conv2d(x, _t((3, 2, 3, 3)), groups=2)
    with pytest.raises(TypeError, match=r"conv2d: input dtype float32 does not match weight dtype float64"):
        F.conv2d(x, _t((2, 4, 3, 3), "float64"))
    with pytest.raises(ValueError, match=r"conv2d: expected a positive stride, got \(0, 0\)"):
        F.conv2d(x, _t((2, 4, 3, 3)), stride=0)
    with pytest.raises(ValueError, match=r"conv2d: expected a positive dilation, got \(1, -1\)"):
        F.conv2d(x, _t((2, 4, 3, 3)), dilation=(1, -1))
    with pytest.raises(ValueError, match=r"conv2d: padding must be non-negative"):
        F.conv2d(x, _t((2, 4, 3, 3)), padding=-1)
    with pytest.raises(ValueError, match=r"conv2d: padding string must be 'valid' or 'same', got 'full'"):
        F.conv2d(x, _t((2, 4, 3, 3)), padding="full")
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(2,\)"):
        F.conv2d(x, _t((2, 4, 3, 3)), _t((3,)))
    with pytest.raises(ValueError, match=r"conv2d: output would be empty: input size 8x8 padded to "
                                         r"8x8 is smaller than the kernel 5x5 \(dilated to 9x9\)"):
        F.conv2d(x, _t((2, 4, 5, 5)), dilation=2)


# ---------------------------------------------------------------- linear
@pytest.mark.parametrize("x_shape", [(3, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_reference_and_gradcheck(x_shape, with_bias, device):
    rng = np.random.default_rng(10)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((4, 5)), rng.standard_normal(4)
    bias = b if with_bias else None
    got = F.linear(as_tensor(x, False, device), as_tensor(w, False, device),
                   as_tensor(b, False, device) if with_bias else None).numpy()
    np.testing.assert_allclose(got, reference_linear(x, w, bias), rtol=1e-12, atol=1e-12)
    if with_bias:
        gradcheck(F.linear, x, w, b, device=device)
    else:
        gradcheck(F.linear, x, w, device=device)


@pytest.mark.parametrize("shape, expected", [
    ((16, 512, 7, 2048), (True, True, True)),     # ResNet-50's last stage
    ((8, 2048, 7, 512), (True, True, True)),
    ((16, 1024, 7, 128), (False, False, True)),   # only the weight gradient's partial sums outweigh
    ((16, 1024, 14, 256), (False, False, False)),
    ((16, 512, 28, 128), (False, False, False)),
    ((64, 256, 8, 64), (False, False, False)),
])
def test_cpu_pointwise_goes_channels_major_where_the_weight_outweighs_the_maps(shape, expected):
    n, c, hw, o = shape
    geo = cpu_conv._Im2col(ConvGeometry.create((n, c, hw, hw), (o, c, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1))
    assert tuple(cpu_conv._pointwise_channels_major(geo, d) for d in ("forward", "input_grad", "weight_grad")) \
        == expected


@pytest.mark.parametrize("stride", [2, 3, 4])
@pytest.mark.parametrize("kernel,dilation", [(3, 1), (5, 2), (7, 1), (11, 1)])
@pytest.mark.parametrize("padding", [(0, 0, 0, 0), (1, 2, 3, 1), (5, 0, 0, 5)])
def test_cpu_phase_row_columns_equal_the_strided_columns(stride, kernel, dilation, padding, monkeypatch):
    """im2col.by_phase_rows writes exactly by_rows's columns, zeros included, in every
    block of both layouts (serial and parallel loops); strides 3 and 4 too, though only
    stride 2 is routed to it."""
    rng = np.random.default_rng(stride * 100 + kernel)
    x = rng.standard_normal((3, 2, 23, 17)).astype(np.float32)
    g = ConvGeometry.create(x.shape, (4, 2, kernel, kernel), (stride, stride), padding, (dilation, dilation), 1)
    assert cpu_conv._Im2col(g).phase_rows == (stride == 2)
    for small_map_pixels in (1024, 0):  # batch-inner and image-major strides
        monkeypatch.setattr(cpu_conv, "SMALL_MAP_PIXELS", small_map_pixels)
        geo = cpu_conv._Im2col(g)
        for budget in (2000, None):  # row blocks of one image, and whole-batch blocks
            for n0, n1, oh0, oh1 in geo.blocks(x.dtype, budget):
                args = (n0, n1 - n0, oh0, oh1 - oh0, *geo.loop_args, *geo.strides(n1 - n0, oh1 - oh0))
                size = (n1 - n0) * geo.k * (oh1 - oh0) * geo.wo
                for loops in ("serial", "parallel"):
                    strided, phased = np.full(size, np.nan, np.float32), np.full(size, np.nan, np.float32)
                    getattr(cpu_im2col.by_rows, loops)(x, strided, *args)
                    getattr(cpu_im2col.by_phase_rows, loops)(x, phased, *args)
                    np.testing.assert_array_equal(phased, strided)


@pytest.mark.parametrize("rows,out_features", [(3, 40), (64, 256), (65, 300), (16, 63)])
def test_cpu_few_rows_times_transposed_weight(rows, out_features):
    """gemm.matmul takes x @ W^T as (W @ x^T)^T for at most 64 rows and 4x as many
    outputs (a small-batch linear layer); both routes match the float64 loop and give
    C-ordered results, with and without ``out``."""
    from minidl.backend.cpu import gemm
    rng = np.random.default_rng(rows)
    x, w = rng.standard_normal((rows, 37)), rng.standard_normal((out_features, 37))
    swapped = gemm._few_rows_times_transposed(x, w.T, rows, out_features, ())
    assert swapped == (rows <= 64 and out_features >= 4 * rows)
    want = reference_linear(x, w, None)
    got = gemm.matmul(x, w.T)
    assert got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    out = np.full((rows, out_features), np.nan)
    assert gemm.matmul(x, w.T, out=out) is out
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_linear_float32_output_dtype():
    y = F.linear(_t((2, 5)), _t((3, 5)), _t((3,)))
    assert y.dtype == np.float32 and y.shape == (2, 3)


def test_linear_errors():
    with pytest.raises(ValueError, match=r"linear: input has 100 features but weight expects 128 "
                                         r"\(weight shape \(10, 128\)\)"):
        F.linear(_t((2, 100)), _t((10, 128)))
    with pytest.raises(ValueError, match=r"linear: expected a 2-D weight"):
        F.linear(_t((2, 5)), _t((5,)))
    with pytest.raises(TypeError, match=r"linear: input dtype float64 does not match weight dtype float32"):
        F.linear(_t((2, 5), "float64"), _t((3, 5)))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(3,\)"):
        F.linear(_t((2, 5)), _t((3, 5)), _t((5,)))
