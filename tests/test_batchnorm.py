"""batch_norm against a float64 loop reference: train/eval, running statistics, gradients,
on every device (the ``device`` fixture: cpu, emu, and cuda where there is a GPU)."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import gradcheck


def bn_reference(x, gamma, beta, eps, mean=None, var=None):
    """Per-channel loops; batch statistics (biased variance) when mean/var are None."""
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape[:2]
    y = np.empty_like(x)
    means, variances = np.zeros(c), np.zeros(c)
    for ch in range(c):
        values = [float(v) for v in x[:, ch].reshape(-1)]
        m = sum(values) / len(values) if mean is None else float(mean[ch])
        v = sum((val - m) ** 2 for val in values) / len(values) if var is None else float(var[ch])
        means[ch], variances[ch] = m, v
        y[:, ch] = (x[:, ch] - m) / np.sqrt(v + eps) * gamma[ch] + beta[ch]
    return y, means, variances


def rand(rng, *shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (1, 2, 3, 3), (6, 5), (3, 4, 1, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_forward_matches_reference(shape, dtype, device):
    rng = np.random.default_rng(0)
    x = rand(rng, *shape) * 3 + 10  # offset checks the variance is cancellation-free
    c = shape[1]
    gamma, beta = rand(rng, c), rand(rng, c)
    t = lambda a: minidl.tensor(a, dtype=dtype, device=device)
    y = F.batch_norm(t(x), None, None, t(gamma), t(beta), training=True, eps=1e-5)
    ref, _, _ = bn_reference(x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), 1e-5)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(y.numpy(), ref, rtol=tol, atol=tol)
    assert y.dtype == np.dtype(dtype)


def test_running_statistics_after_two_steps(device):
    rng = np.random.default_rng(1)
    c, momentum = 3, 0.3
    running_mean = minidl.tensor(np.zeros(c), dtype="float64", device=device)
    running_var = minidl.tensor(np.ones(c), dtype="float64", device=device)
    expect_mean, expect_var = np.zeros(c), np.ones(c)
    for step in range(2):
        x = rand(rng, 4, c, 3, 2) * (step + 1) + step
        F.batch_norm(minidl.tensor(x, dtype="float64", device=device), running_mean, running_var,
                     training=True, momentum=momentum)
        n = 4 * 3 * 2
        _, m, v = bn_reference(x, np.ones(c), np.zeros(c), 1e-5)
        expect_mean = (1 - momentum) * expect_mean + momentum * m
        expect_var = (1 - momentum) * expect_var + momentum * v * n / (n - 1)
    np.testing.assert_allclose(running_mean.numpy(), expect_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), expect_var, rtol=1e-12)


def test_eval_uses_running_statistics_and_leaves_them(device):
    rng = np.random.default_rng(2)
    x = rand(rng, 3, 4, 5, 5)
    mean, var = rand(rng, 4), rng.uniform(0.5, 2.0, 4)
    gamma, beta = rand(rng, 4), rand(rng, 4)
    t = lambda a: minidl.tensor(a, dtype="float64", device=device)
    rm, rv = t(mean), t(var)
    y = F.batch_norm(t(x), rm, rv, t(gamma), t(beta), training=False, eps=1e-3)
    ref, _, _ = bn_reference(x, gamma, beta, 1e-3, mean, var)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rm.numpy(), mean)
    np.testing.assert_array_equal(rv.numpy(), var)


def test_no_affine_parameters(device):
    x = np.random.default_rng(3).standard_normal((5, 3))
    y = F.batch_norm(minidl.tensor(x, dtype="float64", device=device), None, None, training=True)
    ref, _, _ = bn_reference(x, np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [(3, 2, 3, 2), (1, 3, 2, 3), (5, 3)])
def test_train_gradients(shape, device):
    rng = np.random.default_rng(4)
    c = shape[1]
    x, gamma, beta = rand(rng, *shape), rand(rng, c), rand(rng, c)
    op = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3)
    gradcheck(op, x, gamma, beta, rtol=1e-5, atol=1e-7, device=device)


@pytest.mark.parametrize("shape", [(2, 3, 2, 3), (4, 2)])
def test_eval_gradients(shape, device):
    rng = np.random.default_rng(5)
    c = shape[1]
    x, gamma, beta = rand(rng, *shape), rand(rng, c), rand(rng, c)
    rm = minidl.tensor(rand(rng, c), dtype="float64", device=device)
    rv = minidl.tensor(rng.uniform(0.5, 2, c), dtype="float64", device=device)
    op = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False)
    gradcheck(op, x, gamma, beta, device=device)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_relu_matches_relu_of_batch_norm(training, device):
    rng = np.random.default_rng(7)
    x, gamma, beta = rand(rng, 3, 4, 5, 5), rand(rng, 4), rand(rng, 4)
    t = lambda a: minidl.tensor(a, dtype="float64", device=device)
    stats = lambda: (t(rand(np.random.default_rng(8), 4)), t(np.full(4, 1.5)))
    fused_stats, plain_stats = stats(), stats()
    fused = F.batch_norm(t(x), *fused_stats, t(gamma), t(beta), training=training, relu=True)
    plain = F.relu(F.batch_norm(t(x), *plain_stats, t(gamma), t(beta), training=training))
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)
    assert (fused.numpy() == 0).any() and (fused.numpy() > 0).any()
    for a, b in zip(fused_stats, plain_stats):  # the same running update
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_relu_gradients(training, device):
    rng = np.random.default_rng(9)
    x, gamma, beta = rand(rng, 3, 2, 3, 2), rand(rng, 2), rand(rng, 2)
    rm = minidl.tensor(rand(rng, 2), dtype="float64", device=device)
    rv = minidl.tensor(rng.uniform(0.5, 2, 2), dtype="float64", device=device)
    op = lambda x, w, b: F.batch_norm(x, rm if not training else None, rv if not training else None, w, b,
                                      training=training, eps=1e-3, relu=True)
    gradcheck(op, x, gamma, beta, rtol=1e-5, atol=1e-7, device=device)


def test_module_relu_argument(device):
    bn = minidl.nn.BatchNorm2d(3).to(device)
    x = minidl.tensor(np.random.default_rng(10).standard_normal((2, 3, 4, 4)), dtype="float32", device=device)
    fused = bn(x, relu=True)
    np.testing.assert_allclose(fused.numpy(), np.maximum(bn(x).numpy(), 0), rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked.item()) == 2


def test_float32_backward_matches_float64(device):
    rng = np.random.default_rng(6)
    x, gy = rand(rng, 4, 8, 6, 6) + 5, rand(rng, 4, 8, 6, 6)
    grads = []
    for dtype in ("float32", "float64"):
        xt = minidl.tensor(x, dtype=dtype, requires_grad=True, device=device)
        w = minidl.tensor(np.linspace(0.5, 2, 8), dtype=dtype, requires_grad=True, device=device)
        y = F.batch_norm(xt, None, None, w, None, training=True)
        y.backward(minidl.tensor(gy, dtype=dtype, device=device))
        grads.append((xt.grad.numpy(), w.grad.numpy()))
    for g32, g64 in zip(*grads):
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_input_with_float32_parameters(half, training, relu, device):
    """Mixed precision (autocast's master weights): a half x with float32 weight, bias and
    running stats gives a half y within one rounding of the float64 result of the same
    (rounded) inputs, float32 running stats and float32 weight/bias gradients, and a
    half dx; on the kernel backends through the 16-bit launchers (float32 statistics)."""
    from minidl import dtypes
    rng = np.random.default_rng(7)
    shape = (3, 5, 6, 7)
    x = (rand(rng, *shape) * 2 + 4).astype(dtypes.dtype(half))
    gy = rand(rng, *shape).astype(dtypes.dtype(half))
    gamma, beta = np.linspace(0.5, 2, 5), np.linspace(-1, 1, 5)
    run_mean, run_var = rand(rng, 5) + 4, np.linspace(1, 5, 5)
    results = {}
    for dtype in (half, "float64"):
        cast = (lambda a: a) if dtype == half else (lambda a: a.astype(np.float64))
        param = "float32" if dtype == half else "float64"
        xt = minidl.tensor(cast(x), requires_grad=True, device=device)
        w = minidl.tensor(gamma, dtype=param, requires_grad=True, device=device)
        b = minidl.tensor(beta, dtype=param, requires_grad=True, device=device)
        rm, rv = minidl.tensor(run_mean, dtype=param, device=device), minidl.tensor(run_var, dtype=param, device=device)
        be = xt.backend
        launched, launch = [], getattr(be, "launch", None)
        if launch is not None:
            be.launch = lambda op, dt, *a: (launched.append((op, np.dtype(dt))), launch(op, dt, *a))[1]
        try:
            y = F.batch_norm(xt, rm, rv, w, b, training=training, relu=relu)
            y.backward(minidl.tensor(cast(gy), device=device))
        finally:
            if launch is not None:
                del be.launch
        results[dtype] = [a.numpy() for a in (y, xt.grad, w.grad, b.grad, rm, rv)]
        if dtype == half:
            assert [a.dtype.name for a in results[dtype]] == [half, half] + ["float32"] * 4
            if launch is not None and training:
                assert (f"batch_norm_train_forward", np.dtype(dtypes.dtype(half))) in launched
                assert (f"batch_norm_backward", np.dtype(dtypes.dtype(half))) in launched
    eps = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[half]
    for what, got, ref in zip(("y", "dx", "dgamma", "dbeta", "running_mean", "running_var"),
                              results[half], results["float64"]):
        got = got.astype(np.float64)
        rel = eps if what in ("y", "dx") else 1e-5  # rounded once to the half format, or float32
        bad = np.abs(got - ref) > rel * np.abs(ref) + 2e-4 * np.abs(ref).max()
        assert not bad.any(), (what, float(np.abs(got - ref).max()))


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_model_batch_norm_updates_its_half_running_stats(half, device):
    """model.half(): weight, bias and running stats in the half dtype too (the kernels
    compute in float32; the running update rounds into the half buffers)."""
    bn = minidl.nn.BatchNorm2d(3).to(device).to(half)
    x = np.random.default_rng(3).standard_normal((4, 3, 5, 5)) * 2 + 1
    xt = minidl.tensor(x, dtype=half, device=device, requires_grad=True)
    y = bn(xt)
    y.sum().backward()
    assert y.dtype == half and xt.grad.dtype == half and bn.weight.grad.dtype == half
    xr = xt.numpy().astype(np.float64)
    want_mean = 0.1 * xr.mean(axis=(0, 2, 3))
    want_var = 0.9 + 0.1 * xr.var(axis=(0, 2, 3), ddof=1)
    eps = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}[half]
    np.testing.assert_allclose(bn.running_mean.numpy().astype(np.float64), want_mean, rtol=eps, atol=eps * 0.1)
    np.testing.assert_allclose(bn.running_var.numpy().astype(np.float64), want_var, rtol=eps)


def test_errors():
    x = minidl.zeros(2, 4, 3, 3)
    with pytest.raises(ValueError, match=r"batch_norm: weight has shape \(3,\) but input has 4 channels"):
        F.batch_norm(x, None, None, minidl.ones(3), training=True)
    with pytest.raises(ValueError, match="running_mean has shape"):
        F.batch_norm(x, minidl.zeros(5), minidl.ones(5))
    with pytest.raises(ValueError, match=r"2-D \(N, C\) or 4-D .* got shape \(2, 4, 3\)"):
        F.batch_norm(minidl.zeros(2, 4, 3), None, None, training=True)
    with pytest.raises(ValueError, match="required in evaluation mode"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 4\)"):
        F.batch_norm(minidl.zeros(1, 4), None, None, training=True)
    with pytest.raises(ValueError, match="both given or both None"):
        F.batch_norm(x, minidl.zeros(4), None, training=True)


def bn_backward_reference(x, gy, gamma, beta, eps, relu):
    """dx, dgamma, dbeta of training-mode batch norm (then ReLU where ``relu``), in float64
    from the closed form: dx = gamma / std * (g - mean(g) - xhat * mean(g * xhat))."""
    x, gy = np.asarray(x, np.float64), np.asarray(gy, np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axes), x.var(axes)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var + eps).reshape(shape)
    g = gy * ((xhat * gamma.reshape(shape) + beta.reshape(shape)) > 0) if relu else gy
    dbeta, dgamma = g.sum(axes), (g * xhat).sum(axes)
    dx = (gamma / np.sqrt(var + eps)).reshape(shape) * (
        g - g.mean(axes, keepdims=True) - xhat * (g * xhat).mean(axes, keepdims=True))
    return dx, dgamma, dbeta


@pytest.mark.parametrize("loops", ["channel_major", "channels_inner", "channels_inner_many_panels"])
@pytest.mark.parametrize("shape", [(3, 5, 2, 3), (40, 100, 3, 3), (7, 6), (5, 9, 17, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cpu_loops_match_references(loops, shape, dtype, monkeypatch):
    """The CPU's two loop orders (batchnorm.FLAT_MAX_PIXELS picks one by map size), with
    one panel of channels, or many uneven ones, on one thread or the parallel kernels
    ((40, 100, 3, 3) is large enough for them): train forward with ReLU, its running
    stats, eval forward, backward, against the float64 references."""
    from minidl.backend.cpu import batchnorm
    monkeypatch.setattr(batchnorm, "FLAT_MAX_PIXELS", 0 if loops == "channel_major" else 10**9)
    if loops == "channels_inner_many_panels":
        monkeypatch.setattr(batchnorm, "FLAT_PANEL_POSITIONS", 7)
    rng = np.random.default_rng(11)
    c = shape[1]
    x, gy = (rand(rng, *shape) * 2 + 5).astype(dtype), rand(rng, *shape).astype(dtype)
    gamma, beta = rand(rng, c).astype(dtype), rand(rng, c).astype(dtype)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-9, atol=1e-9)
    running_mean, running_var = np.zeros(c, dtype), np.ones(c, dtype)
    y, mean, var = batchnorm.batch_norm_train_forward(x, gamma, beta, 1e-5, True, running_mean, running_var, 0.1)
    ref, ref_mean, ref_var = bn_reference(x, gamma, beta, 1e-5)
    np.testing.assert_allclose(y, np.maximum(ref, 0), **tol)
    np.testing.assert_allclose(mean, ref_mean, **tol)
    np.testing.assert_allclose(var, ref_var, **tol)
    count = x.size // c
    np.testing.assert_allclose(running_mean, 0.1 * ref_mean, **tol)
    np.testing.assert_allclose(running_var, 0.9 + 0.1 * ref_var * count / (count - 1), **tol)
    y_eval = batchnorm.batch_norm_eval_forward(x, gamma, beta, running_mean, running_var, 1e-5, False)
    np.testing.assert_allclose(y_eval, bn_reference(x, gamma, beta, 1e-5, running_mean, running_var)[0], **tol)
    got = batchnorm.batch_norm_backward(x, gy, gamma, beta, mean, var, 1e-5, True)
    for a, b in zip(got, bn_backward_reference(x, gy, gamma, beta, 1e-5, True)):
        np.testing.assert_allclose(a, b, **tol)
