"""Define-by-run graph: ``Function`` nodes, ``no_grad`` and the backward pass.

A ``Function`` subclass implements ``forward(*arrays)`` and
``backward(*grad_outputs)`` side by side, on raw backend arrays, through
``self.backend`` (never NumPy/CuPy directly).  ``Function.apply`` wraps the
result in Tensors and records the node when any input needs a gradient.

Gradients of outputs are keyed by ``(function, output_index)``, so a node with
several outputs (``split``) runs its backward once, with zeros standing in for
outputs that received no gradient.

Gradient checks.  Every gradient a ``backward`` returns is checked before it is
used, for every input (leaf or not): it must be an array of the input's array
library (its device), of the input's exact shape and dtype.  Reducing a gradient
over broadcast axes is the Function's job (``backend.sum_to_shape``, as the
binary ops in minidl/autograd/math.py do); the engine never reshapes or casts
what a backward returns, so a wrong gradient is an error naming the Function and
the input, not a wrong number or a crash in a kernel downstream.

Dtype policy, one for every backend, enforced here in ``Function.apply`` before
any backend sees an array:

- An op that computes in floating point (a ``Function`` keeps the default
  ``dtypes = FLOAT_DTYPES``: convolution, linear, pooling, normalization,
  softmax/cross-entropy, the activations) takes float16, bfloat16, float32 or
  float64 tensors.  Integer and bool tensors are a TypeError naming the op.
- Elementwise arithmetic, reductions, matmul, shape and indexing ops, ``Cast``
  and ``ToDevice`` (each a ``GenericFunction``: ``dtypes = ANY_DTYPE``) follow
  NumPy's type rules, which every backend's array module shares.
- Half precision (float16, bfloat16) is a storage format: an op that computes
  (every Function but the ones with ``moves_data_only``) receives its half
  inputs widened to float32, and its float32 outputs are rounded to the half
  dtype when every floating input had that one dtype (mixed inputs follow
  NumPy's promotion: float16 with float32 gives float32).  Its backward runs in
  float32 too, and its gradients are rounded to the inputs' dtypes.  So every
  backend computes a half-precision op as the CPU does: in float32, rounded once.
  An op may instead name the input whose half dtype its outputs take
  (``outputs_like_input``): batch norm's half activations with float32 parameters
  give half outputs, as in PyTorch.
- Under ``minidl.amp.autocast`` the policy installed with ``set_autocast_policy``
  casts an op's inputs first (``autocast_inputs``).
- Only floating-point tensors can require grad (``Tensor``).
- A gradient always has its tensor's dtype: ``backward(grad)`` casts the given
  gradient to the root's dtype (as PyTorch does), and a ``backward`` returning
  another dtype is an error.

Hooks.  ``Tensor.register_post_accumulate_grad_hook(hook)`` on a leaf that
requires grad calls ``hook(tensor)`` once per backward pass, as soon as the
leaf's ``.grad`` holds every contribution of that pass (while the rest of the
graph is still being differentiated), and not at all when no gradient reached
the leaf.
"""
from __future__ import annotations

import contextlib
import itertools
import re
import threading

from ..dtypes import float32, is_floating, is_half

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
        if a is not None and is_floating(a.dtype) and not fn.backend.all(fn.backend.isfinite(a)):
            raise FloatingPointError(
                f"anomaly: {type(fn).__name__}.{phase} produced a non-finite value in "
                f"{'output' if phase == 'forward' else 'input gradient'} {i} (shape {tuple(a.shape)})")


FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
ANY_DTYPE = None


def op_name(fn):
    """The op's name in error messages: ``fn.op_name``, or the class name in snake_case
    (MaxPool2d -> max_pool2d)."""
    return getattr(fn, "op_name", None) or re.sub(r"(?<=[a-z])(?=[A-Z])", "_", type(fn).__name__).lower()


def set_autocast_policy(policy):
    """Install ``policy(op_name, inputs) -> inputs`` (None removes it) for this thread;
    -> the policy it replaces.  minidl.amp.autocast installs its op table here."""
    previous = getattr(_state, "autocast", None)
    _state.autocast = policy
    return previous


def autocast_inputs(op, inputs):
    """``inputs`` cast as the autocast policy says for ``op``; unchanged outside autocast.
    Ops whose Python wrapper checks dtypes call it before checking."""
    policy = getattr(_state, "autocast", None)
    return inputs if policy is None else policy(op, inputs)


