"""Adam and AdamW (PyTorch semantics)."""
from __future__ import annotations

import math

from .optimizer import Optimizer


class Adam(Optimizer):
    """PyTorch's Adam::

        t += 1
        g = grad + weight_decay * p          (Adam: L2 folded into the gradient)
        p = p * (1 - lr * weight_decay)      (AdamW instead: decoupled decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        v_hat = max(v_hat, v) if amsgrad else v
        p = p - lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _validate_group(self, group):
        super()._validate_group(group)
        betas = group["betas"]
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{self._name}: expected betas as two numbers in [0, 1), got {betas!r}")
        if group["eps"] < 0:
            raise ValueError(f"{self._name}: expected eps >= 0, got {group['eps']!r}")

    def _update(self, group, p, grad, state):
        be = p.backend
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        g = grad
        if wd != 0:
            if self._decoupled:
                p.data = be.mul(p.data, 1.0 - lr * wd)
            else:
                g = be.add(g, be.mul(p.data, wd))
        t = state.get("step", 0) + 1
        state["step"] = t
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        if m is None:
            m, v = be.zeros(p.shape, p.dtype), be.zeros(p.shape, p.dtype)
        m = be.add(be.mul(m, beta1), be.mul(g, 1.0 - beta1))
        v = be.add(be.mul(v, beta2), be.mul(be.mul(g, g), 1.0 - beta2))
        state["exp_avg"], state["exp_avg_sq"] = m, v
        if group["amsgrad"]:
            v_max = state.get("max_exp_avg_sq")
            v = v if v_max is None else be.maximum(v_max, v)
            state["max_exp_avg_sq"] = v
        bias1 = 1.0 - beta1 ** t
        bias2 = 1.0 - beta2 ** t
        den = be.add(be.mul(be.sqrt(v), 1.0 / math.sqrt(bias2)), eps)
        p.data = be.sub(p.data, be.mul(be.div(m, den), lr / bias1))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr * wd * p before the
    Adam step, instead of adding wd * p to the gradient.  Default weight_decay=0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
