"""A minidl-train step reads nothing from the device between log points.

On a GPU each host read of a device array (``loss.item()``, ``float(norm)``, a label
check ``bool(xp.all(...))``) waits for the device.  The emu backend stands in for the
GPU: under ``watch_host_reads`` it counts explicit downloads and those implicit reads.
"""
import numpy as np
import pytest

import minidl
from minidl.backend import get_backend
from minidl.tools import train

from conftest import EMU_REASON
from test_train import make_idx_dataset

pytestmark = pytest.mark.skipif(EMU_REASON is not None, reason=str(EMU_REASON))


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fmnist"), n_train=32, n_test=8)


def _reads(be):
    return be.stats()["device_to_host"]


def test_the_watch_counts_implicit_reads():
    """The counter can fail the step test: each implicit read of a watched array counts."""
    be = get_backend("emu")
    with be.watch_host_reads():
        a = be.asarray(np.arange(6.0, dtype=np.float32))
        b = be.mul(a, 2.0)
        before = _reads(be)
        float(be.sum(b))
        bool(be.all(be.greater(b, -1.0)))
        int(be.argmax(b))
        b[3].item()
        be.to_numpy(b)
        assert _reads(be) - before == 5
        before = _reads(be)
        minidl.as_tensor(np.ones(3, np.float32), device="emu").sum()  # queued work only
        assert _reads(be) == before
    plain = be.asarray(np.ones(2))
    before = _reads(be)
    float(be.sum(plain))  # outside the watch: not counted
    assert _reads(be) == before


def test_resnet18_steps_on_emu_read_nothing_between_log_points(idx_root, tmp_path):
    """Three resnet18 steps with clipping and label smoothing: zero host reads until the log
    point, then one transfer that brings all three losses."""
    be = get_backend("emu")
    argv = ["--model", "resnet18", "--dataset", "fashion-mnist", "--data", idx_root, "--device", "emu",
            "--batch-size", "2", "--image-size", "16", "--epochs", "1", "--recipe", "none", "--opt", "sgd",
            "--lr", "0.01",
            "--label-smoothing", "0.1", "--clip-grad-norm", "1.0", "--log-interval", "3",
            "--val-split", "0", "--output", str(tmp_path / "run")]
    cfg = train.resolve_config(train.parse_args(argv), None)
    with be.watch_host_reads():
        trainer = train.Trainer(cfg)
        assert trainer.pending is not None
        batches = iter(trainer.train_loader)
        start = _reads(be)
        for i in range(3):
            images, labels = next(batches)
            assert trainer.train_step(images, labels) is not None
            trainer.state["batch"] += 1
            trainer.state["step"] += 1
            assert _reads(be) == start, f"step {i + 1} read the device"
        trainer.read_pending()
        assert _reads(be) == start + 1
    losses = [v for _, v in trainer.history]
    assert [s for s, _ in trainer.history] == [1, 2, 3] and all(np.isfinite(losses))



@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_steps_on_emu_read_nothing_between_log_points(idx_root, tmp_path, amp):
    """Under --amp the scaler decides on the device whether a step is skipped, so the
    steps read nothing either; the log point reads the three losses in one transfer."""
    be = get_backend("emu")
    argv = ["--model", "lenet5_bn_w2", "--dataset", "fashion-mnist", "--data", idx_root, "--device", "emu",
            "--batch-size", "4", "--epochs", "1", "--recipe", "none", "--opt", "sgd", "--lr", "0.01",
            "--amp", amp, "--log-interval", "3", "--val-split", "0", "--output", str(tmp_path / "run")]
    cfg = train.resolve_config(train.parse_args(argv), None)
    with be.watch_host_reads():
        trainer = train.Trainer(cfg)
        assert trainer.pending is not None and trainer.amp.scaler.enabled
        batches = iter(trainer.train_loader)
        start = _reads(be)
        for i in range(3):
            images, labels = next(batches)
            trainer.train_step(images, labels)
            trainer.state["batch"] += 1
            trainer.state["step"] += 1
            assert _reads(be) == start, f"step {i + 1} read the device"
        trainer.read_pending()
        assert _reads(be) == start + 1
    assert [s for s, _ in trainer.history] == [1, 2, 3] and all(np.isfinite([v for _, v in trainer.history]))


def _three_steps(argv):
    trainer = train.Trainer(train.resolve_config(train.parse_args(argv), None))
    batches = iter(trainer.train_loader)
    for _ in range(3):
        trainer.train_step(*next(batches))
        trainer.state["batch"] += 1
        trainer.state["step"] += 1
    trainer.read_pending()
    return trainer


def test_queued_steps_give_the_losses_of_steps_read_one_by_one(idx_root, tmp_path):
    argv = ["--model", "lenet5", "--dataset", "fashion-mnist", "--data", idx_root, "--batch-size", "8",
            "--epochs", "1", "--recipe", "none", "--clip-grad-norm", "0.5", "--val-split", "0", "--output"]
    queued = _three_steps(argv + [str(tmp_path / "queued")])
    per_step = _three_steps(argv + [str(tmp_path / "per_step"), "--skip-nonfinite"])  # decides per step
    assert queued.pending is not None and per_step.pending is None
    assert queued.history == per_step.history and len(queued.history) == 3
    assert queued.state["correct"] == per_step.state["correct"]


def test_a_nonfinite_loss_is_named_at_the_log_point(idx_root, tmp_path):
    """The step whose loss first became non-finite is named, though it is read later."""
    argv = ["--model", "lenet5", "--dataset", "fashion-mnist", "--data", idx_root, "--batch-size", "8",
            "--epochs", "1", "--recipe", "none", "--log-interval", "4", "--val-split", "0",
            "--output", str(tmp_path / "run")]
    trainer = train.Trainer(train.resolve_config(train.parse_args(argv), None))
    batches = iter(trainer.train_loader)
    for i in range(3):
        images, labels = next(batches)
        if i == 1:
            images = np.full_like(images, np.nan)
        trainer.train_step(images, labels)
        trainer.state["batch"] += 1
        trainer.state["step"] += 1
    with pytest.raises(train.NonFiniteLoss, match=r"the loss is nan at step 2 \(epoch 1, batch 2\)"):
        trainer.read_pending()
    assert [s for s, _ in trainer.history] == [1]
