"""``read_pth(path)``: a PyTorch ``.pth`` state dict as name -> NumPy array, without torch.

Two layouts exist.  ``torch.save`` since PyTorch 1.6 writes a zip archive
``<root>/data.pkl`` + ``<root>/data/<key>`` (one raw little-endian storage per key) and
an optional ``<root>/byteorder``.  Older files (e.g. torchvision's densenet weights) are a
sequence of pickles: a magic number, a protocol version, system info, the object, the list
of storage keys, then each storage as an int64 element count followed by its bytes.

In both, tensors are pickled as calls to ``torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)`` whose storage is a persistent id ``("storage", <storage
type>, key, location, numel[, view])``.  The unpickler resolves only those rebuild
functions, the storage types and ``collections.OrderedDict``: every other global
(``os.system``, ``builtins.eval``, any class) is refused, so a file cannot run code.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

__all__ = ["read_pth", "UnsafePickleError"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle asked for something a state dict never needs."""


class _StorageType:
    def __init__(self, name):
        dtype = _STORAGE_DTYPES[name]
        if dtype == "bfloat16":
            try:
                import ml_dtypes
            except ImportError:
                raise ImportError("read_pth: the file holds bfloat16 tensors, which NumPy reads "
                                  "through the 'ml_dtypes' package (pip install ml_dtypes)") from None
            dtype = ml_dtypes.bfloat16
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """A NumPy copy of the tensor view (offset, size, stride) of a flat storage array."""
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[offset])
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    if extent > storage.size or offset < 0 or min(stride) < 0:
        raise pickle.UnpicklingError(f"read_pth: a tensor of size {size}, stride {stride} at "
                                     f"offset {offset} does not fit its storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(storage[offset:], size,
                                           tuple(s * storage.itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


_REBUILD_TENSOR = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}
_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    """``rebuild_tensor(storage, offset, size, stride, ...)`` makes each tensor."""

    def __init__(self, file, load_storage, path, rebuild_tensor=_rebuild_tensor):
        super().__init__(file)
        self.load_storage, self.path, self.rebuild_tensor = load_storage, path, rebuild_tensor

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _REBUILD_TENSOR:
            return self.rebuild_tensor
        found = _GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"read_pth: {self.path} asks for {module}.{name}, which a state dict never "
                f"needs; refused (only tensors, storages and OrderedDict are read)")
        return found

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" \
                or not isinstance(pid[1], _StorageType):
            raise UnsafePickleError(f"read_pth: {self.path} holds an unknown persistent id {pid!r}")
        return self.load_storage(pid[1].dtype, str(pid[2]), int(pid[4]))


def _read_zip(path, archive):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ValueError(f"read_pth: {path} is a zip archive without one <root>/data.pkl "
                         f"(found {pickles or 'none'}); not a torch.save file")
    root = pickles[0][:-len("data.pkl")]
    byteorder = archive.read(root + "byteorder").decode() if root + "byteorder" in names else "little"
    cache = {}

    def load_storage(dtype, key, numel):
        if key not in cache:
            raw = archive.read(f"{root}data/{key}")
            cache[key] = np.frombuffer(raw, dtype.newbyteorder("<" if byteorder == "little" else ">"))
        return cache[key]

    with archive.open(pickles[0]) as f:
        return _StateDictUnpickler(io.BytesIO(f.read()), load_storage, path).load()


def _read_legacy(path, f):
    def plain():   # the header pickles hold only ints, strings and dicts of them
        return _StateDictUnpickler(f, None, path).load()

    if plain() != _LEGACY_MAGIC:
        raise ValueError(f"read_pth: {path} is neither a zip archive nor a legacy torch.save file")
    plain()   # protocol version
    plain()   # system info: byte order, type sizes
    pending = {}

    def load_storage(dtype, key, numel):
        if key not in pending:
            pending[key] = (dtype, [])
        return _Deferred(pending[key][1])

    obj = _StateDictUnpickler(f, load_storage, path, _rebuild_deferred).load()
    for key in plain():
        if key not in pending:
            raise ValueError(f"read_pth: {path} lists storage {key!r} that no tensor uses")
        dtype, holder = pending[key]
        (count,) = struct.unpack("<q", f.read(8))
        holder.append(np.frombuffer(f.read(count * dtype.itemsize), dtype))
    return _resolve(obj)


class _Deferred:
    """A legacy-format storage: its bytes come after the pickle that uses it."""

    def __init__(self, holder):
        self.holder = holder


def _rebuild_deferred(storage, offset, size, stride, *unused):
    """Legacy storages are read after the object: tensors are rebuilt by ``_resolve``."""
    return ("deferred", storage, offset, size, stride)


def _resolve(obj):
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "deferred":
        _, storage, offset, size, stride = obj
        return _rebuild_tensor(storage.holder[0], offset, size, stride)
    if isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _resolve(value)
    return obj


def read_pth(path):
    """The object in a ``torch.save`` file, with every tensor as a NumPy array.  A file
    that is damaged or not a torch.save file raises ValueError naming it."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        try:
            if head == b"PK\x03\x04":
                with zipfile.ZipFile(f) as archive:
                    return _read_zip(path, archive)
            return _read_legacy(path, f)
        except (UnsafePickleError, ValueError):
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, IndexError,
                struct.error, TypeError, AttributeError) as e:
            raise ValueError(f"read_pth: {path} is damaged or not a torch.save file "
                             f"({type(e).__name__}: {e})") from None
