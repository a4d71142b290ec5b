"""minidl: a small deep-learning framework — autograd over NumPy/CuPy arrays,
its own kernels, and the classic ImageNet classifiers."""
from .autograd import detect_anomaly, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import available_devices, get_backend
from .creation import (arange, as_tensor, from_dlpack, from_numpy, full, isfinite, ones, ones_like,
                       rand, randn, tensor, zeros, zeros_like)
from .random import manual_seed
from .tensor import Tensor
from . import functional
from .functional import concat, cat, stack, split
from . import amp, metrics, nn, optim
from . import io  # noqa: E402  (minidl.io.save / load: safetensors checkpoints)

from .dtypes import bfloat16, float16, float32, float64  # noqa: E402  (NumPy dtype objects)

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "as_tensor", "from_numpy", "from_dlpack", "zeros", "ones", "full", "zeros_like", "ones_like", "arange",
           "randn", "rand", "isfinite", "no_grad", "enable_grad", "is_grad_enabled",
           "set_grad_enabled", "detect_anomaly", "manual_seed", "functional", "concat", "cat",
           "stack", "split", "get_backend", "available_devices", "float16", "bfloat16", "float32", "float64"]

# ---------------------------------------------------------------- compiled kernels
# minidl._emu (always built by `pip install -e .`) is imported eagerly; minidl._cuda
# only on demand (device 'cuda').  A source checkout without a build still imports.
from . import cuda  # noqa: E402

_EMU_IMPORT_ERROR = None
try:
    from . import _emu  # noqa: E402,F401
except ImportError as _e:  # pragma: no cover - only without a build
    _EMU_IMPORT_ERROR = (f"minidl._emu is not built ({_e}); run 'pip install -e .' in the minidl "
                         "checkout (needs CMake and a C++20 compiler)")


def __getattr__(name):
    # minidl.summary(model, input_size) lives in minidl.tools, which `import minidl` leaves
    # unloaded; it is imported on first use
    if name == "summary":
        from .tools.summary import summary
        return summary
    if name == "_emu" and _EMU_IMPORT_ERROR is not None:
        raise ImportError(_EMU_IMPORT_ERROR)
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")
