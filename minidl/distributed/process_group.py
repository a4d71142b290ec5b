"""Process groups over MPI (mpi4py) and NCCL (CuPy's bindings), and their async handles.

Ranks come from MPI: processes start under ``mpiexec``/``mpirun`` (MPICH or Open MPI) or
Slurm's ``srun``, and ``MPI.COMM_WORLD`` numbers them.  The MPI group reduces host arrays
(cpu and emu tensors; cuda tensors are staged through the host) with MPI's non-blocking
collectives.  The NCCL group reduces CuPy arrays on a stream of its own; its communicator
is made from a unique id that rank 0 broadcasts over MPI.

No rank waits forever: ``Work.wait`` polls its request with a deadline (``timeout``,
default ``MINIDL_DIST_TIMEOUT`` or 1800 s) and raises naming the collective; an exception
that escapes any rank aborts the whole job (see ``install_abort_on_error``), and the
launcher (MPICH's hydra, Open MPI's orted, srun) kills every rank when one dies.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np  # host staging buffers for MPI

REDUCE_OPS = ("sum", "avg", "max", "min", "prod")


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError("minidl.distributed needs mpi4py and an MPI library: "
                           "pip install -e \".[distributed]\" (mpi4py with the mpich wheel), "
                           f"or mpi4py built against your cluster's MPI ({e})") from e
    return MPI


def default_timeout():
    return float(os.environ.get("MINIDL_DIST_TIMEOUT", "1800"))


class Work:
    """The handle of an asynchronous collective.  ``wait()`` blocks until it is done (MPI),
    or makes the current stream wait for it (NCCL), then runs its completion step."""

    def __init__(self, what, request=None, finish=None, event=None, timeout=None):
        self.what, self.request, self.finish, self.event = what, request, finish, event
        self.timeout = default_timeout() if timeout is None else timeout
        self.done = False

    def test(self):
        """Progress the collective; True once it has completed (MPI) or been enqueued (NCCL)."""
        return self.request is None or bool(self.request.Test())

    def wait(self):
        if self.done:
            return
        if self.request is not None:
            deadline = time.monotonic() + self.timeout
            pause = 1e-5
            while not self.request.Test():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"minidl.distributed: {self.what} did not complete within "
                                       f"{self.timeout:.0f} s; another rank has probably failed or "
                                       "stopped calling collectives")
                time.sleep(pause)
                pause = min(pause * 2, 1e-3)
        if self.event is not None:
            import cupy
            cupy.cuda.get_current_stream().wait_event(self.event)
        self.done = True
        if self.finish is not None:
            self.finish()

    def is_completed(self):
        return self.done or (self.event is None and self.test())


class MPIGroup:
    """Collectives over an MPI communicator on host (NumPy) arrays, in place."""

    backend = "mpi"

    def __init__(self, comm=None, timeout=None):
        self.MPI = _mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = default_timeout() if timeout is None else timeout

    def _op(self, op):
        return {"sum": self.MPI.SUM, "avg": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN,
                "prod": self.MPI.PROD}[op]

    def all_reduce(self, buf, op="sum"):
        """Reduce the C-contiguous NumPy array ``buf`` over all ranks, in place."""
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self._op(op))
        finish = (lambda: np.divide(buf, self.size, out=buf, casting="unsafe")) if op == "avg" else None
        return Work(f"all_reduce({op}) of {buf.size} values", req, finish, timeout=self.timeout)

    def broadcast(self, buf, src=0):
        return Work(f"broadcast of {buf.size} values from rank {src}", self.comm.Ibcast(buf, root=src),
                    timeout=self.timeout)

    def all_gather(self, send, recv):
        """``recv`` (shape (size,) + send.shape) receives every rank's ``send``."""
        return Work(f"all_gather of {send.size} values", self.comm.Iallgather(send, recv), timeout=self.timeout)

    def barrier(self):
        Work("barrier", self.comm.Ibarrier(), timeout=self.timeout).wait()

    def all_gather_object(self, obj):
        """Small picklable objects (signatures, counts); blocking."""
        self.barrier()  # the deadline of the barrier guards the blocking call
        return self.comm.allgather(obj)

    def abort(self, code=1):
        self.comm.Abort(code)


class NCCLGroup(MPIGroup):
    """Collectives on CuPy arrays through NCCL, on a stream of their own; MPI still carries
    the bootstrap, objects and barriers."""

    backend = "nccl"

    def __init__(self, comm=None, timeout=None):
        super().__init__(comm, timeout)
        import cupy
        from cupy.cuda import nccl
        self.cupy, self.nccl = cupy, nccl
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _nccl_types(self, arr, op):
        n = self.nccl
        dtypes = {np.dtype(np.float32): n.NCCL_FLOAT32, np.dtype(np.float64): n.NCCL_FLOAT64,
                  np.dtype(np.float16): n.NCCL_FLOAT16, np.dtype(np.int64): n.NCCL_INT64,
                  np.dtype(np.int32): n.NCCL_INT32}
        ops = {"sum": n.NCCL_SUM, "avg": n.NCCL_AVG, "max": n.NCCL_MAX, "min": n.NCCL_MIN, "prod": n.NCCL_PROD}
        if np.dtype(arr.dtype) not in dtypes:
            raise TypeError(f"minidl.distributed (nccl): unsupported dtype {arr.dtype}")
        return dtypes[np.dtype(arr.dtype)], ops[op]

    def _on_stream(self, what, launch):
        ready = self.cupy.cuda.Event()
        ready.record(self.cupy.cuda.get_current_stream())  # inputs computed on the current stream
        self.stream.wait_event(ready)
        launch(self.stream.ptr)
        done = self.cupy.cuda.Event()
        done.record(self.stream)
        return Work(what, event=done, timeout=self.timeout)

    def all_reduce(self, buf, op="sum"):
        dt, rop = self._nccl_types(buf, op)
        return self._on_stream(f"all_reduce({op})", lambda s: self.nccl_comm.allReduce(
            buf.data.ptr, buf.data.ptr, buf.size, dt, rop, s))

    def broadcast(self, buf, src=0):
        dt, _ = self._nccl_types(buf, "sum")
        return self._on_stream(f"broadcast from rank {src}", lambda s: self.nccl_comm.bcast(
            buf.data.ptr, buf.size, dt, src, s))

    def all_gather(self, send, recv):
        dt, _ = self._nccl_types(send, "sum")
        return self._on_stream("all_gather", lambda s: self.nccl_comm.allGather(
            send.data.ptr, recv.data.ptr, send.size, dt, s))


def install_abort_on_error(group):
    """An exception that escapes any rank prints its rank and aborts every rank at once,
    instead of leaving the others blocked in their next collective."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        print(f"minidl.distributed: rank {group.rank} of {group.size} failed with "
              f"{kind.__name__}: {value}; aborting all ranks", file=sys.stderr, flush=True)
        previous(kind, value, tb)
        sys.stderr.flush()
        # MPI_Abort makes the launcher kill every rank at once, and its output forwarding
        # can drop what is still in the pipes (a CI run lost every line of a job that way):
        # give it a moment to carry the message first
        time.sleep(0.5)
        group.abort(1)

    sys.excepthook = hook
