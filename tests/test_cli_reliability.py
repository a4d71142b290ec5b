"""The CLIs never lose a run, never report what is not so, and answer misuse with one line.

* A misuse table: each case (argv + setup) run through a CLI's ``main(argv)`` in-process,
  with the one-line error it must give; a run folder touched by a case must keep every
  byte (``RUN_FILES_KEPT``).
* Run-folder safety: refusing an existing run, stale temp files and orphaned weights,
  a checkpoint before validation, ``best`` only on finite metrics, top-5 "n/a".
* Overrides on ``--resume``: applied to the restored optimizer and schedule, or refused.
* The soak test: 10 SIGKILLs at random moments of a small CPU run, each followed by
  ``--resume``, must end in weights bit-identical to an uninterrupted run.  It is marked
  ``slow``; run it alone with
  ``.venv/bin/python -m pytest -q tests/test_cli_reliability.py -m slow``.
"""
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minidl.tools import checkpoint as ckpt
from minidl.tools import evaluate, predict, run_folder, train
from test_train import ENV, make_idx_dataset, make_ilsvrc


# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fmnist"), n_train=64, n_test=32)


def _argv(idx_root, out, *extra):
    """A two-epoch LeNet-5 run of 2 steps per epoch."""
    return ["--model", "lenet5", "--dataset", "fashion-mnist", "--data", idx_root, "--batch-size", "32",
            "--epochs", "2", "--recipe", "none", "--lr", "0.05", "--sched", "cosine", "--val-split", "0",
            "--output", str(out), *extra]


@pytest.fixture(scope="module")
def finished_run(idx_root, tmp_path_factory):
    """A completed two-epoch run; cases copy it before touching it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train.main(_argv(idx_root, out)) == 0
    return out


def _copy_run(run, tmp_path, name="run"):
    target = tmp_path / name
    shutil.copytree(run, target)
    return target


def _digests(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in sorted(os.listdir(folder))}


def _cli(main, argv, capsys):
    """(exit status, stderr, stdout) of a CLI's main(argv), argparse exits included."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
        if isinstance(code, str):  # sys.exit("message"): printed by the interpreter, status 1
            print(code, file=sys.stderr)
            code = 1
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def _error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no error message"
    return lines[-1]


# ------------------------------------------------------------------ the misuse table
# (id, tool, setup(tmp_path, idx_root, finished_run) -> argv, expected error line (regex))
TOOLS = {"train": train.main, "eval": evaluate.main, "predict": predict.main}


def _copied(extra_args_of):
    """setup: a copy of the finished run, then argv from extra_args_of(run_copy, idx_root)."""
    def setup(tmp_path, idx_root, finished):
        run = _copy_run(finished, tmp_path)
        return extra_args_of(run, idx_root)
    return setup


def _fresh(*extra):
    return lambda tmp_path, idx_root, finished: _argv(idx_root, tmp_path / "new", *extra)


def _manifest_edit(edit, tag="last"):
    """A copy of the finished run with its manifest changed by edit(manifest) (or replaced
    by the text edit returns), resumed."""
    def setup(tmp_path, idx_root, finished):
        run = _copy_run(finished, tmp_path)
        path = run / f"{tag}.json"
        manifest = json.loads(path.read_text())
        result = edit(manifest)
        path.write_text(result if isinstance(result, str) else json.dumps(manifest))
        return ["--resume", str(path)]
    return setup


def _set(d, keys, value):
    for key in keys[:-1]:
        d = d[key]
    d[keys[-1]] = value


def _del(d, keys):
    for key in keys[:-1]:
        d = d[key]
    del d[keys[-1]]


def _output_is_a_file(tmp_path, idx_root, finished):
    (tmp_path / "afile").write_text("keep me")
    return _argv(idx_root, tmp_path / "afile")


def _eval_output_dir(tmp_path, idx_root, finished):
    run = _copy_run(finished, tmp_path)
    os.makedirs(tmp_path / "adir")
    return ["--weights", str(run / "best.json"), "--output", str(tmp_path / "adir")]


