"""The model registry: ``@register_model(...)`` on every public constructor.

Each registration records the published reference numbers beside the
definition: year, paper, ImageNet top-1/top-5 (single-crop, as the lecture's
comparison table gives them), trainable parameters and MACs at the reference
input size.  ``create(name)`` builds a model; ``list_models(pattern)`` lists names.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelInfo:
    name: str
    constructor: object = field(repr=False)
    params: int                      # trainable parameters at 1000 classes
    gmacs: float                     # conv + linear multiply-accumulates, in billions
    input_size: int                  # reference input resolution (square)
    year: int | None = None
    top1: float | None = None        # published ImageNet top-1 accuracy, %
    top5: float | None = None        # published ImageNet top-5 accuracy, %
    paper: str = ""
    test_size: int | None = None     # smallest resolution the architecture accepts cheaply (tests)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(*, params, gmacs, input_size, year=None, top1=None, top5=None, paper="",
                   test_size=None, name=None):
    """Decorator for a public model constructor ``fn(num_classes=1000, **kw) -> Module``."""

    def wrap(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"register_model: {key!r} is already registered")
        _REGISTRY[key] = ModelInfo(key, fn, params, gmacs, input_size, year, top1, top5, paper,
                                   test_size)
        fn.model_info = _REGISTRY[key]
        return fn

    return wrap


def list_models(pattern="*"):
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_info(name) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"models: unknown model {name!r}; expected one of {list_models()}") from None


def create(name, num_classes=1000, **kwargs):
    """Build a registered model by name."""
    return model_info(name).constructor(num_classes=num_classes, **kwargs)
