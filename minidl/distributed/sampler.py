"""DistributedSampler: which dataset indices each rank reads in an epoch."""
from __future__ import annotations

import numpy as np


class DistributedSampler:
    """Shards one permutation per epoch across ranks: rank r takes positions r, r + W,
    r + 2W, ... of the permutation (seeded by ``seed`` and the epoch, the same on every rank,
    and the one a single-process ``DataLoader(shuffle=True, seed=seed)`` uses, so that W
    ranks at batch B see the samples of one process at batch W*B, batch by batch).

    ``pad=True`` (training) repeats the first indices so every rank gets the same number of
    samples and takes the same number of steps.  ``pad=False`` (evaluation) gives every
    sample to exactly one rank; the shards then differ in length by at most one, and the
    counts of correct predictions and samples are summed over ranks (no duplicates).
    """

    def __init__(self, dataset_len, num_replicas=None, rank=None, shuffle=True, seed=0, pad=True):
        from . import get_rank, get_world_size
        self.dataset_len = int(dataset_len)
        self.num_replicas = get_world_size() if num_replicas is None else int(num_replicas)
        self.rank = get_rank() if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: expected 0 <= rank < num_replicas, got rank {self.rank} "
                             f"of {self.num_replicas}")
        if self.dataset_len < 1:
            raise ValueError(f"DistributedSampler: expected a non-empty dataset, got {self.dataset_len} samples")
        self.shuffle, self.seed, self.pad = bool(shuffle), int(seed), bool(pad)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def indices(self):
        n, w = self.dataset_len, self.num_replicas
        # the permutation of a one-process DataLoader(shuffle=True, seed=seed) in this epoch
        order = (np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch], spawn_key=(1,)))
                 .permutation(n) if self.shuffle else np.arange(n))
        if self.pad and n % w:
            total = -(-n // w) * w
            order = np.concatenate([order, np.resize(order, total - n)])
        return order[self.rank::w]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        n, w = self.dataset_len, self.num_replicas
        return -(-n // w) if self.pad else len(range(self.rank, n, w))
