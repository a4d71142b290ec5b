"""Every backend implements every op of the contract (minidl/backend/base.py), or
inherits its generic version."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from minidl.backend import get_backend
from minidl.backend.base import CONTRACT, GENERIC, Backend
from minidl.backend.cpu import CpuBackend, elementwise
from minidl.backend.kernel import KernelBackend

OPS = [op for ops in CONTRACT.values() for op in ops]


def test_contract_lists_every_op_once_and_every_method_of_backend():
    assert len(OPS) == len(set(OPS)), "an op is listed twice in CONTRACT"
    methods = {name for name, v in vars(Backend).items() if callable(v) and not name.startswith("_")}
    assert methods == set(OPS)
    assert GENERIC == set(OPS) - Backend.__abstractmethods__


@pytest.mark.parametrize("cls", [CpuBackend, KernelBackend], ids=lambda c: c.__name__)
def test_backend_implements_every_contract_op(cls):
    missing = [op for op in OPS if op not in GENERIC and getattr(cls, op) is getattr(Backend, op)]
    assert missing == [], f"{cls.__name__} does not implement {', '.join(missing)} (and they are not in GENERIC)"
    assert not cls.__abstractmethods__



_FAULTS_SCRIPT = r"""
import resource, sys
import numpy as np
import minidl
from minidl.backend import get_backend
get_backend("cpu")  # (its first use sets the process's malloc, unless opted out)

def faults_of_a_fresh_array():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(16 << 20, np.uint8)
    a[::4096] = 1  # touch every page
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

first = faults_of_a_fresh_array()
again = [faults_of_a_fresh_array() for _ in range(3)]
print(first, max(again))
"""


@pytest.mark.parametrize("tuning", ["1", "0"])
def test_cpu_backend_keeps_freed_memory_for_reuse_unless_opted_out(tuning):
    """A 16 MB array freed and allocated again reuses its pages (no new page faults),
    as a training step's activations do; MINIDL_MALLOC_TUNING=0 leaves glibc's default,
    which maps such an array afresh and trims it away on free."""
    if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
        pytest.skip("malloc tuning is glibc-only")
    env = dict(os.environ, MINIDL_MALLOC_TUNING=tuning)
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    first, again = int(out[0]), int(out[1])
    assert first > 0
    if tuning == "1":
        assert again <= first // 10, (first, again)
    else:
        assert again > first // 10, (first, again)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "add_"])
@pytest.mark.parametrize("shapes", [((5, 3, 4, 4), (5, 3, 1, 1)), ((5, 3, 4, 4), (3, 1, 1)),
                                    ((1, 3, 4, 4), (5, 3, 4, 4)), ((5, 3, 4, 4), ()),
                                    ((7, 2), (7, 2))])
def test_cpu_arithmetic_cut_over_threads_matches_float64(op, shapes, monkeypatch):
    """The CPU backend's threaded add/sub/mul/div (rows of the output per thread, every
    broadcasting form, a Python scalar operand) against float64 NumPy, dtype kept."""
    monkeypatch.setattr(elementwise, "THREADED_MIN_ELEMENTS", 1)  # (thread even tiny arrays)
    be = get_backend("cpu")
    rng = np.random.default_rng(0)
    a_shape, b_shape = shapes
    if op == "add_" and np.broadcast_shapes(a_shape, b_shape) != a_shape:
        pytest.skip("add_ writes into a: only shapes a already has")
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = 1.5 if b_shape == () else (rng.random(b_shape) + 0.5).astype(np.float32)
    ref = {"add": np.add, "add_": np.add, "sub": np.subtract, "mul": np.multiply,
           "div": np.true_divide}[op](a.astype(np.float64), np.asarray(b, np.float64))
    out = getattr(be, op)(a.copy() if op == "add_" else a, b)
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis", [1, -1, 0])
def test_cpu_concat_cut_over_threads_matches_numpy(axis, monkeypatch):
    """The CPU backend's threaded concat (rows of the output per thread) equals NumPy's,
    for a middle, a negative and the first axis, with mixed sizes along the axis."""
    monkeypatch.setattr(elementwise, "THREADED_MIN_ELEMENTS", 1)
    rng = np.random.default_rng(1)
    sizes = (3, 1, 4)
    arrays = [rng.standard_normal((5, s, 2, 3) if axis == 1 else (5, 2, 3, s) if axis == -1 else (s, 2, 3, 4))
              .astype(np.float32) for s in sizes]
    out = get_backend("cpu").concat(arrays, axis)
    np.testing.assert_array_equal(out, np.concatenate(arrays, axis=axis))
    assert out.dtype == np.float32
