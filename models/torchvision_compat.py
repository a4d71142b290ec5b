"""``load_torchvision_state_dict(model, state_dict)``: torchvision weights into minidl models.

The families that exist in torchvision use torchvision's module names here
(alexnet_owt = torchvision's ``alexnet``, vgg*, resnet*, resnext*, densenet*,
inception_v3, mobilenet_v2, efficientnet_b*), so most keys map unchanged.  What
the mapping does on top:

- DenseNet checkpoints from before torchvision 0.3 name a dense layer's parts
  ``norm.1`` / ``conv.2``; they become ``norm1`` / ``conv2`` (torchvision does the
  same rename when it loads them).
- ``num_batches_tracked`` keys are dropped where the model has no such buffer, and
  their absence from old checkpoints is no error.
- Train-only auxiliary heads (``AuxLogits.*`` of inception_v3) are dropped when the
  model was built without them.

The state dict is a mapping of name -> NumPy array, so no torch import is needed
(convert with ``{k: v.numpy() for k, v in torch_sd.items()}``; objects with a
``.numpy()`` method, such as CPU torch tensors, are converted here too).  Anything
that does not map (an unknown key, a mis-shaped tensor, a model parameter left
without a value) is listed in one ValueError, and nothing is loaded.
"""
from __future__ import annotations

import re
from collections import OrderedDict, namedtuple

import numpy as np

from minidl.nn import Module

TorchvisionLoadResult = namedtuple("TorchvisionLoadResult", ["loaded", "dropped", "missing"])

# torchvision < 0.3 DenseNet keys: "...denselayer1.norm.1.weight" -> "...denselayer1.norm1.weight"
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var"
    r"|num_batches_tracked))$")
_AUX_PREFIXES = ("AuxLogits.",)

# models whose layout differs from torchvision's model of the same name, by class name
_NOT_MAPPABLE = {
    "GoogLeNet": "minidl's googlenet is the paper's network (true 5x5 branches, conv biases, LRN, "
                 "no batch norm); torchvision's googlenet is a BN variant with 3x3 branches, so "
                 "its weights cannot be mapped",
    "AlexNet": "minidl's alexnet is the paper's two-GPU network (96-256-384-384-256, groups=2, "
               "LRN); torchvision's alexnet is minidl's alexnet_owt: load into "
               "minidl.models.create('alexnet_owt')",
}

_LIST_LIMIT = 20


def torchvision_key(name):
    """Our parameter name for a torchvision state-dict key."""
    m = _OLD_DENSENET_KEY.match(name)
    if m:
        head, tail = m.groups()
        return head + tail
    return name


def _to_numpy(name, value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):   # a torch tensor, duck-typed
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):
        return value.numpy()
    try:
        return np.asarray(value)
    except Exception:
        raise TypeError(f"load_torchvision_state_dict: expected a NumPy array for {name!r}, got "
                        f"{type(value).__name__}") from None


def _listing(what, items):
    items = list(items)
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f", ... ({len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else ""
    return f"  {what} ({len(items)}): {shown}{more}"


def load_torchvision_state_dict(model, state_dict, strict=True):
    """Copy a torchvision state dict (name -> NumPy array) into ``model``.

    ``strict``: every parameter and buffer of the model must receive a value
    (``num_batches_tracked`` excepted).  Keys of the state dict that map to nothing
    are always an error.  Returns ``(loaded, dropped, missing)`` key lists.
    """
    if not isinstance(model, Module):
        raise TypeError(f"load_torchvision_state_dict: expected a minidl.nn.Module, got "
                        f"{type(model).__name__}")
    if not hasattr(state_dict, "items"):
        raise TypeError("load_torchvision_state_dict: expected a mapping of name -> NumPy array, got "
                        f"{type(state_dict).__name__}")
    reason = _NOT_MAPPABLE.get(type(model).__name__)
    if reason:
        raise ValueError(f"load_torchvision_state_dict: {type(model).__name__} has no torchvision "
                         f"counterpart: {reason}")

    targets = OrderedDict((name, t) for name, t in model._state_items())
    has_aux = any(name.startswith(_AUX_PREFIXES) for name in targets)
    mapped, dropped, unmapped, mis_shaped, origin = OrderedDict(), [], [], [], {}
    for key, value in state_dict.items():
        name = torchvision_key(key)
        if name not in targets:
            if name.endswith("num_batches_tracked") or (not has_aux and name.startswith(_AUX_PREFIXES)):
                dropped.append(key)
            else:
                unmapped.append(key if name == key else f"{key} (as {name})")
            continue
        if name in mapped:
            raise ValueError(f"load_torchvision_state_dict: keys {origin[name]!r} and {key!r} both map "
                             f"to {name!r}")
        array = _to_numpy(key, value)
        if tuple(array.shape) != tuple(targets[name].shape):
            mis_shaped.append(f"{key} (expected {tuple(targets[name].shape)}, "
                              f"got {tuple(array.shape)})")
            continue
        mapped[name], origin[name] = array, key
    missing = [n for n in targets if n not in mapped and not n.endswith("num_batches_tracked")]
    if unmapped or mis_shaped or (strict and missing):
        lines = [f"load_torchvision_state_dict: the state dict does not fit {type(model).__name__} "
                 f"({len(mapped)} of {len(state_dict)} keys map):"]
        if unmapped:
            lines.append(_listing("unmapped torchvision keys", unmapped))
        if mis_shaped:
            lines.append(_listing("mis-shaped keys", mis_shaped))
        if strict and missing:
            lines.append(_listing("model keys without a value", missing))
        raise ValueError("\n".join(lines))
    model.load_state_dict(mapped, strict=False)
    return TorchvisionLoadResult(list(mapped), dropped, missing)
