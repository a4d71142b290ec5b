"""Adam and AdamW (PyTorch semantics)."""
from __future__ import annotations

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

    skips_on_device = True

    def _update_group(self, group, be, params, grads, states, skip=None):
        """One fused step (``Backend.adam_update``) of the group; parameters at different
        step counts (one added to the optimizer later) go in separate calls.  The step
        count is the host's: a step skipped on the device counts too."""
        (beta1, beta2), amsgrad = group["betas"], group["amsgrad"]
        zeros = lambda p: be.zeros(p.shape, p.dtype)  # noqa: E731
        exp_avgs = self._buffers(be, params, states, "exp_avg", zeros)
        exp_avg_sqs = self._buffers(be, params, states, "exp_avg_sq", zeros)
        max_sqs = self._buffers(be, params, states, "max_exp_avg_sq", zeros) if amsgrad else None
        for state in states:
            state["step"] = state.get("step", 0) + 1
        for step in sorted({state["step"] for state in states}):
            pick = [k for k, state in enumerate(states) if state["step"] == step]
            take = lambda arrays: None if arrays is None else [arrays[k] for k in pick]  # noqa: E731
            be.adam_update([params[k].data for k in pick], take(grads), take(exp_avgs), take(exp_avg_sqs),
                           take(max_sqs), step, group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                           self._decoupled, skip=skip)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr * wd * p before the
    Adam step, instead of adding wd * p to the gradient.  Default weight_decay=0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
