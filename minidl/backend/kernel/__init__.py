"""The kernel backends: ``cuda`` (CuPy arrays + minidl._cuda) and ``emu`` (NumPy
arrays + minidl._emu, the same CUDA kernels run by the host emulation).

One class, :class:`KernelBackend`, serves both: it differs only in the array module
(``xp``), the kernel module, how a raw pointer is read from an array and which stream
a launch goes to.  Generic ops come from :class:`~minidl.backend.base.Backend` over
``xp``; matmul is ``xp.matmul`` (cuBLAS through CuPy, or NumPy's BLAS for emu).

Kernel families live one per module (elementwise, optim, softmax, batchnorm, conv,
pool, lrn), as plain functions whose first argument is the backend (``be``), bound
below as methods under the contract's names.  They reach C++ through
:meth:`KernelBackend.launch`, which checks every array against what the launcher
will trust.

The backend counts what crosses the host boundary (:meth:`KernelBackend.stats`):
kernel launches, uploads (``asarray`` of data that is not a device array; on emu,
whose device arrays are NumPy arrays, only of non-array data) and downloads
(``to_numpy``, which also waits for the device: the backend's only synchronizing
operation).  On emu, :meth:`KernelBackend.watch_host_reads` also counts the implicit
reads (``float(a)``, ``a.item()``, ...) that would each be a sync on a GPU.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields

import numpy as np

from ...dtypes import bfloat16, float16
from ..base import Backend
from ..checks import check_array
from ..geometry import ConvGeometry, PoolGeometry, check_int32
from . import batchnorm, conv, elementwise, lrn, optim, pool, softmax
from .host_reads import DeviceArray
from .operand import Operand

COUNTERS = ("launches", "host_to_device", "device_to_host")
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", float16: "f16", bfloat16: "bf16"}


# Contract ops whose kernels take float16/bfloat16 arrays themselves (16-bit loads and
# stores, float compute: the CPU backend's widen-compute-round semantics; batch norm's
# per-channel vectors in float32); autograd
# widens the inputs of every other op to float32 (autograd/function.py).  sigmoid and
# (log-)softmax have 16-bit kernels too but are left out: their backwards read the
# forward OUTPUT, which widening keeps in float32 and a 16-bit forward would round (near
# y = 1 that costs the gradient its precision).  cross-entropy's 16-bit forward returns
# float32 log-probabilities, which its float32 backward reads.
HALF_NATIVE = frozenset({"relu", "relu_backward", "relu6", "relu6_backward", "silu", "silu_backward", "add_relu",
                         "bias_add", "bias_add_backward",
                         "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
                         "avg_pool2d_forward", "avg_pool2d_backward", "adaptive_avg_pool2d_forward",
                         "adaptive_avg_pool2d_backward", "lrn_forward", "lrn_backward",
                         "batch_norm_train_forward", "batch_norm_eval_forward", "batch_norm_backward",
                         "cross_entropy_forward", "cross_entropy_backward"})


class KernelBackend(Backend):
    """A backend whose fused ops run our CUDA kernels (on a GPU, or emulated)."""

    half_native = HALF_NATIVE  # the same for cuda and emu: one set of kernel sources

    reads_sync = True  # emu too: it stands for the GPU, whose host reads are syncs

    def __init__(self, name, xp, kernels, ptr, stream):
        self.name = name
        self.xp = xp
        self.kernels = kernels
        self._ptr = ptr
        self._stream = stream
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._uploader = None  # created by the first non-blocking upload (cuda)
        self._watching = False

    def stats(self):
        """Counts since the backend was made: {"launches", "host_to_device",
        "device_to_host"}; subtract two snapshots for the counts of a stretch of work."""
        return dict(self._counts)

    # ---------------------------------------------------------- kernel plumbing
    def launch(self, launcher, dtype, *args):
        """Run the bound launcher ``<launcher>_f32``/``_f64`` for ``dtype`` with ``args``
        and the stream.  Each :class:`Operand` is checked (C-contiguous, dtype, shape)
        and passed as its pointer, each geometry is range-checked for the kernels'
        int32 indexing and passed as its C++ struct; other arguments pass unchanged."""
        sfx = _SUFFIX.get(np.dtype(dtype))
        if sfx is None or not hasattr(self.kernels, f"{launcher}_{sfx}"):
            names = [str(d) for d, s in _SUFFIX.items() if hasattr(self.kernels, f"{launcher}_{s}")]
            raise TypeError(f"{launcher}: the {self.name} kernels take {', '.join(names[:-1])} or {names[-1]} "
                            f"arrays, got {np.dtype(dtype)}")
        converted = []
        for a in args:
            if isinstance(a, Operand):
                a = self._operand_ptr(launcher, a)
            elif isinstance(a, list) and a and isinstance(a[0], Operand):  # a tensor list (optimizers)
                a = [self._operand_ptr(launcher, o) for o in a]
            elif isinstance(a, (ConvGeometry, PoolGeometry)):
                a = self._geometry_struct(launcher, a)
            converted.append(a)
        getattr(self.kernels, f"{launcher}_{sfx}")(*converted, self._stream())
        self._counts["launches"] += 1

    def _operand_ptr(self, launcher, operand):
        check_array(launcher, operand.name, operand.array, operand.shape, operand.dtype, contiguous=True)
        return self._ptr(operand.array)

    def _geometry_struct(self, launcher, geometry):
        check_int32(launcher, geometry)
        struct = getattr(self.kernels, type(geometry).__name__)()
        for f in fields(geometry):
            setattr(struct, f.name, getattr(geometry, f.name))
        return struct

    def c(self, a):
        return self.xp.ascontiguousarray(a)

    def to_numpy(self, a):
        self._counts["device_to_host"] += 1
        if self.xp is np:
            return np.asarray(a)
        return self.xp.asnumpy(a)

    def upload(self, host, non_blocking=False):
        """Backend.upload; on a GPU, non-blocking copies go through the double-buffered
        pinned uploader (kernel/upload.py)."""
        if self.xp is np:  # emu: a device array is a copy, never the host's memory
            self._counts["host_to_device"] += 1
            return self._watched(np.array(host, copy=True, order="C"))
        if not non_blocking:
            return self.asarray(host)
        if self._uploader is None:
            from .upload import PinnedUploader
            self._uploader = PinnedUploader(self.xp)
        self._counts["host_to_device"] += 1
        return self._uploader.upload(host)

    def asarray(self, data, dtype=None):
        if not isinstance(data, self.xp.ndarray):
            self._counts["host_to_device"] += 1
            if self.xp is not np:
                data = np.asarray(data, dtype=dtype)
        return self._watched(self.xp.asarray(data, dtype=dtype))

    # ---------------------------------------------------------- host reads (emu)
    @contextmanager
    def watch_host_reads(self):
        """Within it, emu's new arrays count their implicit host reads as
        ``device_to_host`` (see :mod:`.host_reads`); a GPU counts nothing more here."""
        if self.xp is not np or self._watching:
            yield self
            return
        self._watching, DeviceArray.counts = True, self._counts
        try:
            yield self
        finally:
            self._watching, DeviceArray.counts = False, None

    def _watched(self, a):
        return a.view(DeviceArray) if self._watching and type(a) is np.ndarray else a

    def zeros(self, shape, dtype):
        return self._watched(super().zeros(shape, dtype))

    def ones(self, shape, dtype):
        return self._watched(super().ones(shape, dtype))

    def full(self, shape, value, dtype):
        return self._watched(super().full(shape, value, dtype))

    def empty(self, shape, dtype):
        return self._watched(super().empty(shape, dtype))

    def arange(self, *args, dtype=None):
        return self._watched(super().arange(*args, dtype=dtype))

    def standard_normal(self, rng, shape, dtype):
        return self._watched(super().standard_normal(rng, shape, dtype))

    def uniform(self, rng, low, high, shape, dtype):
        return self._watched(super().uniform(rng, low, high, shape, dtype))

    def __repr__(self):
        return f"KernelBackend({self.name!r})"

    # ---------------------------------------------------------- elementwise
    relu = elementwise.relu
    relu_backward = elementwise.relu_backward
    relu6 = elementwise.relu6
    relu6_backward = elementwise.relu6_backward
    sigmoid = elementwise.sigmoid
    sigmoid_backward = elementwise.sigmoid_backward
    silu = elementwise.silu
    silu_backward = elementwise.silu_backward
    add_relu = elementwise.add_relu
    bias_add = elementwise.bias_add
    bias_add_backward = elementwise.bias_add_backward
    dropout_apply = elementwise.dropout_apply
    dropout_backward = elementwise.dropout_backward
    # ---------------------------------------------------------- optim
    sgd_update = optim.sgd_update
    adam_update = optim.adam_update
    rmsprop_update = optim.rmsprop_update
    amp_unscale = optim.amp_unscale
    # ---------------------------------------------------------- conv
    conv2d_forward = conv.conv2d_forward
    conv2d_backward = conv.conv2d_backward
    # ---------------------------------------------------------- pool
    max_pool2d_forward = pool.max_pool2d_forward
    max_pool2d_backward = pool.max_pool2d_backward
    avg_pool2d_forward = pool.avg_pool2d_forward
    avg_pool2d_backward = pool.avg_pool2d_backward
    adaptive_avg_pool2d_forward = pool.adaptive_avg_pool2d_forward
    adaptive_avg_pool2d_backward = pool.adaptive_avg_pool2d_backward
    # ---------------------------------------------------------- lrn
    lrn_forward = lrn.lrn_forward
    lrn_backward = lrn.lrn_backward
    # ---------------------------------------------------------- batchnorm
    batch_norm_train_forward = batchnorm.batch_norm_train_forward
    batch_norm_eval_forward = batchnorm.batch_norm_eval_forward
    batch_norm_backward = batchnorm.batch_norm_backward
    batch_norm_update_running = batchnorm.batch_norm_update_running
    # ---------------------------------------------------------- softmax
    softmax_forward = softmax.softmax_forward
    softmax_backward = softmax.softmax_backward
    cross_entropy_forward = softmax.cross_entropy_forward
    cross_entropy_backward = softmax.cross_entropy_backward


# ---------------------------------------------------------------- factories
def make_emu_backend():
    try:
        from ... import _emu
    except ImportError as e:
        raise RuntimeError(
            "device 'emu' is not available: the compiled module minidl._emu is missing "
            f"({e}); build it with 'pip install -e .' (needs CMake and a C++20 compiler)") from e
    return KernelBackend("emu", np, _emu, lambda a: a.ctypes.data, lambda: 0)


def make_cuda_backend():
    from ... import cuda
    cuda.require()
    import cupy
    from ... import _cuda
    cuda.allow_tf32.apply_to_cupy()
    return KernelBackend("cuda", cupy, _cuda, lambda a: a.data.ptr,
                         lambda: cupy.cuda.get_current_stream().ptr)
