"""Checkpoints in the safetensors format: ``save(model_or_state_dict, path)`` and
``load(path, model=None)``.

A checkpoint holds the state dict (parameters and persistent buffers, by their
dotted names) and nothing executable, so loading a file never runs code.  Writes
are atomic: the bytes go to a temporary file in the target's directory, which is
fsynced and then renamed over the target (``os.replace``), so a crash mid-write
leaves the previous checkpoint intact and no half-written file under its name.

Integrity: ``save`` records the SHA-256 of the tensors (names, dtypes, shapes and
bytes, in sorted name order) in the header metadata under ``content_sha256``, and
``load`` recomputes and checks it on every load, so a corrupted file is an error
naming the file instead of a model that evaluates to nonsense.  Files without the
key (written by other tools) load with the check skipped.  The header's metadata
keys are written sorted, so the same weights and metadata give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
from collections import OrderedDict

import numpy as np

from .nn.module import Module
from .tensor import Tensor

FORMAT = "minidl"
HASH_KEY = "content_sha256"
# atomic_write's temporary files: "." + target name + "." + mkstemp's 8 random characters + ".tmp"
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def _safetensors_numpy():
    try:
        from safetensors import numpy as st_numpy
    except ImportError:  # pragma: no cover - it is an install requirement
        raise ImportError("minidl.io needs the 'safetensors' package "
                          "(pip install safetensors)") from None
    return st_numpy


def _as_arrays(model_or_state_dict):
    if isinstance(model_or_state_dict, Module):
        return model_or_state_dict.state_dict()
    if not hasattr(model_or_state_dict, "items"):
        raise TypeError("save: expected a Module or a mapping of name -> array, got "
                        f"{type(model_or_state_dict).__name__}")
    arrays = OrderedDict()
    for name, value in model_or_state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"save: expected str keys, got {name!r}")
        if isinstance(value, Tensor):
            value = value.backend.to_numpy(value.data)
        elif not isinstance(value, np.ndarray):
            raise TypeError(f"save: expected a NumPy array or a Tensor for {name!r}, "
                            f"got {type(value).__name__}")
        arrays[name] = value
    return arrays


def _fsync_dir(directory):
    # makes the rename itself durable; not possible on every platform/filesystem
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(model_or_state_dict, path, metadata=None):
    """Write a Module's state dict (or a mapping of name -> NumPy array/Tensor) to
    ``path`` as safetensors, atomically.  ``metadata``: optional str -> str pairs
    stored in the header.  Returns ``path``."""
    # np.require keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)
    arrays = {name: np.require(a, a.dtype.newbyteorder("<"), requirements="C")
              for name, a in _as_arrays(model_or_state_dict).items()}
    header = {"format": FORMAT}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"save: metadata must map str to str, got {key!r}: {value!r}")
        if key == HASH_KEY:
            raise ValueError(f"save: metadata key {HASH_KEY!r} is reserved for the content hash")
        header[key] = value
    header[HASH_KEY] = content_hash(arrays)
    blob = _sorted_metadata(_safetensors_numpy().save(arrays, metadata=header))
    return atomic_write(path, blob)


def content_hash(arrays):
    """SHA-256 (hex) of a name -> array mapping: each name, dtype and shape, then the
    little-endian bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.require(arrays[name], arrays[name].dtype.newbyteorder("<"), requirements="C")
        digest.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        digest.update(a.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _sorted_metadata(blob):
    """A safetensors file with its ``__metadata__`` keys sorted (the library writes them
    from a hash map, in an order that changes from call to call); tensor entries and the
    data are kept, and the header is space-padded to 8 bytes as the library does."""
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + size:]


def _current_umask():
    mask = os.umask(0o022)   # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write(path, data):
    """Write ``data`` (bytes or str) to ``path`` atomically: a temporary file in the
    same folder, fsync, rename over ``path``, fsync of the folder.  The file's mode is
    0666 less the umask, as for any newly created file.  A crash at any
    point leaves either the old file or the new one, never a partial one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        # mkstemp creates 0600; the written file gets the mode open() would give it
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    return path


def remove_stale_temps(directory):
    """Delete the temporary files that an ``atomic_write`` killed mid-write left in
    ``directory`` (only names of atomic_write's pattern).  Returns the removed names."""
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if TEMP_NAME.match(name) and os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
            removed.append(name)
    return removed


def load(path, model=None, strict=True):
    """Read a safetensors checkpoint, checking its content hash when it records one.
    Without ``model``: return the state dict (an
    OrderedDict of name -> NumPy array).  With ``model``: load it into the model
    (``strict`` as in ``Module.load_state_dict``; every missing, unexpected or
    mis-shaped key is listed in one error) and return the model."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint file at {path!r}")
    try:
        from safetensors import safe_open
        with safe_open(path, framework="numpy") as f:
            recorded = (f.metadata() or {}).get(HASH_KEY)
        arrays = _safetensors_numpy().load_file(path)
    except Exception as e:
        raise ValueError(f"load: {path!r} is not a readable safetensors file ({e})") from e
    if recorded is not None and content_hash(arrays) != recorded:
        raise ValueError(f"load: {path!r} is corrupt: its tensors do not match the content hash "
                         f"recorded in its header ({HASH_KEY} {recorded[:16]}...)")
    state = OrderedDict(sorted(arrays.items()))
    if model is None:
        return state
    if not isinstance(model, Module):
        raise TypeError(f"load: expected a minidl.nn.Module as model, got {type(model).__name__}")
    try:
        model.load_state_dict(state, strict=strict)
    except ValueError as e:
        raise ValueError(f"load: checkpoint {path!r} does not fit {type(model).__name__}:\n{e}") from e
    return model
