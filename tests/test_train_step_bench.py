"""benchmarks/train_step.py as a CI-sized smoke test on the emu device: one resnet18
training step of batch 2 through the emulated CUDA kernels, with the backend's
per-step counts of kernel launches and host-device transfers in the report."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(600)
def test_train_step_emu_smoke(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "train_step.py"), "--device", "emu",
           "--models", "resnet18", "--batch-sizes", "2", "--image-size", "16", "--warmup", "0",
           "--steps", "1", "--rounds", "1", "--threads", "1", "--out-dir", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=580)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "train_step.json").read_text())
    (row,) = report["rows"]
    assert "error" not in row, row
    counts = row["minidl"]["counters_per_step"]
    # the data stays on the device: a step only launches kernels (emu watches its host reads:
    # float(), .item() and the like on its arrays count as device_to_host)
    assert counts["launches"] > 100  # resnet18: convolutions, BN, ReLU, pooling, SGD, ... fwd and bwd
    assert counts["device_to_host"] == 0 and counts["host_to_device"] == 0
    assert report["torch"] is None and row["minidl"]["images_per_s_median"] > 0
    md = (tmp_path / "train_step.md").read_text()
    assert f"{counts['launches']:.0f} kernel launches" in md and "0 device-to-host transfers" in md
