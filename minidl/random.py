"""Global random state: one generator per device, reseeded by ``manual_seed``.

Dropout masks, stochastic depth and parameter initialization draw from here,
so ``minidl.manual_seed(s)`` makes a run reproducible.
"""
from __future__ import annotations

from .backend import get_backend

_seed = None
_generators = {}


def manual_seed(seed):
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device="cpu"):
    """The generator of ``device``'s backend (created on first use from the global seed)."""
    key = str(device)
    gen = _generators.get(key)
    if gen is None:
        gen = get_backend(device).rng(_seed)
        _generators[key] = gen
    return gen


def get_state():
    """Picklable state of every generator (for exact checkpoint resume)."""
    return {"seed": _seed,
            "generators": {k: g.bit_generator.state for k, g in _generators.items()}}


def set_state(state):
    global _seed
    _seed = state["seed"]
    _generators.clear()
    for key, bit_state in state["generators"].items():
        gen = generator(key)
        gen.bit_generator.state = bit_state
