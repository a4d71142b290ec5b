"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict``."""
from __future__ import annotations

from .module import Module


def _check_module(owner, what, module):
    if not isinstance(module, Module):
        raise TypeError(f"{owner}.{what}: expected a Module, got {type(module).__name__}")
    return module


class _IndexedModules(Module):
    """Modules registered under the names "0", "1", ... (Sequential and ModuleList)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def _index(self, idx):
        n = len(self._modules)
        if not isinstance(idx, int):
            raise TypeError(f"{type(self).__name__}: expected an int or slice index, got {type(idx).__name__}")
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} out of range for length {n}")
        return idx % n

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx, module):
        key = list(self._modules)[self._index(idx)]
        self._modules[key] = _check_module(type(self).__name__, "__setitem__", module)

    def __delitem__(self, idx):
        items = list(self._modules.values())
        if isinstance(idx, slice):
            del items[idx]
        else:
            del items[self._index(idx)]
        self._modules.clear()
        for i, m in enumerate(items):  # renumber so names stay 0..n-1
            self._modules[str(i)] = m

    def append(self, module):
        self._modules[str(len(self._modules))] = _check_module(type(self).__name__, "append", module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        items = list(self._modules.values())
        items.insert(index, _check_module(type(self).__name__, "insert", module))
        self._modules.clear()
        for i, m in enumerate(items):
            self._modules[str(i)] = m


class Sequential(_IndexedModules):
    """Applies its modules in order.  ``Sequential(a, b)`` names them "0", "1";
    ``Sequential(OrderedDict(stem=a, head=b))`` (or a dict) keeps the given names."""

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], dict):
            Module.__init__(self)
            for name, m in modules[0].items():
                self.add_module(name, _check_module("Sequential", "__init__", m))
        else:
            if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
                modules = modules[0]
            super().__init__(modules)

    def __getitem__(self, idx):
        if isinstance(idx, str):
            return self._modules[idx]
        return super().__getitem__(idx)

    def append(self, module):
        name = str(len(self._modules))
        if name in self._modules:
            raise ValueError(f"Sequential.append: name {name!r} is already taken by a named module")
        self._modules[name] = _check_module("Sequential", "append", module)
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_IndexedModules):
    """A list of modules that registers them (it has no forward of its own)."""

    def __init__(self, modules=()):
        super().__init__(modules)


class ModuleDict(Module):
    """A dict of modules that registers them under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, _check_module("ModuleDict", "__setitem__", module))

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for key, m in items:
            self[key] = m
