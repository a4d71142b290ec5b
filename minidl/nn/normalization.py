"""Normalization layers: BatchNorm2d, BatchNorm1d and LocalResponseNorm."""
from __future__ import annotations

import numpy as np  # dtype objects only

from .. import creation, functional as F
from . import init
from .layers import _positive_int
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d: per-channel affine ``weight``/``bias`` and the
    buffers ``running_mean``, ``running_var`` (unbiased) and ``num_batches_tracked``.

    Training uses batch statistics and updates the running ones with
    ``momentum`` (``None``: a cumulative average over the batches seen); eval
    uses the running statistics (batch ones if ``track_running_stats=False``).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        name = type(self).__name__
        self.num_features = _positive_int(num_features, name, "num_features")
        if eps <= 0:
            raise ValueError(f"{name}: expected eps > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: expected momentum in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(creation.ones(num_features))
            self.bias = Parameter(creation.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features))
            self.register_buffer("running_var", creation.ones(num_features))
            self.register_buffer("num_batches_tracked", creation.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            nbt = self.num_batches_tracked
            nbt.data = nbt.backend.zeros((), nbt.dtype)

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, x, ndims):
        name = type(self).__name__
        if x.ndim not in ndims:
            raise ValueError(f"{name}: expected a {' or '.join(f'{n}-D' for n in ndims)} input, "
                             f"got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected {self.num_features} channels (num_features), "
                             f"got {x.shape[1]} (input shape {x.shape})")

    def _normalize(self, x4, relu):
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked
            nbt.data = nbt.backend.add(nbt.data, 1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(nbt.item())
        use_batch_stats = self.training or not self.track_running_stats
        # running buffers are updated only while training; without tracking there are none
        return F.batch_norm(x4, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, momentum, self.eps, relu=relu)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, H, W) for each channel of an (N, C, H, W) input.
    ``bn(x, relu=True)`` is relu(bn(x)) in one fused pass."""

    def forward(self, x, relu=False):
        self._check_input(x, (4,))
        return self._normalize(x, relu)


class BatchNorm1d(_BatchNorm):
    """Batch norm of an (N, C) or (N, C, L) input, per channel C."""

    def forward(self, x, relu=False):
        self._check_input(x, (2, 3))
        shape = x.shape
        # the fused kernel is NCHW: view (N, C[, L]) as (N, C, L, 1)
        x4 = x.reshape(shape[0], shape[1], shape[2] if x.ndim == 3 else 1, 1)
        return self._normalize(x4, relu).reshape(shape)


class LocalResponseNorm(Module):
    """Cross-channel LRN (AlexNet): b = a / (k + alpha/size * sum of a^2 over ``size``
    neighbouring channels) ** beta."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = _positive_int(size, "LocalResponseNorm", "size")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
