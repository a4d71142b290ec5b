"""Run under mpiexec by tests/test_distributed.py: ``python distributed_worker.py CASE``.
Each case asserts on every rank and prints "ok RANK" at the end; a failing assert aborts
the job (the abort-on-error hook), which the test sees as a non-zero exit."""
import os
import sys

import numpy as np

import minidl
import minidl.distributed as dist
import minidl.functional as F
import minidl.nn as nn


def tiny_model(bn, width=4):
    minidl.manual_seed(0)
    layers = [nn.Conv2d(3, width, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(width))
    layers += [nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(width))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(width * 6 * 6, 5)]
    return nn.Sequential(*layers).double()


def batch(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return (minidl.tensor(rng.standard_normal((n, 3, 6, 6)), dtype=np.float64),
            minidl.tensor(rng.integers(0, 5, n)))


def grads(model):
    return {n: p.grad.numpy().copy() for n, p in model.named_parameters()}


def reference_grads(bn, x, y):
    """One process, the whole batch."""
    model = tiny_model(bn)
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    return grads(model), model, logits.numpy()


def shard(t, rank, world):
    n = t.shape[0] // world
    return minidl.tensor(t.numpy()[rank * n:(rank + 1) * n])


def case_collectives(rank, world):
    t = minidl.tensor(np.full((3, 2), rank + 1.0))
    dist.all_reduce(t)
    assert np.allclose(t.numpy(), world * (world + 1) / 2), t.numpy()
    t = minidl.tensor(np.full(4, float(rank)))
    dist.all_reduce(t, op="max")
    assert np.all(t.numpy() == world - 1)
    t = minidl.tensor(np.arange(4.0) * (rank + 1))
    work = dist.all_reduce(t, op="avg", async_op=True)
    work.wait()
    assert np.allclose(t.numpy(), np.arange(4.0) * (world + 1) / 2)
    t = minidl.tensor(np.full(5, float(rank)))
    dist.broadcast(t, src=world - 1)
    assert np.all(t.numpy() == world - 1)
    out = [minidl.zeros(2) for _ in range(world)]
    dist.all_gather(out, minidl.tensor(np.array([rank, -rank], np.float32)))
    assert [o.numpy().tolist() for o in out] == [[r, -r] for r in range(world)]
    strided = minidl.tensor(np.arange(12.0).reshape(3, 4)).transpose(0, 1)  # non-contiguous
    dist.all_reduce(strided)
    assert np.allclose(strided.numpy(), world * np.arange(12.0).reshape(3, 4).T)
    dist.barrier()


def _ddp_matches_reference(rank, world, bn):
    x, y = batch(4 * world)
    ref, ref_model, ref_logits = reference_grads(bn, x, y)
    model = tiny_model(bn)
    if bn:
        model = dist.convert_sync_batchnorm(model)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.0005)  # ~500 bytes: several buckets
    assert len(ddp._buckets) >= 3, len(ddp._buckets)
    logits = ddp(shard(x, rank, world))
    n = logits.shape[0]
    assert np.allclose(logits.numpy(), ref_logits[rank * n:(rank + 1) * n], rtol=1e-10, atol=1e-13)
    F.cross_entropy(logits, shard(y, rank, world)).backward()
    got = grads(model)
    for name in ref:
        assert np.allclose(got[name], ref[name], rtol=1e-10, atol=1e-13), (name, got[name], ref[name])
    # the first bucket started while other parameters still waited for their gradients
    assert ddp.launch_log[0][1] > 0, ddp.launch_log
    if bn:
        for (name, a), (_, b) in zip(model.state_dict().items(), ref_model.state_dict().items()):
            assert np.allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-13), name
    return ddp, x, y


def case_ddp(rank, world):
    _ddp_matches_reference(rank, world, bn=False)


def case_sync_bn(rank, world):
    _ddp_matches_reference(rank, world, bn=True)


