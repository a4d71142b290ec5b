"""benchmarks/cpu_ops.py: its help example selects a case; an --only that selects
nothing is an error naming the cases; --model lists a zoo model's layers with their uses and
sums their times by them."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "cpu_ops.py"


def _load():
    spec = importlib.util.spec_from_file_location("cpu_ops", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_help_example_matches_a_case():
    cpu_ops = _load()
    example = re.search(r"--only '([^']+)'", cpu_ops.__doc__).group(1)
    assert [name for name in cpu_ops.CASES if example.lower() in name.lower()]


def test_an_only_that_matches_nothing_is_an_error(capsys):
    cpu_ops = _load()
    with pytest.raises(SystemExit) as exit_info:
        cpu_ops.main(["--only", "no such op", "--no-torch"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--only 'no such op' matches no case" in err and "softmax-CE (256,1000)" in err


def test_model_cases_lists_each_distinct_layer_with_its_uses():
    cpu_ops = _load()
    cases, uses = cpu_ops.model_cases("resnet18", batch=2, image_size=32)
    assert sum(uses.values()) == 21  # resnet18: 20 convolutions and one linear layer
    assert set(cases) == set(uses)
    kind, stem = cases["conv 7x7/2 3->64 @32x32 p3 b2"]
    assert kind == "conv" and stem["x"] == (2, 3, 32, 32) and stem["w"] == (64, 3, 7, 7)
    assert uses["conv 3x3 64->64 @8x8 p1 b2"] == 4  # layer1: two blocks of two
    assert cases["linear 512->1000 (2 rows)"] == ("linear", dict(x=(2, 512), w=(1000, 512)))


def test_a_model_run_times_each_gradient_apart_and_sums_by_uses(tmp_path, monkeypatch):
    import numba
    cpu_ops = _load()
    out = tmp_path / "layers.json"
    threads = str(numba.get_num_threads())  # (main sets both; this process keeps its own)
    monkeypatch.setenv("MINIDL_NUM_THREADS", threads)
    cpu_ops.main(["--model", "resnet18", "--batch", "2", "--image-size", "32", "--only", "3x3 64->64",
                  "--rounds", "1", "--reps", "1", "--threads", threads, "--no-torch", "--out", str(out)])
    result = json.loads(out.read_text())
    assert [(r["mode"], r["uses"]) for r in result["rows"]] == [("fwd", 4), ("fwd+dx", 4), ("fwd+dw", 4)]
    for r in result["rows"]:
        assert result["totals"][r["mode"]]["minidl_ms"] == pytest.approx(4 * r["minidl_ms"])
