"""minidl.models: the classic ImageNet classifiers, one file per family.

    import minidl.models as models
    net = models.create("resnet50", num_classes=10)
    models.list_models("efficientnet*")
"""
from .registry import ModelInfo, create, list_models, model_info, register_model

__all__ = ["ModelInfo", "create", "list_models", "model_info", "register_model"]
