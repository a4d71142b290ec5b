"""The property-based bad-input corpus (hypothesis) of the op layer.

* Valid geometries and dtypes of conv2d, max/avg pooling, batch norm, LRN, softmax and
  cross-entropy: the output shape is the formula's, and emu (our CUDA kernels, emulated)
  and cuda, where present, agree with cpu, forward and backward.
* Invalid arguments (bad shapes, channels, negative or zero sizes, bool or float sizes,
  wrong dtypes, labels out of range, ...): a ValueError or TypeError whose message names
  the op, never another exception, a crash or a result.
* The same properties on emu in a child process (``python tests/test_corpus.py BATCH``),
  so a segfault in C++ fails a test instead of killing pytest; and malformed calls
  straight to the backend methods, each in its own child.

CI time is bounded: every property is derandomized with a fixed number of examples.
Counts: ``pytest tests/test_corpus.py --hypothesis-show-statistics``.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the corpus needs hypothesis (pip install -e .[test])")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl.backend.geometry import ConvGeometry, PoolGeometry  # noqa: E402
from conftest import EMU_REASON, KERNEL_DEVICES  # noqa: E402

VALID_EXAMPLES = 20
CORPUS = settings(derandomize=True, deadline=None, database=None, print_blob=False,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
needs_emu = pytest.mark.skipif(EMU_REASON is not None, reason=EMU_REASON or "")

FLOAT_DTYPES = st.sampled_from(["float32", "float64"])
TOLERANCE = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-9, atol=1e-11)}


def _values(seed, shape, dtype, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _run(device, op, arrays, dtype):
    """op(*tensors) on ``device`` -> (output, input gradients) as NumPy, for fixed
    random weights of the output."""
    tensors = [None if a is None else minidl.tensor(a, dtype=dtype, device=device, requires_grad=True)
               for a in arrays]
    y = op(*tensors)
    (y * minidl.tensor(_values(99, y.shape, dtype), device=device)).sum().backward()
    return y.numpy(), [None if t is None else t.grad.numpy() for t in tensors]


def _agree(op, arrays, dtype, devices):
    """The op's output and gradients on every device in ``devices`` equal cpu's."""
    ref = _run("cpu", op, arrays, dtype)
    for device in devices:
        got = _run(device, op, arrays, dtype)
        np.testing.assert_allclose(got[0], ref[0], **TOLERANCE[dtype], err_msg=f"{device} forward")
        for i, (g, r) in enumerate(zip(got[1], ref[1])):
            if r is not None:
                np.testing.assert_allclose(g, r, **TOLERANCE[dtype], err_msg=f"{device} gradient {i}")
    return ref[0]


# ================================================================ valid geometries
@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c, o = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    h = draw(st.integers(max(1, span[0] - pads[0] - pads[1]), span[0] + 5))
    w = draw(st.integers(max(1, span[1] - pads[2] - pads[3]), span[1] + 5))
    return dict(n=draw(st.integers(1, 3)), c=c, h=h, w=w, o=o, groups=groups, kernel=(kh, kw),
                stride=stride, dilation=dilation, pads=pads, bias=draw(st.booleans()),
                dtype=draw(FLOAT_DTYPES), seed=draw(st.integers(0, 2**16)))


def check_conv(case, devices):
    d = case
    x = _values(d["seed"], (d["n"], d["c"], d["h"], d["w"]), d["dtype"])
    weight = _values(d["seed"] + 1, (d["o"], d["c"] // d["groups"]) + d["kernel"], d["dtype"])
    bias = _values(d["seed"] + 2, (d["o"],), d["dtype"]) if d["bias"] else None
    y = _agree(lambda x, w, b: F.conv2d(x, w, b, stride=d["stride"], padding=d["pads"],
                                        dilation=d["dilation"], groups=d["groups"]),
               [x, weight, bias], d["dtype"], devices)
    expected = tuple((size + d["pads"][2 * i] + d["pads"][2 * i + 1] - d["dilation"][i] * (d["kernel"][i] - 1)
                      - 1) // d["stride"][i] + 1 for i, size in enumerate((d["h"], d["w"])))
    assert y.shape == (d["n"], d["o"]) + expected


@st.composite
def pool_cases(draw, kind):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), kernel[0] + 6))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), kernel[1] + 6))
    return dict(kind=kind, n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)),
                h=h, w=w, kernel=kernel, stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=padding, ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                dtype=draw(FLOAT_DTYPES), seed=draw(st.integers(0, 2**16)))


def _pool_size(size, kernel, stride, padding, ceil_mode):
    """PyTorch's formula, written independently of the backend's."""
    out = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def check_pool(case, devices):
    d = case
    x = _values(d["seed"], (d["n"], d["c"], d["h"], d["w"]), d["dtype"])
    if d["kind"] == "max_pool2d":
        def op(x):
            return F.max_pool2d(x, d["kernel"], d["stride"], d["padding"], d["ceil_mode"])
    else:
        def op(x):
            return F.avg_pool2d(x, d["kernel"], d["stride"], d["padding"], d["ceil_mode"], d["count_include_pad"])
    y = _agree(op, [x], d["dtype"], devices)
    expected = tuple(_pool_size(s, d["kernel"][i], d["stride"][i], d["padding"][i], d["ceil_mode"])
                     for i, s in enumerate((d["h"], d["w"])))
    assert y.shape == (d["n"], d["c"]) + expected


@st.composite
def norm_cases(draw, kind):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if n * h * w == 1:
        n = 2
    return dict(kind=kind, shape=(n, c, h, w),
                size=draw(st.integers(1, 5)), alpha=draw(st.floats(1e-4, 1.0)), beta=draw(st.floats(0.1, 1.0)),
                k=draw(st.floats(0.5, 2.0)), dtype=draw(FLOAT_DTYPES), seed=draw(st.integers(0, 2**16)))


def check_norm(case, devices):
    d = case
    x = _values(d["seed"], d["shape"], d["dtype"])
    if d["kind"] == "batch_norm":
        c = d["shape"][1]
        weight, bias = _values(d["seed"] + 1, (c,), d["dtype"]), _values(d["seed"] + 2, (c,), d["dtype"])
        y = _agree(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, weight, bias],
                   d["dtype"], devices)
    else:
        y = _agree(lambda x: F.local_response_norm(x, d["size"], d["alpha"], d["beta"], d["k"]), [x],
                   d["dtype"], devices)
    assert y.shape == d["shape"]


@st.composite
def softmax_cases(draw, kind):
    n, k = draw(st.integers(1, 5)), draw(st.integers(1, 40))
    return dict(kind=kind, n=n, k=k,
                labels=draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)),
                smoothing=draw(st.sampled_from([0.0, 0.1, 0.5])),
                reduction=draw(st.sampled_from(["mean", "sum", "none"])), scale=draw(st.sampled_from([1.0, 30.0])),
                dtype=draw(FLOAT_DTYPES), seed=draw(st.integers(0, 2**16)))


def check_softmax(case, devices):
    d = case
    x = _values(d["seed"], (d["n"], d["k"]), d["dtype"], d["scale"])
    if d["kind"] == "cross_entropy":
        y = _agree(lambda x: F.cross_entropy(x, np.array(d["labels"]), d["reduction"], d["smoothing"]), [x],
                   d["dtype"], devices)
        assert y.shape == ((d["n"],) if d["reduction"] == "none" else ())
    else:
        y = _agree(lambda x: getattr(F, d["kind"])(x, axis=-1), [x], d["dtype"], devices)
        assert y.shape == (d["n"], d["k"])


VALID = {"conv2d": (conv_cases(), check_conv)}
VALID.update({op: (pool_cases(op), check_pool) for op in ("max_pool2d", "avg_pool2d")})
VALID.update({op: (norm_cases(op), check_norm) for op in ("batch_norm", "local_response_norm")})
VALID.update({op: (softmax_cases(op), check_softmax) for op in ("cross_entropy", "softmax", "log_softmax")})


def _valid_property(family, devices, examples=VALID_EXAMPLES):
    strategy, check = VALID[family]

    @settings(CORPUS, max_examples=examples)
    @given(case=strategy)
    def prop(case):
        check(case, devices)
    return prop


@pytest.mark.parametrize("family", sorted(VALID))
def test_valid_geometries_have_the_right_shapes_on_cpu(family):
    _valid_property(family, [])()


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("family", sorted(VALID))
def test_valid_geometries_agree_on_cpu_and_kernel_devices(family, device):
    _valid_property(family, [device])()


# ================================================================ invalid arguments
# Each case breaks one argument of a valid call in one way (its "kind"); every kind is
# a test of its own, and hypothesis draws the bad values and the rest of the call.
def _t(shape, dtype="float32", device="cpu"):
    return minidl.tensor(np.ones(shape), dtype=dtype, device=device)


BAD_SIZES = st.one_of(st.integers(-3, 0), st.just(True), st.just(False), st.floats(0.5, 3.5),
                      st.just("2"), st.just(None), st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)))
BAD_DTYPES = st.sampled_from(["int64", "int32", "uint8", "bool"])


def bad_conv2d(draw, device, kind):
    c, o, k = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    args = dict(x=_t((1, c, 5, 5), device=device), weight=_t((o, c, k, k), device=device), bias=None,
                stride=1, padding=0, dilation=1, groups=1)
    if kind == "x_ndim":
        args["x"] = _t(draw(st.lists(st.integers(1, 3), max_size=6).filter(lambda s: len(s) != 4)), device=device)
    elif kind == "w_ndim":
        args["weight"] = _t(draw(st.lists(st.integers(1, 3), max_size=6).filter(lambda s: len(s) != 4)),
                            device=device)
    elif kind == "channels":
        args["weight"] = _t((o, c + draw(st.integers(1, 3)), k, k), device=device)
    elif kind == "groups":
        args["groups"] = draw(st.one_of(st.integers(-2, 0), st.integers(5, 9), st.just(True),
                                        st.floats(1.5, 2.5), st.just(None)))
    elif kind in ("stride", "dilation"):
        args[kind] = draw(BAD_SIZES)
    elif kind == "padding":
        args["padding"] = draw(st.one_of(st.integers(-3, -1), st.just("full"), st.just((1, 2, 3)),
                                         st.just((-1, 0, 0, 0)), st.just(1.5), st.just(True)))
    elif kind == "too_small":
        args["x"] = _t((1, c, k, 2), device=device)
        args["weight"] = _t((o, c, k + 1, k + 1), device=device)
    elif kind == "dtype":
        dtype = draw(BAD_DTYPES)
        args["x"], args["weight"] = _t((1, c, 5, 5), dtype, device), _t((o, c, k, k), dtype, device)
    elif kind == "mixed_dtype":
        args["weight"] = _t((o, c, k, k), "float64", device)
    elif kind == "bias_shape":
        args["bias"] = _t(draw(st.sampled_from([(o + 1,), (1, o), ()])), device=device)
    else:
        args["bias"] = _t((o,), draw(st.sampled_from(["float64", "int64"])), device)
    return lambda: F.conv2d(**args)


def bad_pool(op):
    def build(draw, device, kind):
        x = _t((1, 2, 6, 6), device=device)
        if kind == "ndim":
            x = _t(draw(st.sampled_from([(6, 6), (2, 6, 6), (1, 1, 2, 6, 6)])), device=device)
        elif kind == "dtype":
            x = _t((1, 2, 6, 6), draw(BAD_DTYPES), device)
        if op == "adaptive_avg_pool2d":
            size = draw(BAD_SIZES) if kind == "output_size" else 2
            return lambda: F.adaptive_avg_pool2d(x, size)
        args = dict(kernel_size=2, stride=None, padding=0)
        if kind == "kernel_size":
            args["kernel_size"] = draw(BAD_SIZES)
        elif kind == "stride":
            args["stride"] = draw(BAD_SIZES.filter(lambda v: v is not None))
        elif kind == "padding":
            args["padding"] = draw(st.one_of(st.integers(-3, -1), st.integers(2, 5), st.just(True), st.just(0.5)))
        elif kind == "too_small":
            args["kernel_size"] = draw(st.integers(8, 20))
        return lambda: getattr(F, op)(x, **args)
    return build


def bad_batch_norm(draw, device, kind):
    c = draw(st.integers(1, 4))
    x = _t((2, c, 3, 3), device=device)
    args = dict(running_mean=None, running_var=None, weight=None, bias=None, training=draw(st.booleans()), eps=1e-5)
    if not args["training"]:
        args["running_mean"], args["running_var"] = _t((c,), device=device), _t((c,), device=device)
    if kind == "ndim":
        x = _t(draw(st.sampled_from([(3,), (2, c, 3), (1, 1, 2, c, 3)])), device=device)
    elif kind == "dtype":
        x = _t((2, c, 3, 3), draw(BAD_DTYPES), device)
    elif kind in ("weight", "bias"):
        args[kind] = _t(draw(st.sampled_from([(c + 1,), (c, 1), ()])), device=device)
    elif kind == "running_stats":
        args["running_mean"], args["running_var"] = _t((c + 1,), device=device), _t((c + 1,), device=device)
    elif kind == "one_running_stat":
        args["running_mean"], args["running_var"] = _t((c,), device=device), None
    elif kind == "eps":
        args["eps"] = draw(st.sampled_from([0.0, -1e-5, float("nan")]))
    elif kind == "one_value_per_channel":
        x, args["training"] = _t((1, c, 1, 1), device=device), True
    else:
        args["weight"] = _t((c,), draw(st.sampled_from(["float64", "float16", "int64"])), device)
    return lambda: F.batch_norm(x, **args)


def bad_local_response_norm(draw, device, kind):
    x = _t((2, 3, 3, 3), device=device)
    size = 3
    if kind == "ndim":
        x = _t(draw(st.sampled_from([(3,), (2, 3, 3), (1, 1, 2, 3, 3)])), device=device)
    elif kind == "dtype":
        x = _t((2, 3, 3, 3), draw(BAD_DTYPES), device)
    else:
        size = draw(BAD_SIZES)
    return lambda: F.local_response_norm(x, size)


def bad_softmax(op):
    def build(draw, device, kind):
        n, k = draw(st.integers(1, 4)), draw(st.integers(1, 5))
        x, axis = _t((n, k), device=device), -1
        if kind == "axis":
            axis = draw(st.one_of(st.integers(2, 5), st.integers(-6, -3), st.just(1.0), st.just(None), st.just(True)))
        elif kind == "dtype":
            x = _t((n, k), draw(BAD_DTYPES), device)
        else:
            x = _t((), device=device)
        return lambda: getattr(F, op)(x, axis=axis)
    return build


def bad_cross_entropy(draw, device, kind):
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    logits, labels = _t((n, k), device=device), np.zeros(n, np.int64)
    args = dict(reduction="mean", label_smoothing=0.0)
    if kind == "label_high":
        labels[draw(st.integers(0, n - 1))] = k + draw(st.integers(0, 10**6))
    elif kind == "label_negative":
        labels[draw(st.integers(0, n - 1))] = -draw(st.integers(1, 10**6))
    elif kind == "label_dtype":
        labels = labels.astype(draw(st.sampled_from(["float32", "float64", "bool"])))
    elif kind == "label_shape":
        labels = np.zeros(draw(st.sampled_from([(n + 1,), (n, 1), ()])), np.int64)
    elif kind == "ndim":
        logits = _t(draw(st.sampled_from([(n,), (n, k, 1), ()])), device=device)
    elif kind == "dtype":
        logits = _t((n, k), draw(BAD_DTYPES), device)
    elif kind == "label_smoothing":
        args["label_smoothing"] = draw(st.one_of(st.floats(-2, -0.01), st.floats(1.0, 3.0), st.just(True),
                                                 st.just(float("nan")), st.just("0.1")))
    elif kind == "reduction":
        args["reduction"] = draw(st.sampled_from(["avg", "", None, "MEAN"]))
    elif kind == "no_classes":
        logits = _t((n, 0), device=device)
    else:
        logits, labels = _t((0, k), device=device), np.zeros(0, np.int64)
    return lambda: F.cross_entropy(logits, labels, **args)


def bad_linear(draw, device, kind):
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    x, weight, bias = _t((n, k), device=device), _t((3, k), device=device), None
    if kind == "w_ndim":
        weight = _t(draw(st.sampled_from([(3, k, 1), (3 * k,), ()])), device=device)
    elif kind == "features":
        weight = _t((3, k + draw(st.integers(1, 3))), device=device)
    elif kind == "bias":
        bias = _t(draw(st.sampled_from([(4,), (1, 3), ()])), device=device)
    else:
        dtype = draw(BAD_DTYPES)
        x, weight = _t((n, k), dtype, device), _t((3, k), dtype, device)
    return lambda: F.linear(x, weight, bias)


def bad_dropout(draw, device, kind):
    x = _t((2, 3), device=device)
    if kind == "dtype":
        return lambda: F.dropout(_t((2, 3), draw(BAD_DTYPES), device), 0.5)
    p = draw(st.one_of(st.floats(1.0, 2.0), st.floats(-1.0, -0.01), st.just(True), st.just("0.5"),
                       st.just(float("nan"))))
    return lambda: F.dropout(x, p)


INVALID = {
    "conv2d": (bad_conv2d, ["x_ndim", "w_ndim", "channels", "groups", "stride", "dilation", "padding",
                            "too_small", "dtype", "mixed_dtype", "bias_shape", "bias_dtype"]),
    "max_pool2d": (bad_pool("max_pool2d"), ["ndim", "dtype", "kernel_size", "stride", "padding", "too_small"]),
    "avg_pool2d": (bad_pool("avg_pool2d"), ["ndim", "dtype", "kernel_size", "stride", "padding", "too_small"]),
    "adaptive_avg_pool2d": (bad_pool("adaptive_avg_pool2d"), ["ndim", "dtype", "output_size"]),
    "batch_norm": (bad_batch_norm, ["ndim", "dtype", "weight", "bias", "running_stats", "one_running_stat", "eps",
                                    "one_value_per_channel", "weight_dtype"]),
    "local_response_norm": (bad_local_response_norm, ["ndim", "dtype", "size"]),
    "softmax": (bad_softmax("softmax"), ["axis", "dtype", "scalar"]),
    "log_softmax": (bad_softmax("log_softmax"), ["axis", "dtype", "scalar"]),
    "cross_entropy": (bad_cross_entropy, ["label_high", "label_negative", "label_dtype", "label_shape", "ndim",
                                          "dtype", "label_smoothing", "reduction", "no_classes", "empty_mean"]),
    "linear": (bad_linear, ["w_ndim", "features", "bias", "dtype"]),
    "dropout": (bad_dropout, ["p", "dtype"]),
}
INVALID_CASES = [(op, kind) for op, (_, kinds) in sorted(INVALID.items()) for kind in kinds]
INVALID_EXAMPLES = 20

def _invalid_property(op, kind, device, examples=INVALID_EXAMPLES):
    build = INVALID[op][0]

    @settings(CORPUS, max_examples=examples)
    @given(data=st.data())
    def prop(data):
        call = build(data.draw, device, kind)
        with pytest.raises((ValueError, TypeError)) as info:
            call()
        assert op in str(info.value), f"the message does not name {op}: {info.value}"
    return prop


@pytest.mark.parametrize("op, kind", INVALID_CASES)
def test_invalid_arguments_are_clear_errors_naming_the_op(op, kind):
    _invalid_property(op, kind, "cpu")()


# ================================================================ in a child process
def run_batch(name):
    """Run one batch of the corpus: the op-layer properties on emu, or one malformed
    backend call (the entry point of the child process)."""
    if name == "valid":
        for family in sorted(VALID):
            _valid_property(family, ["emu"], examples=8)()
    elif name == "invalid":
        for op, kind in INVALID_CASES:
            _invalid_property(op, kind, "emu", examples=6)()
    else:
        MALFORMED[name]()


def _child(batch, timeout=300):
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    return subprocess.run([sys.executable, os.path.abspath(__file__), batch], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=os.path.dirname(os.path.abspath(__file__)))


def _assert_child_ok(batch, done):
    if done.returncode < 0:
        pytest.fail(f"the child running '{batch}' died of signal {-done.returncode}:\n{done.stderr[-3000:]}")
    assert done.returncode == 0, f"the child running '{batch}' failed:\n{done.stderr[-3000:]}"


@needs_emu
@pytest.mark.parametrize("batch", ["valid", "invalid"])
def test_emu_corpus_in_a_child_process(batch):
    _assert_child_ok(batch, _child(batch))


# Malformed calls straight to the backend methods (cpu and emu), below the op layer's
# checks: each must raise ValueError/TypeError (naming the method), never crash, read or
# write out of bounds.  One child per case, so that one crash does not hide the others.
_POOL = PoolGeometry.create((1, 1, 4, 4), (2, 2), (2, 2), (0, 0), False)


def _backend_expect_error(device, method, *args):
    be = minidl.backend.get_backend(device)
    try:
        getattr(be, method)(*args)
    except (ValueError, TypeError) as e:
        # a call that does not match the method's signature would prove nothing
        assert "positional argument" not in str(e) and "keyword argument" not in str(e), e
        assert method in str(e) or method.split("_")[0] in str(e), f"message does not name {method}: {e}"
        return
    raise AssertionError(f"{method}: a malformed call returned instead of raising")


def _f32(*shape):
    return np.ones(shape, np.float32)


MALFORMED_CALLS = {
    "max_pool2d_backward_argmax_out_of_range": lambda device: _backend_expect_error(
        device, "max_pool2d_backward", _f32(1, 1, 2, 2), np.full((1, 1, 2, 2), 10**6, np.int64), _POOL),
    "max_pool2d_backward_argmax_wrong_size": lambda device: _backend_expect_error(
        device, "max_pool2d_backward", _f32(1, 1, 2, 2), np.zeros((1,), np.int64), _POOL),
    "cross_entropy_forward_label_out_of_range": lambda device: _backend_expect_error(
        device, "cross_entropy_forward", _f32(2, 3), np.array([0, 10**6]), 0.0),
    "cross_entropy_backward_labels_too_short": lambda device: _backend_expect_error(
        device, "cross_entropy_backward", _f32(4, 3), np.array([0]), 0.0, _f32(4)),
    "conv2d_forward_channel_mismatch": lambda device: _backend_expect_error(
        device, "conv2d_forward", _f32(1, 2, 5, 5), _f32(3, 7, 3, 3),
        ConvGeometry.create((1, 2, 5, 5), (3, 2, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1)),
    "relu_backward_gradient_too_small": lambda device: _backend_expect_error(
        device, "relu_backward", _f32(64, 64), _f32(2)),
    "batch_norm_backward_stats_too_short": lambda device: _backend_expect_error(
        device, "batch_norm_backward", _f32(2, 8, 3, 3), _f32(2, 8, 3, 3), _f32(8), _f32(8), _f32(1), _f32(1), 1e-5),
    "softmax_backward_gradient_too_small": lambda device: _backend_expect_error(
        device, "softmax_backward", _f32(64, 64), _f32(2, 2), False),
}
MALFORMED = {f"{device}:{name}": (lambda call, device: lambda: call(device))(call, device)
             for name, call in MALFORMED_CALLS.items() for device in ("cpu", "emu")}

@pytest.mark.parametrize("case", [pytest.param(name, marks=[needs_emu] if name.startswith("emu:") else [])
                                  for name in sorted(MALFORMED)])
def test_malformed_backend_calls_in_a_child_process(case):
    _assert_child_ok(case, _child(case, timeout=120))


if __name__ == "__main__":
    run_batch(sys.argv[1])
