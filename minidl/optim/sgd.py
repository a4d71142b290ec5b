"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from .optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's SGD, exactly::

        g = grad + weight_decay * p
        buf = g                                    (first step)
        buf = momentum * buf + (1 - dampening) * g (later steps)
        g = g + momentum * buf  if nesterov  else  buf   (when momentum != 0)
        p = p - lr * g

    Nesterov needs momentum > 0 and dampening == 0.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate_group(self, group):
        super()._validate_group(group)
        if group["momentum"] < 0:
            raise ValueError(f"SGD: expected momentum >= 0, got {group['momentum']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov requires momentum > 0 and dampening == 0, got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    skips_on_device = True

    def _update_group(self, group, be, params, grads, states, skip=None):
        """One fused step (``Backend.sgd_update``) of the group; the momentum buffers
        belong to the optimizer (created, in the parameter's dtype, on a parameter's
        first step with momentum, which writes them without reading).  Under ``skip``
        a new buffer starts at zero instead (the first step may be skipped), so a step
        after a skipped first one computes momentum * 0 + (1 - dampening) * d: the
        first step's d exactly when dampening is 0 (the default)."""
        momentum = group["momentum"]
        args = (group["lr"], momentum, group["dampening"], group["weight_decay"], group["nesterov"])
        if momentum == 0:
            be.sgd_update([p.data for p in params], grads, None, *args, skip=skip)
            return
        first = [state.get("momentum_buffer") is None for state in states]
        make = (lambda p: be.empty(p.shape, p.dtype)) if skip is None else (lambda p: be.zeros(p.shape, p.dtype))
        bufs = self._buffers(be, params, states, "momentum_buffer", make)
        for first_step in (True, False):
            pick = [k for k, f in enumerate(first) if f == first_step]
            if pick:
                be.sgd_update([params[k].data for k in pick], [grads[k] for k in pick], [bufs[k] for k in pick],
                              *args, first_step=first_step and skip is None, skip=skip)
