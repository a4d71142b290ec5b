"""``Parameter``: a Tensor that a Module registers as learnable."""
from __future__ import annotations

from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor with ``requires_grad=True`` by default.

    Assigning a Parameter to a Module attribute registers it; optimizers update
    it in place by rebinding ``.data``, so the object identity stays stable.
    """

    def __init__(self, data, requires_grad=True, dtype=None, device=None):
        if isinstance(data, Tensor):
            device = data.device if device is None else device
            data = data.data
        super().__init__(data, dtype=dtype, device="cpu" if device is None else device,
                         requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
