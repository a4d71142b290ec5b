"""The dataset base class, image decoding with bad-file detection, and ImageFolder.

Every dataset is indexable: ``ds[i] -> (image, label)`` with the image a float32 CHW
array after the dataset's transform, and ``ds.get(i, seed, epoch)`` draws the sample
with the per-sample generator ``np.random.default_rng([seed, epoch, i])`` (what the
DataLoader calls).  A file that cannot be decoded raises ``CorruptImageError``; the
DataLoader skips such samples, counts them and logs each path once.
"""
from __future__ import annotations

import logging
import operator
import os

import numpy as np
from PIL import Image

from .transforms import to_array

logger = logging.getLogger("minidl.data")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")

__all__ = ["Dataset", "ImageFolder", "CorruptImageError", "sample_rng", "load_image",
           "IMG_EXTENSIONS"]


class CorruptImageError(ValueError):
    """An image file that cannot be read or decoded (corrupt, truncated, not an image)."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) \
            else str(reason)
        super().__init__(f"cannot decode image '{self.path}' ({self.reason})")

    def __reduce__(self):  # picklable, so a worker process can report it
        return (CorruptImageError, (self.path, self.reason))


def sample_rng(seed, epoch, index):
    """The generator every transform of sample ``index`` draws from in ``epoch``."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


class Dataset:
    """Base class: subclasses define ``__len__`` and ``load(index, rng)``.

    ``seed`` and ``epoch`` (attributes, also set by ``set_epoch``) seed ``ds[i]``; the
    DataLoader passes its own seed and epoch to ``get`` instead.
    """
    transform = None
    seed = 0
    epoch = 0
    classes: list = []
    class_names: list = []

    def __len__(self):
        raise NotImplementedError

    def load(self, index, rng):
        """(image, label) of sample ``index`` (a valid non-negative index); ``rng`` is None
        when the dataset has no transform."""
        raise NotImplementedError

    def get(self, index, seed=0, epoch=0):
        rng = sample_rng(seed, epoch, index) if self.transform is not None else None
        return self.load(index, rng)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _check_index(self, index):
        n = len(self)
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"{type(self).__name__}: index must be an int, got "
                            f"{type(index).__name__}") from None
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for "
                             f"{n} samples")
        return index % n

    def __getitem__(self, index):
        index = self._check_index(index)
        return self.get(index, self.seed, self.epoch)

    def describe(self, index):
        """Where sample ``index`` comes from (a path when there is one), for messages."""
        return f"{type(self).__name__}[{index}]"

    @property
    def num_classes(self):
        return len(self.classes)


def _guard_decoding(img, path):
    """Make every later decode of the lazily opened ``img`` raise CorruptImageError on
    failure.  The transforms trigger the decode themselves (after choosing a draft scale),
    so a bad file must be recognised there, without mistaking a bug in a transform for one."""
    plain_load = img.load

    def load():
        try:
            return plain_load()
        except Exception as e:  # any failure inside the decoder means the file is bad
            raise CorruptImageError(path, e) from e

    img.load = load


def load_image(path, transform=None, rng=None, mode="RGB"):
    """Open ``path``, convert it to ``mode`` and apply ``transform(img, rng)``; a PIL result
    becomes a CHW float32 array in [0, 1].  Raises CorruptImageError for a bad file."""
    try:
        img = Image.open(path)
    except Exception as e:  # unreadable, not an image, decompression bomb, vanished file
        raise CorruptImageError(path, e) from e
    with img:
        _guard_decoding(img, path)
        if img.mode != mode:  # grayscale/CMYK JPEGs, palette PNGs: decode and convert now
            try:
                img = img.convert(mode)
            except CorruptImageError:
                raise
            except (ValueError, OSError) as e:
                raise CorruptImageError(path, e) from e
        out = transform(img, rng) if transform is not None else img
        if isinstance(out, Image.Image):
            out = to_array(out)  # decodes while the file is still open
    return out


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _list_images(folder, extensions, scanned=None, root=None):
    """Sorted paths (relative to ``folder``) of the image files below it.

    Directory links are followed, but each real directory is scanned once: a link to a
    directory already scanned (a cycle, or a second way to the same folder, tracked
    across calls in the set ``scanned``) is skipped with a warning, and so is a link to
    a directory elsewhere inside ``root`` (the dataset's root: its images would take
    this folder's label)."""
    scanned = set() if scanned is None else scanned
    folder_real = os.path.realpath(folder)
    root_real = os.path.realpath(root) if root is not None else folder_real
    if folder_real in scanned:
        raise ValueError(f"'{folder}' leads to '{folder_real}', a folder already scanned for another "
                         "class: each class needs its own folder")
    scanned.add(folder_real)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        followed = []
        for name in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, name))
            if real in scanned or (_inside(real, root_real) and not _inside(real, folder_real)):
                logger.warning("skipping '%s': it leads to '%s', %s", os.path.join(dirpath, name), real,
                               "a folder already scanned" if real in scanned
                               else "a folder of the dataset outside this class")
                continue
            scanned.add(real)
            followed.append(name)
        dirnames[:] = followed
        rel = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            if name.lower().endswith(extensions):
                found.append(name if rel == "." else os.path.join(rel, name))
    return found


