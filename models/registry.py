"""The model registry: ``@register_model(...)`` on every public constructor.

A registration holds everything about a model beside its definition:

- its input: the reference resolution (``input_size``, square) and the evaluation
  preprocessing, a resize of the shorter side to ``eval_resize`` followed by the center
  crop (``crop_pct = input_size / eval_resize``);
- its training: the name of its recipe in ``recipes.RECIPES`` and, for models with
  auxiliary classifiers, the weight of their losses;
- its published reference numbers: year, source, ImageNet top-1/top-5 (single crop),
  trainable parameters and MACs at the reference input size.

``create(name)`` builds a model; ``list_models(pattern)`` lists names.
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import os
import re
from dataclasses import dataclass, field

DEFAULT_CROP_PCT = 0.875   # 224 of 256: the resize-and-crop of most ImageNet evaluations


@dataclass(frozen=True)
class ModelInfo:
    name: str
    constructor: object = field(repr=False)
    params: int                      # trainable parameters at 1000 classes
    gmacs: float                     # conv + linear multiply-accumulates, in billions
    input_size: int                  # reference input resolution (square)
    eval_resize: int                 # evaluation: shorter side resized to this, then center-cropped
    recipe: str                      # name of the training recipe in models/recipes.py
    aux_weight: float | None = None  # weight of the auxiliary classifiers' losses (None: no aux heads)
    year: int | None = None
    top1: float | None = None        # published ImageNet top-1 accuracy, %
    top5: float | None = None        # published ImageNet top-5 accuracy, %
    paper: str = ""                  # the source of the architecture and of the numbers
    test_size: int | None = None     # smallest resolution the architecture accepts cheaply (tests)

    @property
    def crop_pct(self):
        """The center crop's share of the resized image's shorter side."""
        return self.input_size / self.eval_resize


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(*, params, gmacs, input_size, recipe, eval_resize=None, aux_weight=None,
                   year=None, top1=None, top5=None, paper="", test_size=None, name=None):
    """Decorator for a public model constructor ``fn(num_classes=..., **kw) -> Module``.
    ``eval_resize`` defaults to ``input_size / DEFAULT_CROP_PCT`` (256 for 224)."""

    def wrap(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"register_model: {key!r} is already registered")
        resize = eval_resize if eval_resize is not None else int(round(input_size / DEFAULT_CROP_PCT))
        if resize < input_size:
            raise ValueError(f"register_model: {key!r}: expected eval_resize >= input_size "
                             f"({input_size}), got {resize}")
        constructor = _with_in_chans(fn)
        _REGISTRY[key] = ModelInfo(
            name=key, constructor=constructor, params=params, gmacs=gmacs, input_size=input_size,
            eval_resize=resize, recipe=recipe, aux_weight=aux_weight, year=year, top1=top1,
            top5=top5, paper=paper, test_size=test_size)
        constructor.model_info = _REGISTRY[key]
        return constructor

    return wrap


def _with_in_chans(fn):
    """``fn`` accepting timm's ``in_chans`` as another name of its ``in_channels``."""
    if "in_channels" not in inspect.signature(fn).parameters:
        return fn

    @functools.wraps(fn)
    def build(*args, in_chans=None, **kwargs):
        if in_chans is not None:
            if "in_channels" in kwargs:
                raise TypeError(f"{fn.__name__}: got both in_chans and in_channels; pass one")
            kwargs["in_channels"] = in_chans
        return fn(*args, **kwargs)
    return build


def natural_key(name):
    """resnet18 < resnet34 < resnet101: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def list_models(pattern="*"):
    """The registered names matching the glob ``pattern`` (case-insensitive), in natural
    order (resnet18 before resnet101)."""
    pattern = pattern.lower()
    return sorted((n for n in _REGISTRY if fnmatch.fnmatchcase(n.lower(), pattern)), key=natural_key)


def suggest(name):
    """' (did you mean resnet50?)' for a near miss of a registered name, else ''."""
    close = difflib.get_close_matches(str(name).lower().rstrip("*"), list_models(), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def model_info(name) -> ModelInfo:
    """The registration of ``name`` (case-insensitive)."""
    try:
        return _REGISTRY[name if name in _REGISTRY else str(name).lower()]
    except KeyError:
        raise ValueError(f"models: unknown model {name!r}{suggest(name)}; "
                         "python -m minidl.models lists them") from None


# timm's argument names -> ours: the classifier's dropout and the stochastic depth rate
TIMM_ARGUMENTS = {"drop_rate": "dropout", "drop_path_rate": "stochastic_depth_prob"}


def _our_arguments(name, constructor, kwargs):
    """``kwargs`` with timm's names renamed where the constructor does not name them itself."""
    own = inspect.signature(constructor).parameters
    renamed = dict(kwargs)
    for timm_name, ours in TIMM_ARGUMENTS.items():
        if timm_name in renamed and timm_name not in own:
            if ours in renamed:
                raise TypeError(f"create: {name}: give {timm_name} or {ours}, not both")
            renamed[ours] = renamed.pop(timm_name)
    return renamed


def create(name, num_classes=None, pretrained=False, **kwargs):
    """Build a registered model by name; ``num_classes`` defaults to the model's own default
    (1000 for the ImageNet models, 10 for LeNet-5).  Models with an ``in_channels`` option
    also take it as ``in_chans``, as in timm.  ``drop_rate`` / ``drop_path_rate`` (timm's names)
    set ``dropout`` / ``stochastic_depth_prob`` where the model has them.  ``pretrained``:
    True for the published weights (see models/pretrained.py), or the path of a .pth /
    .safetensors file; with another ``num_classes`` than the file's, the new classifier
    keeps its fresh initialization."""
    info = model_info(name)
    ours = _our_arguments(name, info.constructor, kwargs)
    try:
        if num_classes is not None:
            ours["num_classes"] = num_classes
        model = info.constructor(**ours)
    except TypeError as e:
        given = [t for t, o in TIMM_ARGUMENTS.items() if t in kwargs and o in ours and o in str(e)]
        if not given:
            raise
        raise TypeError(f"create: {name} has no {', '.join(given)} ({e})") from None
    if pretrained is False or pretrained is None:
        return model
    if not (pretrained is True or isinstance(pretrained, (str, os.PathLike))):
        raise TypeError(f"create: pretrained must be True, False or a file path, got {pretrained!r}")
    from .pretrained import load_pretrained
    return load_pretrained(model, name, pretrained, 1000 if num_classes is None else num_classes)
