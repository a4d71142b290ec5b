"""The compiled kernel modules themselves: minidl._emu's self-tests and errors, the
emu device end to end, and the cuda device's absence reported clearly."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import minidl
from conftest import CUDA_REASON as _cuda_reason
from minidl.backend import get_backend


# ---------------------------------------------------------------- plumbing
@pytest.mark.timeout(60)
def test_emu_module_and_errors():
    k = minidl._emu
    assert k.emulated is True
    assert hasattr(k, "softmax_forward_f32") and hasattr(k, "batch_norm_backward_f64")
    with pytest.raises(TypeError, match="take float32, float64, float16 or bfloat16 arrays, got int32"):
        get_backend("emu").relu(np.zeros(3, np.int32))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["fiber", "thread"])
@pytest.mark.parametrize("name", ["warp_ops", "block_sum", "dynamic_smem"])
def test_emu_selftests(monkeypatch, mode, name):
    monkeypatch.setenv("MINIDL_EMU_MODE", mode)
    assert minidl._emu.emu_selftest(name) == "ok"


@pytest.mark.timeout(60)
def test_emu_errors_name_the_kernel(monkeypatch):
    monkeypatch.setenv("MINIDL_EMU_MODE", "fiber")
    # a divergent __syncthreads is reported, not hung (fiber mode)
    with pytest.raises(RuntimeError, match="divergent_barrier_kernel: barrier deadlock"):
        minidl._emu.emu_selftest("divergent_barrier")
    with pytest.raises(RuntimeError, match="oversized_block_kernel: invalid launch configuration"):
        minidl._emu.emu_selftest("oversized_block")
    # the emulator still works after an error
    assert minidl._emu.emu_selftest("warp_ops") == "ok"


@pytest.mark.timeout(120)
def test_tensor_to_emu_round_trip():
    x = minidl.randn(3, 4, requires_grad=True)
    y = x.to("emu")
    assert y.device == "emu"
    z = y.relu() if hasattr(y, "relu") else minidl.functional.relu(y)
    out = z.to("cpu").sum()
    out.backward()
    np.testing.assert_allclose(z.numpy(), np.maximum(x.numpy(), 0))
    np.testing.assert_allclose(x.grad.numpy(), (x.numpy() > 0).astype(np.float32))


@pytest.mark.timeout(60)
def test_cuda_unavailable_is_clear():
    if _cuda_reason is None:
        assert minidl.cuda.is_available() and minidl.cuda.device_count() >= 1
        return
    assert minidl.cuda.is_available() is False
    assert minidl.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
        minidl.tensor([1.0]).to("cuda")


@pytest.mark.timeout(120)
def test_import_does_not_import_cupy():
    code = "import sys, minidl; print(minidl._emu.__name__, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         check=True).stdout.split()
    assert out == ["minidl._emu", "False"]


@pytest.mark.timeout(60)
def test_kernel_backend_counts_launches_and_transfers():
    be = get_backend("emu")
    x = be.asarray(np.arange(-3.0, 3.0, dtype=np.float32))  # a device array already: no upload
    before = be.stats()
    y = be.relu(x)
    be.relu_backward(x, y)
    uploaded = be.asarray([1.0, 2.0])       # host data: one upload
    host = be.to_numpy(y)                   # one download
    after = be.stats()
    delta = {k: after[k] - before[k] for k in after}
    assert delta == {"launches": 2, "host_to_device": 1, "device_to_host": 1}
    np.testing.assert_array_equal(host, np.maximum(np.arange(-3.0, 3.0), 0))
    np.testing.assert_array_equal(uploaded, [1.0, 2.0])
