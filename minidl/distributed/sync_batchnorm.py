"""SyncBatchNorm: batch normalization with statistics over the global batch of all ranks.

Forward: each rank sums x and x^2 per channel and counts its elements; one all-reduce of
those sums gives the global mean and (biased) variance.  The normalization is written with
autograd ops, and the all-reduce is itself a differentiable op whose backward all-reduces
the incoming gradients: so backward does one all-reduce, of the gradients of the sums,
which carries the other ranks' share of d(mean) and d(var).  The running statistics are
updated as ``BatchNorm2d`` does (unbiased variance, over the global element count).
Outside a multi-rank job, and in eval mode, it is ``BatchNorm1d``/``BatchNorm2d``.
"""
from __future__ import annotations

from ..autograd.activation import relu as relu_
from ..autograd.function import Function, no_grad
from ..autograd.shape import concat
from ..creation import full
from ..nn.normalization import _BatchNorm
from . import get_world_size, group


class AllReduceSum(Function):
    """y = the sum of x over all ranks; dx = the sum of dy over all ranks."""

    def _reduce(self, a):
        g = group()
        be = self.backend
        buf = be.ascontiguous(be.copy(a)) if g.backend == "nccl" else be.to_numpy(a).copy(order="C")
        g.all_reduce(buf, "sum").wait()
        return be.asarray(buf, dtype=a.dtype)

    def forward(self, x):
        return self._reduce(x)

    def backward(self, gy):
        return self._reduce(gy)


class SyncBatchNorm(_BatchNorm):
    """Batch norm of (N, C), (N, C, L) or (N, C, H, W) inputs whose training statistics
    cover every rank's batch."""

    def forward(self, x, relu=False):
        """``relu=True``: relu(bn(x)), as BatchNorm2d's fused form."""
        self._check_input(x, (2, 3, 4))
        shape = x.shape
        x4 = x.reshape(shape[0], shape[1], shape[2] if x.ndim > 2 else 1, shape[3] if x.ndim > 3 else 1)
        if not self.training or get_world_size() == 1:
            return self._normalize(x4, relu).reshape(*shape)
        y = self._normalize_globally(x4)
        return (relu_(y) if relu else y).reshape(*shape)

    def _normalize_globally(self, x):
        n, c, h, w = x.shape
        local = x.sum(axis=(0, 2, 3))
        local_sq = (x * x).sum(axis=(0, 2, 3))
        count = full((1,), float(n * h * w), dtype=x.dtype, device=x.device)
        sums = AllReduceSum.apply(concat([local, local_sq, count], 0))
        total = float(sums[2 * c].item())
        mean = sums[:c] / total
        var = (sums[c:2 * c] / total - mean * mean).clamp(min=0.0)
        if self.track_running_stats:
            self._update_running(mean, var, total)
        shape = (1, c, 1, 1)
        inv_std = (var + self.eps) ** -0.5
        y = (x - mean.reshape(*shape)) * inv_std.reshape(*shape)
        if self.affine:
            y = y * self.weight.reshape(*shape) + self.bias.reshape(*shape)
        return y

    def _update_running(self, mean, var, count):
        with no_grad():
            nbt = self.num_batches_tracked
            nbt.data = nbt.backend.add(nbt.data, 1)
            m = 1.0 / float(nbt.item()) if self.momentum is None else self.momentum
            unbiased = var * (count / max(count - 1.0, 1.0))
            self.running_mean.data = ((1 - m) * self.running_mean + m * mean.detach()).data
            self.running_var.data = ((1 - m) * self.running_var + m * unbiased.detach()).data


def convert_sync_batchnorm(module):
    """Replace every ``BatchNorm1d``/``BatchNorm2d`` in ``module`` (in place, keeping its
    parameters and running statistics) by a ``SyncBatchNorm``; -> the module (a new one if
    it is itself a batch norm)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        sync = SyncBatchNorm.__new__(SyncBatchNorm)
        sync.__dict__.update(module.__dict__)  # the same parameters, buffers and settings
        return sync
    for name, child in list(module._modules.items()):
        if child is not None:
            new = convert_sync_batchnorm(child)
            if new is not child:
                module._modules[name] = new
    return module
