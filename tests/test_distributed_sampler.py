"""DistributedSampler alone and with the DataLoader (no MPI needed: ranks given explicitly)."""
import numpy as np
import pytest

from minidl.data import DataLoader
from minidl.distributed import DistributedSampler


class Numbers:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1,), i, np.float32), i


@pytest.mark.parametrize("n,world", [(10, 3), (12, 4), (5, 1), (2, 3)])
def test_training_shards_are_equal_and_cover_the_dataset(n, world):
    shards = [list(DistributedSampler(n, world, r, shuffle=True, seed=7)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-n // world)
    assert set(np.concatenate(shards).tolist()) == set(range(n))
    # the same permutation on every rank: the shards are disjoint except for the padding
    assert sum(len(s) for s in shards) - n == (-n) % world


def test_epochs_reshuffle_and_are_reproducible():
    s = DistributedSampler(20, 2, 0, seed=1)
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(1)
    b = list(s)
    s.set_epoch(0)
    assert list(s) == a and a != b


@pytest.mark.parametrize("n,world", [(10, 3), (7, 4)])
def test_evaluation_sees_every_sample_exactly_once(n, world):
    shards = [list(DistributedSampler(n, world, r, shuffle=False, pad=False)) for r in range(world)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(n))
    assert [len(DistributedSampler(n, world, r, pad=False)) for r in range(world)] == [len(s) for s in shards]


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(10, 2, 2)
    with pytest.raises(ValueError, match="non-empty"):
        DistributedSampler(0, 1, 0)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(Numbers(4), shuffle=True, sampler=DistributedSampler(4, 1, 0))


def test_data_loader_reads_the_rank_shard():
    data = Numbers(10)
    seen = []
    for rank in range(2):
        loader = DataLoader(data, batch_size=3, sampler=DistributedSampler(10, 2, rank, seed=3))
        loader.set_epoch(4)
        labels = np.concatenate([y for _, y in loader]).tolist()
        sampler = DistributedSampler(10, 2, rank, seed=3)
        sampler.set_epoch(4)
        assert labels == sampler.indices().tolist()
        assert len(loader) == 2
        seen += labels
    assert sorted(seen) == list(range(10))


def test_one_rank_is_the_data_loader_permutation():
    loader = DataLoader(Numbers(17), batch_size=4, shuffle=True, seed=5)
    sampler = DistributedSampler(17, 1, 0, seed=5)
    for epoch in (0, 3):
        sampler.set_epoch(epoch)
        assert sampler.indices().tolist() == loader.order(epoch).tolist()
    # two ranks at batch 2 hold, batch by batch, one process's samples at batch 4
    two = [DistributedSampler(17, 2, r, seed=5).indices() for r in range(2)]
    one = loader.order(0)
    for b in range(4):
        assert sorted(np.concatenate([t[2 * b:2 * b + 2] for t in two]).tolist()) == sorted(one[4 * b:4 * b + 4].tolist())
