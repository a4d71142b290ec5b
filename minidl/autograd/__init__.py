"""Autograd: the graph engine (function.py) and differentiable ops, one family per file."""
from .function import (Function, backward, detect_anomaly, enable_grad, is_anomaly_enabled,
                       is_grad_enabled, no_grad, set_grad_enabled)

__all__ = ["Function", "backward", "detect_anomaly", "enable_grad", "is_anomaly_enabled",
           "is_grad_enabled", "no_grad", "set_grad_enabled"]
