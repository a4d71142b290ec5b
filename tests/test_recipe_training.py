"""minidl-train's recipe parts: the augmentation flags, Mixup/CutMix with soft targets,
weight EMA (validated, checkpointed, restored on resume), gradient accumulation, --min-lr
and --pretrained with a new head."""
import json
import os
import re

import numpy as np
import pytest

import minidl
import minidl.models as models
from minidl import io as mio
from minidl.tools import recipe_parts, train
from minidl.tools.common import UsageError
from test_train import _trainer, make_idx_dataset, make_ilsvrc


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fmnist"), n_train=128, n_test=32)


def _args(idx_root, out, *extra):
    return ["--model", "lenet5", "--dataset", "fashion-mnist", "--data", idx_root, "--batch-size", "32",
            "--epochs", "1", "--recipe", "none", "--lr", "0.05", "--sched", "cosine", "--output", str(out),
            *extra]


def test_ema_is_validated_checkpointed_and_restored(idx_root, tmp_path):
    decay = 0.5
    t = _trainer(_args(idx_root, tmp_path / "a", "--model-ema", "--model-ema-decay", str(decay),
                       "--max-steps", "2"))
    start = {k: v.copy() for k, v in t.model.state_dict().items()}
    seen = []
    original_step = t.optimizer.step

    def step():
        original_step()
        seen.append({k: v.copy() for k, v in t.model.state_dict().items()})

    t.optimizer.step = step
    assert t.run() == 0
    ema = t.ema.state_dict()
    for name in ("features.0.weight", "classifier.6.bias"):   # ema = d * (d * w0 + (1-d) w1) + (1-d) w2
        expected = decay * (decay * start[name] + (1 - decay) * seen[0][name]) + (1 - decay) * seen[1][name]
        np.testing.assert_allclose(ema[name], expected, rtol=1e-6, atol=1e-7)
    resumed = _trainer(_args(idx_root, tmp_path / "a", "--resume", str(tmp_path / "a" / "last.json")))
    for name, value in ema.items():
        np.testing.assert_array_equal(resumed.ema.state_dict()[name], value)
    assert resumed.run() == 0
    record = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= record["ema_val_top1"] <= 1.0 and record["ema_val_loss"] > 0
    # the raw weights are back after the EMA's evaluation
    assert not np.array_equal(resumed.model.state_dict()["features.0.weight"], resumed.ema.state_dict()["features.0.weight"])


def test_grad_accumulation_matches_one_large_batch(idx_root, tmp_path):
    """Two batches of 16 accumulated == one batch of 32 (same samples, mean loss)."""
    constant = ("--opt", "sgd", "--momentum", "0", "--wd", "0", "--sched", "step", "--step-size", "100")
    big = _trainer(_args(idx_root, tmp_path / "big", *constant))
    small = _trainer(_args(idx_root, tmp_path / "small", *constant, "--grad-accum-steps", "2",
                           "--batch-size", "16"))
    small.model.load_state_dict(big.model.state_dict())
    big_batch = next(iter(big.train_loader))
    halves = [(big_batch[0][:16], big_batch[1][:16]), (big_batch[0][16:], big_batch[1][16:])]
    before = small.model.state_dict()
    big.train_step(*big_batch)
    for images, labels in halves:
        small.train_step(images, labels)
        small.state["batch"] += 1
    for (name, a), (_, b) in zip(big.model.state_dict().items(), small.model.state_dict().items()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=name)
        assert not np.array_equal(b, before[name]), name


def test_mixup_cutmix_train_with_soft_targets(idx_root, tmp_path):
    t = _trainer(_args(idx_root, tmp_path / "m", "--mixup", "0.2", "--cutmix", "1.0", "--label-smoothing",
                       "0.1", "--max-steps", "3"))
    assert t.run() == 0 and len(t.history) == 3 and all(np.isfinite(v) for _, v in t.history)


def test_augmentation_flags_build_the_pipeline(tmp_path):
    cfg = dict(train.DEFAULTS, dataset="imagenet", image_size=32, aa="rand-m9-n2", color_jitter=0.4,
               pca_lighting=0.1, photometric=True, scale_jitter=[40, 48], reprob=0.25)
    names = [type(s).__name__ for s in recipe_parts.train_transform(cfg).transforms]
    assert names == ["ScaleJitter", "RandomHorizontalFlip", "RandAugment", "ColorJitter",
                     "PhotometricDistort", "ToArray", "Lighting", "Normalize", "RandomErasing"]
    assert recipe_parts.train_transform(dict(train.DEFAULTS)) is None
    with pytest.raises(UsageError, match="--pca-lighting needs RGB images"):
        recipe_parts.train_transform(dict(train.DEFAULTS, pca_lighting=0.1))
    with pytest.raises(SystemExit):
        train.parse_args(["--aa", "rand-9"])

    root = make_ilsvrc(tmp_path / "imagenet")
    t = _trainer(["--model", "lenet5", "--dataset", "imagenet", "--data", root, "--image-size", "28",
                  "--val-resize", "32", "--batch-size", "8", "--recipe", "none", "--lr", "0.01",
                  "--aa", "autoaugment", "--pca-lighting", "0.1", "--scale-jitter", "32,40", "--reprob", "0.5",
                  "--output", str(tmp_path / "run"), "--max-steps", "2"])
    assert "AutoAugment" in repr(t.train_set.transform)
    assert t.run() == 0


def test_min_lr_is_the_cosine_floor():
    cfg = dict(train.DEFAULTS, sched="cosine", epochs=4, min_lr=0.01, lr=0.1, warmup_epochs=1)
    opt = minidl.optim.SGD([minidl.tensor(np.zeros(2), requires_grad=True)], lr=0.1)
    sched = train.build_scheduler(cfg, opt)
    assert sched.lr_at(4)[0] == pytest.approx(0.01) and sched.lr_at(2.5)[0] == pytest.approx(0.055)


