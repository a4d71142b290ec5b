"""``Module``: the base class of every layer and model.

Assigning a ``Parameter``, a ``Module`` or (through ``register_buffer``) a
buffer Tensor to an attribute registers it, so that ``parameters()``,
``state_dict()``, ``train()/eval()`` and ``to(device)`` reach the whole tree.
Names are dotted paths (``features.0.weight``), as in PyTorch, so state dicts
line up with PyTorch's naming.  Forward hooks (``register_forward_pre_hook``,
``register_forward_hook``) observe or replace a module's inputs and output, with
PyTorch's semantics.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple

import numpy as np  # dtype objects only

from ..autograd.function import no_grad
from ..dtypes import is_floating, names_dtype
from ..tensor import Conversions, Tensor
from .parameter import Parameter
from .utils import zero_grad_

LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods: ``remove()`` unregisters the hook (a
    second call does nothing); used as a context manager, it removes the hook on exit."""

    _ids = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _host_copy(t):
    """A NumPy copy of a tensor's data (state dicts never alias live arrays)."""
    return t.backend.to_numpy(t.data).copy()


class Module(Conversions):
    """Base class: subclasses call ``super().__init__()`` and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def _require_init(self, what):
        if "_parameters" not in self.__dict__:
            raise TypeError(f"{type(self).__name__}: cannot assign {what} before "
                            "Module.__init__() was called (call super().__init__() first)")

    def __setattr__(self, name, value):
        d = self.__dict__
        if isinstance(value, Parameter):
            self._require_init("a Parameter")
            self._discard(name)
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            self._require_init("a submodule")
            self._discard(name)
            d["_modules"][name] = value
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name}: expected a Parameter or None "
                                f"for a registered parameter, got {type(value).__name__}")
            d["_parameters"][name] = None
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name}: expected a Module or None "
                                f"for a registered submodule, got {type(value).__name__}")
            d["_modules"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}.{name}: expected a Tensor or None "
                                f"for a registered buffer, got {type(value).__name__}")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name):
        for key in ("_parameters", "_modules", "_buffers"):
            self.__dict__[key].pop(name, None)
        self.__dict__["_non_persistent"].discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            registry = d.get(key)
            if registry is not None and name in registry:
                return registry[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if name in d.get(key, ()):
                del d[key][name]
                d["_non_persistent"].discard(name)
                return
        object.__delattr__(self, name)

    def _check_name(self, name, what):
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}.{what}: expected a str name, got {type(name).__name__}")
        if not name or "." in name:
            raise ValueError(f"{type(self).__name__}.{what}: expected a non-empty name without '.', got {name!r}")
        if name in self.__dict__ and name not in self._parameters and name not in self._buffers \
                and name not in self._modules:
            raise ValueError(f"{type(self).__name__}.{what}: attribute {name!r} already exists")

    def register_parameter(self, name, param):
        self._require_init("a Parameter")
        self._check_name(name, "register_parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}.register_parameter: expected a Parameter or None "
                            f"for {name!r}, got {type(param).__name__}")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A non-learnable tensor that moves with the module (``to``); persistent
        buffers (running statistics) are saved in ``state_dict``."""
        self._require_init("a buffer")
        self._check_name(name, "register_buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"{type(self).__name__}.register_buffer: expected a Tensor or None "
                            f"for {name!r}, got {type(tensor).__name__}")
        self._discard(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        self._require_init("a submodule")
        self._check_name(name, "add_module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: expected a Module or None "
                            f"for {name!r}, got {type(module).__name__}")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix="", _memo=None):
        memo = set() if _memo is None else _memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry, recurse, predicate=None):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, t in getattr(module, registry).items():
                if t is None or id(t) in seen:
                    continue
                if predicate is not None and not predicate(module, name):
                    continue
                seen.add(id(t))  # a shared tensor is listed once, under its first name
                yield (f"{prefix}.{name}" if prefix else name), t

    def named_parameters(self, recurse=True):
        yield from self._named_members("_parameters", recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse=True):
        yield from self._named_members("_buffers", recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse):
            yield b

    def num_parameters(self, trainable_only=False):
        """Total element count of the (distinct) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------ modes
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise TypeError(f"{type(self).__name__}.train: expected a bool mode, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, flag=True):
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def zero_grad(self, set_to_none=True):
        zero_grad_(self.parameters(), set_to_none)

    def apply(self, fn):
        """Call ``fn`` on every submodule (children first) and then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ device / dtype
    def to(self, device=None, dtype=None):
        """Move (and/or cast) parameters, their gradients and buffers in place.
        ``dtype`` casts floating-point tensors only (integer counters keep theirs); a
        dtype as the first argument is the dtype (``model.to(minidl.bfloat16)``)."""
        if device is not None and dtype is None and names_dtype(device):
            device, dtype = None, device
        if device is None and dtype is None:
            raise ValueError(f"{type(self).__name__}.to: expected a device and/or a dtype, got neither")
        if dtype is not None:
            dtype = np.dtype(dtype)
            if not is_floating(dtype):
                raise TypeError(f"{type(self).__name__}.to: expected a floating-point dtype, got {dtype}")

        def convert(t):
            target = dtype if (dtype is not None and is_floating(t.dtype)) else None
            with no_grad():
                moved = t.to(device=device, dtype=target)
            t.data, t.device = moved.data, moved.device

        with no_grad():
            for m in self.modules():
                for p in m._parameters.values():
                    if p is not None:
                        convert(p)
                        if p.grad is not None:
                            convert(p.grad)
                for b in m._buffers.values():
                    if b is not None:
                        convert(b)
        return self

    # ------------------------------------------------------------ state
    def _state_items(self):
        """(name, tensor) of every parameter and persistent buffer, in registration order."""
        items = []
        for prefix, module in self.named_modules():
            dot = prefix + "." if prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    items.append((dot + name, p))
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    items.append((dot + name, b))
        return items

    def state_dict(self):
        """Ordered dict of dotted name -> NumPy copy of each parameter and persistent buffer."""
        return OrderedDict((name, _host_copy(t)) for name, t in self._state_items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy arrays or Tensors) into the parameters and buffers.

        With ``strict`` any missing or unexpected key is an error; a mis-shaped
        key always is.  All problems are reported together in one ValueError.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a mapping of "
                            f"name -> array, got {type(state_dict).__name__}")
        targets = OrderedDict(self._state_items())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        mis_shaped = []
        for name, t in targets.items():
            if name in state_dict:
                shape = tuple(state_dict[name].shape)
                if shape != t.shape:
                    mis_shaped.append((name, t.shape, shape))
        if mis_shaped or (strict and (missing or unexpected)):
            lines = [f"{type(self).__name__}.load_state_dict: error(s) loading the state dict:"]
            if strict and missing:
                lines.append("  missing keys: " + ", ".join(repr(k) for k in missing))
            if strict and unexpected:
                lines.append("  unexpected keys: " + ", ".join(repr(k) for k in unexpected))
            if mis_shaped:
                lines.append("  mis-shaped keys: " + ", ".join(
                    f"{k!r} (expected {exp}, got {got})" for k, exp, got in mis_shaped))
            raise ValueError("\n".join(lines))
        for name, t in targets.items():
            if name in state_dict:
                value = state_dict[name]
                if isinstance(value, Tensor):
                    value = value.backend.to_numpy(value.data)
                be = t.backend
                # copy so the module never aliases the caller's arrays
                t.data = be.copy(be.asarray(value, dtype=t.dtype))
        return LoadResult(missing, unexpected)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: forward() is not implemented")

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        pre_hooks, hooks = d.get("_forward_pre_hooks"), d.get("_forward_hooks")
        if pre_hooks:
            for hook in list(pre_hooks.values()):
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        if hooks:
            for hook in list(hooks.values()):
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    # ------------------------------------------------------------ hooks
    def _add_hook(self, registry, hook, what):
        if not callable(hook):
            raise TypeError(f"{type(self).__name__}.{what}: expected a callable, got {type(hook).__name__}")
        self._require_init("a hook")
        hooks = self.__dict__[registry]
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before every ``forward``, with the positional
        arguments as a tuple; a result other than None replaces them (a tuple, or a
        single value).  Hooks run in registration order.  Returns a ``RemovableHandle``."""
        return self._add_hook("_forward_pre_hooks", hook, "register_forward_pre_hook")

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after every ``forward``; a result other
        than None replaces the output.  Hooks run in registration order.  Returns a
        ``RemovableHandle``."""
        return self._add_hook("_forward_hooks", hook, "register_forward_hook")

    # ------------------------------------------------------------ repr
    def extra_repr(self):
        """The layer's arguments, shown inside its parentheses in ``repr``."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        children = [(name, m) for name, m in self._modules.items() if m is not None]
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [extra] if extra else []
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))
