"""minidl-train / minidl-eval / minidl-predict and training checkpoints.

Datasets are built in tmp dirs: a small Fashion-MNIST-format IDX set (class-dependent
patterns + noise) and a tiny ILSVRC-layout JPEG set made with Pillow.
"""
import gzip
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import minidl
import minidl.models as models
from minidl.tools import checkpoint as ckpt
from minidl.tools import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           OMP_WAIT_POLICY="PASSIVE")


# ------------------------------------------------------------------ datasets
def _write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = struct.pack(">I", (codes[array.dtype] << 8) | array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_idx_dataset(root, n_train=256, n_test=64, seed=0):
    """Fashion-MNIST file names and format; each class is a bright bar at its own row."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c:4 + 2 * c, 4:24] = 220
        _write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), images)
        _write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    return str(root)


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fmnist"))


def make_ilsvrc(root, wnids=("n01440764", "n01443537", "n01484850", "n01491361", "n01494475",
                             "n01496331"), per_class=6, per_val=2):
    from PIL import Image
    rng = np.random.default_rng(1)
    for split, count in (("train", per_class), ("val", per_val)):
        for c, wnid in enumerate(wnids):
            folder = os.path.join(root, split, wnid)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 80, (40, 48, 3)).astype(np.uint8)
                pixels[:, :, c % 3] += np.uint8(100 + 20 * c)
                Image.fromarray(pixels).save(os.path.join(folder, f"{wnid}_{i}.JPEG"), quality=90)
    with open(os.path.join(root, "train", wnids[0], f"{wnids[0]}_corrupt.JPEG"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not a JPEG")  # a truncated/corrupt image
    return str(root)


def _args(idx_root, out, *extra):
    return ["--model", "lenet5", "--model-kwargs", '{"dropout": 0.3}', "--dataset", "fashion-mnist",
            "--data", idx_root, "--batch-size", "32", "--epochs", "2", "--recipe", "none",
            "--lr", "0.05", "--sched", "cosine", "--warmup-epochs", "0.5", "--val-split", "0",
            "--output", str(out), *extra]


def _trainer(argv):
    given = train.parse_args(argv)
    checkpoint = ckpt.load_checkpoint(given["resume"]) if "resume" in given else None
    cfg = train.resolve_config(given, checkpoint.train_state["config"] if checkpoint else None)
    return train.Trainer(cfg, checkpoint)


# ------------------------------------------------------------------ resume
def test_resume_is_bit_identical(idx_root, tmp_path):
    """N steps straight vs N/2 + resume + the rest: the same loss at every step after the
    resume, bit for bit, across an epoch boundary (data order, flips, dropout restored)."""
    straight = _trainer(_args(idx_root, tmp_path / "a"))
    assert straight.run() == 0
    steps = straight.steps_per_epoch * 2
    assert len(straight.history) == steps == 16

    first = _trainer(_args(idx_root, tmp_path / "b", "--max-steps", "5"))
    assert first.run() == 0
    assert first.history == straight.history[:5]
    resumed = _trainer(_args(idx_root, tmp_path / "b", "--resume", str(tmp_path / "b" / "last.json")))
    assert (resumed.state["epoch"], resumed.state["batch"], resumed.state["step"]) == (0, 5, 5)
    assert resumed.run() == 0
    assert resumed.history == straight.history[5:]  # exact float equality
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert np.array_equal(a, b), name
    log = [json.loads(line) for line in open(tmp_path / "b" / "log.jsonl")]
    ref = [json.loads(line) for line in open(tmp_path / "a" / "log.jsonl")]
    assert [r["train_loss"] for r in log] == [r["train_loss"] for r in ref]
    assert [r["val_top1"] for r in log] == [r["val_top1"] for r in ref]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_nonfinite_loss_stops_with_the_step(idx_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        train.main(_args(idx_root, tmp_path / "nan", "--lr", "1e30", "--warmup-epochs", "0"))
    message = str(info.value.code)
    assert re.search(r"the loss is (nan|inf) at step \d+ \(epoch 1, batch \d+\)", message), message
    assert "--skip-nonfinite" in message

    code = train.main(_args(idx_root, tmp_path / "skip", "--lr", "1e30", "--warmup-epochs", "0",
                            "--skip-nonfinite", "--epochs", "1"))
    assert code == 0
    record = json.loads(open(tmp_path / "skip" / "log.jsonl").readline())
    assert record["skipped_steps"] > 0
    assert "skipping the step" in capsys.readouterr().err


# ------------------------------------------------------------------ checkpoints
def _tiny_model():
    return models.create("lenet5", num_classes=10)


def test_checkpoint_roundtrip_and_wrong_architecture(tmp_path):
    minidl.manual_seed(3)
    model = _tiny_model()
    opt = minidl.optim.Adam(model.parameters(), lr=1e-3)
    x = minidl.randn(4, 1, 28, 28)   # LeNet-5 defaults to one channel
    model(x).mean().backward()
    opt.step()
    path = ckpt.save_checkpoint(tmp_path, "last", model, opt, train_state={"step": 7, "note": "x"})
    loaded = ckpt.load_checkpoint(tmp_path)  # a directory means its last.json
    assert loaded.train_state == {"step": 7, "note": "x"}
    other = _tiny_model()
    other_opt = minidl.optim.Adam(other.parameters(), lr=1e-3)
    loaded.restore(other, other_opt)
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert np.array_equal(a, b), k
    s1, s2 = opt.state_dict(), other_opt.state_dict()
    assert s1["param_groups"] == [dict(g, betas=tuple(g["betas"])) for g in s2["param_groups"]]
    assert all(np.array_equal(s1["state"][i]["exp_avg"], s2["state"][i]["exp_avg"]) for i in s1["state"])

    with pytest.raises(ckpt.CheckpointError, match=r"features\.1\.running_mean|missing|unexpected"):
        loaded.restore(models.create("lenet5_bn_w2", num_classes=10))
    assert path.endswith("last.json")


def test_checkpoint_failed_write_keeps_the_previous(tmp_path, monkeypatch):
    model = _tiny_model()
    ckpt.save_checkpoint(tmp_path, "last", model, train_state={"step": 1})
    before = sorted(os.listdir(tmp_path))

    real_replace = os.replace

    def failing_replace(src, dst):
        if dst.endswith("last.json"):  # the manifest's rename: the commit point
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        ckpt.save_checkpoint(tmp_path, "last", model, train_state={"step": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    assert ckpt.load_checkpoint(tmp_path).train_state["step"] == 1
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]

    # a partly written / modified weights file is refused, not taken as valid
    weights = ckpt.weights_path(tmp_path / "last.json")
    with open(weights, "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\0")
    with pytest.raises(ckpt.CheckpointError, match="SHA-256"):
        ckpt.load_checkpoint(tmp_path)
    assert set(before) <= set(os.listdir(tmp_path)) | set(before)


_KILL_WRITER = """
import sys, numpy as np, minidl
from minidl.tools import checkpoint as ckpt
model = minidl.nn.Linear(1024, 2048)
for step in range(1, 100000):
    model.weight.data[...] = step
    ckpt.save_checkpoint(sys.argv[1], "last", model, train_state={"step": step})
    print(step, flush=True)
"""


def test_checkpoint_survives_sigkill_midway(tmp_path):
    """A writer of 8 MB checkpoints killed with SIGKILL at an arbitrary moment leaves a
    loadable, consistent checkpoint."""
    proc = subprocess.Popen([sys.executable, "-c", _KILL_WRITER, str(tmp_path)], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    for _ in range(3):  # a few complete checkpoints, then kill during the next writes
        proc.stdout.readline()
    time.sleep(0.037)
    proc.kill()
    proc.wait(timeout=30)
    loaded = ckpt.load_checkpoint(tmp_path)
    step = loaded.train_state["step"]
    assert step >= 3
    assert np.all(loaded.weights["weight"] == step)
    # at most the current generation and one being written remain
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".safetensors")]) <= 2


def test_sigterm_saves_and_exits_cleanly(idx_root, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "minidl.train", *_args(idx_root, out, "--epochs", "500")],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "log.jsonl").exists() or not (out / "log.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert "checkpoint saved" in stderr and "--resume" in stderr
    loaded = ckpt.load_checkpoint(out / "last.json")
    assert loaded.train_state["progress"]["step"] >= 8


# ------------------------------------------------------------------ end to end
def test_train_then_evaluate_on_ilsvrc_layout(tmp_path):
    root = make_ilsvrc(tmp_path / "imagenet")
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "minidl.train", "--model", "lenet5", "--dataset", "imagenet",
                          "--data", root, "--image-size", "28", "--val-resize", "32", "--epochs", "1",
                          "--batch-size", "8", "--recipe", "none", "--lr", "0.01", "--output", str(out)],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "top-1" in run.stdout and "top-5" in run.stdout
    record = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert record["skipped_images"] == 1 and "corrupt" in run.stderr
    assert 0.0 <= record["val_top1"] <= record["val_top5"] <= 1.0

    ev = subprocess.run([sys.executable, "-m", "minidl.evaluate", "--weights", str(out / "best.json"),
                         "--data", root, "--crop", "ten"], env=ENV, capture_output=True, text=True,
                        timeout=120)
    assert ev.returncode == 0, ev.stderr
    assert re.search(r"top-1\s+\d+\.\d\d%", ev.stdout) and "imagenet (12 images)" in ev.stdout
    result = json.loads((out / "eval.json").read_text())
    assert result["samples"] == 12 and result["crop"] == "ten"

    image = os.path.join(root, "val", "n01443537", "n01443537_0.JPEG")
    pred = subprocess.run([sys.executable, "-m", "minidl.predict", image, str(tmp_path / "missing.jpg"),
                           "--weights", str(out / "best.json")], env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert pred.returncode == 1, pred.stderr  # one unreadable image
    assert "missing.jpg" in pred.stderr
    lines = [line for line in pred.stdout.splitlines() if re.search(r"\d+\.\d+%", line)]
    assert len(lines) == 5


def test_evaluate_errors_are_clear(tmp_path, capsys):
    from minidl.tools import evaluate
    assert evaluate.main(["--weights", str(tmp_path / "nothing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_import_minidl_leaves_the_tools_unloaded():
    code = ("import sys, minidl; loaded = [m for m in sys.modules if m.startswith('minidl.tools')]; "
            "assert not loaded, loaded; assert callable(minidl.summary); "
            "assert 'minidl.tools.summary' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
