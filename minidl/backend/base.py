"""The backend contract.

A backend owns an array module (``xp``: NumPy or CuPy) and implements every
array operation the autograd layer needs.  Autograd code calls only methods of
a ``Backend`` object, never NumPy/CuPy, so adding a device means writing one
subclass.  The generic methods here are expressed over ``self.xp``; the fused
op kernels (convolution, pooling, LRN, batch norm, softmax) are abstract and
each backend supplies its own.

Conventions: arrays are NCHW; ``padding`` of 2-D ops is a 4-tuple
``(top, bottom, left, right)``; backward methods return fresh arrays (they
never accumulate into their inputs).
"""
from __future__ import annotations

import numpy as np


class Backend:
    name = "abstract"
    xp = np

    # ---------------------------------------------------------- creation
    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, a):
        return np.asarray(a)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype)

    def ones(self, shape, dtype):
        return self.xp.ones(shape, dtype=dtype)

    def full(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype=dtype)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def zeros_like(self, a):
        return self.xp.zeros_like(a)

    def ones_like(self, a):
        return self.xp.ones_like(a)

    def arange(self, *args, dtype=None):
        return self.xp.arange(*args, dtype=dtype)

    def copy(self, a):
        return a.copy()

    def astype(self, a, dtype):
        return a.astype(dtype, copy=False)

    # ---------------------------------------------------------- random
    def rng(self, seed=None):
        return self.xp.random.default_rng(seed)

    def standard_normal(self, rng, shape, dtype):
        return rng.standard_normal(shape).astype(dtype, copy=False)

    def uniform(self, rng, low, high, shape, dtype):
        return rng.uniform(low, high, shape).astype(dtype, copy=False)

    # ---------------------------------------------------------- elementwise
    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def div(self, a, b):
        return a / b

    def pow(self, a, b):
        return a ** b

    def neg(self, a):
        return -a

    def exp(self, a):
        return self.xp.exp(a)

    def log(self, a):
        return self.xp.log(a)

    def sqrt(self, a):
        return self.xp.sqrt(a)

    def tanh(self, a):
        return self.xp.tanh(a)

    def abs(self, a):
        return self.xp.abs(a)

    def sign(self, a):
        return self.xp.sign(a)

    def maximum(self, a, b):
        return self.xp.maximum(a, b)

    def minimum(self, a, b):
        return self.xp.minimum(a, b)

    def clip(self, a, lo, hi):
        return self.xp.clip(a, lo, hi)

    def where(self, cond, a, b):
        return self.xp.where(cond, a, b)

    def equal(self, a, b):
        return a == b

    def greater(self, a, b):
        return a > b

    def less(self, a, b):
        return a < b

    def isfinite(self, a):
        return self.xp.isfinite(a)

    def all(self, a):
        return bool(self.xp.all(a))

    def cast_like(self, a, ref):
        return a.astype(ref.dtype, copy=False)

    # ---------------------------------------------------------- activations (appended)
    # Generic versions over xp; a backend may override them with fused kernels.
    # Backward methods take the saved forward input (or output, for sigmoid).
    def relu(self, x):
        return self.xp.maximum(x, 0)

    def relu_backward(self, x, gy):
        return self.xp.where(x > 0, gy, 0).astype(gy.dtype, copy=False)

    def relu6(self, x):
        return self.xp.clip(x, 0, 6)

    def relu6_backward(self, x, gy):
        return self.xp.where((x > 0) & (x < 6), gy, 0).astype(gy.dtype, copy=False)

    def sigmoid(self, x):
        # exp of -|x| only, so large |x| never overflows
        e = self.xp.exp(-self.xp.abs(x))
        return self.xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def sigmoid_backward(self, y, gy):
        return gy * y * (1 - y)

    def silu(self, x):
        return x * self.sigmoid(x)

    def silu_backward(self, x, gy):
        s = self.sigmoid(x)
        return gy * s * (1 + x * (1 - s))

    # ---------------------------------------------------------- reductions
    def sum(self, a, axis=None, keepdims=False):
        return self.xp.sum(a, axis=axis, keepdims=keepdims)

    def mean(self, a, axis=None, keepdims=False):
        return self.xp.mean(a, axis=axis, keepdims=keepdims)

    def max(self, a, axis=None, keepdims=False):
        return self.xp.max(a, axis=axis, keepdims=keepdims)

    def min(self, a, axis=None, keepdims=False):
        return self.xp.min(a, axis=axis, keepdims=keepdims)

    def var(self, a, axis=None, keepdims=False, ddof=0):
        return self.xp.var(a, axis=axis, keepdims=keepdims, ddof=ddof)

    def argmax(self, a, axis=None):
        return self.xp.argmax(a, axis=axis)

    def argsort(self, a, axis=-1):
        return self.xp.argsort(a, axis=axis)

    def sum_to_shape(self, a, shape):
        """Reduce a broadcast result back to ``shape`` (the backward of broadcasting)."""
        shape = tuple(shape)
        if a.shape == shape:
            return a
        lead = a.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, s in enumerate(shape) if s == 1 and a.shape[i + lead] != 1)
        out = self.xp.sum(a, axis=axes, keepdims=True)
        return out.reshape(shape)

    # ---------------------------------------------------------- linear algebra
    def matmul(self, a, b):
        return self.xp.matmul(a, b)

    # ---------------------------------------------------------- shape
    def reshape(self, a, shape):
        return a.reshape(shape)

    def transpose(self, a, axes):
        return self.xp.transpose(a, axes)

    def ascontiguous(self, a):
        return self.xp.ascontiguousarray(a)

    def broadcast_to(self, a, shape):
        return self.xp.broadcast_to(a, shape)

    def expand_dims(self, a, axis):
        return self.xp.expand_dims(a, axis)

    def getitem(self, a, index):
        return a[index]

    def scatter(self, shape, index, values, dtype, accumulate):
        """Zeros of ``shape`` with ``values`` put at ``index``; with ``accumulate``
        repeated indices add up (advanced indexing), otherwise plain assignment."""
        out = self.xp.zeros(shape, dtype=dtype)
        if accumulate:
            self.xp.add.at(out, index, values)
        else:
            out[index] = values
        return out

    def pad(self, a, pad_width, value=0.0):
        return self.xp.pad(a, pad_width, mode="constant", constant_values=value)

    def concat(self, arrays, axis):
        return self.xp.concatenate(arrays, axis=axis)

    def stack(self, arrays, axis):
        return self.xp.stack(arrays, axis=axis)

    def split(self, a, indices, axis):
        return self.xp.split(a, indices, axis=axis)

    def one_hot(self, labels, num_classes, dtype):
        out = self.xp.zeros((labels.shape[0], num_classes), dtype=dtype)
        out[self.xp.arange(labels.shape[0]), labels] = 1
        return out

    # ---------------------------------------------------------- fused op kernels
    # Each backend implements these; minidl/backend/cpu is the reference.  Shapes:
    # x (N, C, H, W); conv weight (O, C // groups, KH, KW); stride/dilation (sh, sw);
    # conv padding (top, bottom, left, right); pool kernel/stride/padding (h, w) pairs.
    def _missing(self, op):
        raise NotImplementedError(f"{op}: not implemented by the {self.name} backend")

    def conv2d_forward(self, x, w, stride, padding, dilation, groups):
        """-> y (N, O, HO, WO), no bias (autograd adds it)."""
        self._missing("conv2d_forward")

    def conv2d_backward(self, x, w, gy, stride, padding, dilation, groups, need_dx=True, need_dw=True):
        """-> (dx or None, dw or None)."""
        self._missing("conv2d_backward")

    def max_pool2d_forward(self, x, kernel, stride, padding, ceil_mode):
        """-> (y, argmax): argmax holds the flat h*W+w index of each max in its input plane."""
        self._missing("max_pool2d_forward")

    def max_pool2d_backward(self, gy, argmax, x_shape, kernel, stride, padding):
        """-> dx of x_shape.  The window geometry lets a GPU gather per input pixel
        (no atomics where windows overlap); the CPU scatters by argmax alone."""
        self._missing("max_pool2d_backward")

    def avg_pool2d_forward(self, x, kernel, stride, padding, ceil_mode, count_include_pad):
        self._missing("avg_pool2d_forward")

    def avg_pool2d_backward(self, gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
        self._missing("avg_pool2d_backward")

    @staticmethod
    def pool_output_size(size, kernel, stride, padding, ceil_mode):
        """PyTorch's pooling output length along one axis: floor or ceil of
        (size + 2*padding - kernel) / stride, plus one; with ``ceil_mode`` the last
        window must start inside the input or the left padding."""
        span = size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)
        out = span // stride + 1
        if ceil_mode and (out - 1) * stride >= size + padding:
            out -= 1
        return out

    def adaptive_avg_pool2d_forward(self, x, output_size):
        """PyTorch's bins: start = floor(i*H/OH), end = ceil((i+1)*H/OH)."""
        self._missing("adaptive_avg_pool2d_forward")

    def adaptive_avg_pool2d_backward(self, gy, x_shape):
        self._missing("adaptive_avg_pool2d_backward")

    def lrn_forward(self, x, size, alpha, beta, k):
        """-> (y, scale), scale = k + alpha/size * sum of x^2 over the channel window."""
        self._missing("lrn_forward")

    def lrn_backward(self, x, y, scale, gy, size, alpha, beta, k):
        self._missing("lrn_backward")

    def batch_norm_train_forward(self, x, gamma, beta, eps):
        """x (N, C, H, W) -> (y, mean (C,), biased var (C,)) from batch statistics."""
        self._missing("batch_norm_train_forward")

    def batch_norm_eval_forward(self, x, gamma, beta, mean, var, eps):
        self._missing("batch_norm_eval_forward")

    def batch_norm_backward(self, x, gy, gamma, mean, var, eps):
        """Backward of the training forward -> (dx, dgamma, dbeta)."""
        self._missing("batch_norm_backward")

    def softmax_forward(self, x, log):
        """Row-wise (log-)softmax of a 2-D array."""
        self._missing("softmax_forward")

    def softmax_backward(self, y, gy, log):
        """y is the forward output (softmax, or log-softmax when ``log``)."""
        self._missing("softmax_backward")

    def cross_entropy_forward(self, logits, labels, label_smoothing):
        """logits (N, K), integer labels (N,) -> (loss per row (N,), log_probs (N, K))."""
        self._missing("cross_entropy_forward")

    def cross_entropy_backward(self, log_probs, labels, label_smoothing, grad_per_row):
        """-> dlogits (N, K) for upstream gradient ``grad_per_row`` (N,)."""
        self._missing("cross_entropy_backward")

    # ---------------------------------------------------------- comparisons (appended)
    def not_equal(self, a, b):
        return a != b

    def greater_equal(self, a, b):
        return a >= b

    def less_equal(self, a, b):
        return a <= b

    # ---------------------------------------------------------- fused extras (appended)
    # Generic versions over xp with the exact semantics of the fused kernels that the
    # kernel backends (cuda, emu) bind instead: bias-add and dropout
    # (kernels/elementwise.cu), the SGD step (kernels/optim.cu), the batch-norm running
    # statistics (kernels/batchnorm.cu).  sgd_update and batch_norm_update_running work
    # IN PLACE on their first arguments (the kernel backends launch their kernel on
    # C-contiguous arrays of one dtype and use these generic versions otherwise).
    def bias_add(self, x, b):
        """y = x + b over channel axis 1: x (N, C, ...), b (C,)."""
        return x + self.cast_like(b, x).reshape((1, -1) + (1,) * (x.ndim - 2))

    def bias_add_backward(self, gy):
        """db (C,) = gy summed over every axis but 1."""
        return self.xp.sum(gy, axis=(0,) + tuple(range(2, gy.ndim)))

    def dropout_apply(self, x, u, p):
        """Inverted dropout from uniform draws ``u`` in [0, 1) shaped like x: keep = u >= p
        -> (y = x * mask, mask = keep / (1 - p)), both in x's dtype."""
        mask = self.xp.where(u >= p, 1.0 / (1.0 - p), 0.0).astype(x.dtype, copy=False)
        return x * mask, mask

    def dropout_backward(self, gy, mask):
        return self.cast_like(gy, mask) * mask

    def sgd_update(self, param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                   nesterov=False, first_step=False):
        """One SGD step IN PLACE on ``param`` (and the momentum buffer ``buf``, shaped like
        param; None when momentum == 0), PyTorch semantics::

            d = grad + weight_decay * param
            buf = d                                    (first_step: buf is written, not read)
            buf = momentum * buf + (1 - dampening) * d (later steps)
            d = d + momentum * buf  if nesterov  else  buf   (when momentum != 0)
            param -= lr * d
        """
        d = self.cast_like(grad, param)
        if weight_decay != 0:
            d = d + weight_decay * param
        if momentum != 0:
            if first_step:
                buf[...] = d
            else:
                buf *= momentum
                buf += (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        param -= lr * d

    def batch_norm_update_running(self, running_mean, running_var, mean, var, momentum, count):
        """IN PLACE: running = (1 - momentum) * running + momentum * batch statistic, the
        biased batch variance ``var`` made unbiased by count / (count - 1) (count = values
        per channel > 1)."""
        unbias = count / (count - 1)
        running_mean *= 1 - momentum
        running_mean += momentum * self.cast_like(mean, running_mean)
        running_var *= 1 - momentum
        running_var += momentum * self.cast_like(var, running_var) * unbias
