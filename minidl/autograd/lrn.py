"""Local response normalization across channels (AlexNet), Krizhevsky/Caffe/PyTorch
definition: y = x * (k + alpha/size * sum of x^2 over the size-channel window)^-beta."""
from __future__ import annotations

from .function import Function
from .pool import check_nchw_input


class LocalResponseNorm(Function):
    backend_ops = ("lrn_forward", "lrn_backward")
    def forward(self, x):
        y, scale = self.backend.lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        self.save_for_backward(x, y, scale)
        return y

    def backward(self, gy):
        x, y, scale = self.saved
        return self.backend.lrn_backward(x, y, scale, gy, self.size, self.alpha, self.beta, self.k)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    op = "local_response_norm"
    check_nchw_input(x, op)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{op}: expected size to be a positive int, got {size!r}")
    return LocalResponseNorm.apply(x, size=size, alpha=float(alpha), beta=float(beta), k=float(k))
