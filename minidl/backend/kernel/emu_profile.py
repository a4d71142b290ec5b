"""The kernel profiler of the host emulation (``minidl._emu``; kernels/emu/profile.h).

While :func:`profile_emu` is active, every kernel launch of the emu device records, per
warp instruction, what a GPU would pay for it: global loads and stores with their
distinct bytes and distinct 32-byte sectors (coalescing), shared-memory accesses with
their wavefronts (bank conflicts), the bytes the launch touches at all (the ideal
traffic), threads, blocks and divergent basic blocks.  Counts are exact for the
emulated execution; times are a memory-roofline estimate, not a measurement.

    with profile_emu() as launches:
        be.relu(x)
    launches[0].sector_efficiency, launches[0].roofline_seconds(H200_BANDWIDTH)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

H100_BANDWIDTH = 3.35e12  # bytes/s, HBM3 peak of an H100 SXM
H200_BANDWIDTH = 4.8e12   # bytes/s, HBM3e peak of an H200
SECTOR = 32               # bytes


@dataclass
class LaunchProfile:
    """Totals of one kernel launch (field meanings as in kernels/emu/profile.h)."""
    name: str
    grid: tuple
    block: tuple
    dynamic_smem: int
    threads: int
    blocks: int
    load_instructions: int
    store_instructions: int
    load_bytes: int
    store_bytes: int
    load_sectors: int
    store_sectors: int
    ideal_load_bytes: int
    ideal_store_bytes: int
    shared_instructions: int
    shared_wavefronts: int
    shared_ideal_wavefronts: int
    shared_max_conflict: int
    warp_blocks: int
    divergent_blocks: int

    @property
    def moved_bytes(self) -> int:
        """Global traffic at sector granularity (every sector of every instruction)."""
        return SECTOR * (self.load_sectors + self.store_sectors)

    @property
    def ideal_bytes(self) -> int:
        """Each byte the launch reads, read once; each byte it writes, written once."""
        return self.ideal_load_bytes + self.ideal_store_bytes

    @property
    def sector_efficiency(self) -> float:
        """Requested bytes over the bytes of the sectors fetched (1.0: fully coalesced)."""
        moved = self.moved_bytes
        return (self.load_bytes + self.store_bytes) / moved if moved else 1.0

    @property
    def traffic_ratio(self) -> float:
        """Sector traffic over the ideal bytes (1.0: everything moved exactly once)."""
        return self.moved_bytes / self.ideal_bytes if self.ideal_bytes else 1.0

    @property
    def bank_conflict(self) -> float:
        """Shared wavefronts over the conflict-free minimum, averaged (1.0: none)."""
        ideal = self.shared_ideal_wavefronts
        return self.shared_wavefronts / ideal if ideal else 1.0

    @property
    def divergent_fraction(self) -> float:
        return self.divergent_blocks / self.warp_blocks if self.warp_blocks else 0.0

    def roofline_seconds(self, bandwidth: float) -> float:
        """The launch's time if DRAM moved its sector traffic at ``bandwidth`` bytes/s,
        the bound of a memory-bound kernel (compute and launch latency not counted)."""
        return self.moved_bytes / bandwidth


def _kernels():
    from minidl import _emu
    if not hasattr(_emu, "profile_start"):
        raise RuntimeError("profile_emu: this minidl._emu is a sanitizer build, which has no profiler")
    return _emu


@contextmanager
def profile_emu():
    """Record every emu kernel launch inside the block; yields a list that holds one
    :class:`LaunchProfile` per launch, in launch order, once the block exits.  Needs
    the fiber emulation mode (the default)."""
    kernels = _kernels()
    launches: list[LaunchProfile] = []
    kernels.profile_start()
    try:
        yield launches
    finally:
        launches.extend(LaunchProfile(**d) for d in kernels.profile_stop())
