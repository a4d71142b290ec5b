"""Test helpers: finite-difference gradient checking in float64.

Independent of minidl's internals: it perturbs the inputs' NumPy data and calls
the op again, so it checks the analytic backward against the forward alone.
"""
from __future__ import annotations

import numpy as np

import minidl


def as_tensor(a, requires_grad=True, device="cpu"):
    return minidl.tensor(np.asarray(a, dtype=np.float64), dtype="float64", device=device,
                         requires_grad=requires_grad)


def numeric_grad(f, arrays, index, eps=1e-6):
    """d(sum(f(*arrays) * w))/d(arrays[index]) by central differences, with a fixed
    random weighting w so that every output element matters."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out0 = np.asarray(f(*arrays))
    w = np.random.default_rng(123).standard_normal(out0.shape)
    x = arrays[index]
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = np.sum(np.asarray(f(*arrays)) * w)
        flat[i] = orig - eps
        minus = np.sum(np.asarray(f(*arrays)) * w)
        flat[i] = orig
        gflat[i] = (plus - minus) / (2 * eps)
    return g, w


def gradcheck(op, *arrays, wrt=None, rtol=1e-5, atol=1e-6, eps=1e-6, device="cpu"):
    """Check minidl's backward of ``op`` (a function of Tensors returning a Tensor)
    against central differences, for the inputs listed in ``wrt`` (default: all)."""
    wrt = range(len(arrays)) if wrt is None else wrt

    def forward_np(*arrs):
        with minidl.no_grad():
            return op(*[as_tensor(a, False, device) for a in arrs]).numpy()

    for i in wrt:
        expected, w = numeric_grad(forward_np, arrays, i, eps)
        tensors = [as_tensor(a, j == i, device) for j, a in enumerate(arrays)]
        out = op(*tensors)
        out.backward(minidl.tensor(w, dtype="float64", device=device))
        got = tensors[i].grad.numpy()
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} differs from finite differences")