def test_pretrained_flag_loads_all_but_the_new_head(idx_root, tmp_path):
    src = models.create("lenet5", num_classes=20, in_channels=1)
    mio.save(src, tmp_path / "src.safetensors")
    t = _trainer(_args(idx_root, tmp_path / "p", "--pretrained", str(tmp_path / "src.safetensors")))
    ours, theirs = t.model.state_dict(), src.state_dict()
    np.testing.assert_array_equal(ours["features.0.weight"], theirs["features.0.weight"])
    assert ours["classifier.6.weight"].shape[0] == 10
    with pytest.raises(UsageError, match="--pretrained: .*no weights file"):
        _trainer(_args(idx_root, tmp_path / "q", "--pretrained", str(tmp_path / "nope.pth")))


def test_resuming_a_finished_cosine_run_with_more_epochs_replans(idx_root, tmp_path, capsys):
    assert _trainer(_args(idx_root, tmp_path / "r")).run() == 0
    assert _trainer(_args(idx_root, tmp_path / "r")).optimizer.param_groups[0]["lr"] == 0.05
    resumed = _trainer(_args(idx_root, tmp_path / "r", "--resume", str(tmp_path / "r" / "last.json"),
                             "--epochs", "3"))
    # cosine over 3 epochs at epoch 1: 0.05 * (1 + cos(pi / 3)) / 2
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.0375)
    assert re.search(r"cosine schedule is re-planned over 3 epochs: the lr goes from [\d.e-]+ to 0\.0375",
                     capsys.readouterr().err)
    assert resumed.run() == 0 and resumed.state["epoch"] == 3


def test_plateau_schedule_divides_the_lr(idx_root, tmp_path):
    t = _trainer(_args(idx_root, tmp_path / "p", "--sched", "plateau", "--patience", "0", "--gamma", "0.1",
                       "--epochs", "3", "--lr", "1e-6"))
    assert t.run() == 0
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "p" / "log.jsonl").read_text().splitlines()]
    assert lrs[0] == pytest.approx(1e-6)  # the first report sets the best; any non-improvement divides
    assert all(b in (pytest.approx(a), pytest.approx(a * 0.1)) for a, b in zip(lrs, lrs[1:]))


def test_idx_validation_is_held_out_of_train_and_test_reported(idx_root, tmp_path, capsys):
    t = _trainer(_args(idx_root, tmp_path / "v", "--val-split", "28"))
    assert (len(t.train_set), len(t.val_set), len(t.test_set)) == (100, 28, 32)
    held, kept = set(t.val_set.indices.tolist()), set(t.train_set.indices.tolist())
    assert not held & kept and len(held | kept) == 128
    # the held-out images come without augmentation: the same array for any epoch
    a, b = t.val_set.get(0, seed=0, epoch=0), t.val_set.get(0, seed=0, epoch=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert t.run() == 0
    results = json.loads((tmp_path / "v" / "results.json").read_text())
    assert 0 <= results["test_top1"] <= 1 and "test top-1" in capsys.readouterr().out
    default = _trainer(_args(idx_root, tmp_path / "d"))  # 1/12 of 128, at most 5000
    assert (len(default.train_set), len(default.val_set)) == (118, 10)
    with pytest.raises(UsageError, match=r"--val-split: expected 0 <= N < 128 .*got 128"):
        _trainer(_args(idx_root, tmp_path / "e", "--val-split", "128"))


def test_evaluate_takes_pretrained_weights(tmp_path, capsys):
    from minidl.tools import evaluate as ev
    root = make_ilsvrc(tmp_path / "imagenet")
    src = models.create("lenet5", num_classes=6, in_chans=3)  # the ILSVRC layout is RGB
    mio.save(src, tmp_path / "w.safetensors")
    assert ev.main(["--pretrained", str(tmp_path / "w.safetensors"), "--model", "lenet5", "--data", root,
                    "--image-size", "28", "--val-resize", "32", "--output", str(tmp_path / "e.json")]) == 0
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["samples"] == 12 and record["dataset"] == "imagenet"
    other = models.create("lenet5", num_classes=7)
    mio.save(other, tmp_path / "w7.safetensors")
    assert ev.main(["--pretrained", str(tmp_path / "w7.safetensors"), "--model", "lenet5", "--data", root,
                    "--image-size", "28", "--val-resize", "32"]) != 0
    assert "mis-shaped keys" in capsys.readouterr().err


def test_a_folder_without_val_holds_out_part_of_train(tmp_path):
    """--dataset folder without val/: validation is a seeded part of train/ (default 1/12,
    at most 5000), never the training images themselves; --val-split 0 is refused."""
    import shutil
    root = make_ilsvrc(tmp_path / "pets")
    shutil.rmtree(os.path.join(root, "val"))
    argv = ["--model", "lenet5", "--dataset", "folder", "--data", root, "--image-size", "28",
            "--batch-size", "4", "--epochs", "1", "--recipe", "none", "--output", str(tmp_path / "run")]
    t = _trainer(argv)
    n = 6 * 6 + 1  # six classes of six images and the corrupt one
    assert len(t.val_set) == n // 12 and len(t.train_set) == n - n // 12 and t.test_set is None
    assert not set(t.val_set.indices) & set(t.train_set.indices)
    assert t.run() == 0
    t = _trainer(argv[:-1] + [str(tmp_path / "run12"), "--val-split", "12"])
    assert len(t.val_set) == 12
    with pytest.raises(UsageError, match="has no val/ folder.*expected N > 0, got 0"):
        _trainer(argv[:-1] + [str(tmp_path / "run0"), "--val-split", "0"])
