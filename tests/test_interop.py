"""NumPy/DLPack interop: the array protocols, copy-or-share by PyTorch's convention
(minidl.tensor copies; from_numpy, as_tensor and from_dlpack share) and the repr."""
import importlib.util

import numpy as np
import pytest

import minidl


def test_np_asarray_of_a_cpu_tensor_is_its_array_without_a_copy():
    t = minidl.randn(2, 3)
    a = np.asarray(t)
    assert a.dtype == np.float32 and a.shape == (2, 3)
    a[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0
    np.testing.assert_array_equal(np.array(t, dtype=np.float64), t.numpy().astype(np.float64))
    copied = np.array(t, copy=True)
    copied[0, 1] = -7.0
    assert t.numpy()[0, 1] != -7.0


def test_np_asarray_of_a_device_tensor_is_a_clear_error():
    t = minidl.ones(2, 2, device="emu")
    with pytest.raises(TypeError, match=r"tensor on device 'emu' to a NumPy array.*\.cpu\(\) or \.numpy\(\)"):
        np.asarray(t)
    np.testing.assert_array_equal(np.asarray(t.cpu()), np.ones((2, 2), np.float32))


def test_tensor_copies_its_input():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    for source in (arr, arr[:, 1:], minidl.from_numpy(arr)):
        t = minidl.tensor(source)
        before = t.numpy().copy()
        arr += 100.0
        np.testing.assert_array_equal(t.numpy(), before)


def test_from_numpy_and_as_tensor_share_memory_both_ways():
    arr = np.zeros((2, 3), np.float64)
    for t in (minidl.from_numpy(arr), minidl.as_tensor(arr)):
        assert t.dtype == np.float64
        arr[1, 2] = 5.0
        assert t.numpy()[1, 2] == 5.0
        t.data[0, 0] = -1.0
        assert arr[0, 0] == -1.0
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray, got list"):
        minidl.from_numpy([1.0, 2.0])


def test_dlpack_round_trip_with_numpy_shares_memory():
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = minidl.from_dlpack(arr)
    assert t.device == "cpu" and t.shape == (3, 4)
    arr[0, 0] = 9.0
    assert t.numpy()[0, 0] == 9.0
    back = np.from_dlpack(t)
    back[2, 3] = -3.0
    assert arr[2, 3] == -3.0
    assert t.__dlpack_device__()[0] == 1   # kDLCPU
    again = minidl.from_dlpack(t)
    again.data[1, 1] = 0.5
    assert arr[1, 1] == 0.5
    with pytest.raises(TypeError, match="from_dlpack: expected an object with __dlpack__"):
        minidl.from_dlpack([1, 2])


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_dlpack_round_trip_with_torch_on_the_cpu():
    import torch
    src = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t = minidl.from_dlpack(src)
    src[0, 0] = 7.0
    assert t.numpy()[0, 0] == 7.0
    back = torch.from_dlpack(minidl.randn(2, 2))
    assert tuple(back.shape) == (2, 2)


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs the cuda device (CuPy and a GPU)")
def test_dlpack_round_trip_with_cupy_on_the_gpu():
    import cupy
    src = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
    t = minidl.from_dlpack(src)
    assert t.device == "cuda"
    src[0, 0] = 7.0
    assert t.numpy()[0, 0] == 7.0
    back = cupy.from_dlpack(t)
    back[1, 2] = -1.0
    assert float(src[1, 2].get()) == -1.0
    with pytest.raises(TypeError, match="device 'cuda'"):
        np.asarray(t)


def test_repr_aligns_rows_and_shows_grad_fn():
    t = minidl.tensor([[1.0, -2.5], [300.0, 4.0]], requires_grad=True)
    text = repr(t)
    lines = text.splitlines()
    assert lines[0].startswith("Tensor([[  1. ") and lines[1].startswith("        [300. ")
    assert lines[0].index("]") == lines[1].index("]")   # columns end together
    assert text.endswith("requires_grad=True)")
    y = (t * 2).sum()
    assert repr(y).endswith("grad_fn=<Sum>)") and "requires_grad" not in repr(y)
    assert "grad_fn" not in repr(t.detach())
