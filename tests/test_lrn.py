"""Local response normalization against a naive float64 loop reference of the
Krizhevsky/Caffe/PyTorch definition, plus finite-difference gradient checks, on every
device (the ``device`` fixture: cpu, emu, and cuda where there is a GPU)."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import gradcheck


def ref_lrn(x, size, alpha, beta, k):
    """Channel window [c - size//2, c + (size-1)//2], clipped; alpha divided by size."""
    n_img, chans, height, width = x.shape
    y = np.zeros_like(x, dtype=np.float64)
    for n in range(n_img):
        for c in range(chans):
            lo, hi = max(0, c - size // 2), min(chans - 1, c + (size - 1) // 2)
            for h in range(height):
                for w in range(width):
                    squares = 0.0
                    for cc in range(lo, hi + 1):
                        squares += float(x[n, cc, h, w]) ** 2
                    scale = k + alpha / size * squares
                    y[n, c, h, w] = x[n, c, h, w] * scale ** -beta
    return y


# (shape, size, alpha, beta, k)
LRN_CASES = [
    ((2, 7, 3, 4), 5, 1e-4, 0.75, 2.0),   # AlexNet
    ((1, 6, 3, 3), 4, 1e-4, 0.75, 1.0),   # even size: 2 channels before, 1 after
    ((2, 3, 2, 5), 5, 1e-4, 0.75, 1.0),   # fewer channels than the window
    ((1, 9, 2, 3), 3, 0.5, 0.5, 1.0),     # strong normalization, general beta
    ((1, 4, 3, 2), 1, 1.0, 0.75, 1.0),    # size 1: each channel alone
    ((1, 5, 2, 2), 7, 2.0, 1.3, 0.5),     # window wider than all channels, k < 1
]


@pytest.mark.parametrize("shape,size,alpha,beta,k", LRN_CASES)
def test_lrn_matches_reference(shape, size, alpha, beta, k, device):
    x = 3 * np.random.default_rng(0).standard_normal(shape)
    want = ref_lrn(x, size, alpha, beta, k)
    for dtype, rtol in (("float64", 1e-12), ("float32", 1e-5)):
        y = F.local_response_norm(minidl.tensor(x, dtype=dtype, device=device), size, alpha, beta, k)
        assert y.shape == shape and y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y.numpy(), want, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("shape,size,alpha,beta,k", LRN_CASES)
def test_lrn_gradcheck(shape, size, alpha, beta, k, device):
    x = np.random.default_rng(1).standard_normal(shape)
    # the AlexNet alpha makes the cross-channel term tiny; check it with a strong alpha too
    gradcheck(lambda t: F.local_response_norm(t, size, alpha, beta, k), x, device=device)
    gradcheck(lambda t: F.local_response_norm(t, size, max(alpha, 1.0), beta, k), x, device=device)


def test_lrn_running_sum_has_no_cancellation_residue(device):
    # a large channel leaves the window; the channels after it must see only small values
    # (float32 running sums would leave ~1e-4 of 1e4 behind, far more than 3e-6)
    x = np.full((1, 12, 1, 2), 1e-3, dtype=np.float32)
    x[0, 0] = 1e2
    y = F.local_response_norm(minidl.tensor(x, device=device), 3, 1.0, 0.75, 1e-6).numpy()
    np.testing.assert_allclose(y, ref_lrn(x.astype(np.float64), 3, 1.0, 0.75, 1e-6), rtol=1e-5)


def test_lrn_float32_backward_matches_float64(device):
    x = np.random.default_rng(2).standard_normal((2, 10, 4, 5))
    gy = np.random.default_rng(3).standard_normal(x.shape)
    grads = []
    for dtype in ("float64", "float32"):
        t = minidl.tensor(x, dtype=dtype, requires_grad=True, device=device)
        y = F.local_response_norm(t, 5, 0.1, 0.75, 2.0)
        y.backward(minidl.tensor(gy, dtype=dtype, device=device))
        grads.append(t.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("call,exc,message", [
    (lambda: F.local_response_norm(minidl.tensor(np.zeros((3, 4, 4), np.float32)), 5),
     ValueError, r"local_response_norm: expected a 4-D input \(N, C, H, W\), got shape \(3, 4, 4\)"),
    (lambda: F.local_response_norm(minidl.tensor(np.zeros((1, 3, 4, 4), np.float32)), 0),
     ValueError, r"local_response_norm: expected size to be a positive int, got 0"),
    (lambda: F.local_response_norm(np.zeros((1, 3, 4, 4)), 5),
     TypeError, r"local_response_norm: expected a Tensor input, got ndarray"),
])
def test_lrn_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# cpu only: the shape exists to reach the CPU backend's parallel kernels (emulating it
# would be slow); the kernel backends' LRN is checked on small shapes above.
@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_lrn_large_input_takes_the_parallel_kernels(beta):
    # above the backend's small-input cutoff; the backward is checked against the
    # float64 small-input path, which the gradchecks above validate
    x = np.random.default_rng(4).standard_normal((2, 20, 30, 31))
    x[0, :, 0, 0] = 0.0  # zeros take the pow branch of the general-beta backward
    gy = np.random.default_rng(5).standard_normal(x.shape)
    t = minidl.tensor(x, dtype="float64", requires_grad=True)
    y = F.local_response_norm(t, 5, 0.5, beta, 2.0)
    np.testing.assert_allclose(y.numpy(), ref_lrn(x, 5, 0.5, beta, 2.0), rtol=1e-12)
    y.backward(minidl.tensor(gy, dtype="float64"))
    for n in range(2):
        part = minidl.tensor(x[n:n + 1, :, :3, :4], dtype="float64", requires_grad=True)
        F.local_response_norm(part, 5, 0.5, beta, 2.0).backward(
            minidl.tensor(gy[n:n + 1, :, :3, :4], dtype="float64"))
        np.testing.assert_allclose(t.grad.numpy()[n:n + 1, :, :3, :4], part.grad.numpy(), rtol=1e-10)