def case_no_sync(rank, world):
    x, y = batch(4 * world)
    ref, _, _ = reference_grads(False, x, y)
    ddp = dist.DistributedDataParallel(tiny_model(False))
    xs, ys = shard(x, rank, world), shard(y, rank, world)
    half = xs.shape[0] // 2
    parts = [(minidl.tensor(xs.numpy()[:half]), minidl.tensor(ys.numpy()[:half])),
             (minidl.tensor(xs.numpy()[half:]), minidl.tensor(ys.numpy()[half:]))]
    with ddp.no_sync():
        (F.cross_entropy(ddp(parts[0][0]), parts[0][1]) / 2).backward()
    local = grads(ddp.module)
    (F.cross_entropy(ddp(parts[1][0]), parts[1][1]) / 2).backward()
    got = grads(ddp.module)
    for name in ref:
        assert np.allclose(got[name], ref[name], rtol=1e-10, atol=1e-13), name
    if world > 1:
        assert any(not np.allclose(local[n], ref[n] / 2) for n in ref)  # no reduction inside no_sync


class TwoHeads(nn.Module):
    """Two linear heads, of which a forward uses one: ``use_a(x)`` decides which."""

    def __init__(self, use_a):
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)
        self.use_a = use_a

    def forward(self, x):
        return self.a(x) if self.use_a() else self.b(x)


def case_unused(rank, world):
    minidl.manual_seed(0)
    model = TwoHeads(lambda: rank == 0).double()  # each rank uses another head
    ddp = dist.DistributedDataParallel(model, find_unused_parameters=True)
    x = minidl.tensor(np.ones((2, 3)))
    ddp(x).sum().backward()
    # every rank ends with the average: head a's gradient from rank 0, head b's from the others
    a = ddp.module.a.weight.grad.numpy()
    b = ddp.module.b.weight.grad.numpy()
    assert np.allclose(a, 2.0 / world) and np.allclose(b, 2.0 * (world - 1) / world), (a, b)


def case_missing_grad_error(rank, world):
    ddp = dist.DistributedDataParallel(TwoHeads(lambda: True))  # head b never gets a gradient
    x = minidl.ones(2, 3)
    ddp(x).sum().backward()
    try:
        ddp(x)
    except RuntimeError as e:
        assert "find_unused_parameters" in str(e), e
    else:
        raise AssertionError("expected an error for parameters without gradient")


def case_different_models(rank, world):
    try:
        dist.DistributedDataParallel(tiny_model(False, width=4 + rank))
    except ValueError as e:
        assert "different models" in str(e) and "rank 1" in str(e), e
    else:
        raise AssertionError("expected an error for different models")


def case_sampler(rank, world):
    n = 10
    train = dist.DistributedSampler(n, shuffle=True, seed=3)
    train.set_epoch(2)
    mine = list(train)
    assert len(mine) == len(train) == -(-n // world)
    shards = [None] * world
    out = [minidl.zeros(len(mine), dtype=np.int64) for _ in range(world)]
    dist.all_gather(out, minidl.tensor(np.array(mine, np.int64)))
    allidx = np.concatenate([o.numpy() for o in out])
    assert set(allidx.tolist()) == set(range(n))  # every sample, padded to equal length
    evals = dist.DistributedSampler(n, shuffle=False, pad=False)
    counts = minidl.tensor(np.array([len(list(evals))], np.int64))
    dist.all_reduce(counts)
    assert counts.numpy()[0] == n  # evaluation sees each sample exactly once
    del shards


def case_fail(rank, world):
    if rank == 1:
        raise RuntimeError("deliberate failure on rank 1")
    dist.barrier()  # rank 0 would wait here forever without the abort


def case_killed(rank, world):
    if rank == 1:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()


def case_trainer(rank, world):
    """minidl-train's Trainer on this job's ranks: python distributed_worker.py trainer ARGS..."""
    import json
    from minidl.tools import checkpoint as ckpt
    from minidl.tools import train
    from minidl.tools.distributed_run import Ranks
    given = train.parse_args(sys.argv[2:])
    checkpoint = ckpt.load_checkpoint(given["resume"]) if "resume" in given else None
    cfg = train.resolve_config(given, checkpoint.train_state["config"] if checkpoint else None, world)
    trainer = train.Trainer(cfg, checkpoint, Ranks(dist.group()) if world > 1 else Ranks())
    start = (trainer.state["epoch"], trainer.state["batch"], trainer.state["step"])
    assert trainer.run() == 0
    if rank == 0:
        print("HISTORY " + json.dumps({"start": start, "history": trainer.history}), flush=True)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    CASES[sys.argv[1]](rank, world)
    dist.barrier()
    print(f"ok {rank}", flush=True)
