"""``Subset(dataset, indices)``: the samples ``indices`` of a dataset, in that order.

Each sample is fetched with its index in the full dataset, so its seeded augmentation
(``sample_rng(seed, epoch, index)``) is the one it has there; the IDX batch fast path
(``get_batch``) and the other attributes (``classes``, ``class_names``, ``transform``)
are the dataset's.
"""
from __future__ import annotations

import numpy as np


class Subset:
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError(f"Subset: expected a 1-D list of indices, got shape {self.indices.shape}")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= len(dataset)):
            raise ValueError(f"Subset: indices must be in [0, {len(dataset)}), got "
                             f"[{self.indices.min()}, {self.indices.max()}]")

    def __len__(self):
        return len(self.indices)

    def __getattr__(self, name):
        if name in ("dataset", "indices"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def get(self, index, seed=0, epoch=0):
        return self.dataset.get(int(self.indices[index]), seed, epoch)

    def __getitem__(self, index):
        return self.get(index)

    def get_batch(self, indices):
        get_batch = getattr(self.dataset, "get_batch", None)
        return None if get_batch is None else get_batch(self.indices[np.asarray(indices)])

    def describe(self, index):
        describe = getattr(self.dataset, "describe", None)
        original = int(self.indices[index])
        return describe(original) if describe is not None else f"{type(self.dataset).__name__}[{original}]"
