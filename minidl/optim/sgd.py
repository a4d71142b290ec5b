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

    def _update(self, group, p, grad, state):
        """One fused step (``Backend.sgd_update``: a single kernel on cuda/emu).  It runs
        in place on a fresh copy of the parameter, which is then rebound, so arrays that
        alias the old ``p.data`` are never changed; the momentum buffer belongs to the
        optimizer and is updated in place (created, in the parameter's dtype, on the
        first step with momentum)."""
        be = p.backend
        momentum = group["momentum"]
        buf, first_step = None, False
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf, first_step = be.empty(p.shape, p.dtype), True
                state["momentum_buffer"] = buf
        param = be.copy(p.data)
        be.sgd_update(param, grad, buf, group["lr"], momentum, group["dampening"], group["weight_decay"],
                      group["nesterov"], first_step=first_step)
        p.data = param
