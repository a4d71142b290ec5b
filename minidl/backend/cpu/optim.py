"""SGD's update for the CPU backend as one parallel Numba pass, in place.

The generic form in backend/base.py (``Backend.sgd_update``, whose docstring states the
PyTorch semantics this follows) makes about seven passes over the parameters with
temporaries; on AlexNet's 61M parameters that was a large share of a CPU training step.
Here each element of param, grad and the momentum buffer is read once and written once.
float32/float64 parameters with gradients of the same dtype and contiguous arrays;
anything else takes the generic form.  Adam and RMSprop use the generic in-place forms
of backend/base.py.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..base import Backend
from .parallel import parallel_kernel


@parallel_kernel()
def _sgd(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first_step, has_buf):
    for i in prange(p.size):
        d = g[i] + weight_decay * p[i]
        if has_buf:
            if first_step:
                b = d
            else:
                b = momentum * buf[i] + (1 - dampening) * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


def sgd_update(be, params, grads, bufs, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
               nesterov=False, first_step=False, skip=None):
    """Backend.sgd_update: one Numba pass per tensor; a tensor the pass does not take
    (another dtype, non-contiguous) gets the generic form."""
    def update():
        for k, (param, grad) in enumerate(zip(params, grads)):
            buf = bufs[k] if momentum != 0 else None
            arrays = [param, grad] + ([buf] if momentum != 0 else [])
            if param.dtype not in (np.float32, np.float64) or any(
                    a.dtype != param.dtype or a.shape != param.shape or not a.flags.c_contiguous for a in arrays):
                Backend.sgd_update(be, [param], [grad], [buf], lr, momentum, dampening, weight_decay, nesterov,
                                   first_step)
                continue
            flat_buf = buf.reshape(-1) if momentum != 0 else np.empty(1, param.dtype)
            _sgd.sized(param.size)(param.reshape(-1), grad.reshape(-1), flat_buf, float(lr), float(momentum),
                                   float(dampening), float(weight_decay), bool(nesterov), bool(first_step),
                                   momentum != 0)
    be._unless(skip, list(params) + ([b for b in bufs if b is not None] if momentum != 0 else []), update)
