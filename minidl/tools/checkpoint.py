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
import re
import uuid

import numpy as np

from .. import io as mio
from .. import random as mrandom

MANIFEST_FORMAT = "minidl-checkpoint-1"
# the array files save_checkpoint names: TAG-<step>-<id>[.optim].safetensors
ARRAY_FILE = re.compile(r"^\w+-\d{8,}-[0-9a-f]{8}(\.optim|\.ema)?\.safetensors$")


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
                    weights_metadata=None, ema=None):
    """Write checkpoint ``tag`` (e.g. "last", "best") into ``directory`` atomically.

    ``train_state``: JSON-able dict (epoch, step, metrics, args ...); the RNG states are
    added here.  ``weights_metadata``: str -> str pairs stored in the weights file's
    header (model name, classes, preprocessing), so that the weights file alone is
    enough for minidl-eval and minidl-predict.  ``ema``: name -> array of the weights'
    moving average, kept beside them.  Returns the manifest path."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    target = manifest_path(directory, tag)
    previous = _files_named_by(target) or set()
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
    if ema is not None:
        ema_name = stem + ".ema.safetensors"
        mio.save(ema, os.path.join(directory, ema_name), metadata=weights_metadata)
        files["ema"] = {"name": ema_name, "sha256": _sha256(os.path.join(directory, ema_name))}

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
    """The array files a readable manifest names (only names save_checkpoint gives, so a
    hand-edited manifest never makes it delete anything else); None if it is unreadable."""
    try:
        with open(manifest_file) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        return set()
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return set()  # another JSON file (results.json, eval.json)
    try:
        names = {entry["name"] for entry in manifest["files"].values()}
    except (KeyError, TypeError, AttributeError):
        return None
    return {name for name in names if isinstance(name, str) and ARRAY_FILE.match(name)}


def remove_stale_files(directory):
    """Delete what writers killed mid-save left in ``directory``: atomic_write's temp
    files, and array files of save_checkpoint's naming that no manifest in the folder
    names.  While any ``.json`` there is unreadable, no array file is deleted (it might be
    named by it).  Returns the removed names."""
    directory = os.fspath(directory)
    removed = mio.remove_stale_temps(directory)
    names = sorted(os.listdir(directory))
    named = set()
    for name in names:
        if name.endswith(".json"):
            in_use = _files_named_by(os.path.join(directory, name))
            if in_use is None:
                return removed
            named |= in_use
    for name in names:
        path = os.path.join(directory, name)
        if ARRAY_FILE.match(name) and name not in named and os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
            removed.append(name)
    return sorted(removed)


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

    def __init__(self, path, manifest, weights, optimizer_arrays, ema=None):
        self.path = path
        self.manifest = manifest
        self.weights = weights
        self.optimizer_arrays = optimizer_arrays
        self.ema = ema  # the weights' moving average, when the run kept one

    @property
    def train_state(self):
        return self.manifest.get("train_state", {})

    def check_resumable(self):
        """Raise CheckpointError unless this checkpoint holds an optimizer state."""
        if self.manifest.get("optimizer") is None:
            raise CheckpointError(f"checkpoint {self.path!r} holds weights only (no optimizer state) "
                                  "and cannot resume training; use it with --weights instead")

    def restore(self, model, optimizer=None, scheduler=None, rng=True):
        """Load everything into the given objects (the wrong architecture raises an error
        listing every missing, unexpected and mis-shaped key)."""
        try:
            model.load_state_dict(self.weights)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {self.path!r} does not fit {type(model).__name__}:\n{e}") from e
        if optimizer is not None:
            self.check_resumable()
            try:
                optimizer.load_state_dict(_join_optimizer_state(self.optimizer_arrays, self.manifest["optimizer"]))
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"checkpoint {self.path!r}: its optimizer state does not fit "
                                      f"{type(optimizer).__name__} ({type(e).__name__}: {e})") from e
        if scheduler is not None and self.manifest.get("scheduler") is not None:
            try:
                scheduler.load_state_dict(self.manifest["scheduler"])
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"checkpoint {self.path!r}: its scheduler state is not one "
                                      f"{type(scheduler).__name__} wrote ({type(e).__name__}: {e})") from e
        if rng:
            if "rng" not in self.manifest:
                raise CheckpointError(f"checkpoint {self.path!r}: expected 'rng' (the random states "
                                      "a resumed run continues from), found none")
            try:
                set_rng_state(self.manifest["rng"])
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"checkpoint {self.path!r}: its RNG state is not valid "
                                      f"({type(e).__name__}: {e})") from e


def load_checkpoint(path):
    """Read a checkpoint: ``path`` is its manifest (``TAG.json``) or the directory holding
    ``last.json``.  Every array file is checked against the SHA-256 in the manifest."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = manifest_path(path, "last")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint: expected a checkpoint manifest (.json) or a directory with "
                              f"last.json, got {path!r}, which does not exist")
    if path.endswith(".safetensors"):
        raise CheckpointError(f"checkpoint: expected a checkpoint manifest (.json), got the weights file "
                              f"{path!r}, which holds no training state; use it with --weights instead")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint: {path!r} is not a readable JSON manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CheckpointError(f"checkpoint: expected a manifest with format {MANIFEST_FORMAT!r}, "
                              f"got {path!r} without it")
    _check_files_entry(path, manifest.get("files"))
    if not isinstance(manifest.get("train_state", {}), dict):
        raise CheckpointError(f"checkpoint {path!r}: expected 'train_state' to be an object, "
                              f"got {type(manifest['train_state']).__name__}")
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
    return Checkpoint(path, manifest, loaded["weights"], loaded.get("optimizer", {}), loaded.get("ema"))


def _check_files_entry(path, files):
    """A manifest's 'files': {"weights": {...}, "optimizer": {...}, "ema": {...}} (optimizer
    and ema optional), each
    with a plain file name in the manifest's folder and a SHA-256."""
    ok = isinstance(files, dict) and "weights" in files and set(files) <= {"weights", "optimizer", "ema"} and all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("sha256"), str)
        for e in files.values())
    if not ok:
        shown = json.dumps(files)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        raise CheckpointError(f"checkpoint {path!r}: expected 'files' to map 'weights' (and "
                              f"'optimizer', 'ema') to a name and a sha256, got {shown}")
    for role, entry in files.items():
        name = entry["name"]
        if name in ("", ".", "..") or os.path.basename(name) != name or "\\" in name:
            raise CheckpointError(f"checkpoint {path!r}: its {role} file {name!r} is not a file name "
                                  "in the checkpoint's folder")


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
