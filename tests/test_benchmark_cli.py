"""benchmarks/cpu_ops.py: its help example selects a case; an --only that selects
nothing is an error naming the cases."""
import importlib.util
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
