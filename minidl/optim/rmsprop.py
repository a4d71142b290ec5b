"""RMSprop, TensorFlow-style, as the MobileNet / EfficientNet / Inception recipes use it."""
from __future__ import annotations

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """TensorFlow's RMSProp (``tf.compat.v1.train.RMSPropOptimizer``)::

        g   = grad + weight_decay * p                 (L2, as a loss term would give)
        ms  = alpha * ms + (1 - alpha) * g^2          (ms starts at ``initial_square``)
        mg  = alpha * mg + (1 - alpha) * g            (only when ``centered``)
        den = ms - mg^2  if centered  else  ms
        buf = momentum * buf + lr * g / sqrt(den + eps)   (eps_inside_sqrt=True, TF)
        buf = momentum * buf + lr * g / (sqrt(den) + eps) (eps_inside_sqrt=False)
        p   = p - buf

    How it differs from PyTorch's ``torch.optim.RMSprop``: TF starts the mean
    square at 1.0 (PyTorch at 0, i.e. ``initial_square=0``), puts eps inside
    the square root (PyTorch adds it outside), and keeps lr inside the momentum
    buffer (PyTorch: ``buf = momentum*buf + g/den; p -= lr*buf``).  The last one
    only matters while the lr changes.  Recipes: MobileNet/EfficientNet use
    alpha=0.9, momentum=0.9, eps=1e-3; Inception-v3 uses eps=1.0.
    """

    def __init__(self, params, lr=1e-2, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=0.0,
                 centered=False, eps_inside_sqrt=True, initial_square=1.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                                      weight_decay=weight_decay, centered=centered,
                                      eps_inside_sqrt=eps_inside_sqrt, initial_square=initial_square))

    def _validate_group(self, group):
        super()._validate_group(group)
        for key, lo, hi in (("alpha", 0.0, 1.0), ("momentum", 0.0, float("inf")),
                            ("eps", 0.0, float("inf")), ("initial_square", 0.0, float("inf"))):
            if not lo <= group[key] <= hi:
                raise ValueError(f"RMSprop: expected {key} in [{lo}, {hi}], got {group[key]!r}")

    skips_on_device = True

    def _update_group(self, group, be, params, grads, states, skip=None):
        """One fused step (``Backend.rmsprop_update``) of the group."""
        momentum = group["momentum"]
        square_avgs = self._buffers(be, params, states, "square_avg",
                                    lambda p: be.full(p.shape, group["initial_square"], p.dtype))
        zeros = lambda p: be.zeros(p.shape, p.dtype)  # noqa: E731
        grad_avgs = self._buffers(be, params, states, "grad_avg", zeros) if group["centered"] else None
        bufs = self._buffers(be, params, states, "momentum_buffer", zeros) if momentum != 0 else None
        be.rmsprop_update([p.data for p in params], grads, square_avgs, grad_avgs, bufs, group["lr"],
                          group["alpha"], group["eps"], momentum, group["weight_decay"], group["eps_inside_sqrt"],
                          skip=skip)
