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

    def _update(self, group, p, grad, state):
        be = p.backend
        alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
        g = grad
        if group["weight_decay"] != 0:
            g = be.add(g, be.mul(p.data, group["weight_decay"]))
        ms = state.get("square_avg")
        if ms is None:
            ms = be.full(p.shape, group["initial_square"], p.dtype)
        ms = be.add(be.mul(ms, alpha), be.mul(be.mul(g, g), 1.0 - alpha))
        state["square_avg"] = ms
        den = ms
        if group["centered"]:
            mg = state.get("grad_avg")
            mg = be.mul(g, 1.0 - alpha) if mg is None else be.add(be.mul(mg, alpha), be.mul(g, 1.0 - alpha))
            state["grad_avg"] = mg
            den = be.sub(ms, be.mul(mg, mg))
        if group["eps_inside_sqrt"]:
            den = be.sqrt(be.add(den, eps))
        else:
            den = be.add(be.sqrt(den), eps)
        step = be.mul(be.div(g, den), group["lr"])
        if momentum != 0:
            buf = state.get("momentum_buffer")
            step = step if buf is None else be.add(be.mul(buf, momentum), step)
            state["momentum_buffer"] = step
        p.data = be.sub(p.data, step)
