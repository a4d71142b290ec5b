"""minidl-train --amp: convergence against float32, bit-identical resume with the
scaler's state, the non-finite-loss rule, and minidl-eval --amp."""
import json
import os
import re

import numpy as np
import pytest

from minidl.tools import amp_training, evaluate, train
from test_train import _args, _trainer, make_idx_dataset

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fmnist"))


def _noisy_idx_dataset(root, n_train=6400, seed=0):
    """A stand-in for Fashion-MNIST where it is absent: faint class bars in strong noise
    and 20% random labels, so that 200 steps end at a loss far from zero."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    from test_train import _write_idx
    for prefix, n in (("train", n_train), ("t10k", 64)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 120, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c:4 + 2 * c, 4:24] += 60
        flip = rng.random(n) < 0.2
        labels[flip] = rng.integers(0, 10, int(flip.sum()))
        _write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), images)
        _write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    return str(root)


@pytest.fixture(scope="module")
def convergence_data(tmp_path_factory):
    if os.path.exists(os.path.join(FASHION_MNIST, "train-labels-idx1-ubyte.gz")):
        return FASHION_MNIST
    return _noisy_idx_dataset(tmp_path_factory.mktemp("noisy"))


def test_200_steps_of_lenet5_bn_w2_reach_the_float32_loss_within_5_percent(convergence_data, tmp_path):
    """The mean training loss of steps 151-200: fp16 and bf16 within 5% of float32 (on
    Fashion-MNIST, measured: float32 0.604, bf16 0.607, fp16 0.612)."""
    final = {}
    for amp in ("off", "bf16", "fp16"):
        trainer = _trainer(["--model", "lenet5_bn_w2", "--dataset", "fashion-mnist", "--data", convergence_data,
                            "--batch-size", "32", "--epochs", "1", "--recipe", "none", "--lr", "0.05",
                            "--max-steps", "200", "--val-split", "0", "--amp", amp,
                            "--output", str(tmp_path / amp)])
        assert trainer.cfg["amp"] == amp
        assert trainer.run() == 0
        losses = [v for _, v in trainer.history]
        assert len(losses) == 200 and np.all(np.isfinite(losses))
        final[amp] = float(np.mean(losses[-50:]))
    assert final["off"] < 0.9 * float(np.mean(losses[:10]))  # it learned something
    for amp in ("bf16", "fp16"):
        assert abs(final[amp] - final["off"]) <= 0.05 * final["off"], final


@pytest.mark.timeout(1500)
def test_20_steps_of_resnet18_at_32px_on_emu_reach_the_float32_loss_within_5_percent(convergence_data, tmp_path):
    """ResNet-18 at 32 px, 20 steps on emu (our CUDA kernels under the host emulation:
    the 16-bit convolution, batch-norm, pooling and optimizer kernels): the mean
    training loss of steps 11-20 of fp16 and bf16 within 5% of float32's.  Plain SGD at
    batch 32: twenty steps from random weights are chaotic (at init the gradients of
    autocast differ from float32's by 39% (bf16) and 17% (fp16) in norm here, 37% and
    12% in PyTorch's autocast on the same net), and momentum or smaller batches turn
    that into run-to-run spreads beyond 5% in float32 itself.  The convolutions take
    conv_algo "im2col" (computed in float32 and rounded): the emulated 16-bit
    tensor-core kernels are checked shape by shape in tests/kernels/test_conv_kernels.py,
    and emulating them over 20 ResNet-18 steps would take most of an hour.
    Measured on Fashion-MNIST: float32 1.341, bf16 1.336, fp16 1.369 (on the noisy stand-in:
    1.241, 1.250, 1.282)."""
    from minidl.backend import get_backend
    final = {}
    emu = get_backend("emu")
    old_algo, emu.conv_algo = getattr(emu, "conv_algo", None), "im2col"
    try:
        for amp in ("off", "bf16", "fp16"):  # (float32 without TF32: conftest)
            final[amp], losses = _resnet18_emu_loss(amp, convergence_data, tmp_path)
    finally:
        emu.conv_algo = old_algo
    assert final["off"] < 0.8 * float(np.mean(losses[:3]))  # it learned something
    for amp in ("bf16", "fp16"):
        assert abs(final[amp] - final["off"]) <= 0.05 * final["off"], final


def _resnet18_emu_loss(amp, data, tmp_path):
    """(the mean loss of steps 11-20, every step's loss) of 20 ResNet-18 steps on emu."""
    trainer = _trainer(["--model", "resnet18", "--dataset", "fashion-mnist", "--data", data, "--image-size", "32",
                        "--device", "emu", "--batch-size", "32", "--epochs", "1", "--recipe", "none", "--lr", "0.01",
                        "--momentum", "0", "--max-steps", "20", "--val-split", "0", "--amp", amp, "--workers", "0",
                        "--output", str(tmp_path / amp)])
    assert trainer.run() == 0
    losses = [v for _, v in trainer.history]
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    return float(np.mean(losses[10:])), losses


def test_resume_under_fp16_is_bit_identical_and_restores_the_scaler(idx_root, tmp_path):
    straight = _trainer(_args(idx_root, tmp_path / "a", "--amp", "fp16"))
    assert straight.run() == 0
    first = _trainer(_args(idx_root, tmp_path / "b", "--amp", "fp16", "--max-steps", "5"))
    assert first.run() == 0
    assert first.history == straight.history[:5]
    saved = json.load(open(tmp_path / "b" / "last.json"))
    resumed = _trainer(_args(idx_root, tmp_path / "b", "--resume", str(tmp_path / "b" / "last.json")))
    assert resumed.cfg["amp"] == "fp16"
    assert resumed.amp.scaler.state_dict() == first.amp.scaler.state_dict()
    assert resumed.amp.scaler.state_dict()["growth_tracker"] == 5
    assert resumed.run() == 0
    assert resumed.history == straight.history[5:]  # exact float equality
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert np.array_equal(a, b), name
    assert resumed.amp.scaler.state_dict() == straight.amp.scaler.state_dict()
    assert saved  # the manifest exists; the scaler travels in the checkpoint's train state


def test_amp_cannot_change_on_resume(idx_root, tmp_path):
    first = _trainer(_args(idx_root, tmp_path, "--amp", "bf16", "--max-steps", "2"))
    assert first.run() == 0
    with pytest.raises(train.UsageError, match="--amp cannot change on --resume"):
        _trainer(_args(idx_root, tmp_path, "--amp", "fp16", "--resume", str(tmp_path / "last.json")))


def test_amp_defaults_to_off_on_the_cpu(idx_root, tmp_path):
    trainer = _trainer(_args(idx_root, tmp_path, "--max-steps", "1"))
    assert trainer.cfg["amp"] == "off" and not trainer.amp.scaler.enabled


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_nonfinite_loss_under_amp_skips_and_backs_off_until_the_limit(idx_root, tmp_path, capsys):
    trainer = _trainer(_args(idx_root, tmp_path, "--amp", "fp16", "--lr", "1e30", "--warmup-epochs", "0"))
    with pytest.raises(SystemExit) as info:
        trainer.run()
    assert re.search(r"the loss is (nan|inf) at step \d+", str(info.value.code))
    err = capsys.readouterr().err
    limit = amp_training.MAX_NONFINITE_STEPS
    assert err.count("skipping the step") == limit
    assert f"({limit} in a row; {limit} stop the run)" in err
    assert trainer.state["skipped_steps"] == limit
    assert trainer.amp.scaler.get_scale() <= 2.0 ** 16 * 0.5 ** limit


def test_tolerated_run_of_nonfinite_losses_resets_on_a_finite_one():
    amp = amp_training.AmpTraining("bf16")
    assert [amp.tolerates_nonfinite(f) for f in (False, False, True, False)] == [True, True, False, True]
    assert amp.nonfinite_run == 1
    off = amp_training.AmpTraining("off")
    assert not off.tolerates_nonfinite(False)
    with pytest.raises(ValueError, match="--amp: expected one of off, fp16, bf16, got 'fp8'"):
        amp_training.AmpTraining("fp8")


def test_evaluate_with_amp(idx_root, tmp_path):
    trainer = _trainer(_args(idx_root, tmp_path))
    assert trainer.run() == 0
    results = {}
    for amp in ("off", "bf16", "fp16"):
        out = tmp_path / f"eval_{amp}.json"
        assert evaluate.main(["--weights", str(tmp_path / "best.json"), "--data", idx_root,
                              "--amp", amp, "--output", str(out)]) == 0
        results[amp] = json.load(open(out))
    assert results["bf16"]["amp"] == "bf16"
    for amp in ("bf16", "fp16"):
        assert abs(results[amp]["top1"] - results["off"]["top1"]) <= 0.05
        assert abs(results[amp]["loss"] - results["off"]["loss"]) <= 0.05 * results["off"]["loss"]
