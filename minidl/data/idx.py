"""The IDX format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, each dimension as a
big-endian uint32, then the data, big-endian, row-major.  Gzip is recognised by its magic
bytes, not by the file name.
"""
from __future__ import annotations

import gzip
import math
import os

import numpy as np
from PIL import Image

from .folder import Dataset

__all__ = ["read_idx", "IDXDataset", "FashionMNIST", "MNIST", "FASHION_MNIST_DEFAULT_ROOT",
           "FASHION_MNIST_MEAN", "FASHION_MNIST_STD"]

FASHION_MNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
# per-pixel mean and std of the 60000 training images, scaled to [0, 1] (for Normalize)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """The array stored in the IDX file ``path`` (native byte order)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"read_idx: '{path}' is a damaged gzip file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"read_idx: '{path}' is not an IDX file: expected a header "
                         f"00 00 <type> <ndim> with type in "
                         f"{', '.join(hex(t) for t in _IDX_TYPES)}, got {data[:4].hex(' ')}")
    dtype = np.dtype(_IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: '{path}' ends inside its header ({len(data)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(data) != expected:
        raise ValueError(f"read_idx: '{path}' has shape {shape} of {dtype.name}, which "
                         f"needs {expected} bytes, but the file has {len(data)}")
    arr = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _check_labels(labels, path, num_classes):
    """int64 labels, each an integer in [0, num_classes) (num_classes None: >= 0), or a
    ValueError naming the file and the first bad sample."""
    if labels.dtype.kind not in "iu":
        raise ValueError(f"IDXDataset: '{path}' holds {labels.dtype} values; class labels must be "
                         f"an integer IDX type (uint8, int8, int16 or int32)")
    labels = labels.astype(np.int64)
    bad = labels < 0 if num_classes is None else (labels < 0) | (labels >= num_classes)
    if bad.any():
        index = int(np.argmax(bad))
        expected = ">= 0" if num_classes is None else f"in [0, {num_classes})"
        raise ValueError(f"IDXDataset: '{path}': label {int(labels[index])} of sample {index} is out "
                         f"of range (expected {expected}; {int(bad.sum())} bad labels in all)")
    return labels


class IDXDataset(Dataset):
    """Images and labels from two IDX files.  Without a transform an image is a
    1xHxW float32 array in [0, 1]; with one, the transform receives a PIL image (mode L)."""

    def __init__(self, images_path, labels_path, transform=None, classes=None):
        if transform is not None and not callable(transform):
            raise TypeError(f"IDXDataset: transform must be callable t(img, rng), got "
                            f"{type(transform).__name__}")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise ValueError(f"IDXDataset: '{images_path}' should hold N x H x W images, "
                             f"got shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"IDXDataset: '{labels_path}' should hold {len(images)} labels "
                             f"(one per image), got shape {labels.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"IDXDataset: images must be uint8, got {images.dtype}")
        self.images = images
        self.targets = _check_labels(labels, labels_path, None if classes is None else len(classes))
        n_classes = int(self.targets.max()) + 1 if len(labels) else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        self.class_names = list(self.classes)
        self.transform = transform
        self.images_path, self.labels_path = os.fspath(images_path), os.fspath(labels_path)

    def __len__(self):
        return len(self.targets)

    def load(self, index, rng):
        label = int(self.targets[index])
        if self.transform is None:
            return self.images[index][None].astype(np.float32) * np.float32(1 / 255), label
        img = self.transform(Image.fromarray(self.images[index]), rng)  # 2-D uint8: mode L
        if isinstance(img, Image.Image):
            img = np.asarray(img, np.float32)[None] * np.float32(1 / 255)
        return img, label

    def get_batch(self, indices):
        """(images, labels) of many samples at once, for a dataset without a transform
        (the DataLoader's fast path); None when there is a transform."""
        if self.transform is not None:
            return None
        indices = np.asarray(indices, dtype=np.int64)
        images = self.images[indices][:, None].astype(np.float32)
        images *= np.float32(1 / 255)
        return images, self.targets[indices]

    def describe(self, index):
        return f"{self.images_path}[{index}]"

    def __repr__(self):
        return (f"{type(self).__name__}('{self.images_path}', samples={len(self)}, "
                f"shape={self.images.shape[1:]})")


def _split_files(root, train, what, hint):
    root = os.fspath(root)
    prefix = "train" if train else "t10k"
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [os.path.join(root, f"{prefix}-{kind}{ext}") for ext in (".gz", "")]
        candidates += [os.path.join(root, f"{prefix}-{kind.replace('-idx', '.idx')}{ext}")
                       for ext in (".gz", "")]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            raise FileNotFoundError(
                f"{what}: '{candidates[0]}' (or without .gz) not found; {hint}")
        found.append(path)
    return found


class FashionMNIST(IDXDataset):
    """Fashion-MNIST (28x28 grayscale, 10 classes): 60000 train / 10000 test images.
    The default root is where Debian's ``dataset-fashion-mnist`` package puts them."""

    def __init__(self, root=FASHION_MNIST_DEFAULT_ROOT, train=True, transform=None):
        hint = (f"install it with: sudo apt-get install -y dataset-fashion-mnist (Debian/Ubuntu; "
                f"it puts the IDX files in {FASHION_MNIST_DEFAULT_ROOT}), "
                "or pass the folder holding the IDX files with --data DIR")
        images, labels = _split_files(root if root is not None else FASHION_MNIST_DEFAULT_ROOT,
                                      train, "FashionMNIST", hint)
        super().__init__(images, labels, transform, classes=FASHION_MNIST_CLASSES)
        self.root, self.train = root, train


class MNIST(IDXDataset):
    """MNIST digits (28x28 grayscale, 10 classes) from the IDX files in ``root``."""

    def __init__(self, root, train=True, transform=None):
        if root is None:
            raise FileNotFoundError("MNIST: no data folder given; pass the folder holding "
                                    "train-images-idx3-ubyte(.gz) etc. with --data DIR")
        hint = "pass the folder holding the MNIST IDX files with --data DIR"
        images, labels = _split_files(root, train, "MNIST", hint)
        super().__init__(images, labels, transform, classes=[str(d) for d in range(10)])
        self.root, self.train = root, train
