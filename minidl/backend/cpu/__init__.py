"""The CPU backend: NumPy arrays, BLAS GEMM, and parallel cached Numba loops.

Op families live one per module (elementwise, optim, conv, pool, lrn, batchnorm, softmax); this
class binds them to the backend contract of minidl/backend/base.py.
"""
from __future__ import annotations

import numpy as np

from ..base import Backend
from . import batchnorm, conv, elementwise, gemm, lrn, optim, pool, softmax, workspace


class CpuBackend(Backend):
    name = "cpu"
    xp = np

    def __init__(self):
        gemm.limit_blas_threads()
        workspace.keep_freed_memory()

    def matmul(self, a, b):
        return gemm.matmul(a, b)

    add = elementwise.add
    add_ = elementwise.add_
    sub = elementwise.sub
    mul = elementwise.mul
    div = elementwise.div
    concat = elementwise.concat

    relu = elementwise.relu
    relu_backward = elementwise.relu_backward
    add_relu = elementwise.add_relu
    relu6 = elementwise.relu6
    relu6_backward = elementwise.relu6_backward
    sigmoid = elementwise.sigmoid
    sigmoid_backward = elementwise.sigmoid_backward
    silu = elementwise.silu
    silu_backward = elementwise.silu_backward

    sgd_update = optim.sgd_update

    conv_algo = None  # "auto", "im2col", "winograd" or "direct" (cpu/conv.py); None: "auto"

    def conv2d_forward(self, x, w, geometry, bias=None, relu=False):
        return conv.conv2d_forward(x, w, geometry, bias, algo=self.conv_algo, relu=relu)

    def conv2d_backward(self, x, w, gy, geometry, need_dx=True, need_dw=True):
        return conv.conv2d_backward(x, w, gy, geometry, need_dx, need_dw, algo=self.conv_algo)

    max_pool2d_forward = staticmethod(pool.max_pool2d_forward)
    max_pool2d_backward = staticmethod(pool.max_pool2d_backward)
    avg_pool2d_forward = staticmethod(pool.avg_pool2d_forward)
    avg_pool2d_backward = staticmethod(pool.avg_pool2d_backward)
    adaptive_avg_pool2d_forward = staticmethod(pool.adaptive_avg_pool2d_forward)
    adaptive_avg_pool2d_backward = staticmethod(pool.adaptive_avg_pool2d_backward)

    lrn_forward = staticmethod(lrn.lrn_forward)
    lrn_backward = staticmethod(lrn.lrn_backward)

    batch_norm_train_forward = staticmethod(batchnorm.batch_norm_train_forward)
    batch_norm_eval_forward = staticmethod(batchnorm.batch_norm_eval_forward)
    batch_norm_backward = staticmethod(batchnorm.batch_norm_backward)

    softmax_forward = staticmethod(softmax.softmax_forward)
    softmax_backward = staticmethod(softmax.softmax_backward)
    cross_entropy_forward = staticmethod(softmax.cross_entropy_forward)
    cross_entropy_backward = staticmethod(softmax.cross_entropy_backward)
