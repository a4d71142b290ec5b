"""Define-by-run graph: ``Function`` nodes, ``no_grad`` and the backward pass.

A ``Function`` subclass implements ``forward(*arrays)`` and
``backward(*grad_outputs)`` side by side, on raw backend arrays, through
``self.backend`` (never NumPy/CuPy directly).  ``Function.apply`` wraps the
result in Tensors and records the node when any input needs a gradient.

Gradients of outputs are keyed by ``(function, output_index)``, so a node with
several outputs (``split``) runs its backward once, with zeros standing in for
outputs that received no gradient.
"""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


def set_grad_enabled(mode: bool):
    _state.grad_enabled = bool(mode)


@contextlib.contextmanager
def no_grad():
    prev = is_grad_enabled()
    set_grad_enabled(False)
    try:
        yield
    finally:
        set_grad_enabled(prev)


@contextlib.contextmanager
def enable_grad():
    prev = is_grad_enabled()
    set_grad_enabled(True)
    try:
        yield
    finally:
        set_grad_enabled(prev)


def is_anomaly_enabled() -> bool:
    return getattr(_state, "anomaly", False)


@contextlib.contextmanager
def detect_anomaly(enabled=True):
    """Check every forward and backward result for NaN/inf and name the op that made it."""
    prev = is_anomaly_enabled()
    _state.anomaly = bool(enabled)
    try:
        yield
    finally:
        _state.anomaly = prev


def _check_finite(fn, arrays, phase):
    for i, a in enumerate(arrays):
        if a is not None and a.dtype.kind == "f" and not fn.backend.all(fn.backend.isfinite(a)):
            raise FloatingPointError(
                f"anomaly: {type(fn).__name__}.{phase} produced a non-finite value in "
                f"{'output' if phase == 'forward' else 'input gradient'} {i} (shape {tuple(a.shape)})")


class Function:
    """One differentiable operation.  Subclasses set attributes in ``__init__``
    (from keyword arguments to ``apply``) and save what backward needs on self."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError

    def save_for_backward(self, *arrays):
        self.saved = arrays

    @classmethod
    def apply(cls, *inputs, **attrs):
        from ..tensor import Tensor

        fn = cls(**attrs)
        tensors = [t for t in inputs if t is not None]
        if not tensors:
            raise TypeError(f"{cls.__name__}: expected at least one Tensor input")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"{cls.__name__}: expected Tensor inputs, got {type(t).__name__}")
        device = tensors[0].device
        for t in tensors[1:]:
            if t.device != device:
                raise ValueError(
                    f"{cls.__name__}: all inputs must be on one device, got {device!r} and {t.device!r}")
        fn.backend = tensors[0].backend
        fn.needs_input_grad = tuple(t is not None and t.requires_grad for t in inputs)
        record = is_grad_enabled() and any(fn.needs_input_grad)
        outputs = fn.forward(*[None if t is None else t.data for t in inputs])
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        if is_anomaly_enabled():
            _check_finite(fn, outputs, "forward")
        results = []
        device = getattr(fn, "output_device", device)  # ToDevice: outputs live elsewhere
        for i, out in enumerate(outputs):
            t = Tensor._wrap(out, device, requires_grad=record)
            if record:
                t._ctx = fn
                t._out_index = i
            results.append(t)
        if record:
            fn.inputs = inputs
            fn.output_meta = [(o.shape, o.dtype) for o in outputs]
        return results[0] if single else tuple(results)


def _topological_order(root_fn):
    """Functions reachable from root_fn, every consumer before its producers (iterative DFS)."""
    order, visited = [], set()
    stack = [(root_fn, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for t in fn.inputs:
            if t is not None and t._ctx is not None and id(t._ctx) not in visited:
                stack.append((t._ctx, False))
    order.reverse()
    return order


def _accumulate_leaf(t, g):
    if g.shape != t.data.shape:
        raise RuntimeError(f"backward: gradient shape {g.shape} does not match tensor shape {t.data.shape}")
    if t.grad is None:
        from ..tensor import Tensor
        t.grad = Tensor._wrap(t.backend.copy(g), t.device)
    else:
        t.grad.data = t.backend.add(t.grad.data, g)


def backward(root, grad=None, retain_graph=False):
    """Back-propagate from ``root``; leaf tensors that require grad accumulate ``.grad``."""
    backend = root.backend
    if not root.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no grad_fn")
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicit only for a scalar output, got shape {tuple(root.shape)}")
        g = backend.ones_like(root.data)
    else:
        g = grad.data if hasattr(grad, "data") else backend.asarray(grad, dtype=root.dtype)
        if tuple(g.shape) != tuple(root.shape):
            raise ValueError(f"backward: expected grad of shape {tuple(root.shape)}, got {tuple(g.shape)}")
    if root._ctx is None:
        _accumulate_leaf(root, g)
        return
    grads = {(id(root._ctx), root._out_index): g}
    anomaly = is_anomaly_enabled()
    for fn in _topological_order(root._ctx):
        if getattr(fn, "freed", False):
            raise RuntimeError(
                f"backward: the graph through {type(fn).__name__} was already freed; "
                "pass retain_graph=True to the first backward to go through it twice")
        outs = []
        for i, (shape, dtype) in enumerate(fn.output_meta):
            go = grads.pop((id(fn), i), None)
            outs.append(backend.zeros(shape, dtype) if go is None else go)
        in_grads = fn.backward(*outs)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if len(in_grads) != len(fn.inputs):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(in_grads)} gradients for {len(fn.inputs)} inputs")
        if anomaly:
            _check_finite(fn, in_grads, "backward")
        for t, gi, need in zip(fn.inputs, in_grads, fn.needs_input_grad):
            if not need or gi is None:
                continue
            if t._ctx is None:
                _accumulate_leaf(t, gi)
            else:
                key = (id(t._ctx), t._out_index)
                prev = grads.get(key)
                grads[key] = gi if prev is None else backend.add(prev, gi)
        if not retain_graph:
            fn.freed = True
            fn.inputs = ()  # drop references so activations can be freed
            fn.saved = ()