def _half_compute(fn, inputs):
    """(whether fn computes its half inputs in float32, the dtype its float32 outputs
    round to or None).  Not where every backend op fn calls (``fn.backend_ops``) takes
    16-bit arrays itself (``Backend.half_native``: same results, no widening passes)."""
    if fn.moves_data_only:
        return False, None
    ops = getattr(fn, "backend_ops", None)
    if callable(ops):  # ops that depend on the inputs (Conv2d: the bias)
        ops = ops(inputs)
    if ops and all(op in fn.backend.half_native for op in ops):
        return False, None
    floating = {t.dtype for t in inputs if t is not None and is_floating(t.dtype)}
    if not any(is_half(d) for d in floating):
        return False, None
    like = getattr(fn, "outputs_like_input", None)
    if like is not None and is_half(inputs[like].dtype):  # batch norm: half x, float32 parameters
        return True, inputs[like].dtype
    return True, (next(iter(floating)) if len(floating) == 1 else None)


def _widen(be, arrays):
    return [a if a is None or not is_half(a.dtype) else be.astype(a, float32) for a in arrays]


def _check_dtypes(fn, inputs):
    allowed = fn.dtypes
    if allowed is ANY_DTYPE:
        return
    for i, t in enumerate(inputs):
        if t is not None and t.dtype.name not in allowed:
            raise TypeError(f"{op_name(fn)}: expected {' or '.join(allowed)} tensors, got {t.dtype} "
                            f"(input {i})")


class Function:
    """One differentiable operation.  Subclasses set attributes in ``__init__``
    (from keyword arguments to ``apply``) and save what backward needs on self.
    ``dtypes`` lists the input dtypes the op computes in (``ANY_DTYPE``: NumPy's rules);
    ``op_name`` names it in error messages."""

    dtypes = FLOAT_DTYPES
    moves_data_only = False  # True: half inputs are passed as they are (no arithmetic)
    # True: backward returns arrays it made, one per input, that nothing else holds, so a
    # leaf's first gradient is taken as it is (no copy: 150 MB for AlexNet's fc6)
    fresh_grads = False

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
        inputs = autocast_inputs(op_name(fn), inputs)
        _check_dtypes(fn, inputs)
        fn.backend = be = tensors[0].backend
        fn.needs_input_grad = tuple(t is not None and t.requires_grad for t in inputs)
        record = is_grad_enabled() and any(fn.needs_input_grad)
        fn.widened, rounded = _half_compute(fn, inputs)
        arrays = [None if t is None else t.data for t in inputs]
        outputs = fn.forward(*(_widen(be, arrays) if fn.widened else arrays))
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        if rounded is not None:
            outputs = tuple(be.astype(o, rounded) if o.dtype == float32 else o for o in outputs)
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


class GenericFunction(Function):
    """A Function over the array module's generic operations: any dtype, NumPy's rules."""

    dtypes = ANY_DTYPE


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


class HookHandle:
    """Returned by a ``register_*_hook`` method; ``remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks, hook):
        self._hooks = hooks
        self.id = next(self._ids)
        hooks[self.id] = hook

    def remove(self):
        self._hooks.pop(self.id, None)


def _array_library(a):
    """The array library of ``a`` ("numpy", "cupy"), a subclass counting as its base's."""
    for cls in type(a).__mro__:
        library = cls.__module__.partition(".")[0]
        if library in ("numpy", "cupy"):
            return library
    return type(a).__module__.partition(".")[0]


def _check_gradient(fn, index, t, g):
    """The gradient ``fn.backward`` returned for input ``index`` (tensor ``t``) must be
    an array of t's library, shape and dtype."""
    library = _array_library(t.data)
    if _array_library(g) != library or not hasattr(g, "shape"):
        raise TypeError(f"{type(fn).__name__}.backward returned a {type(g).__name__} as the gradient of "
                        f"input {index}, expected a {library} array like the input on {t.device!r}")
    if tuple(g.shape) != t.shape:
        raise ValueError(f"{type(fn).__name__}.backward returned a gradient of shape {tuple(g.shape)} "
                         f"for input {index}, expected the input's shape {t.shape}")
    if g.dtype != t.dtype:
        raise TypeError(f"{type(fn).__name__}.backward returned a {g.dtype} gradient for input {index}, "
                        f"expected the input's dtype {t.dtype}")


def _pending_hooked_leaves(order):
    """{id(leaf): [contributions left, whether one was a gradient]} for the leaves with
    post-accumulate hooks."""
    pending = {}
    for fn in order:
        for t, need in zip(fn.inputs, fn.needs_input_grad):
            if need and t._ctx is None and t._post_accumulate_grad_hooks:
                pending.setdefault(id(t), [0, False])[0] += 1
    return pending


