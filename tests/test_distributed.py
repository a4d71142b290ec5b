"""minidl.distributed on CPU ranks: each case of tests/distributed_worker.py runs under
``mpiexec -n N``; N ranks must give the gradients of one process on the whole batch."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")  # the mpich wheel's, in the venv
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpi4py or mpiexec is not installed "
                                "(pip install -e '.[distributed]')")


def run(case, ranks, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", MINIDL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    t0 = time.monotonic()
    proc = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, WORKER, case], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize("case,ranks", [
    ("collectives", 2), ("collectives", 3),
    ("ddp", 2), ("ddp", 3),                  # gradients of N ranks == one process, whole batch
    ("sync_bn", 2), ("sync_bn", 3),          # SyncBatchNorm: gradients and running statistics too
    ("no_sync", 2), ("unused", 2), ("missing_grad_error", 2), ("different_models", 2),
    ("sampler", 3),
])
def test_case(case, ranks):
    proc, _ = run(case, ranks)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # ranks share stdout, so their lines may interleave
    assert sorted(int(r) for r in re.findall(r"ok (\d+)", proc.stdout)) == list(range(ranks)), proc.stdout


@pytest.mark.parametrize("case", ["fail", "killed"])
def test_a_failed_rank_stops_every_rank(case):
    proc, seconds = run(case, 2, timeout=90)
    assert proc.returncode != 0
    assert seconds < 60
    out = proc.stdout + proc.stderr
    if case == "fail":
        assert "rank 1 of 2 failed" in out and "deliberate failure" in out, out
    else:  # the launcher names the killed pid; minidl's start-up line maps it to rank 1
        pid = re.search(r"rank 1 = pid (\d+)", out).group(1)
        assert re.search(rf"PID {pid}\b", out), out
