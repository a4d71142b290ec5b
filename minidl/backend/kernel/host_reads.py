"""Counting the host's reads of emu device arrays, the way a GPU would feel them.

On ``cuda`` every ``float(a)``, ``int(a)``, ``bool(a)``, ``a.item()`` or ``a.tolist()``
of a device array copies it to the host and waits for the device.  On ``emu`` the
device arrays are NumPy arrays, so the same line costs nothing and would go unseen.
While :meth:`KernelBackend.watch_host_reads` is on, emu hands out its arrays as
:class:`DeviceArray` views, which count those implicit reads as ``device_to_host``,
and keeps the results of NumPy operations on them (0-d reductions and indexing
included) on the "device", so a read two operations later is still counted.

Arrays made before the watch began, or by NumPy from plain arrays only, are not
watched: the count is a lower bound, exact for a step whose arrays the backend made.
"""
from __future__ import annotations

import numpy as np


class DeviceArray(np.ndarray):
    """An emu device array whose scalar conversions count as host reads."""

    counts = None  # the watching backend's counters, or None

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return super().__array_wrap__(arr, context, False)  # 0-d results stay arrays

    def __array_function__(self, func, types, args, kwargs):
        return on_device(super().__array_function__(func, types, args, kwargs))

    def __getitem__(self, key):
        return on_device(super().__getitem__(key))

    def argmax(self, *args, **kwargs):
        return on_device(super().argmax(*args, **kwargs))

    def argmin(self, *args, **kwargs):
        return on_device(super().argmin(*args, **kwargs))

    def _host(self):
        if DeviceArray.counts is not None:
            DeviceArray.counts["device_to_host"] += 1
        return self.view(np.ndarray)

    def __float__(self):
        return float(self._host())

    def __int__(self):
        return int(self._host())

    def __index__(self):
        return self._host().__index__()

    def __bool__(self):
        return bool(self._host())

    def __complex__(self):
        return complex(self._host())

    def item(self, *args):
        return self._host().item(*args)

    def tolist(self):
        return self._host().tolist()


def on_device(result):
    """``result`` of a NumPy call with watched arguments, as watched arrays."""
    if isinstance(result, DeviceArray) or DeviceArray.counts is None:
        return result
    if isinstance(result, (np.ndarray, np.generic)):
        return np.asarray(result).view(DeviceArray)
    if isinstance(result, (tuple, list)):
        return type(result)(on_device(r) for r in result)
    return result
