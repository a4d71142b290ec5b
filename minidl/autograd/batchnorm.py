"""Batch normalization over (N, C) or (N, C, H, W) inputs, per channel.

Training normalizes with the biased batch variance and updates the running
statistics in place with the unbiased one (as PyTorch does); evaluation uses the
running statistics, and gradients still reach x, weight and bias.

Mixed precision: a float16/bfloat16 input may come with float32 weight, bias and
running statistics (autocast's float32 master parameters); the statistics are then
computed in float32 and the output takes the input's dtype, as PyTorch's batch norm
does.  Backends whose kernels take that mix (``Backend.half_native``) get it as is;
the others compute in float32 and round (autograd/function.py).
"""
from __future__ import annotations

from ..dtypes import float32, is_floating, is_half
from .function import Function, autocast_inputs


def _affine_params(be, weight, bias, channels, dtype):
    gamma = be.ones((channels,), dtype) if weight is None else weight
    beta = be.zeros((channels,), dtype) if bias is None else bias
    return gamma, beta


def _parameter_dtype(x, weight, bias):
    """The dtype of the per-channel vectors: the given weight's or bias's (float32
    beside half activations under autocast), else the input's."""
    given = weight if weight is not None else bias
    return x.dtype if given is None else given.dtype


def _channel_shape(x):
    """Shape that broadcasts a (C,) vector against x."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _reduce_axes(x):
    return (0,) + tuple(range(2, x.ndim))


class BatchNormTrain(Function):
    """Batch statistics; the arrays ``running_mean``/``running_var`` (attributes, or
    None) are updated in place by the backend's forward with ``momentum``.  With
    ``relu`` the output is max(batch_norm(x), 0) from the same pass."""

    op_name = "batch_norm"
    outputs_like_input = 0
    backend_ops = ("batch_norm_train_forward", "batch_norm_backward")

    def forward(self, x, weight, bias):
        be = self.backend
        gamma, beta = _affine_params(be, weight, bias, x.shape[1], _parameter_dtype(x, weight, bias))
        y, mean, var = be.batch_norm_train_forward(x, gamma, beta, self.eps, self.relu, self.running_mean,
                                                   self.running_var, self.momentum)
        self.save_for_backward(x, gamma, beta, mean, var)
        return y

    def backward(self, gy):
        x, gamma, beta, mean, var = self.saved
        return self.backend.batch_norm_backward(x, gy, gamma, beta, mean, var, self.eps, self.relu)


class BatchNormEval(Function):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias; the running
    statistics are constants (attributes ``mean`` and ``var``)."""

    op_name = "batch_norm"
    outputs_like_input = 0
    backend_ops = ("batch_norm_eval_forward",)  # (its backward is generic ops, half-safe)

    def forward(self, x, weight, bias):
        be = self.backend
        gamma, beta = _affine_params(be, weight, bias, x.shape[1], _parameter_dtype(x, weight, bias))
        y = be.batch_norm_eval_forward(x, gamma, beta, self.mean, self.var, self.eps, self.relu)
        self.save_for_backward(x, gamma, y if self.relu else None)
        return y

    def backward(self, gy):
        # Rarely used (frozen BN under fine-tuning), so generic ops suffice here.
        be = self.backend
        x, gamma, y = self.saved
        if self.relu:
            gy = be.relu_backward(y, gy)
        x_in = x
        gy, x = be.cast_like(gy, gamma), be.cast_like(x, gamma)  # half x, float32 parameters: in float32
        shape, axes = _channel_shape(x), _reduce_axes(x)
        invstd = be.cast_like(be.div(1.0, be.sqrt(be.add(self.var, self.eps))), gy)
        dx = dgamma = dbeta = None
        if self.needs_input_grad[0]:
            dx = be.mul(gy, be.reshape(be.mul(gamma, invstd), shape))
        if self.needs_input_grad[1]:
            xhat = be.mul(be.sub(x, be.reshape(be.cast_like(self.mean, x), shape)),
                          be.reshape(invstd, shape))
            dgamma = be.sum(be.mul(gy, xhat), axis=axes)
        if self.needs_input_grad[2]:
            dbeta = be.sum(gy, axis=axes)
        # (half x with float32 parameters: each gradient in its input's dtype)
        return tuple(None if g is None else be.cast_like(g, like)
                     for g, like in ((dx, x_in), (dgamma, gamma), (dbeta, gamma)))


def _check_vector(t, name, channels, dtypes=None):
    from ..tensor import Tensor
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"batch_norm: expected {name} to be a Tensor or None, got {type(t).__name__}")
    if dtypes is not None and t.dtype not in dtypes:
        raise TypeError(f"batch_norm: {name} dtype {t.dtype} does not match input dtype {dtypes[0]}"
                        + (" (or float32 beside a half input)" if len(dtypes) > 1 else ""))
    if t.ndim != 1 or t.shape[0] != channels:
        raise ValueError(
            f"batch_norm: {name} has shape {t.shape} but input has {channels} channels "
            f"(expected shape ({channels},))")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, relu=False):
    """PyTorch's ``F.batch_norm``.  In training, ``running_mean``/``running_var``
    (Tensors or None) are updated in place, as PyTorch does:
    running = (1 - momentum) * running + momentum * batch statistic.
    ``relu=True`` returns relu(batch_norm(...)) from one fused pass (forward and
    backward), as a BN followed by a ReLU in a model wants."""
    from ..tensor import Tensor
    x, weight, bias = autocast_inputs("batch_norm", (x, weight, bias))
    if not isinstance(x, Tensor):
        raise TypeError(f"batch_norm: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape {x.shape}")
    if not is_floating(x.dtype):
        raise TypeError(f"batch_norm: expected a floating-point input, got dtype {x.dtype}")
    channels = x.shape[1]
    # half activations may come with float32 parameters (mixed precision), else one dtype
    allowed = (x.dtype, float32) if is_half(x.dtype) else (x.dtype,)
    for t, name, dtypes in ((weight, "weight", allowed), (bias, "bias", allowed),
                            (running_mean, "running_mean", None), (running_var, "running_var", None)):
        _check_vector(t, name, channels, dtypes)
    if weight is not None and bias is not None and weight.dtype != bias.dtype:
        raise TypeError(f"batch_norm: weight dtype {weight.dtype} and bias dtype {bias.dtype} differ")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: expected running_mean and running_var both given or both None")
    if not eps > 0:
        raise ValueError(f"batch_norm: expected eps > 0, got {eps}")

    if not training:
        if running_mean is None:
            raise ValueError("batch_norm: running_mean and running_var are required in evaluation mode "
                             "(training=False), got None")
        return BatchNormEval.apply(x, weight, bias, mean=running_mean.data, var=running_var.data,
                                   eps=float(eps), relu=bool(relu))

    count = x.size // channels if channels else 0
    if count <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel in training, "
                         f"got input shape {x.shape}")
    return BatchNormTrain.apply(x, weight, bias, eps=float(eps), relu=bool(relu), momentum=float(momentum),
                                running_mean=None if running_mean is None else running_mean.data,
                                running_var=None if running_var is None else running_var.data)
