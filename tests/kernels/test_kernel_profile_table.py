"""benchmarks/kernel_profile.py: the emu profile of the memory-bound kernels, its
shapes, the sm_90 occupancy calculation and the nvcc resource parser, and the
>= 90% sector-efficiency / <= 1.1x ideal-bytes thresholds on the kernels that meet
them (benchmarks/results/emu_profile.md lists the ones that do not, with numbers)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import kernel_profile  # noqa: E402
import kernels as kernel_bench  # noqa: E402

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(os.environ.get("MINIDL_EMU_MODE") == "thread",
                                 reason="the kernel profiler needs MINIDL_EMU_MODE=fiber (kernels/emu/sanitize.sh "
                                        "runs in thread mode, without the profiler)")]

# entries (name substrings) whose every launch meets the thresholds in the profile
# (every memory-bound family of the GPU-step issue: elementwise, bias-add, fused add+ReLU,
# batch norm with and without the fused ReLU, max, average and global average pooling,
# depthwise; and softmax/cross-entropy rows up to 1024 classes)
MEETING_THRESHOLDS = ["relu fwd+bwd", "relu6 fwd+bwd", "sigmoid fwd+bwd", "silu fwd+bwd", "dropout fwd+bwd",
                      "SGD momentum", "bias_add fwd+bwd", "add+ReLU fwd+bwd", "BN-train fwd+bwd", "BN+ReLU fwd+bwd",
                      "maxpool 3x3/2", "avgpool 3x3/1", "avgpool 2x2/2", "global avgpool", "depthwise 3x3/1",
                      "softmax-CE fwd+bwd (256,1000)", "softmax-CE fwd+bwd (64,1000)", "log-softmax fwd+bwd"]


def test_profile_shape_keeps_layout_and_bounds_size():
    assert kernel_bench.profile_shape((8, 64, 112, 112)) == (1, 64, 28, 28)
    assert kernel_bench.profile_shape((64, 2048, 7, 7)) == (1, 1024, 7, 7)  # planes stay 7x7
    assert kernel_bench.profile_shape((256, 1000)) == (64, 1000)
    assert kernel_bench.profile_shape(25_557_032) <= kernel_bench.PROFILE_ELEMENTS
    assert kernel_bench.profile_shape((3, 50)) == (3, 50)  # small enough already


def test_occupancy_sm90():
    assert kernel_profile.occupancy(32, 0, 256) == 1.0
    # 48 registers: 1536 per warp, 12288 per 256-thread block -> 5 blocks = 40 of 64 warps
    assert kernel_profile.occupancy(48, 0, 256) == 40 / 64
    # shared memory bound: 100 KB + 1 KB reserved per block -> 2 blocks of 8 warps
    assert kernel_profile.occupancy(16, 100 * 1024, 256) == 16 / 64
    assert kernel_profile.occupancy(16, 0, 32) == 32 / 64  # 32 blocks per SM at most


def test_parse_resource_usage():
    out = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z1kIdEvPT_' for 'sm_90'
ptxas info    : Used 40 registers, used 0 barriers
ptxas info    : Compiling entry function '_Z1kIfEvPT_' for 'sm_90'
ptxas info    : Used 24 registers, used 1 barriers, 512 bytes smem
ptxas info    : Compiling entry function '_Z5plainPf' for 'sm_90'
ptxas info    : Used 8 registers, used 0 barriers
"""
    names = {"_Z1kIdEvPT_": "void k<double>(double*)", "_Z1kIfEvPT_": "void k<float>(float*)",
             "_Z5plainPf": "plain(float*)"}
    assert kernel_profile.parse_resource_usage(out, names.get) == {"k": (24, 512), "plain": (8, 0)}


@pytest.mark.parametrize("name", MEETING_THRESHOLDS)
def test_memory_bound_kernels_meet_thresholds(name):
    ctx = kernel_bench.Ctx("emu", "profile")
    rows = kernel_profile.profile_entries(kernel_bench.ENTRIES, ctx, only=name)
    assert rows, f"no memory-bound entry matches {name!r}"
    for r in rows:
        assert r["sector_efficiency"] >= kernel_profile.MIN_SECTOR_EFFICIENCY, r
        assert r["traffic_ratio"] <= kernel_profile.MAX_TRAFFIC_RATIO, r
        assert kernel_profile.meets_thresholds(r)
        assert r["h200_us"] > 0


def test_profile_flags_a_kernel_below_thresholds():
    # LRN reads each input once per window channel (size 5), from global memory
    ctx = kernel_bench.Ctx("emu", "profile")
    rows = kernel_profile.profile_entries(kernel_bench.ENTRIES, ctx, only="LRN size 5")
    fwd = next(r for r in rows if r["kernel"].startswith("lrn_forward"))
    assert fwd["traffic_ratio"] > kernel_profile.MAX_TRAFFIC_RATIO
    assert not kernel_profile.meets_thresholds(fwd)


@pytest.mark.parametrize("name", ["conv 3x3/1 64->64 fwd TF32", "conv 3x3/2 128->128 bwd float16"])
def test_tensor_core_convolutions_are_free_of_bank_conflicts(name):
    """The swizzled stage buffers of kernels/conv_tc.cuh: every shared-memory instruction
    of the TF32 forward (cp.async stores, ldmatrix, B fragment loads) and of the 16-bit
    strided backward (register-staged stores, ldmatrix) at the conflict-free minimum of
    wavefronts."""
    ctx = kernel_bench.Ctx("emu", "profile")
    rows = kernel_profile.profile_entries(kernel_bench.ENTRIES, ctx, only=name, select=kernel_profile.is_tensor_core)
    tc = [r for r in rows if r["kernel"].startswith("conv2d_tc")]
    assert len(tc) == (1 if "fwd" in name else 2), rows
    for r in tc:
        assert r["max_bank_conflict"] == 1 and r["bank_conflict"] == 1.0, r


def test_tensor_core_peak_by_card_and_format():
    assert kernel_bench.tensor_core_peak("NVIDIA H200", "tf32") == 494.7
    assert kernel_bench.tensor_core_peak("NVIDIA H100 80GB HBM3", "16bit") == 989.4
    assert kernel_bench.tensor_core_peak("NVIDIA H100 PCIe", "16bit") == 756.0
    assert kernel_bench.tensor_core_peak("NVIDIA H200", None) is None  # fp32 SIMT row
