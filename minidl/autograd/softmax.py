"""softmax, log_softmax and cross_entropy (integer labels or soft targets, label smoothing).

The backend kernels work on rows of a 2-D array, so softmax over another axis
moves that axis last and flattens the rest, then undoes it on the way out.
"""
from __future__ import annotations

from ..dtypes import is_floating
from .function import Function


class Softmax(Function):
    """(Log-)softmax along ``axis``; attribute ``log`` picks log-softmax."""

    @property
    def op_name(self):
        return "log_softmax" if self.log else "softmax"

    def _to_rows(self, a):
        be = self.backend
        if self.axis != a.ndim - 1:
            a = be.ascontiguous(be.transpose(a, self.perm))
        return be.reshape(a, (-1, a.shape[-1]))

    def _from_rows(self, a):
        be = self.backend
        a = be.reshape(a, self.moved_shape)
        if self.axis != len(self.moved_shape) - 1:
            a = be.ascontiguous(be.transpose(a, self.inverse))
        return a

    def forward(self, x):
        nd = x.ndim
        self.perm = tuple(i for i in range(nd) if i != self.axis) + (self.axis,)
        self.inverse = tuple(self.perm.index(i) for i in range(nd))
        self.moved_shape = tuple(x.shape[i] for i in self.perm)
        y = self.backend.softmax_forward(self._to_rows(x), self.log)
        self.save_for_backward(y)
        return self._from_rows(y)

    def backward(self, gy):
        (y,) = self.saved
        return self._from_rows(self.backend.softmax_backward(y, self._to_rows(gy), self.log))


class CrossEntropy(Function):
    """Per-row loss reduced by ``reduction``; ``labels`` is an integer backend array.
    A backend whose forward takes 16-bit logits itself returns float32 loss and
    log-probabilities (``Backend.half_native``): the reduction and the backward run in
    float32 and their results are rounded once to the logits' dtype, as widening does."""

    backend_ops = ("cross_entropy_forward", "cross_entropy_backward")

    def forward(self, logits):
        be = self.backend
        loss, log_probs = be.cross_entropy_forward(logits, self.labels, self.label_smoothing)
        self.save_for_backward(log_probs)
        self.logits_dtype = logits.dtype  # the gradient's
        if self.reduction != "none":
            total = be.sum(loss)
            loss = be.cast_like(be.div(total, loss.shape[0]) if self.reduction == "mean" else total, loss)
        return be.cast_like(loss, logits)

    def backward(self, gy):
        be = self.backend
        (log_probs,) = self.saved
        rows = log_probs.shape[0]
        if self.reduction == "none":
            grad = gy
        else:
            scale = 1.0 / rows if self.reduction == "mean" else 1.0
            grad = be.mul(be.broadcast_to(be.reshape(gy, (1,)), (rows,)), scale)
        dx = be.cross_entropy_backward(log_probs, self.labels, self.label_smoothing, be.cast_like(grad, log_probs))
        return be.astype(dx, self.logits_dtype)


def _check_input(x, op):
    from ..tensor import Tensor
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{op}: expected a tensor with at least 1 dimension, got a scalar")


def _axis(x, axis, op):
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis!r} is out of range for a {x.ndim}-D tensor of shape {x.shape}")
    return axis % x.ndim


def softmax(x, axis=-1):
    _check_input(x, "softmax")
    return Softmax.apply(x, axis=_axis(x, axis, "softmax"), log=False)


def log_softmax(x, axis=-1):
    _check_input(x, "log_softmax")
    return Softmax.apply(x, axis=_axis(x, axis, "log_softmax"), log=True)


def _labels(logits, target):
    """Integer labels (N,) as a backend array on the logits' device.  Labels are
    range-checked where that costs no device sync: host data before its upload, and
    tensors whose backend reads them for free.  Device labels are left to the kernel,
    which makes the loss of an out-of-range label's row NaN (kernels/softmax.cuh)."""
    from ..backend import get_backend
    from ..tensor import Tensor
    be = logits.backend
    if isinstance(target, Tensor):
        if target.device != logits.device:
            raise ValueError(f"cross_entropy: target is on {target.device!r} but logits are on {logits.device!r}")
        labels, host = target.data, None if be.reads_sync else be
    else:
        host = get_backend("cpu")
        labels = host.asarray(target)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: expected integer class labels as target, got dtype {labels.dtype}")
    rows, classes = logits.shape
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise ValueError(f"cross_entropy: expected target of shape ({rows},) for logits of shape "
                         f"{logits.shape}, got {tuple(labels.shape)}")
    if rows and host is not None:
        low, high = int(host.min(labels)), int(host.max(labels))
        if low < 0:
            raise ValueError(f"cross_entropy: target contains label {low}, labels must be >= 0")
        if high >= classes:
            raise ValueError(f"cross_entropy: target contains label {high} but there are {classes} classes")
    if not isinstance(target, Tensor):
        labels = be.asarray(labels)
    return be.astype(labels, "int64")


def _soft_targets(logits, target):
    """A float target (N, K) of class probabilities as a Tensor, or None for integer labels."""
    from ..tensor import Tensor
    data = target.data if isinstance(target, Tensor) else target
    if getattr(data, "ndim", 0) != 2 or getattr(data, "dtype", None) is None or data.dtype.kind != "f":
        return None
    if tuple(data.shape) != tuple(logits.shape):
        raise ValueError(f"cross_entropy: soft targets must have the logits' shape {logits.shape}, "
                         f"got {tuple(data.shape)}")
    if isinstance(target, Tensor):
        if target.device != logits.device:
            raise ValueError(f"cross_entropy: target is on {target.device!r} but logits are on {logits.device!r}")
        target = target.detach()
    else:
        target = Tensor._wrap(logits.backend.asarray(data), logits.device)
    return target.to(dtype=logits.dtype) if target.dtype != logits.dtype else target


def _soft_cross_entropy(logits, target, reduction, label_smoothing):
    """-sum_k target_k * log_softmax(logits)_k per row, built from autograd ops."""
    classes = logits.shape[1]
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    loss = -(target * log_softmax(logits, axis=1)).sum(axis=1)
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of logits (N, K) against integer labels (N,) or soft targets,
    class probabilities (N, K) as a float array (Mixup, CutMix, distillation).  With
    ``label_smoothing`` eps the target distribution is (1 - eps) * target + eps / K."""
    _check_input(logits, "cross_entropy")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, K), got {logits.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if logits.shape[1] == 0:
        raise ValueError(f"cross_entropy: expected at least one class, got logits of shape {logits.shape}")
    if reduction == "mean" and logits.shape[0] == 0:
        raise ValueError("cross_entropy: the mean over an empty batch is undefined (logits of shape "
                         f"{logits.shape})")
    soft = _soft_targets(logits, target)
    if soft is not None:
        return _soft_cross_entropy(logits, soft, reduction, float(label_smoothing))
    labels = _labels(logits, target)
    return CrossEntropy.apply(logits, labels=labels, label_smoothing=float(label_smoothing),
                              reduction=reduction)
