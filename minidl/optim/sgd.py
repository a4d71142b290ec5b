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
        be = p.backend
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        g = grad
        if wd != 0:
            g = be.add(g, be.mul(p.data, wd))
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = be.copy(g)
            else:
                buf = be.add(be.mul(buf, momentum), be.mul(g, 1.0 - group["dampening"]))
            state["momentum_buffer"] = buf
            g = be.add(g, be.mul(buf, momentum)) if group["nesterov"] else buf
        p.data = be.sub(p.data, be.mul(g, lr))