NUMBER = r"expected (a positive|a non-negative|a number in)"
CASES = [
    # values that cannot mean anything
    ("epochs-0", "train", _fresh("--epochs", "0"), r"argument --epochs: expected a positive integer, got '0'"),
    ("epochs-negative", "train", _fresh("--epochs", "-3"), r"argument --epochs: expected a positive integer"),
    ("epochs-word", "train", _fresh("--epochs", "two"), r"argument --epochs: expected a positive integer, got 'two'"),
    ("max-steps-0", "train", _fresh("--max-steps", "0"), r"argument --max-steps: expected a positive integer"),
    ("max-steps-negative", "train", _fresh("--max-steps", "-1"), r"argument --max-steps: " + NUMBER),
    ("limit-train-0", "train", _fresh("--limit-train-batches", "0"), r"argument --limit-train-batches: " + NUMBER),
    ("limit-val-0", "train", _fresh("--limit-val-batches", "0"), r"argument --limit-val-batches: " + NUMBER),
    ("limit-val-negative", "train", _fresh("--limit-val-batches", "-2"), r"argument --limit-val-batches: " + NUMBER),
    ("warmup-negative", "train", _fresh("--warmup-epochs", "-1"), r"argument --warmup-epochs: " + NUMBER),
    ("warmup-nan", "train", _fresh("--warmup-epochs", "nan"), r"argument --warmup-epochs: " + NUMBER),
    ("batch-size-0", "train", _fresh("--batch-size", "0"), r"argument --batch-size: " + NUMBER),
    ("lr-0", "train", _fresh("--lr", "0"), r"argument --lr: " + NUMBER),
    ("lr-inf", "train", _fresh("--lr", "inf"), r"argument --lr: " + NUMBER),
    ("workers-negative", "train", _fresh("--workers", "-1"), r"argument --workers: " + NUMBER),
    ("label-smoothing-1.5", "train", _fresh("--label-smoothing", "1.5"), r"argument --label-smoothing: " + NUMBER),
    ("checkpoint-minutes-negative", "train", _fresh("--checkpoint-minutes", "-5"),
     r"argument --checkpoint-minutes: " + NUMBER),
    ("unknown-model", "train", _fresh("--model", "lenet9"), r"error: .*'lenet9'"),
    ("folder-dataset-without-split", "train",
     lambda tmp, root, fin: _argv(root, tmp / "new", "--dataset", "folder", "--data", str(tmp)),
     r"error: --dataset folder: expected .*train.* \(with one subfolder per class\)"),
    # run folders
    ("existing-run", "train", _copied(lambda run, root: _argv(root, run)),
     r"error: --output .*run holds a previous run \(.*last\.json.*\); continue it with --resume .* or "
     r"replace it with --overwrite"),
    ("existing-run-one-epoch", "train", _copied(lambda run, root: _argv(root, run, "--epochs", "1")),
     r"holds a previous run"),
    ("output-is-a-file", "train", _output_is_a_file, r"error: --output .*afile is a file, expected a run folder"),
    ("resume-and-weights", "train",
     _copied(lambda run, root: ["--resume", str(run), "--weights", str(run / "best.json")]),
     r"error: --weights cannot be combined with --resume"),
    # checkpoints that are missing, partial or hand-edited
    ("resume-missing", "train", lambda tmp, root, fin: ["--resume", str(tmp / "nothing")], r"does not exist"),
    ("resume-truncated-manifest", "train", _manifest_edit(lambda m: json.dumps(m)[:200]),
     r"is not a readable JSON manifest"),
    ("resume-manifest-not-an-object", "train", _manifest_edit(lambda m: "[1, 2]"),
     r"expected a manifest with format 'minidl-checkpoint-1'"),
    ("resume-manifest-without-files", "train", _manifest_edit(lambda m: _del(m, ["files"])),
     r"error: checkpoint .*last\.json.*: expected 'files'"),
    ("resume-manifest-files-a-list", "train", _manifest_edit(lambda m: _set(m, ["files"], [1])),
     r"error: checkpoint .*: expected 'files'"),
    ("resume-manifest-without-weights-name", "train", _manifest_edit(lambda m: _del(m, ["files", "weights", "name"])),
     r"error: checkpoint .*: expected 'files'"),
    ("resume-manifest-path-escape", "train",
     _manifest_edit(lambda m: _set(m, ["files", "weights", "name"], "../../etc/passwd")),
     r"error: checkpoint .*: its weights file '\.\./\.\./etc/passwd' is not a file name in the checkpoint's folder"),
    ("resume-manifest-without-rng", "train", _manifest_edit(lambda m: _del(m, ["rng"])),
     r"error: checkpoint .*: expected 'rng'"),
    ("resume-manifest-bad-rng", "train", _manifest_edit(lambda m: _set(m, ["rng", "numpy"], "x")),
     r"error: checkpoint .*: its RNG state"),
    ("resume-manifest-without-config", "train", _manifest_edit(lambda m: _del(m, ["train_state", "config"])),
     r"error: checkpoint .*was not written by minidl-train"),
    ("resume-manifest-without-lr", "train", _manifest_edit(lambda m: _del(m, ["train_state", "config", "lr"])),
     r"error: checkpoint .*: its settings lack \['lr'\]"),
    ("resume-manifest-bad-progress", "train",
     _manifest_edit(lambda m: _set(m, ["train_state", "progress", "epoch"], "two")),
     r"error: checkpoint .*was not written by minidl-train"),
    ("resume-manifest-bad-scheduler", "train", _manifest_edit(lambda m: _set(m, ["scheduler"], [3])),
     r"error: checkpoint .*: its scheduler state"),
    ("resume-manifest-bad-optimizer", "train", _manifest_edit(lambda m: _set(m, ["optimizer"], {"scalars": 3})),
     r"error: checkpoint .*: its optimizer state does not fit SGD"),
    ("resume-a-weights-file", "train",
     _copied(lambda run, root: ["--resume", ckpt.weights_path(run / "last.json")]),
     r"error: checkpoint: expected a checkpoint manifest \(\.json\), got the weights file .*; use it with --weights"),
    ("resume-weights-only", "train", _copied(lambda run, root: ["--resume", str(run / "best.json")]),
     r"holds weights only"),
    ("resume-wrong-sha", "train",
     _manifest_edit(lambda m: _set(m, ["files", "weights", "sha256"], "0" * 64)), r"SHA-256"),
    # flags that cannot change on --resume
    ("resume-other-model", "train", _copied(lambda run, root: ["--resume", str(run), "--model", "alexnet"]),
     r"error: --model cannot change on --resume \(the checkpoint's is 'lenet5'\)"),
    ("resume-other-batch-size", "train", _copied(lambda run, root: ["--resume", str(run), "--batch-size", "16"]),
     r"error: --batch-size cannot change on --resume"),
    ("resume-other-optimizer", "train", _copied(lambda run, root: ["--resume", str(run), "--opt", "adam"]),
     r"error: --opt cannot change on --resume"),
    ("resume-recipe", "train", _copied(lambda run, root: ["--resume", str(run), "--recipe", "resnet"]),
     r"error: --recipe cannot change on --resume"),
    ("resume-fewer-epochs", "train", _copied(lambda run, root: ["--resume", str(run), "--epochs", "1"]),
     r"error: --epochs 1: the checkpoint has already completed 2 epochs"),
    ("resume-into-another-run", "train",
     lambda tmp, root, fin: ["--resume", str(_copy_run(fin, tmp, "a")), "--output", str(_copy_run(fin, tmp, "b"))],
     r"holds a previous run"),
    # minidl-eval
    ("eval-limit-0", "eval", lambda tmp, root, fin: ["--weights", str(fin), "--limit-batches", "0"],
     r"argument --limit-batches: expected a positive integer"),
    ("eval-batch-size-negative", "eval", lambda tmp, root, fin: ["--weights", str(fin), "--batch-size", "-4"],
     r"argument --batch-size: expected a positive integer"),
    ("eval-scales-negative", "eval", lambda tmp, root, fin: ["--weights", str(fin), "--scales", "256,-1"],
     r"argument --scales: expected a positive integer, got '-1'"),
    ("eval-output-is-a-dir", "eval", _eval_output_dir, r"error: cannot write the results to .*adir: Is a directory"),
    ("eval-hand-edited-manifest", "eval",
     lambda tmp, root, fin: ["--weights", _manifest_edit(lambda m: _del(m, ["files"]), "best")(tmp, root, fin)[1]],
     r"error: checkpoint .*best\.json.*: expected 'files'"),
    # minidl-predict
    ("predict-top-0", "predict", lambda tmp, root, fin: ["x.png", "--weights", str(fin), "--top", "0"],
     r"argument --top: expected a positive integer"),
    ("predict-weights-missing", "predict", lambda tmp, root, fin: ["x.png", "--weights", str(tmp / "no.json")],
     r"error: .*does not exist"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_misuse_gives_one_line_error(case, tmp_path, idx_root, finished_run, capsys):
    name, tool, setup, expected = case
    argv = setup(tmp_path, idx_root, finished_run)
    before = {p: _digests(p) for p in tmp_path.iterdir() if p.is_dir()}
    capsys.readouterr()
    code, err, _ = _cli(TOOLS[tool], argv, capsys)
    assert code == 2, (code, err)
    assert "Traceback" not in err
    line = _error_line(err)
    prog = {"train": "minidl-train", "eval": "minidl-eval", "predict": "minidl-predict"}[tool]
    assert line.startswith(f"{prog}: error: "), line
    assert re.search(expected, line), line
    for folder, digests in before.items():  # nothing in a run folder was changed or deleted
        assert _digests(folder) == digests, folder


END_TO_END = ("epochs-0", "existing-run", "resume-manifest-path-escape", "eval-output-is-a-dir")
MODULES = {"train": "minidl.tools.train", "eval": "minidl.tools.evaluate", "predict": "minidl.tools.predict"}


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in END_TO_END], ids=END_TO_END)
def test_misuse_end_to_end(case, tmp_path, idx_root, finished_run):
    """A few table cases through the real command (python -m), as a user runs them."""
    name, tool, setup, expected = case
    argv = setup(tmp_path, idx_root, finished_run)
    before = {p: _digests(p) for p in tmp_path.iterdir() if p.is_dir()}
    run = subprocess.run([sys.executable, "-m", MODULES[tool], *argv], env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert re.search(expected, _error_line(run.stderr)), run.stderr
    for folder, digests in before.items():
        assert _digests(folder) == digests, folder


# ------------------------------------------------------------------ run folders
def test_overwrite_replaces_the_previous_run(finished_run, idx_root, tmp_path, capsys):
    run = _copy_run(finished_run, tmp_path)
    old = ckpt.load_checkpoint(run).manifest["files"]["weights"]["name"]
    (run / "eval.json").write_text("{}")
    assert train.main(_argv(idx_root, run, "--epochs", "1", "--overwrite")) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1]
    assert not (run / old).exists() and not (run / "eval.json").exists()
    assert ckpt.load_checkpoint(run).train_state["progress"]["epoch"] == 1


