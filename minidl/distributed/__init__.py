"""Data-parallel training over MPI and NCCL.

    mpiexec -n 4 python train.py          # or srun, or mpirun (Open MPI)

    import minidl.distributed as dist
    dist.init_process_group()             # rank and world size from MPI
    model = dist.DistributedDataParallel(dist.convert_sync_batchnorm(model))
    sampler = dist.DistributedSampler(len(dataset), shuffle=True, seed=0)

``backend="auto"`` picks NCCL for the cuda device and MPI otherwise.  Collectives work on
minidl Tensors in place and return a handle with ``wait()`` when ``async_op=True``.
"""
from __future__ import annotations

import os
import socket
import sys

import numpy as np  # host buffers of MPI collectives

from ..autograd.function import no_grad
from .process_group import REDUCE_OPS, MPIGroup, NCCLGroup, Work, install_abort_on_error

_group = None


def init_process_group(backend="auto", device="cpu", timeout=None, abort_on_error=True):
    """Join the job the MPI launcher started.  ``device``: where the tensors live ("cuda"
    selects the GPU ``local_rank % device_count``).  -> the process group."""
    global _group
    if _group is not None:
        return _group
    if backend not in ("auto", "mpi", "nccl"):
        raise ValueError(f"init_process_group: expected backend 'auto', 'mpi' or 'nccl', got {backend!r}")
    if backend == "auto":
        backend = "nccl" if device == "cuda" else "mpi"
    if backend == "nccl" or device == "cuda":
        from .. import cuda
        cuda.require()
        import cupy
        cupy.cuda.Device(get_local_rank() % cupy.cuda.runtime.getDeviceCount()).use()
    _group = NCCLGroup(timeout=timeout) if backend == "nccl" else MPIGroup(timeout=timeout)
    if _group.size > 1:
        if abort_on_error:
            install_abort_on_error(_group)
        # the launcher reports a killed process by its pid: this line maps pids to ranks
        where = _group.all_gather_object((os.getpid(), socket.gethostname()))
        if _group.rank == 0:
            print(f"minidl.distributed: {_group.size} ranks ({_group.backend}): "
                  + ", ".join(f"rank {r} = pid {pid} on {host}" for r, (pid, host) in enumerate(where)),
                  file=sys.stderr, flush=True)
    return _group


def is_initialized():
    return _group is not None


def group():
    if _group is None:
        raise RuntimeError("minidl.distributed: call init_process_group() first")
    return _group


def destroy_process_group():
    global _group
    _group = None


def get_rank():
    return _group.rank if _group is not None else 0


def get_world_size():
    return _group.size if _group is not None else 1


def get_local_rank():
    """The rank among the processes of this machine, from the launcher's environment."""
    for var in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def launched_world_size():
    """The number of ranks the launcher (MPICH, Open MPI, PMIx, Slurm) started; 1 outside one."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


def launched_under_mpi():
    """True when an MPI launcher or Slurm started this process with more than one rank."""
    return launched_world_size() > 1


def barrier():
    group().barrier()


# ------------------------------------------------------------------ tensor collectives
def _staged(tensor, collective):
    """Run ``collective(buffer) -> Work`` on the tensor's data in place.  MPI works on host
    arrays: cuda data (and non-contiguous data) go through a host copy written back at wait."""
    g = group()
    be = tensor.backend
    data = tensor.data
    if g.backend == "nccl":
        return collective(be.ascontiguous(data))
    host = be.to_numpy(data)
    if host is data and host.flags.c_contiguous:
        return collective(host)
    host = host.copy(order="C")
    work = collective(host)
    inner = work.finish

    def write_back():
        if inner is not None:
            inner()
        tensor.data = be.asarray(host, dtype=data.dtype)

    work.finish = write_back
    return work


def _finish(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op="sum", async_op=False):
    """Reduce ``tensor`` over all ranks in place (op: sum, avg, max, min, prod)."""
    if op not in REDUCE_OPS:
        raise ValueError(f"all_reduce: expected op in {REDUCE_OPS}, got {op!r}")
    with no_grad():
        return _finish(_staged(tensor, lambda buf: group().all_reduce(buf, op)), async_op)


def broadcast(tensor, src=0, async_op=False):
    """Every rank's ``tensor`` takes rank ``src``'s values, in place."""
    if not 0 <= src < get_world_size():
        raise ValueError(f"broadcast: expected src in [0, {get_world_size()}), got {src}")
    with no_grad():
        return _finish(_staged(tensor, lambda buf: group().broadcast(buf, src)), async_op)


def all_gather(tensor_list, tensor, async_op=False):
    """``tensor_list[r]`` receives rank r's ``tensor`` (PyTorch's argument order)."""
    g = group()
    if len(tensor_list) != g.size:
        raise ValueError(f"all_gather: expected a list of {g.size} tensors, got {len(tensor_list)}")
    be = tensor.backend
    send = be.ascontiguous(tensor.data) if g.backend == "nccl" else be.to_numpy(tensor.data).copy(order="C")
    recv = (be.empty if g.backend == "nccl" else np.empty)((g.size,) + tuple(send.shape), send.dtype)
    work = g.all_gather(send, recv)

    def scatter_back():
        for r, t in enumerate(tensor_list):
            t.data = be.asarray(recv[r], dtype=tensor.dtype)

    work.finish = scatter_back
    return _finish(work, async_op)


from .ddp import DistributedDataParallel  # noqa: E402
from .sampler import DistributedSampler  # noqa: E402
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm  # noqa: E402

__all__ = ["init_process_group", "is_initialized", "destroy_process_group", "get_rank", "get_world_size",
           "get_local_rank", "launched_world_size", "launched_under_mpi", "barrier", "all_reduce", "broadcast", "all_gather", "Work",
           "DistributedDataParallel", "DistributedSampler", "SyncBatchNorm", "convert_sync_batchnorm"]
