"""The command lines in everyday use: run logs (steps.csv, train accuracy, timestamps,
TensorBoard), minidl-plot, the matplotlib note, minidl-predict on folders and globs with
--output, one-line device errors, defaults in every flag's help, available_devices."""
import argparse
import csv
import importlib.util
import json
import re
import sys
from datetime import datetime

import numpy as np
import pytest

import minidl
from minidl.tools import evaluate, plot, predict, train
from test_cli_reliability import _argv, _cli, idx_root  # noqa: F401  (idx_root is a fixture)

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAS_TENSORBOARDX = importlib.util.find_spec("tensorboardX") is not None


@pytest.fixture(scope="module")
def logged_run(idx_root, tmp_path_factory):  # noqa: F811
    """Two epochs of two steps each, a steps.csv row per step, TensorBoard where available."""
    out = tmp_path_factory.mktemp("logged") / "run"
    extra = ["--log-interval", "1"]
    if HAS_TENSORBOARDX:
        extra += ["--tensorboard", str(out.parent / "tb")]
    assert train.main(_argv(idx_root, out, *extra)) == 0
    return out


def test_steps_csv_has_a_row_per_interval_with_timestamps(logged_run):
    with open(logged_run / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [float(r["epoch"]) for r in rows] == [0.5, 1.0, 1.5, 2.0]
    for r in rows:
        assert np.isfinite(float(r["loss"])) and float(r["lr"]) > 0 and float(r["images_per_s"]) > 0
        assert datetime.fromisoformat(r["time"]).tzinfo is not None


def test_epoch_records_have_train_accuracy_and_a_timestamp(logged_run):
    records = [json.loads(line) for line in (logged_run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert 0.0 <= r["train_top1"] <= 1.0
        assert datetime.fromisoformat(r["time"]).tzinfo is not None


@pytest.mark.skipif(not HAS_TENSORBOARDX, reason="tensorboardX (the 'tensorboard' extra) is not installed")
def test_tensorboard_event_files_are_written(logged_run):
    events = list((logged_run.parent / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_tensorboard_without_tensorboardx_is_a_one_line_error(idx_root, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    code, err, _ = _cli(train.main, _argv(idx_root, tmp_path / "run", "--tensorboard", str(tmp_path / "tb")),
                        capsys)
    assert code == 2
    assert err.strip() == ('minidl-train: error: --tensorboard needs tensorboardX, an optional extra: '
                           'pip install -e ".[tensorboard]" in the minidl clone')


def test_training_without_matplotlib_says_so_once(idx_root, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, err, out = _cli(train.main, _argv(idx_root, tmp_path / "run"), capsys)
    assert code == 0
    assert err.count("matplotlib is not installed") == 1
    assert 'pip install -e ".[plot]"' in err and f"minidl-plot {tmp_path / 'run'}" in err
    assert "curves" not in out and not (tmp_path / "run" / "curves.png").exists()


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (the 'plot' extra) is not installed")
def test_minidl_plot_redraws_the_curves(logged_run, tmp_path, capsys):
    target = tmp_path / "again.png"
    assert plot.main([str(logged_run), "--output", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, err, _ = _cli(plot.main, [str(tmp_path)], capsys)
    assert code == 2 and "holds no log.jsonl" in err


def test_predict_takes_folders_and_globs_and_writes_json_and_csv(logged_run, tmp_path, capsys):
    from PIL import Image
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    for i, name in enumerate(("b.png", "a.png")):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(other / "c.png")
    (other / "broken.png").write_text("not an image")
    expected = [str(folder / "a.png"), str(folder / "b.png"), str(other / "broken.png"), str(other / "c.png")]
    for output in ("p.json", "p.csv"):
        code, _, out = _cli(predict.main, [str(tmp_path / "images"), str(other / "*.png"), "--top", "2",
                                           "--weights", str(logged_run), "--output", str(tmp_path / output)],
                            capsys)
        assert code == 1   # broken.png was skipped
        assert re.findall(r"^(\S+):$", out, re.M) == [p for p in expected if "broken" not in p]
    records = json.loads((tmp_path / "p.json").read_text())
    assert [r["image"] for r in records] == expected
    assert "error" in records[2]
    for r in records[:2] + records[3:]:
        assert [p["rank"] for p in r["predictions"]] == [1, 2]
        assert r["predictions"][0]["probability"] >= r["predictions"][1]["probability"]
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == [p for p in expected for _ in range(1 if "broken" in p else 2)]
    first = records[0]["predictions"][0]
    assert rows[0]["class"] == first["class"] and abs(float(rows[0]["probability"]) - first["probability"]) < 1e-6
    code, err, _ = _cli(predict.main, [str(tmp_path / "nothing*.png"), "--weights", str(logged_run)], capsys)
    assert code == 2 and "no file matches the pattern" in err
    code, err, _ = _cli(predict.main, ["x.png", "--weights", str(logged_run), "--output", "p.txt"], capsys)
    assert code == 2 and "expected a .json or .csv file name" in err


def test_available_devices_lists_only_working_devices():
    devices = minidl.available_devices()
    assert devices[0] == "cpu" and "emu" in devices
    assert ("cuda" in devices) == minidl.cuda.is_available()


@pytest.mark.skipif(minidl.cuda.is_available(), reason="the cuda device works on this machine")
@pytest.mark.parametrize("main, prog, extra", [(train.main, "minidl-train", []),
                                                (evaluate.main, "minidl-eval", ["--weights", "w"]),
                                                (predict.main, "minidl-predict", ["x.png", "--weights", "w"])])
def test_device_cuda_without_a_gpu_is_a_one_line_error(main, prog, extra, capsys):
    code, err, _ = _cli(main, ["--device", "cuda", *extra], capsys)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: argument --device: device 'cuda' is not available: ")
    assert "pip install" in last or "GPU" in last or "nvcc" in last


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.mark.parametrize("main", [train.main, evaluate.main, predict.main, plot.main],
                         ids=["train", "evaluate", "predict", "plot"])
def test_every_flag_shows_its_default_in_help(main, monkeypatch):
    def capture(parser, *args, **kwargs):
        raise _Parsed(parser)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed) as parsed:
        main([])
    missing = [a.option_strings[0] for a in parsed.value.parser._actions
               if a.option_strings and not a.required and a.dest != "help" and "default" not in (a.help or "")]
    assert missing == []
    parsed.value.parser.format_help()   # every help string formats


def test_a_resumed_run_continues_steps_csv_without_repeating_steps(idx_root, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    assert train.main(_argv(idx_root, out, "--log-interval", "1", "--max-steps", "3")) == 0
    with open(out / "steps.csv", "a") as f:
        f.write("4,2.0000,0.5,0.01,100.0,")   # a row cut off by a kill
    assert train.main(["--resume", str(out / "last.json")]) == 0
    with open(out / "steps.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
