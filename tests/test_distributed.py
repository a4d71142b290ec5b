"""minidl.distributed on CPU ranks: each case of tests/distributed_worker.py runs under
``mpiexec -n N``; N ranks must give the gradients of one process on the whole batch."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
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


def run(case, ranks, timeout=120, args=()):
    env = dict(os.environ, OMP_NUM_THREADS="1", MINIDL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    t0 = time.monotonic()
    proc = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, WORKER, case, *args],
                          capture_output=True,
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
    else:  # a SIGKILLed rank says nothing; MPICH's launcher reports the kill and a pid, which
        # minidl's start-up line maps to a rank (MPICH names the first process it reaps: rank 1,
        # or rank 0 when it reaped the rank it killed itself first)
        pids = dict((int(rank), pid) for rank, pid in re.findall(r"rank (\d+) = pid (\d+)", out))
        assert sorted(pids) == [0, 1], out
        assert "Killed (signal 9)" in out and re.search(r"PID (\d+)", out).group(1) in pids.values(), out


# ------------------------------------------------------------------ minidl-train on N ranks
def _trainer_run(ranks, data, out, *extra, timeout=240):
    args = ["--model", "lenet5_bn_w2", "--dataset", "fashion-mnist", "--data", data, "--recipe", "none",
            "--opt", "sgd", "--lr", "0.05", "--sched", "cosine", "--warmup-epochs", "0", "--epochs", "2",
            "--limit-train-batches", "15", "--dtype", "float64", "--val-split", "0", "--output", str(out), *extra]
    proc, _ = run("trainer", ranks, timeout=timeout, args=args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("HISTORY "))
    return json.loads(line[8:]), proc


def _rank_pid(marker, rank):
    """The pid of the rank-``rank`` process whose command line mentions ``marker``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if env.get(b"PMI_RANK") == str(rank).encode() and b"python" in open(f"/proc/{pid}/comm", "rb").read():
            return int(pid)
    raise AssertionError(f"no rank-{rank} process of {marker}")


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    from test_train import make_idx_dataset
    return make_idx_dataset(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="module")
def two_rank_run(fmnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    result, _ = _trainer_run(2, fmnist, out / "run", "--batch-size", "8", "--sync-bn")
    return result, out / "run"


def test_two_ranks_train_as_one_process_on_the_global_batch(fmnist, tmp_path, two_rank_run):
    """30 steps of lenet5_bn_w2 (SyncBN) on 2 ranks at batch 8 = 1 process at batch 16, float64;
    the distributed validation equals the single-process one."""
    one, _ = _trainer_run(1, fmnist, tmp_path / "one", "--batch-size", "16")
    two, two_dir = two_rank_run
    a, b = np.array(one["history"]), np.array(two["history"])
    assert a.shape == b.shape == (30, 2)
    np.testing.assert_allclose(b[:, 1], a[:, 1], rtol=1e-8)
    log_one = [json.loads(ln) for ln in open(tmp_path / "one" / "log.jsonl")]
    log_two = [json.loads(ln) for ln in open(two_dir / "log.jsonl")]
    assert [r["val_top1"] for r in log_two] == [r["val_top1"] for r in log_one]
    np.testing.assert_allclose([r["val_loss"] for r in log_two], [r["val_loss"] for r in log_one], rtol=1e-8)


def test_mpiexec_minidl_eval_equals_one_process(two_rank_run):
    """minidl-eval on 3 ranks (unequal shards of the 64 test images) reports the one-process numbers."""
    _, run_dir = two_rank_run
    env = dict(os.environ, OMP_NUM_THREADS="1", MINIDL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    results = []
    for n in (1, 3):
        out = run_dir / f"eval{n}.json"
        proc = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, "-m", "minidl.evaluate", "--weights",
                               str(run_dir / "last.json"), "--batch-size", "10", "--output", str(out)],
                              capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count("top-1") == 1  # rank 0 alone prints
        results.append(json.load(open(out)))
    one, three = results
    assert three["samples"] == one["samples"] == 64
    assert three["top1"] == one["top1"] and three["top5"] == one["top5"]
    assert abs(three["loss"] - one["loss"]) <= 1e-6 * abs(one["loss"])


def test_a_two_rank_checkpoint_resumes_on_2_1_and_3_ranks(fmnist, tmp_path, two_rank_run):
    straight, _ = two_rank_run
    out = tmp_path / "cut"
    _trainer_run(2, fmnist, out, "--batch-size", "8", "--sync-bn", "--max-steps", "7")
    for ranks in (1, 3):
        shutil.copytree(out, tmp_path / f"on{ranks}")
    same, _ = _trainer_run(2, fmnist, out, "--batch-size", "8", "--sync-bn", "--resume", str(out / "last.json"))
    assert same["start"] == [0, 7, 7]
    assert same["history"] == straight["history"][7:]  # bit-identical
    for ranks, batch in ((1, 14), (3, 4)):  # 7 batches x 8 x 2 = 112 samples seen; // (8 x ranks)
        copy = tmp_path / f"on{ranks}"
        cont, proc = _trainer_run(ranks, fmnist, copy, "--batch-size", "8", "--sync-bn", "--resume",
                                  str(copy / "last.json"))
        assert cont["start"] == [0, min(batch, 15), 7], cont["start"]
        assert "written by 2 process(es)" in proc.stderr
        assert cont["history"] and all(np.isfinite(v) for _, v in cont["history"])


def test_mpiexec_minidl_train_and_a_killed_rank(fmnist, tmp_path):
    """The real CLI under mpiexec: rank 0 alone writes; killing rank 1 mid-epoch ends the job
    within the bound, and 'last' stays a loadable checkpoint."""
    out = tmp_path / "cli"
    env = dict(os.environ, OMP_NUM_THREADS="1", MINIDL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "minidl.train", "--model", "lenet5_bn_w2", "--dataset",
           "fashion-mnist", "--data", fmnist, "--recipe", "none", "--batch-size", "8", "--epochs", "1000",
           "--sync-bn", "--checkpoint-minutes", "0", "--val-split", "0", "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(1.0)
        t0 = time.monotonic()
        os.kill(_rank_pid(str(out), 1), 9)
        stdout, stderr = proc.communicate(timeout=90)
        assert time.monotonic() - t0 < 60
        assert proc.returncode != 0
        assert "minidl.distributed: 2 ranks" in stderr  # the rank/pid map the launcher's message refers to
    finally:
        if proc.poll() is None:
            proc.kill()
    from minidl.tools import checkpoint as ckpt
    assert ckpt.load_checkpoint(str(out / "last.json")).train_state["progress"]["step"] > 0
    assert "log.jsonl" in os.listdir(out)
    # mpiexec kills rank 0 too (SIGKILL): a checkpoint write it was in the middle of leaves
    # its temp file, which the next start removes; the checkpoint itself stays whole
    ckpt.remove_stale_files(str(out))
    assert not any(f.endswith(".tmp") for f in os.listdir(out))
    assert ckpt.load_checkpoint(str(out / "last.json")).train_state["progress"]["step"] > 0
