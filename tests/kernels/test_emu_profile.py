"""The emu kernel profiler (kernels/emu/profile.h) on kernels with known access
patterns, and its figures on the real kernels of the emu backend."""
from __future__ import annotations

import os

import numpy as np
import pytest

import minidl
from minidl.backend import get_backend
from minidl.backend.kernel.emu_profile import H200_BANDWIDTH, profile_emu

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(os.environ.get("MINIDL_EMU_MODE") == "thread",
                                 reason="the kernel profiler needs MINIDL_EMU_MODE=fiber (kernels/emu/sanitize.sh "
                                        "runs in thread mode, without the profiler)")]


def _profile_selftest(name):
    with profile_emu() as launches:
        assert minidl._emu.emu_selftest(name) == "ok"
    assert len(launches) == 1
    return launches[0]


def test_coalesced_copy_is_fully_efficient():
    p = _profile_selftest("coalesced_copy")  # 256 floats, blocks of 64
    assert (p.blocks, p.threads) == (4, 256)
    assert (p.load_instructions, p.store_instructions) == (8, 8)  # one per warp each
    assert (p.load_bytes, p.store_bytes) == (1024, 1024)
    assert (p.load_sectors, p.store_sectors) == (32, 32)
    assert p.sector_efficiency == 1.0 and p.traffic_ratio == 1.0
    assert p.divergent_blocks == 0 and p.shared_instructions == 0


def test_stride_32_gather_uses_one_eighth_of_each_sector():
    p = _profile_selftest("strided_gather")
    assert p.load_sectors == 256            # one sector per lane
    assert p.load_bytes / (32 * p.load_sectors) == 1 / 8
    assert p.store_sectors == 32            # the output is written contiguously
    assert p.ideal_load_bytes == 1024       # 4 useful bytes per sector read


def test_shared_transpose_bank_conflicts():
    padded = _profile_selftest("transpose_padded")
    unpadded = _profile_selftest("transpose_unpadded")
    for p in (padded, unpadded):
        assert p.shared_instructions == 64  # 32 warps, one store and one load each
        assert p.sector_efficiency == 1.0
    assert padded.shared_max_conflict == 1 and padded.bank_conflict == 1.0
    assert unpadded.shared_max_conflict == 32
    # the stores are conflict-free, the column reads 32-way: (32 + 32*32) / 64
    assert unpadded.shared_wavefronts == 32 + 32 * 32


def test_lane_dependent_loop_is_divergent():
    p = _profile_selftest("lane_loop")
    assert 0 < p.divergent_blocks < p.warp_blocks


def test_profiles_backend_launches_and_estimates_time():
    be = get_backend("emu")
    x = be.asarray(np.random.default_rng(0).standard_normal(3000).astype(np.float32))
    with profile_emu() as launches:
        y = be.relu(x)
    np.testing.assert_array_equal(be.to_numpy(y), np.maximum(be.to_numpy(x), 0))
    (p,) = launches
    assert p.ideal_load_bytes == p.ideal_store_bytes == 3000 * 4
    assert p.load_bytes == p.store_bytes == 3000 * 4
    assert p.sector_efficiency > 0.99
    assert p.roofline_seconds(H200_BANDWIDTH) == pytest.approx(p.moved_bytes / 4.8e12)
    # profiling is off again: nothing is recorded outside the block
    be.relu(x)
    assert len(launches) == 1


def test_profiler_needs_fiber_mode(monkeypatch):
    monkeypatch.setenv("MINIDL_EMU_MODE", "thread")
    with pytest.raises(RuntimeError, match="profiler needs MINIDL_EMU_MODE=fiber"):
        with profile_emu():
            minidl._emu.emu_selftest("coalesced_copy")
