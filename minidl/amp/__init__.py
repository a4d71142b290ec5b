"""Mixed precision: ``autocast`` (one op-policy table) and ``GradScaler`` (dynamic loss scaling)."""
from .autocast import OP_POLICY, autocast
from .grad_scaler import GradScaler

__all__ = ["OP_POLICY", "autocast", "GradScaler"]