def _run_post_accumulate_hooks(t):
    for hook in list(t._post_accumulate_grad_hooks.values()):
        hook(t)


def _leaf_contribution_done(pending, t, accumulated):
    """Count down a hooked leaf's contributions; run its hooks after the last one when
    any of them was a gradient."""
    entry = pending[id(t)]
    entry[0] -= 1
    entry[1] = entry[1] or accumulated
    if entry[0] == 0:
        del pending[id(t)]
        if entry[1]:
            _run_post_accumulate_hooks(t)


def _root_gradient(root, grad):
    """The array of a gradient given to ``backward``: the root's shape, device and dtype
    (a gradient of another dtype is cast to the root's, as in PyTorch)."""
    from ..tensor import Tensor

    if isinstance(grad, Tensor):
        if grad.device != root.device:
            raise ValueError(f"backward: grad is on {grad.device!r} but the tensor is on {root.device!r}")
        g = grad.data
    else:
        g = root.backend.asarray(grad)
    if tuple(g.shape) != tuple(root.shape):
        raise ValueError(f"backward: expected grad of shape {tuple(root.shape)}, got {tuple(g.shape)}")
    if g.dtype.kind not in "biu" and not is_floating(g.dtype):
        raise TypeError(f"backward: expected a real-valued grad, got dtype {g.dtype}")
    return g if g.dtype == root.dtype else root.backend.astype(g, root.dtype)


def _accumulate_leaf(t, g, fresh=False):
    """t.grad = g, or += g.  A first gradient is copied unless ``fresh`` (made by a
    Function with fresh_grads): it may alias another gradient, the user's or a view."""
    if t.grad is None:
        from ..tensor import Tensor
        t.grad = Tensor._wrap(g if fresh else t.backend.copy(g), t.device)
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
        g = _root_gradient(root, grad)
    if root._ctx is None:
        _accumulate_leaf(root, g)
        if root._post_accumulate_grad_hooks:
            _run_post_accumulate_hooks(root)
        return
    grads = {(id(root._ctx), root._out_index): g}
    summed = set()  # keys whose gradient is a sum made here, accumulated in place from then on
    anomaly = is_anomaly_enabled()
    order = _topological_order(root._ctx)
    pending = _pending_hooked_leaves(order)
    for fn in order:
        if getattr(fn, "freed", False):
            raise RuntimeError(
                f"backward: the graph through {type(fn).__name__} was already freed; "
                "pass retain_graph=True to the first backward to go through it twice")
        outs = []
        for i, (shape, dtype) in enumerate(fn.output_meta):
            go = grads.pop((id(fn), i), None)
            outs.append(backend.zeros(shape, dtype) if go is None else go)
        in_grads = fn.backward(*(_widen(backend, outs) if fn.widened else outs))
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if len(in_grads) != len(fn.inputs):
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned {len(in_grads)} gradients for {len(fn.inputs)} inputs")
        if fn.widened:  # float32 gradients of half inputs, rounded to the inputs' dtypes
            in_grads = tuple(backend.astype(g, t.dtype) if g is not None and t is not None and is_half(t.dtype)
                             and g.dtype == float32 else g for g, t in zip(in_grads, fn.inputs))
        for index, (t, gi, need) in enumerate(zip(fn.inputs, in_grads, fn.needs_input_grad)):
            if need and gi is not None:
                _check_gradient(fn, index, t, gi)
        if anomaly:
            _check_finite(fn, in_grads, "backward")
        for t, gi, need in zip(fn.inputs, in_grads, fn.needs_input_grad):
            if not need:
                continue
            if t._ctx is None:
                if gi is not None:
                    _accumulate_leaf(t, gi, fn.fresh_grads)
                if pending and id(t) in pending:
                    _leaf_contribution_done(pending, t, gi is not None)
            elif gi is not None:
                key = (id(t._ctx), t._out_index)
                prev = grads.get(key)
                if prev is None:
                    grads[key] = gi
                elif key in summed and prev.dtype == gi.dtype:
                    backend.add_(prev, gi)  # a sum this loop made: nothing else holds it
                else:  # (the first gradient may alias another one, or the user's)
                    grads[key] = backend.add(prev, gi)
                    summed.add(key)
        if not retain_graph:
            fn.freed = True
            fn.inputs = ()  # drop references so activations can be freed
            fn.saved = ()
