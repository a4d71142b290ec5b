"""Host-to-device copies that neither block the host nor wait behind queued kernels
(``Tensor.to("cuda", non_blocking=True)``, used by minidl-train for every batch).

A copy from pageable memory makes the host wait, and one on the compute stream waits
for the kernels queued before it.  Here each upload goes through one of two slots,
each a pinned host buffer and a device buffer owned by the uploader:

  1. the host copies the batch into the slot's pinned buffer (after waiting for that
     slot's previous host-to-device copy, two uploads ago, to finish);
  2. the copy stream copies pinned -> the slot's device buffer (asynchronous: pinned
     memory), after the compute stream has consumed the slot's previous batch;
  3. the compute stream waits for that copy and duplicates the slot into a fresh array
     of the memory pool (a device-to-device copy at HBM speed), which is returned.

So the PCIe transfer of batch k+1 runs while the kernels of step k still execute, the
returned array is an ordinary one (the caller may keep it), and the host array may be
reused as soon as ``upload`` returns.
"""
from __future__ import annotations

import numpy as np


class _Slot:
    def __init__(self):
        self.nbytes = 0
        self.pinned = None    # cupy.cuda.PinnedMemoryPointer
        self.device = None    # cupy.cuda.MemoryPointer, owned here (not the pool's)
        self.copied = None    # event: the slot's last host-to-device copy finished
        self.consumed = None  # event: the compute stream has copied the slot's data out


class PinnedUploader:
    def __init__(self, cupy, slots=2):
        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.slots = [_Slot() for _ in range(slots)]
        self.next = 0

    def upload(self, host):
        cp = self.cupy
        host = np.ascontiguousarray(host)
        slot = self.slots[self.next]
        self.next = (self.next + 1) % len(self.slots)
        if slot.copied is not None:
            slot.copied.synchronize()  # the pinned buffer is free again
        if slot.nbytes < host.nbytes:
            slot.nbytes = host.nbytes
            slot.pinned = cp.cuda.alloc_pinned_memory(host.nbytes)
            slot.device = cp.cuda.alloc(host.nbytes)  # stream-ordered uses are guarded below
        staging = np.frombuffer(slot.pinned, np.uint8, host.nbytes).view(host.dtype).reshape(host.shape)
        staging[...] = host
        compute = cp.cuda.get_current_stream()
        if slot.consumed is not None:
            self.stream.wait_event(slot.consumed)
        device = cp.ndarray(host.shape, host.dtype, memptr=slot.device)
        device.set(staging, stream=self.stream)
        slot.copied = self.stream.record()
        compute.wait_event(slot.copied)
        out = device.copy()  # on the compute stream, into the pool
        slot.consumed = compute.record()
        return out
