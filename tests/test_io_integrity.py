"""minidl.io: the content hash in the safetensors header, checked on every load, and
byte-identical files for identical weights."""
import os
import stat
import struct

import numpy as np
import pytest
from safetensors import numpy as st_numpy

import minidl
import minidl.io as mio
from minidl import nn

METADATA = {f"key{i}": str(i) for i in range(8)}


def _model():
    minidl.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def test_same_weights_give_the_same_bytes(tmp_path):
    model = _model()
    for i in range(3):
        mio.save(model, tmp_path / f"w{i}.safetensors", metadata=METADATA)
    first = (tmp_path / "w0.safetensors").read_bytes()
    assert (tmp_path / "w1.safetensors").read_bytes() == first
    assert (tmp_path / "w2.safetensors").read_bytes() == first
    (size,) = struct.unpack("<Q", first[:8])
    assert size % 8 == 0
    header = first[8:8 + size].decode()
    keys = [k for k in ["content_sha256", "format"] + sorted(METADATA)]
    positions = [header.index(f'"{k}"') for k in sorted(keys)]
    assert positions == sorted(positions)


def test_a_flipped_data_byte_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "weights.safetensors"
    mio.save(_model(), path)
    clean = mio.load(path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"load: '.*weights.safetensors' is corrupt: its tensors do not "
                                         r"match the content hash recorded in its header"):
        mio.load(path)
    with pytest.raises(ValueError, match="is corrupt"):
        mio.load(path, _model())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    restored = mio.load(path)
    for name in clean:
        np.testing.assert_array_equal(restored[name], clean[name])


def test_files_without_a_hash_load_with_the_check_skipped(tmp_path):
    path = tmp_path / "other_tool.safetensors"
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, np.float64)}
    path.write_bytes(st_numpy.save(arrays, metadata={"producer": "another tool"}))
    loaded = mio.load(path)
    np.testing.assert_array_equal(loaded["a"], arrays["a"])


def test_the_hash_covers_names_dtypes_and_shapes():
    a = np.arange(4, dtype=np.float32)
    base = mio.content_hash({"x": a, "y": a})
    assert mio.content_hash({"y": a, "x": a}) == base  # order of the mapping does not matter
    assert mio.content_hash({"x": a, "z": a}) != base
    assert mio.content_hash({"x": a.reshape(2, 2), "y": a}) != base
    assert mio.content_hash({"x": a.view(np.int32), "y": a}) != base


def test_the_hash_key_is_reserved(tmp_path):
    with pytest.raises(ValueError, match="reserved for the content hash"):
        mio.save(_model(), tmp_path / "w.safetensors", metadata={"content_sha256": "0" * 64})


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        weights = mio.save(_model(), tmp_path / "w.safetensors")
        text = mio.atomic_write(tmp_path / "log.json", "{}")
    finally:
        os.umask(old)
    for path in (weights, text):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
