"""minidl.models: the classic ImageNet classifiers, one file per family.

    import minidl.models as models
    net = models.create("resnet50", num_classes=10)
    models.list_models("efficientnet*")
"""
from .registry import ModelInfo, create, list_models, model_info, register_model, suggest
from .torchvision_compat import load_torchvision_state_dict  # noqa: F401

__all__ = ["ModelInfo", "create", "list_models", "load_torchvision_state_dict", "model_info",
           "register_model"]

from . import resnet  # noqa: F401
from . import densenet  # noqa: F401
from . import xception  # noqa: F401
from . import mobilenet  # noqa: F401
from . import efficientnet  # noqa: F401
from .efficientnet import efficientnet  # noqa: F401  (compound scaling for any phi; unregistered)
from . import alexnet  # noqa: F401
from . import overfeat  # noqa: F401
from . import vgg  # noqa: F401
from . import googlenet  # noqa: F401
from . import inception_v2  # noqa: F401
from . import inception_v3  # noqa: F401
from . import lenet  # noqa: F401