def _class_folders(root, what):
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{what}: folder '{root}' does not exist")
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def scan_class_folders(root, classes=None, extensions=IMG_EXTENSIONS, what="ImageFolder"):
    """(classes, relative paths, labels) of ``root/<class>/**/<image>``.  Every class in
    ``classes`` (default: the sorted subfolder names) must have a non-empty folder.

    Symbolic links: a class folder may be a link, and directory links inside it are
    followed without cycles: each real directory is scanned once for the whole dataset,
    and a link into another part of ``root`` is skipped, with a warning for each
    skipped link.  No image is counted twice or under another class's label."""
    folders = _class_folders(root, what)
    if classes is None:
        if not folders:
            raise FileNotFoundError(f"{what}: no class folders in '{root}'; expected "
                                    f"'{root}/<class>/<image files>'")
        classes = folders
    else:
        classes = list(classes)
        present = set(folders)
        missing = [c for c in classes if c not in present]
        if missing:
            raise FileNotFoundError(
                f"{what}: {len(missing)} of {len(classes)} class folders are missing in "
                f"'{root}': {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        unknown = sorted(present - set(classes))
        if unknown:
            raise ValueError(
                f"{what}: '{root}' has {len(unknown)} folders that are not among the "
                f"{len(classes)} known classes: {', '.join(unknown[:5])}"
                f"{' ...' if len(unknown) > 5 else ''}")
    paths, labels, empty = [], [], []
    scanned = set()
    for label, name in enumerate(classes):
        files = _list_images(os.path.join(root, name), extensions, scanned, root)
        if not files:
            empty.append(name)
        paths += [os.path.join(name, f) for f in files]
        labels += [label] * len(files)
    if empty:
        raise ValueError(
            f"{what}: {len(empty)} class folders in '{root}' have no image files "
            f"({', '.join(extensions)}): {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}")
    return classes, paths, labels


class ImageFileDataset(Dataset):
    """Image files under ``root`` with integer labels.  Paths live in one NumPy bytes
    array, not a list of str, so that forked worker processes do not copy them page by
    page as reference counts change."""

    def __init__(self, root, rel_paths, labels, classes, class_names=None, transform=None,
                 mode="RGB"):
        if transform is not None and not callable(transform):
            raise TypeError(f"{type(self).__name__}: transform must be callable "
                            f"t(img, rng), got {type(transform).__name__}")
        self.root = os.fspath(root)
        self._paths = np.array([os.fsencode(p) for p in rel_paths], dtype=bytes)
        self.targets = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.class_names = list(class_names) if class_names is not None else list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.transform = transform
        self.mode = mode

    def __len__(self):
        return len(self.targets)

    def path(self, index):
        return os.path.join(self.root, os.fsdecode(self._paths[index]))

    def describe(self, index):
        return self.path(index)

    def load(self, index, rng):
        image = load_image(self.path(index), self.transform, rng, self.mode)
        return image, int(self.targets[index])

    def __repr__(self):
        return (f"{type(self).__name__}(root='{self.root}', samples={len(self)}, "
                f"classes={len(self.classes)})")


class ImageFolder(ImageFileDataset):
    """``root/<class>/**/<image>``; class indices follow the sorted folder names (or the
    order of ``classes`` when given).  An empty or missing class folder is an error."""

    def __init__(self, root, transform=None, mode="RGB", classes=None, extensions=IMG_EXTENSIONS):
        root = os.fspath(root)
        extensions = tuple(e.lower() for e in extensions)
        classes, paths, labels = scan_class_folders(root, classes, extensions, "ImageFolder")
        super().__init__(root, paths, labels, classes, transform=transform, mode=mode)
