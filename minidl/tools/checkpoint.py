"""Training checkpoints: weights and optimizer buffers in safetensors, every scalar
(epoch, step, schedule, optimizer hyperparameters, RNG states, run settings) in JSON.

A checkpoint named ``TAG`` in a directory is three files::

    TAG.json                          the manifest: scalars + names and SHA-256 of the two below
    TAG-<step>-<id>.safetensors       model.state_dict() (loadable by minidl.io.load alone)
    TAG-<step>-<id>.optim.safetensors optimizer buffers (absent for weights-only checkpoints)

Why a manifest rather than fixed file names: a checkpoint is several files, and only a
single rename is atomic.  The array files of a new checkpoint get fresh names, are
written and fsynced first, and only then is ``TAG.json`` replaced (temp file, fsync,
``os.replace``); the previous generation's files are deleted after that.  A process
killed at any moment therefore leaves ``TAG.json`` naming a complete, hash-checked
checkpoint - the old one or the new one - and never a half-written file.
Nothing here is pickled, so loading a checkpoint never runs code.
"""
from __future__ import annotations

import hashlib
import json
import os
import random as py_random
import uuid

import numpy as np

from .. import io as mio
from .. import random as mrandom

MANIFEST_FORMAT = "minidl-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, or does not fit what loads it."""


# ------------------------------------------------------------------ low-level helpers
def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` through a temp file, fsync and os.replace."""
    mio.atomic_write(path, json.dumps(obj, indent=1, sort_keys=True))


def rng_state():
    """Every random state a training step can draw from, as JSON-able data."""
    np_state = np.random.get_state()
    py_state = py_random.getstate()
    return {"minidl": mrandom.get_state(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}


def set_rng_state(state):
    mrandom.set_state(state["minidl"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    py_random.setstate((version, tuple(internal), gauss))


def _split_optimizer_state(optimizer):
    """optimizer.state_dict() -> (arrays for safetensors, JSON-able rest)."""
    sd = optimizer.state_dict()
    arrays, scalars = {}, {}
    for index, buffers in sd["state"].items():
        for name, value in buffers.items():
            if isinstance(value, np.ndarray):
                arrays[f"{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return arrays, {"scalars": scalars, "param_groups": groups}


def _join_optimizer_state(arrays, meta):
    state = {}
    for key, value in arrays.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, buffers in meta["scalars"].items():
        state.setdefault(int(index), {}).update(buffers)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ------------------------------------------------------------------ save / load
def manifest_path(directory, tag):
    return os.path.join(os.fspath(directory), f"{tag}.json")


def save_checkpoint(directory, tag, model, optimizer=None, scheduler=None, train_state=None,
                    weights_metadata=None):
    """Write checkpoint ``tag`` (e.g. "last", "best") into ``directory`` atomically.

    ``train_state``: JSON-able dict (epoch, step, metrics, args ...); the RNG states are
    added here.  ``weights_metadata``: str -> str pairs stored in the weights file's
    header (model name, classes, preprocessing), so that the weights file alone is
    enough for minidl-eval and minidl-predict.  Returns the manifest path."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    target = manifest_path(directory, tag)
    previous = _files_named_by(target)
    state = dict(train_state or {})
    stem = f"{tag}-{int(state.get('step', 0)):08d}-{uuid.uuid4().hex[:8]}"

    weights_name = stem + ".safetensors"
    mio.save(model, os.path.join(directory, weights_name), metadata=weights_metadata)
    files = {"weights": {"name": weights_name, "sha256": _sha256(os.path.join(directory, weights_name))}}
    optimizer_meta = None
    if optimizer is not None:
        arrays, optimizer_meta = _split_optimizer_state(optimizer)
        optim_name = stem + ".optim.safetensors"
        mio.save(arrays, os.path.join(directory, optim_name))
        files["optimizer"] = {"name": optim_name, "sha256": _sha256(os.path.join(directory, optim_name))}

    manifest = {"format": MANIFEST_FORMAT, "files": files, "train_state": state,
                "optimizer": optimizer_meta, "rng": rng_state(),
                "scheduler": None if scheduler is None else _jsonable(scheduler.state_dict())}
    write_json_atomic(target, manifest)
    for name in previous - {f["name"] for f in files.values()}:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
    return target


def _files_named_by(manifest_file):
    try:
        with open(manifest_file) as f:
            return {entry["name"] for entry in json.load(f)["files"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Checkpoint:
    """A loaded manifest: ``train_state``, and the weights / optimizer / scheduler / RNG
    states to restore with ``restore(...)``."""

    def __init__(self, path, manifest, weights, optimizer_arrays):
        self.path = path
        self.manifest = manifest
        self.weights = weights
        self.optimizer_arrays = optimizer_arrays

    @property
    def train_state(self):
        return self.manifest.get("train_state", {})

    def restore(self, model, optimizer=None, scheduler=None, rng=True):
        """Load everything into the given objects (the wrong architecture raises an error
        listing every missing, unexpected and mis-shaped key)."""
        try:
            model.load_state_dict(self.weights)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {self.path!r} does not fit {type(model).__name__}:\n{e}") from e
        if optimizer is not None:
            if self.manifest.get("optimizer") is None:
                raise CheckpointError(f"checkpoint {self.path!r} holds weights only (no optimizer state) "
                                      "and cannot resume training; use it with --weights instead")
            optimizer.load_state_dict(_join_optimizer_state(self.optimizer_arrays, self.manifest["optimizer"]))
        if scheduler is not None and self.manifest.get("scheduler") is not None:
            scheduler.load_state_dict(self.manifest["scheduler"])
        if rng:
            set_rng_state(self.manifest["rng"])


def load_checkpoint(path):
    """Read a checkpoint: ``path`` is its manifest (``TAG.json``) or the directory holding
    ``last.json``.  Every array file is checked against the SHA-256 in the manifest."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = manifest_path(path, "last")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint: expected a checkpoint manifest (.json) or a directory with "
                              f"last.json, got {path!r}, which does not exist")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint: {path!r} is not a readable JSON manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CheckpointError(f"checkpoint: expected a manifest with format {MANIFEST_FORMAT!r}, "
                              f"got {path!r} without it")
    directory = os.path.dirname(os.path.abspath(path))
    loaded = {}
    for role, entry in manifest["files"].items():
        file = os.path.join(directory, entry["name"])
        if not os.path.isfile(file):
            raise CheckpointError(f"checkpoint {path!r}: its {role} file {entry['name']!r} is missing")
        if _sha256(file) != entry["sha256"]:
            raise CheckpointError(f"checkpoint {path!r}: its {role} file {entry['name']!r} does not "
                                  "match the recorded SHA-256 (modified or partly written)")
        loaded[role] = mio.load(file)
    return Checkpoint(path, manifest, loaded["weights"], loaded.get("optimizer", {}))


def weights_path(path):
    """The safetensors weights file behind ``path`` (a manifest, a checkpoint directory,
    or already a .safetensors file)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        return path
    if os.path.isdir(path):
        for tag in ("best", "last"):
            if os.path.isfile(manifest_path(path, tag)):
                path = manifest_path(path, tag)
                break
    ckpt_manifest = load_checkpoint(path).manifest
    return os.path.join(os.path.dirname(os.path.abspath(path)), ckpt_manifest["files"]["weights"]["name"])


def read_weights_metadata(path):
    """The str -> str header metadata of a safetensors weights file."""
    from safetensors import safe_open
    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            return dict(f.metadata() or {})
    except Exception as e:
        raise CheckpointError(f"checkpoint: {path!r} is not a readable safetensors file ({e})") from e
