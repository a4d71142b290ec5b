"""NCCL smoke test for the GPU check: ``mpiexec -n 1 python benchmarks/nccl_smoke.py``.

One rank on one GPU: an all-reduce of a cuda tensor through NCCL, then two DDP training
steps whose gradients must equal the same steps without DDP (one rank: the average is
the local gradient).  Prints "nccl smoke: ok" or raises."""
import numpy as np

import minidl
import minidl.distributed as dist
import minidl.functional as F
import minidl.nn as nn


def model():
    minidl.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10)).to("cuda")


def steps(net, wrap):
    net = dist.DistributedDataParallel(net, bucket_cap_mb=0.01) if wrap else net
    opt = minidl.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    grads = []
    for _ in range(2):
        x = minidl.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32), device="cuda")
        y = minidl.tensor(rng.integers(0, 10, 4), device="cuda")
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        grads.append([p.grad.numpy() for p in net.parameters()])
        opt.step()
    return grads


def main():
    g = dist.init_process_group("nccl", device="cuda")
    assert g.backend == "nccl" and g.size == 1
    t = minidl.tensor(np.arange(6, dtype=np.float32), device="cuda")
    dist.all_reduce(t, op="sum")
    assert np.array_equal(t.numpy(), np.arange(6)), t.numpy()
    with_ddp, without = steps(model(), True), steps(model(), False)
    for a_step, b_step in zip(with_ddp, without):
        for a, b in zip(a_step, b_step):
            assert np.allclose(a, b, rtol=1e-6, atol=1e-7)
    print("nccl smoke: ok (all-reduce, two DDP steps equal to local steps)")


if __name__ == "__main__":
    main()
