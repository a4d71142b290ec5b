"""The backend contract.

A backend owns an array module (``xp``: NumPy or CuPy) and implements every
array operation the autograd layer needs.  Autograd code calls only methods of
a ``Backend`` object, never NumPy/CuPy, so adding a device means writing one
subclass.  ``CONTRACT`` lists every op once, by family, in the order of the
class body.  Ops with a generic implementation here over ``self.xp`` are in
``GENERIC``; a backend may override them with fused kernels.  The others are
abstract: every backend implements them (minidl/backend/cpu is the reference).

Conventions: arrays are NCHW; convolution and pooling sizes come in a
``ConvGeometry`` / ``PoolGeometry`` (minidl/backend/geometry.py); every op
returns fresh arrays and never accumulates into its inputs, except the ops marked
IN PLACE (the optimizer updates, ``batch_norm_update_running``, and the running
statistics given to ``batch_norm_train_forward``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .checks import check_array

CONTRACT = {
    "creation": ("asarray", "upload", "from_dlpack", "to_numpy", "zeros", "ones", "full", "empty", "zeros_like", "ones_like",
                 "arange", "copy", "owned", "astype"),
    "random": ("rng", "standard_normal", "uniform"),
    "math": ("add", "add_", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "tanh", "abs", "sign",
             "maximum", "minimum", "clip", "where", "equal", "not_equal", "greater", "greater_equal",
             "less", "less_equal", "isfinite", "all", "cast_like"),
    "reduction": ("sum", "mean", "max", "min", "var", "argmax", "argsort", "sum_to_shape"),
    "linalg": ("matmul",),
    "shape": ("reshape", "transpose", "ascontiguous", "broadcast_to", "expand_dims", "getitem",
              "scatter", "pad", "concat", "stack", "split", "one_hot"),
    "elementwise": ("relu", "relu_backward", "relu6", "relu6_backward", "sigmoid", "sigmoid_backward",
                    "silu", "silu_backward", "add_relu", "bias_add", "bias_add_backward", "dropout_apply",
                    "dropout_backward"),
    "optim": ("sgd_update", "adam_update", "rmsprop_update", "amp_unscale"),
    "conv": ("conv2d_forward", "conv2d_backward"),
    "pool": ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
             "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward"),
    "lrn": ("lrn_forward", "lrn_backward"),
    "batchnorm": ("batch_norm_train_forward", "batch_norm_eval_forward", "batch_norm_backward",
                  "batch_norm_update_running"),
    "softmax": ("softmax_forward", "softmax_backward", "cross_entropy_forward", "cross_entropy_backward"),
}


class Backend(ABC):
    name = "abstract"
    xp = np
    reads_sync = False  # does reading an array on the host wait for a device?
    # contract ops that take float16/bfloat16 arrays themselves (computing in float32 and
    # rounding, as widening would); autograd widens the inputs of the others to float32
    half_native = frozenset()

    # ---------------------------------------------------------- creation
    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    def upload(self, host, non_blocking=False):
        """A device array of the host (NumPy) array's values.  ``non_blocking``: the copy
        may overlap the host and the device work already queued (a GPU copies from
        pinned memory on a second stream); either way ``host`` may be reused as soon as
        this returns, and the result is ready for the ops queued after it."""
        return self.asarray(host)

    def from_dlpack(self, obj):
        """The array another library exports through DLPack, sharing its memory."""
        return self.xp.from_dlpack(obj)

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

    def owned(self, a):
        """``a``, or a contiguous writable copy of it where an in-place update cannot use
        it (a read-only or non-contiguous array; CuPy's flags have no ``writeable``)."""
        flags = a.flags
        return a if flags.c_contiguous and getattr(flags, "writeable", True) else self.copy(a)

    def astype(self, a, dtype):
        return a.astype(dtype, copy=False)

    # ---------------------------------------------------------- random
    def rng(self, seed=None):
        return self.xp.random.default_rng(seed)

    def standard_normal(self, rng, shape, dtype):
        return rng.standard_normal(shape).astype(dtype, copy=False)

    def uniform(self, rng, low, high, shape, dtype):
        return rng.uniform(low, high, shape).astype(dtype, copy=False)

    # ---------------------------------------------------------- math (NumPy semantics)
    def add(self, a, b):
        return a + b

    def add_(self, a, b):
        """a += b in place (a of b's shape and dtype, owned by the caller); returns a."""
        a += b
        return a

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

    def not_equal(self, a, b):
        return a != b

    def greater(self, a, b):
        return a > b

    def greater_equal(self, a, b):
        return a >= b

    def less(self, a, b):
        return a < b

    def less_equal(self, a, b):
        return a <= b

    def isfinite(self, a):
        return self.xp.isfinite(a)

    def all(self, a):
        return bool(self.xp.all(a))

    def cast_like(self, a, ref):
        return a.astype(ref.dtype, copy=False)

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

    # ========================================================== op families
    # Each family's kernels live in kernels/<family>.{h,cu,cuh}, its CPU version in
    # minidl/backend/cpu/<family>.py, its launchers in minidl/backend/kernel/<family>.py,
    # all under the names below.

    # ---------------------------------------------------------- elementwise (generic)
    # Activations: backward methods take the saved forward input (the output, for
    # sigmoid) and the output gradient gy, and return gx shaped like gy.
    def relu(self, x):
        """y = max(x, 0)."""
        return self.xp.maximum(x, 0)

    def relu_backward(self, x, gy):
        """gx = gy where x > 0, else 0."""
        check_array("relu_backward", "gy", gy, x.shape)
        return self.xp.where(x > 0, gy, 0).astype(gy.dtype, copy=False)

    def relu6(self, x):
        """y = min(max(x, 0), 6)."""
        return self.xp.clip(x, 0, 6)

    def relu6_backward(self, x, gy):
        """gx = gy where 0 < x < 6, else 0."""
        check_array("relu6_backward", "gy", gy, x.shape)
        return self.xp.where((x > 0) & (x < 6), gy, 0).astype(gy.dtype, copy=False)

    def sigmoid(self, x):
        """y = 1 / (1 + exp(-x)), with exp of -|x| only, so large |x| never overflows."""
        e = self.xp.exp(-self.xp.abs(x))
        return self.xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def sigmoid_backward(self, y, gy):
        """gx = gy * y * (1 - y) from the forward OUTPUT y."""
        check_array("sigmoid_backward", "gy", gy, y.shape)
        return gy * y * (1 - y)

    def silu(self, x):
        """y = x * sigmoid(x)."""
        return x * self.sigmoid(x)

    def silu_backward(self, x, gy):
        """gx = gy * s * (1 + x * (1 - s)), s = sigmoid(x)."""
        check_array("silu_backward", "gy", gy, x.shape)
        s = self.sigmoid(x)
        return gy * s * (1 + x * (1 - s))

    def add_relu(self, a, b):
        """y = max(a + b, 0) (a residual sum and its ReLU; the backward is relu_backward
        on y)."""
        return self.xp.maximum(a + b, 0)

    def bias_add(self, x, b):
        """y = x + b over channel axis 1: x (N, C, ...), b (C,) cast to x's dtype."""
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
        """gx = gy * mask, in the mask's dtype."""
        return self.cast_like(gy, mask) * mask

    # ---------------------------------------------------------- optim (generic)
    # Each update takes ``skip``: None, or a 0-d float32 array (GradScaler's overflow
    # flag on the device); where it is nonzero the step changes nothing, params and
    # state stay bit-identical.  Backends whose host reads sync keep that decision on
    # the device (kernels that return early; here copies restored by ``where``).
    def _unless(self, skip, arrays, update):
        """Run ``update()`` (in place on ``arrays``) unless ``skip`` is set."""
        if skip is None:
            return update()
        if not self.reads_sync:
            if not self.to_numpy(skip):
                update()
            return
        saved = [self.copy(a) for a in arrays]
        update()
        flag = self.greater(skip, 0.0)
        for a, old in zip(arrays, saved):
            a[...] = self.where(flag, old, a)

    def sgd_update(self, params, grads, bufs, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                   nesterov=False, first_step=False, skip=None):
        """One SGD step IN PLACE on each array of the list ``params`` (and of ``bufs``, the
        momentum buffers shaped like them; None when momentum == 0), PyTorch semantics::

            d = grad + weight_decay * param
            buf = d                                    (first_step: buf is written, not read)
            buf = momentum * buf + (1 - dampening) * d (later steps)
            d = d + momentum * buf  if nesterov  else  buf   (when momentum != 0)
            param -= lr * d

        Lists, not one array, so that a device updates every parameter in a few launches.
        """
        def update():
            for k, (param, grad) in enumerate(zip(params, grads)):
                d = self.cast_like(grad, param)
                if weight_decay != 0:
                    d = d + weight_decay * param
                if momentum != 0:
                    buf = bufs[k]
                    if first_step:
                        buf[...] = d
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * d
                    d = d + momentum * buf if nesterov else buf
                param -= lr * d
        self._unless(skip, list(params) + ([b for b in bufs if b is not None] if momentum != 0 else []), update)

    def adam_update(self, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1, beta2, eps,
                    weight_decay=0.0, decoupled=False, skip=None):
        """One Adam (AdamW with ``decoupled``) step IN PLACE on the lists ``params`` and
        their state (``max_exp_avg_sqs``: None unless AMSGrad), at step number ``step``
        >= 1 of every tensor, PyTorch semantics::

            g = grad + weight_decay * p            (decoupled: p *= 1 - lr * weight_decay)
            m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
            v = vmax = max(vmax, v)                (AMSGrad)
            p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
        """
        xp = self.xp
        step_size, inv_sqrt_bias2 = lr / (1.0 - beta1 ** step), 1.0 / (1.0 - beta2 ** step) ** 0.5

        def update():
            for k, (p, grad) in enumerate(zip(params, grads)):
                g = self.cast_like(grad, p)
                if decoupled:
                    p *= 1.0 - lr * weight_decay
                elif weight_decay != 0:
                    g = g + weight_decay * p
                m, v = exp_avgs[k], exp_avg_sqs[k]
                m *= beta1
                m += (1.0 - beta1) * g
                v *= beta2
                v += (1.0 - beta2) * g * g
                if max_exp_avg_sqs is not None:
                    xp.maximum(max_exp_avg_sqs[k], v, out=max_exp_avg_sqs[k])
                    v = max_exp_avg_sqs[k]
                p -= step_size * m / (xp.sqrt(v) * inv_sqrt_bias2 + eps)
        self._unless(skip, [*params, *exp_avgs, *exp_avg_sqs, *(max_exp_avg_sqs or [])], update)

    def rmsprop_update(self, params, grads, square_avgs, grad_avgs, bufs, lr, alpha, eps, momentum=0.0,
                       weight_decay=0.0, eps_inside_sqrt=True, skip=None):
        """One TensorFlow-style RMSprop step IN PLACE on the lists ``params`` and their
        state (``grad_avgs``: None unless centered; ``bufs``: None when momentum == 0)::

            g = grad + weight_decay * p;  ms = alpha * ms + (1 - alpha) * g^2
            mg = alpha * mg + (1 - alpha) * g, den = ms - mg^2   (centered; else den = ms)
            step = lr * g / sqrt(den + eps)        (eps outside: lr * g / (sqrt(den) + eps))
            buf = momentum * buf + step, step = buf              (momentum)
            p -= step
        """
        xp = self.xp

        def update():
            for k, (p, grad) in enumerate(zip(params, grads)):
                g = self.cast_like(grad, p)
                if weight_decay != 0:
                    g = g + weight_decay * p
                ms = square_avgs[k]
                ms *= alpha
                ms += (1.0 - alpha) * g * g
                den = ms
                if grad_avgs is not None:
                    mg = grad_avgs[k]
                    mg *= alpha
                    mg += (1.0 - alpha) * g
                    den = ms - mg * mg
                den = xp.sqrt(den + eps) if eps_inside_sqrt else xp.sqrt(den) + eps
                step = lr * g / den
                if bufs is not None:
                    bufs[k] *= momentum
                    bufs[k] += step
                    step = bufs[k]
                p -= step
        self._unless(skip, [*params, *square_avgs, *(grad_avgs or []), *(bufs or [])], update)

    def amp_unscale(self, grads, inv_scale, found_inf):
        """GradScaler.unscale_: each array of the list ``grads`` times ``inv_scale`` IN
        PLACE, and the 0-d float32 array ``found_inf`` set to 1 IN PLACE where any result
        is inf or NaN (left as it is otherwise); nothing is read on the host."""
        for g in grads:
            if g.size == 0:
                continue
            g *= self.astype(inv_scale, g.dtype)
            bad = self.max(self.where(self.isfinite(g), 0.0, 1.0))
            found_inf[...] = self.maximum(found_inf, self.astype(bad, found_inf.dtype))

    # ---------------------------------------------------------- conv
    @abstractmethod
    def conv2d_forward(self, x, w, geometry, bias=None, relu=False):
        """x (N, C, H, W), w (O, C/G, KH, KW), one float dtype -> y (N, O, HO, WO) of
        ``geometry`` (a ConvGeometry), plus ``bias`` (O,) per output channel when given,
        then max(y, 0) where ``relu`` (NaN passes) (in the result's arithmetic: the kernel
        backends' tensor-core kernels apply both in their epilogue, before a 16-bit result
        is rounded)."""

    @abstractmethod
    def conv2d_backward(self, x, w, gy, geometry, need_dx=True, need_dw=True):
        """gy (N, O, HO, WO) -> (dx shaped like x or None, dw shaped like w or None), new
        C-contiguous arrays that nothing else holds (autograd keeps a leaf's dw without
        copying it, and the optimizer steps over it)."""

    # ---------------------------------------------------------- pool
    @abstractmethod
    def max_pool2d_forward(self, x, geometry):
        """x (N, C, H, W) -> (y (N, C, OH, OW), argmax): argmax (int32, or int64 on the
        cpu for planes of 2**31 cells or more) holds the flat h*W + w index of each
        window's first maximum in its input plane (NaN wins)."""

    @abstractmethod
    def max_pool2d_backward(self, gy, argmax, geometry):
        """gy and argmax (N, C, OH, OW) -> dx (N, C, H, W): each gy lands on its argmax.
        argmax values outside [0, H*W) are a ValueError."""

    @abstractmethod
    def avg_pool2d_forward(self, x, geometry, count_include_pad):
        """x (N, C, H, W) -> y (N, C, OH, OW); the divisor counts padding cells (not the
        ceil_mode overhang) with ``count_include_pad``, else only input cells."""

    @abstractmethod
    def avg_pool2d_backward(self, gy, geometry, count_include_pad):
        """gy (N, C, OH, OW) -> dx (N, C, H, W)."""

    @abstractmethod
    def adaptive_avg_pool2d_forward(self, x, geometry):
        """x (N, C, H, W) -> y (N, C, OH, OW) of a windowless PoolGeometry; PyTorch's
        bins: rows floor(i*H/OH) to ceil((i+1)*H/OH)."""

    @abstractmethod
    def adaptive_avg_pool2d_backward(self, gy, geometry):
        """gy (N, C, OH, OW) -> dx (N, C, H, W)."""

    # ---------------------------------------------------------- lrn
    @abstractmethod
    def lrn_forward(self, x, size, alpha, beta, k):
        """x (N, C, H, W) -> (y, scale), both shaped like x: scale = k + alpha/size * the
        sum of x^2 over the size-channel window, y = x * scale^-beta."""

    @abstractmethod
    def lrn_backward(self, x, y, scale, gy, size, alpha, beta, k):
        """The forward's x, y, scale and gy, all (N, C, H, W) -> dx."""

    # ---------------------------------------------------------- batchnorm
    @abstractmethod
    def batch_norm_train_forward(self, x, gamma, beta, eps, relu=False, running_mean=None, running_var=None,
                                 momentum=0.1):
        """x (N, C) or (N, C, H, W), gamma and beta (C,) -> (y shaped like x, mean (C,),
        biased var (C,)) from the batch statistics; y = max(y, 0) with ``relu``.  Given
        running stats ((C,) arrays) are updated IN PLACE as batch_norm_update_running
        does, with count = values per channel."""

    @abstractmethod
    def batch_norm_eval_forward(self, x, gamma, beta, mean, var, eps, relu=False):
        """y = (x - mean) / sqrt(var + eps) * gamma + beta with given (C,) statistics
        (then max(y, 0) with ``relu``)."""

    @abstractmethod
    def batch_norm_backward(self, x, gy, gamma, beta, mean, var, eps, relu=False):
        """Backward of the training forward -> (dx shaped like x, dgamma (C,), dbeta (C,));
        with ``relu`` of the fused forward (gy counts where the normalized x > 0)."""

    def batch_norm_update_running(self, running_mean, running_var, mean, var, momentum, count):
        """IN PLACE: running = (1 - momentum) * running + momentum * batch statistic, the
        biased batch variance ``var`` made unbiased by count / (count - 1) (count = values
        per channel > 1); the batch statistics are cast to the running stats' dtype."""
        unbias = count / (count - 1)
        running_mean *= 1 - momentum
        running_mean += momentum * self.cast_like(mean, running_mean)
        running_var *= 1 - momentum
        running_var += momentum * self.cast_like(var, running_var) * unbias

    # ---------------------------------------------------------- softmax
    @abstractmethod
    def softmax_forward(self, x, log):
        """Row-wise softmax (log-softmax when ``log``) of a 2-D (N, K) array."""

    @abstractmethod
    def softmax_backward(self, y, gy, log):
        """y is the forward output (softmax, or log-softmax when ``log``) -> gx (N, K)."""

    @abstractmethod
    def cross_entropy_forward(self, logits, labels, label_smoothing):
        """logits (N, K), integer labels (N,) in [0, K) -> (loss per row (N,), log_probs
        (N, K)); the target is (1 - eps) * onehot + eps / K for eps = label_smoothing."""

    @abstractmethod
    def cross_entropy_backward(self, log_probs, labels, label_smoothing, grad_per_row):
        """-> dlogits (N, K) for the upstream gradient ``grad_per_row`` ((N,) or a scalar)."""


GENERIC = frozenset(op for ops in CONTRACT.values() for op in ops
                    if op not in Backend.__abstractmethods__)
