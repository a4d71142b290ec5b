"""The tensor-core instructions of kernels/tensor_core.cuh (mma.sync, ldmatrix, cp.async)
through tensor_core_probe: one warp builds each lane's fragment registers by the PTX
ISA's layout tables, runs the instruction and writes the result back by the same
tables.  The expected values are computed here from those tables (written out below
from the PTX ISA's "Matrix Fragments" figures) and float64 arithmetic, so the
emulation (emu) and a GPU (cuda, where available) are checked against the same
reference.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import KERNEL_DEVICES as DEVICES  # emu, cuda (skipped with the reason); see conftest
from minidl.backend import get_backend

ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (bfloat16 on the host) is not installed")


def _probe(be, kind, a, b, c, out_size):
    arrays = [be.asarray(np.ascontiguousarray(v, dtype=np.float32)) for v in (a, b, c)]
    d = be.zeros((out_size,), np.float32)
    be.kernels.tensor_core_probe(kind, *(be._ptr(v) for v in arrays), be._ptr(d), be._stream())
    return be.to_numpy(d)


def tf32(x):
    """cvt.rna.tf32.f32: nearest, ties away from zero, to 10 mantissa bits."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x1000) & 0xFFFFE000).astype(np.uint32).view(np.float32)


def test_tf32_rounding_ties_away_from_zero():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -10)  # TF32 keeps 10 mantissa bits
    half = ulp / 2
    assert tf32(one + half) == one + ulp and tf32(-(one + half)) == -(one + ulp)  # ties away
    assert tf32(one + half * np.float32(0.99)) == one


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind,fmt", [(0, "tf32"), (1, "f16"), (2, "bf16")])
def test_mma_fragments_match_the_ptx_tables(device, kind, fmt):
    be = get_backend(device)
    rng = np.random.default_rng(kind)
    k = 8 if fmt == "tf32" else 16
    a = rng.standard_normal((16, k)).astype(np.float32)
    b = rng.standard_normal((k, 8)).astype(np.float32)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    rounded = {"tf32": tf32, "f16": lambda v: v.astype(np.float16),
               "bf16": lambda v: v.astype(ml_dtypes.bfloat16)}[fmt]
    want = rounded(a).astype(np.float64) @ rounded(b).astype(np.float64) + c
    got = _probe(be, kind, a, b, c, 16 * 8).reshape(16, 8)
    # products are exact in fp32; the sum of 8 or 16 of them rounds in fp32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # a fragment register in the wrong place would move whole rows or columns: also
    # check against the unrounded product, which differs by the format's rounding only
    assert np.abs(got - (a.astype(np.float64) @ b + c)).max() < {"tf32": 1e-2, "f16": 1e-2, "bf16": 1e-1}[fmt]


def _ldmatrix_table(count, trans):
    """What lane l holds, from the PTX ISA: matrix i's row r is at the address of lane
    8i + r; lane l receives M_i[l // 4][2 (l % 4)], M_i[l // 4][2 (l % 4) + 1], and with
    .trans M_i[2 (l % 4)][l // 4], M_i[2 (l % 4) + 1][l // 4].  Matrix i holds
    value i*64 + row*8 + col."""
    table = np.zeros((32, 2 * count))
    for lane in range(32):
        for i in range(count):
            for half in range(2):
                if trans:
                    row, col = 2 * (lane % 4) + half, lane // 4
                else:
                    row, col = lane // 4, 2 * (lane % 4) + half
                table[lane, 2 * i + half] = i * 64 + row * 8 + col
    return table


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind,count,trans", [(3, 4, False), (4, 4, True), (5, 2, False), (6, 1, True)],
                         ids=["x4", "x4_trans", "x2", "x1_trans"])
def test_ldmatrix_fragments_match_the_ptx_table(device, kind, count, trans):
    be = get_backend(device)
    z = np.zeros(1, np.float32)
    got = _probe(be, kind, z, z, z, 32 * 2 * count).reshape(32, 2 * count)
    np.testing.assert_array_equal(got, _ldmatrix_table(count, trans))


@pytest.mark.parametrize("device", DEVICES)
def test_cp_async_copies_after_the_wait_and_zero_fills_invalid_sources(device):
    be = get_backend(device)
    a = np.arange(1, 65, dtype=np.float32)
    z = np.zeros(1, np.float32)
    np.testing.assert_array_equal(_probe(be, 7, a, z, z, 64), a)
    want = a.copy().reshape(16, 4)
    want[1::2] = 0  # odd lanes' sources were invalid: zero-filled
    np.testing.assert_array_equal(_probe(be, 9, a, z, z, 64), want.reshape(-1))


def test_cp_async_without_the_wait_reads_stale_shared_memory_under_emu():
    """The emulation defers each copy to the wait_group that covers it: a kernel that
    forgets the wait fails its tests instead of passing by luck (on a GPU the result
    would be a race)."""
    be = get_backend("emu")
    a = np.arange(1, 65, dtype=np.float32)
    z = np.zeros(1, np.float32)
    np.testing.assert_array_equal(_probe(be, 8, a, z, z, 64), np.zeros(64, np.float32))
