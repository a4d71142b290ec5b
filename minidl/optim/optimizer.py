"""``Optimizer``: parameter groups, per-parameter state, and (de)serialization.

Subclasses implement ``_update_group(group, be, params, grads, states)``: one step of
every parameter of a group that has a gradient (on backend ``be``), through the
backend's fused multi-tensor update (a few kernel launches for a whole model on a
GPU).  One that sets ``skips_on_device = True`` takes ``skip`` too and passes it to
the backend updates: ``step(skip_if=flag)`` then leaves every parameter and its state
bit-identical where the 0-d device array ``flag`` is nonzero, decided on the device
(GradScaler's overflowed steps, without copies or host reads).  Updates are IN PLACE: a parameter owns its storage (``step`` gives one whose
array is read-only or not contiguous a contiguous copy first), so a device keeps the
same addresses from step to step.  ``states`` are the parameters' dicts of buffers.
"""
from __future__ import annotations

import copy

from ..autograd.function import enable_grad, no_grad
from ..dtypes import is_floating
from ..nn.utils import zero_grad_
from ..tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required>"


required = _Required()  # marks a hyperparameter without a default (e.g. SGD's lr)


class Optimizer:
    """``params`` is an iterable of Parameters, or of dicts ``{"params": [...], **options}``
    whose options override ``defaults`` for that group (e.g. ``weight_decay=0`` for
    BN and bias parameters)."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # id(param) -> dict of buffers; ids stay valid since groups hold the params
        if isinstance(params, Tensor):
            raise TypeError(f"{self._name}: expected an iterable of Parameters or dicts, got a single "
                            "Tensor (wrap it in a list)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    @property
    def _name(self):
        return type(self).__name__

    # ------------------------------------------------------------ groups
    def add_param_group(self, group):
        if not isinstance(group, dict):
            raise TypeError(f"{self._name}.add_param_group: expected a dict, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"{self._name}.add_param_group: the group dict has no 'params' key "
                             f"(keys: {sorted(group)})")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{self._name}: expected Parameters/Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{self._name}: can only optimize leaf tensors, got one made by "
                                 f"{type(p.grad_fn).__name__}")
            if not is_floating(p.dtype):
                raise TypeError(f"{self._name}: expected floating-point parameters, got dtype {p.dtype}")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{self._name}.add_param_group: unknown options {sorted(unknown)}; "
                             f"expected some of {sorted(self.defaults)}")
        new = {"params": params}
        for key, default in self.defaults.items():
            value = group.get(key, default)
            if value is required:
                raise ValueError(f"{self._name}: parameter group is missing the required option {key!r}")
            new[key] = value
        if "initial_lr" in group:
            new["initial_lr"] = group["initial_lr"]
        self._validate_group(new)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids) or seen & set(ids):
            raise ValueError(f"{self._name}: a parameter appears more than once across parameter groups")
        self.param_groups.append(new)

    def _validate_group(self, group):
        """Subclasses check their hyperparameters here (raise ValueError naming the option)."""
        if group["lr"] < 0:
            raise ValueError(f"{self._name}: expected lr >= 0, got {group['lr']!r}")
        if group.get("weight_decay", 0.0) < 0:
            raise ValueError(f"{self._name}: expected weight_decay >= 0, got {group['weight_decay']!r}")

    # ------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none=True):
        zero_grad_((p for group in self.param_groups for p in group["params"]), set_to_none)

    skips_on_device = False  # _update_group takes skip (see the module docstring)

    def step(self, closure=None, skip_if=None):
        """One update of every parameter that has a gradient.  ``closure`` (optional)
        re-evaluates the model and returns the loss, which step returns.  ``skip_if``:
        a 0-d float32 device array; nonzero there, the update changes nothing (needs
        ``skips_on_device``)."""
        if skip_if is not None and not self.skips_on_device:
            raise TypeError(f"{self._name}.step: skip_if needs an optimizer whose _update_group takes skip "
                            "(skips_on_device = True)")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                by_backend = {}
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.shape != p.shape:
                        raise ValueError(f"{self._name}.step: gradient shape {p.grad.shape} does not "
                                         f"match parameter shape {p.shape}")
                    p.data = p.backend.owned(p.data)
                    by_backend.setdefault(p.backend, []).append(p)
                for be, params in by_backend.items():
                    states = [self.state.setdefault(id(p), {}) for p in params]
                    grads = [p.grad.data for p in params]
                    if skip_if is None:
                        self._update_group(group, be, params, grads, states)
                    else:
                        self._update_group(group, be, params, grads, states, skip=skip_if)
        return loss

    def _update_group(self, group, be, params, grads, states):
        raise NotImplementedError(f"{self._name}: _update_group is not implemented")

    @staticmethod
    def _buffers(be, params, states, key, make):
        """The state arrays ``key`` of the parameters, each created by make(param) where
        missing (and made contiguous and writable, as the in-place updates need)."""
        out = []
        for p, state in zip(params, states):
            if state.get(key) is None:
                state[key] = make(p)
            state[key] = be.owned(state[key])
            out.append(state[key])
        return out

    # ------------------------------------------------------------ state
    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """{"state": {index: {name: NumPy copy or number}}, "param_groups": [options + "params":
        indices]}; indices number the parameters in group order, so the dict can be
        saved and loaded into an optimizer built the same way over another model."""
        state = {}
        for i, p in enumerate(self._all_params()):
            if id(p) in self.state:
                state[i] = {k: (p.backend.to_numpy(v).copy() if _is_array(v) else copy.copy(v))
                            for k, v in self.state[id(p)].items()}
        groups, start = [], 0
        for g in self.param_groups:
            entry = {k: copy.copy(v) for k, v in g.items() if k != "params"}
            entry["params"] = list(range(start, start + len(g["params"])))
            start += len(g["params"])
            groups.append(entry)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and buffers; the group layout must match."""
        try:
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (TypeError, KeyError):
            raise ValueError(f"{self._name}.load_state_dict: expected a dict with 'state' and "
                             f"'param_groups', got {type(state_dict).__name__}") from None
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{self._name}.load_state_dict: the state dict has {len(saved_groups)} "
                             f"parameter groups, the optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{self._name}.load_state_dict: group {i} has {len(saved['params'])} "
                                 f"parameters in the state dict, {len(group['params'])} in the optimizer")
        params = self._all_params()
        new_state = {}
        for index, buffers in saved_state.items():
            index = int(index)
            if not 0 <= index < len(params):
                raise ValueError(f"{self._name}.load_state_dict: state for parameter index {index}, "
                                 f"but the optimizer has {len(params)} parameters")
            p, be = params[index], params[index].backend
            entry = {}
            for k, v in buffers.items():
                if _is_array(v):
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"{self._name}.load_state_dict: state {k!r} of parameter "
                                         f"{index} has shape {tuple(v.shape)}, the parameter {p.shape}")
                    # copied, on the parameter's device and in its dtype
                    v = be.copy(be.asarray(v, dtype=p.dtype))
                entry[k] = copy.copy(v)
            new_state[id(p)] = entry
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.copy(v)
        self.state = new_state

    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _is_array(v):
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, (int, float))
