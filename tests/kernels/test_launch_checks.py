"""Malformed calls to backend ops raise a clear ValueError/TypeError naming the op,
before any kernel (a Numba loop or a CUDA launch) sees them.

The cpu cases run in this process; the kernel-device cases (the C++ paths, where a
bad pointer would segfault) run in a subprocess, so a crash fails the test instead of
killing pytest.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import DEVICES
from minidl.backend import get_backend
from minidl.backend.geometry import ConvGeometry, PoolGeometry
from minidl.backend.kernel import KernelBackend
from minidl.backend.kernel.operand import Operand

F32 = np.float32
POOL = PoolGeometry.create((1, 2, 4, 4), (2, 2), (2, 2), (0, 0), False)
CONV = ConvGeometry.create((1, 2, 5, 5), (3, 2, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1)


def _z(be, shape, dtype=F32):
    return be.zeros(shape, dtype)


def _argmax(value):
    a = np.zeros(POOL.y_shape, np.int32)
    a[0, 1, 1, 0] = value
    return a  # a host array: range-checked on every device


# name -> (call(be), exception, message regex); every call is malformed
CASES = {
    "max_pool2d_backward_argmax_too_large": (
        lambda be: be.max_pool2d_backward(_z(be, POOL.y_shape), _argmax(16), POOL),
        ValueError, r"max_pool2d_backward: argmax must lie in \[0, 16\), got 16"),
    "max_pool2d_backward_argmax_negative": (
        lambda be: be.max_pool2d_backward(_z(be, POOL.y_shape), _argmax(-1), POOL),
        ValueError, r"max_pool2d_backward: argmax must lie in \[0, 16\), got -1"),
    "max_pool2d_backward_argmax_shape": (
        lambda be: be.max_pool2d_backward(_z(be, POOL.y_shape), np.zeros((1, 2, 2), np.int32), POOL),
        ValueError, r"max_pool2d_backward: argmax has shape \(1, 2, 2\), expected \(1, 2, 2, 2\)"),
    "max_pool2d_forward_x_shape": (
        lambda be: be.max_pool2d_forward(_z(be, (1, 2, 4, 5)), POOL),
        ValueError, r"max_pool2d_forward: x has shape \(1, 2, 4, 5\), expected \(1, 2, 4, 4\)"),
    "avg_pool2d_backward_gy_shape": (
        lambda be: be.avg_pool2d_backward(_z(be, (1, 2, 3, 2)), POOL, True),
        ValueError, r"avg_pool2d_backward: gy has shape \(1, 2, 3, 2\), expected \(1, 2, 2, 2\)"),
    "adaptive_avg_pool2d_backward_gy_shape": (
        lambda be: be.adaptive_avg_pool2d_backward(_z(be, (1, 2, 1, 1)), PoolGeometry.adaptive((1, 2, 4, 4), (2, 2))),
        ValueError, r"adaptive_avg_pool2d_backward: gy has shape \(1, 2, 1, 1\), expected \(1, 2, 2, 2\)"),
    "conv2d_forward_x_shape": (
        lambda be: be.conv2d_forward(_z(be, (2, 2, 5, 5)), _z(be, CONV.w_shape), CONV),
        ValueError, r"conv2d_forward: x has shape \(2, 2, 5, 5\), expected \(1, 2, 5, 5\)"),
    "conv2d_backward_gy_shape": (
        lambda be: be.conv2d_backward(_z(be, CONV.x_shape), _z(be, CONV.w_shape), _z(be, (1, 3, 2, 2)), CONV),
        ValueError, r"conv2d_backward: gy has shape \(1, 3, 2, 2\), expected \(1, 3, 3, 3\)"),
    "batch_norm_train_forward_weight_shape": (
        lambda be: be.batch_norm_train_forward(_z(be, (2, 3, 2, 2)), _z(be, (4,)), _z(be, (3,)), 1e-5),
        ValueError, r"batch_norm_train_forward: weight has shape \(4,\), expected \(3,\)"),
    "cross_entropy_backward_labels_range": (
        lambda be: be.cross_entropy_backward(_z(be, (2, 3)), np.array([0, 5]), 0.0, 1.0),
        ValueError, r"cross_entropy_backward: labels must lie in \[0, 3\), got 5"),
}

# kernel devices only: the launch plumbing itself
KERNEL_CASES = {
    "int32_geometry_overflow": (
        lambda be: be.max_pool2d_forward(_z(be, POOL.x_shape), PoolGeometry(1, 2, 4, 4, 2, 2, 2, 2, 2 ** 31, 2, 0, 0)),
        ValueError, r"max_pool2d_forward: PoolGeometry.sh = 2147483648 is outside the kernels' 32-bit index "
        r"range \[0, 2147483647\]"),
    "launch_non_contiguous": (
        lambda be: be.launch("relu", F32, Operand("x", _z(be, (4, 6))[:, ::2], (4, 3), F32),
                             Operand("y", _z(be, (4, 3)), (4, 3), F32), 12),
        ValueError, r"relu: x must be C-contiguous"),
    "launch_wrong_operand_dtype": (
        lambda be: be.launch("relu", F32, Operand("x", _z(be, (4,), np.float64), (4,), F32),
                             Operand("y", _z(be, (4,)), (4,), F32), 4),
        TypeError, r"relu: x has dtype float64, expected float32"),
    "launch_unsupported_dtype": (
        lambda be: be.relu(_z(be, (3,), np.int32)),
        TypeError, r"relu: the \w+ kernels take float32, float64, float16 or bfloat16 arrays, got int32"),
}


def run_cases(device):
    """Every malformed call for ``device`` -> {name: None if it raised as expected,
    else what happened}."""
    import re
    be = get_backend(device)
    cases = dict(CASES, **(KERNEL_CASES if isinstance(be, KernelBackend) else {}))
    results = {}
    for name, (call, exc, pattern) in cases.items():
        try:
            call(be)
            results[name] = "no error"
        except exc as e:
            results[name] = None if re.search(pattern, str(e)) else f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - reported as the wrong error
            results[name] = f"{type(e).__name__}: {e}"
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_cpu_rejects_malformed_calls(name):
    call, exc, pattern = CASES[name]
    with pytest.raises(exc, match=pattern):
        call(get_backend("cpu"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("device", [p for p in DEVICES if p.values[0] != "cpu"])
def test_kernel_devices_reject_malformed_calls_without_crashing(device):
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import sys; sys.path[:0] = [%r, %r]; import test_launch_checks as t; "
            "print(repr(t.run_cases(%r)))" % (here, os.path.dirname(here), device))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, f"the subprocess died (exit {proc.returncode}): {proc.stderr[-2000:]}"
    results = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert set(results) == set(CASES) | set(KERNEL_CASES)
    assert {k: v for k, v in results.items() if v is not None} == {}