def test_stale_temp_files_and_orphans_are_removed(finished_run, idx_root, tmp_path, capsys):
    run = _copy_run(finished_run, tmp_path)
    ours = [".last.json.k2j4_x9a.tmp", ".last-00000004-0123abcd.safetensors.a8b7c6d5.tmp",
            "last-00000003-89abcdef.safetensors", "last-00000003-89abcdef.optim.safetensors",
            "best-00000002-fedcba98.safetensors"]
    foreign = ["notes.tmp", ".hidden.tmp", "my-weights.safetensors", "last-3-x.safetensors", "data.json"]
    for name in ours + foreign:
        (run / name).write_bytes(b'{"a": 1}')
    named = {e["name"] for tag in ("last", "best")
             for e in json.loads((run / f"{tag}.json").read_text())["files"].values()}
    assert ckpt.remove_stale_files(run) == sorted(ours)
    assert set(os.listdir(run)) == set(os.listdir(finished_run)) | set(foreign)
    assert named <= set(os.listdir(run))
    ckpt.load_checkpoint(run)  # the checkpoints in use are whole

    for name in ours:  # the next start of minidl-train does the same
        (run / name).write_bytes(b"x")
    assert train.main(["--resume", str(run), "--epochs", "3"]) == 0
    left = set(os.listdir(run))
    assert not left & set(ours) and set(foreign) <= left
    assert re.search(r"removed 5 stale file\(s\) of an interrupted write", capsys.readouterr().err)
    assert ckpt.load_checkpoint(run).train_state["progress"]["epoch"] == 3


def test_orphans_are_kept_when_a_manifest_is_unreadable(tmp_path):
    """Which files a corrupt manifest names is unknown: none of them is deleted."""
    (tmp_path / "best.json").write_text('{"format": "minidl-checkpoint-1", "fi')
    (tmp_path / "best-00000002-fedcba98.safetensors").write_bytes(b"x")
    (tmp_path / ".best.json.abcd1234.tmp").write_bytes(b"x")
    removed = ckpt.remove_stale_files(tmp_path)
    assert removed == [".best.json.abcd1234.tmp"]
    assert (tmp_path / "best-00000002-fedcba98.safetensors").exists()


def test_a_kill_during_validation_loses_no_epoch(idx_root, tmp_path, monkeypatch, capsys):
    """The epoch's checkpoint is written before validation: a failure there keeps it."""
    out = tmp_path / "run"

    def broken(*args, **kwargs):
        raise MemoryError("validation ran out of memory (simulated)")

    monkeypatch.setattr(train, "evaluate", broken)
    with pytest.raises(MemoryError):
        train.main(_argv(idx_root, out))
    progress = ckpt.load_checkpoint(out).train_state["progress"]
    assert (progress["epoch"], progress["batch"], progress["step"]) == (0, 2, 2)
    monkeypatch.undo()
    assert train.main(["--resume", str(out)]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_empty_validation_set_is_a_startup_error(tmp_path, capsys):
    root = make_ilsvrc(tmp_path / "imagenet", wnids=("n01", "n02"), per_class=4, per_val=1)
    for wnid in ("n01", "n02"):  # every validation image unreadable
        folder = tmp_path / "imagenet" / "val" / wnid
        for name in os.listdir(folder):
            (folder / name).write_bytes(b"not an image")
    out = tmp_path / "run"
    code, err, _ = _cli(train.main, ["--model", "lenet5", "--dataset", "imagenet", "--data", root,
                                  "--image-size", "28", "--batch-size", "4", "--epochs", "1",
                                  "--recipe", "none", "--output", str(out)], capsys)
    assert code == 2
    assert re.search(r"^minidl-train: error: the validation set: none of the first 2 images .* could be "
                     r"decoded", _error_line(err)), err
    assert not out.exists() or not os.listdir(out)

    empty = make_idx_dataset(tmp_path / "empty", n_train=64, n_test=0)
    code, err, _ = _cli(train.main, _argv(empty, out), capsys)
    assert code == 2
    assert re.search(r"^minidl-train: error: the validation set of --dataset fashion-mnist is empty",
                     _error_line(err)), err


# ------------------------------------------------------------------ failing writes
def _fail_writes(monkeypatch, err, after=0):
    """Every atomic write after the first ``after`` raises OSError(err)."""
    from minidl import io as mio
    real = mio.atomic_write
    calls = {"n": 0}

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(err, os.strerror(err), os.fspath(path))
        return real(path, data)

    monkeypatch.setattr(mio, "atomic_write", failing)


def test_disk_full_at_the_first_checkpoint(idx_root, tmp_path, monkeypatch, capsys):
    _fail_writes(monkeypatch, errno.ENOSPC)
    code, err, _ = _cli(train.main, _argv(idx_root, tmp_path / "run"), capsys)
    assert code == 2 and "Traceback" not in err
    line = _error_line(err)
    assert re.search(r"^minidl-train: error: No space left on device \(.*\); "
                     r"no checkpoint of this run was written$", line), line
    assert "intact" not in err


def test_disk_full_later_names_the_last_checkpoint(idx_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _fail_writes(monkeypatch, errno.ENOSPC, after=4)  # 1st checkpoint: weights, optimizer, manifest
    code, err, _ = _cli(train.main, _argv(idx_root, out), capsys)
    assert code == 2 and "Traceback" not in err
    line = _error_line(err)
    match = re.search(r"No space left on device \(.*\); the latest complete checkpoint is (\S+) "
                      r"\(epoch 1, batch 2, step 2\)$", line)
    assert match, line
    monkeypatch.undo()
    assert ckpt.load_checkpoint(match.group(1)).train_state["progress"]["step"] == 2


def test_read_only_file_system(idx_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    os.makedirs(out)

    def read_only_open(path, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return open(path, mode, *args, **kwargs)

    _fail_writes(monkeypatch, errno.EROFS)
    monkeypatch.setattr(run_folder, "open", read_only_open, raising=False)
    code, err, _ = _cli(train.main, _argv(idx_root, out), capsys)
    assert code == 2 and "Traceback" not in err
    assert re.search(r"^minidl-train: error: Read-only file system \(.*log\.jsonl\); "
                     r"no checkpoint of this run was written$", _error_line(err))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_nonfinite_stop_states_the_checkpoint_truthfully(idx_root, tmp_path, capsys):
    code, err, _ = _cli(train.main, _argv(idx_root, tmp_path / "nan", "--lr", "1e30"), capsys)
    assert code != 0
    line = _error_line(err)
    assert "the loss is" in line and "no checkpoint of this run was written" in line and "intact" not in line


# ------------------------------------------------------------------ best and non-finite metrics
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_best_is_chosen_on_finite_metrics_only(finished_run, idx_root, tmp_path, capsys):
    run = _copy_run(finished_run, tmp_path)
    best_before = _digests(run)["best.json"]
    weights_before = ckpt.weights_path(run / "best.json")
    code = train.main(["--resume", str(run), "--epochs", "3", "--lr", "1e30", "--skip-nonfinite"])
    assert code == 0
    out = capsys.readouterr().out
    assert re.search(r"epoch 3: .*metrics not finite.*'best' kept", out), out
    assert _digests(run)["best.json"] == best_before and os.path.exists(weights_before)
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 3 and record["finite"] is False


def test_top5_with_fewer_than_five_classes_is_na(tmp_path, capsys):
    root = make_ilsvrc(tmp_path / "imagenet", wnids=("n01", "n02", "n03"), per_class=4, per_val=2)
    out = tmp_path / "run"
    assert train.main(["--model", "lenet5", "--dataset", "imagenet", "--data", root, "--image-size", "28",
                       "--batch-size", "4", "--epochs", "1", "--recipe", "none", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"top-5 n/a", printed) and re.search(r"val top-5\s+n/a", printed)
    assert json.loads((out / "results.json").read_text())["val_top5"] is None

    assert evaluate.main(["--weights", str(out / "best.json"), "--data", root]) == 0
    assert re.search(r"top-5\s+n/a", capsys.readouterr().out)
    result = json.loads((out / "eval.json").read_text())
    assert result["top5"] is None and 0.0 <= result["top1"] <= 1.0


# ------------------------------------------------------------------ overrides on --resume
def _stopped_run(idx_root, out, *extra):
    assert train.main(_argv(idx_root, out, "--max-steps", "3", *extra)) == 0
    return out


def test_resume_overrides_are_applied(idx_root, tmp_path, capsys):
    out = _stopped_run(idx_root, tmp_path / "run", "--momentum", "0.9", "--wd", "1e-4")
    capsys.readouterr()
    flags = ["--lr", "0.01", "--epochs", "4", "--sched", "step", "--step-size", "1", "--gamma", "0.5",
             "--warmup-epochs", "0.5", "--momentum", "0.5", "--wd", "0.001", "--label-smoothing", "0.1"]
    given = train.parse_args(["--resume", str(out), *flags])
    checkpoint = ckpt.load_checkpoint(out)
    cfg = train.resolve_config(given, train.saved_settings(checkpoint))
    resumed = train.Trainer(cfg, checkpoint)
    note = capsys.readouterr().err
    assert re.search(r"note: --resume applies epochs 2 -> 4, .*lr 0\.05 -> 0\.01, momentum 0\.9 -> 0\.5, "
                     r"sched cosine -> step, .*from epoch 2, batch 1 on", note), note
    # the same settings from the start: the same schedule and hyperparameters from here on
    fresh = train.Trainer(train.resolve_config(train.parse_args(_argv(idx_root, tmp_path / "f", *flags))))
    assert type(resumed.scheduler) is type(fresh.scheduler)
    for t in (1.5, 2.0, 3.7):
        assert resumed.scheduler.lr_at(t) == fresh.scheduler.lr_at(t)
    for g, h in zip(resumed.optimizer.param_groups, fresh.optimizer.param_groups):
        assert {k: v for k, v in g.items() if k not in ("params", "lr")} == \
            {k: v for k, v in h.items() if k not in ("params", "lr")}
    assert resumed.cfg["label_smoothing"] == 0.1 and resumed.cfg["epochs"] == 4
    assert resumed.state["step"] == 3  # progress, momentum buffers: restored
    assert resumed.optimizer.state
    assert resumed.run() == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["lr"] == pytest.approx(fresh.scheduler.lr_at(3.5)[0])


def test_resume_without_overrides_says_nothing(idx_root, tmp_path, capsys):
    out = _stopped_run(idx_root, tmp_path / "run")
    capsys.readouterr()
    assert train.main(["--resume", str(out), "--workers", "0"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_help_documents_the_resume_rules(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--lr", "--epochs", "--sched", "--momentum", "--wd"):
        assert flag in text.split("applied to the restored optimizer and schedule")[1].split(".")[0]
    for flag in ("--model", "--batch-size", "--opt", "--recipe", "--seed"):
        assert flag in text.split("cannot change on --resume")[0].rsplit(".", 1)[-1]


# ------------------------------------------------------------------ minidl-predict
def test_predict_skips_bad_images_and_predicts_the_rest(finished_run, tmp_path, monkeypatch, capsys):
    from PIL import Image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # small bombs: the same code paths
    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 20), 200, np.uint8)).save(good)
    bomb = tmp_path / "bomb.png"  # over 2 x MAX_IMAGE_PIXELS: DecompressionBombError
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(bomb)
    warned = tmp_path / "warned.png"  # over MAX_IMAGE_PIXELS: DecompressionBombWarning
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(warned)
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    text = tmp_path / "text.png"
    text.write_text("not an image")
    images = [bomb, warned, good, truncated, text, tmp_path / "missing.png", good]
    code, err, out = _cli(predict.main, [*map(str, images), "--weights", str(finished_run)], capsys)
    assert code == 1
    assert "Traceback" not in err
    for bad in ("bomb.png", "warned.png", "truncated.png", "text.png", "missing.png"):
        assert re.search(rf"minidl-predict: skipping .*{bad}: ", err), (bad, err)
    assert "decompression bomb" in err.lower()
    predicted = re.findall(r"^(\S+):$", out, re.M)
    assert predicted == [str(good), str(good)], out
    assert len(re.findall(r"^  \d\. ", out, re.M)) == 10


# ------------------------------------------------------------------ soak: kill -9 and resume
_SOAK_ARGS = ["--model", "lenet5", "--dataset", "fashion-mnist", "--batch-size", "16", "--epochs", "6",
              "--recipe", "none", "--lr", "0.05", "--sched", "cosine", "--warmup-epochs", "0.5",
              "--checkpoint-minutes", "0", "--val-split", "0"]


def _start_training(argv, stderr_path):
    """A minidl-train process, once it has printed its start line (the model is built, the
    checkpoint restored); returns (process, monotonic time of that line)."""
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "minidl.tools.train", *argv], env=ENV,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = proc.stdout.readline()
    assert line.startswith("minidl-train: "), (line, open(stderr_path).read())
    return proc, time.monotonic()


def _step_on_disk(out):
    """The step of the 'last' checkpoint in ``out`` (0 without one)."""
    try:
        return json.loads((out / "last.json").read_text())["train_state"]["progress"]["step"]
    except FileNotFoundError:
        return 0


def _wait_for_step(out, proc, step):
    deadline = time.monotonic() + 120
    while _step_on_disk(out) < step:
        assert proc.poll() is None and time.monotonic() < deadline, f"no checkpoint of step {step}"
        time.sleep(0.005)
    return time.monotonic()


@pytest.mark.slow
def test_soak_kill_and_resume_is_bit_identical(tmp_path):
    """10 SIGKILLs at random moments of a run's training (mid-step, mid-save, mid-validation;
    a checkpoint after every step), each followed by a restart with --resume: the final
    weights and the per-epoch log equal an uninterrupted run's, bit for bit, and no stale
    file is left.  Each process is killed a random 0-2 steps' time after its first new
    checkpoint, so that every kill hits the training itself, not the start-up.
    About 30-60 s on 2 CPU cores; run it alone with
    ``.venv/bin/python -m pytest -q tests/test_cli_reliability.py -m slow``."""
    root = make_idx_dataset(tmp_path / "data", n_train=128, n_test=32)
    args = [*_SOAK_ARGS, "--data", root]
    steps = 6 * 8
    reference = tmp_path / "reference"
    proc, _ = _start_training([*args, "--output", str(reference)], tmp_path / "reference.err")
    first = _wait_for_step(reference, proc, 1)
    proc.communicate(timeout=300)
    assert proc.returncode == 0, (tmp_path / "reference.err").read_text()
    step_seconds = (time.monotonic() - first) / (steps - 1)  # validation and saves included

    out = tmp_path / "killed"
    rng = random.Random(1234)
    steps_at_kill = []
    for kill in range(10):
        argv = ["--resume", str(out)] if (out / "last.json").exists() else [*args, "--output", str(out)]
        proc, _ = _start_training(argv, tmp_path / f"kill{kill}.err")
        _wait_for_step(out, proc, _step_on_disk(out) + 1)
        time.sleep(rng.uniform(0.0, 2.0) * step_seconds)
        assert proc.poll() is None, f"the run ended before kill {kill + 1}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        steps_at_kill.append(_step_on_disk(out))
    assert steps_at_kill[-1] < steps, steps_at_kill
    proc, _ = _start_training(["--resume", str(out)], tmp_path / "final.err")
    proc.communicate(timeout=300)
    assert proc.returncode == 0, (tmp_path / "final.err").read_text()

    a, b = ckpt.load_checkpoint(reference), ckpt.load_checkpoint(out)
    assert a.train_state["progress"]["step"] == b.train_state["progress"]["step"] == steps
    for name, value in a.weights.items():
        assert np.array_equal(value, b.weights[name]), name
    records = [[json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
               for d in (reference, out)]
    keys = ("epoch", "step", "train_loss", "val_loss", "val_top1", "val_top5")
    assert [[r[k] for k in keys] for r in records[0]] == [[r[k] for k in keys] for r in records[1]]
    named = {e["name"] for tag in ("last", "best")
             for e in json.loads((out / f"{tag}.json").read_text())["files"].values()}
    left = {f for f in os.listdir(out) if f.endswith((".tmp", ".safetensors"))}
    assert left == named


def test_a_killed_atomic_write_leaves_a_recognised_temp(tmp_path, monkeypatch):
    """atomic_write's own temp names (not a hand-made example) match remove_stale_temps."""
    from minidl import io as mio

    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies between the write and the rename

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "unlink", lambda path: None)  # ... and so cleans nothing up
    for name in ("last.json", "last-00000001-0123abcd.safetensors"):
        with pytest.raises(KeyboardInterrupt):
            mio.atomic_write(tmp_path / name, b"data")
    monkeypatch.undo()
    temps = sorted(os.listdir(tmp_path))
    assert len(temps) == 2 and all(t.endswith(".tmp") for t in temps)
    (tmp_path / "keep.tmp").write_bytes(b"x")
    assert mio.remove_stale_temps(tmp_path) == temps
    assert os.listdir(tmp_path) == ["keep.tmp"]
