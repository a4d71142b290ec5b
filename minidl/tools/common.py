"""What the tools share: the registered model with its input adaptation, the datasets
with their standard transforms, the evaluation loop, and the weights file's metadata."""
from __future__ import annotations

import inspect
import json
import os

import numpy as np

import minidl
import minidl.functional as F
from minidl import metrics
from minidl.tools.checkpoint import read_weights_metadata, weights_path
from minidl.tools.summary import input_channels

DATASETS = ("imagenet", "folder", "fashion-mnist", "mnist")
# per-channel statistics of the training sets (28x28 grayscale)
IDX_STATS = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


# ------------------------------------------------------------------ models
def import_zoo():
    import minidl.models as zoo
    return zoo


def registered_model(name):
    """The registry's ``ModelInfo`` of ``name`` (input sizes, recipe, aux-loss weight), or
    None for a name that is not registered."""
    try:
        return import_zoo().model_info(name)
    except ValueError:
        return None


def eval_sizes(model_name, image_size=None, val_resize=None):
    """(crop size, resize before the crop): those given, the rest from the registered model."""
    info = registered_model(model_name)
    if info is not None and image_size is None:
        image_size = info.input_size
    if info is not None and val_resize is None and image_size == info.input_size:
        val_resize = info.eval_resize
    return image_size, val_resize


def build_model(name, num_classes, data_channels=3, model_kwargs=None):
    """A registered model for ``num_classes``; a model whose constructor offers
    ``in_channels`` is built for the data's channels, else grayscale data is repeated to three
    (``InputSpec.repeat``).  Returns (model, input channels the model expects)."""
    zoo = import_zoo()
    try:
        info = zoo.model_info(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    kwargs = dict(model_kwargs or {})
    if "in_chans" in kwargs and "in_channels" not in kwargs:
        kwargs["in_channels"] = kwargs.pop("in_chans")   # timm's name for it
    params = inspect.signature(info.constructor).parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if "in_channels" not in kwargs and _takes_in_channels(info.constructor):
        kwargs["in_channels"] = data_channels
    if not accepts_any:
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise UsageError(f"model {name!r} takes no option(s) {unknown}; its options: "
                             f"{sorted(set(params) - {'num_classes'})}")
    try:
        model = zoo.create(name, num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise UsageError(f"model {name!r}: {e}") from None
    return model, input_channels(model, default=data_channels)


def _takes_in_channels(constructor):
    return "in_channels" in inspect.signature(constructor).parameters


class InputSpec:
    """How a batch from the loader becomes the model's input: the IDX datasets'
    normalization (ImageNet-style datasets normalize in their transform) and the
    repetition of a grayscale channel for a three-channel model."""

    def __init__(self, mean=None, std=None, repeat=1):
        self.mean, self.std, self.repeat = mean, std, int(repeat)

    def __call__(self, images):
        if self.mean is not None:
            images = (images - np.float32(self.mean)) * np.float32(1.0 / self.std)
        if self.repeat > 1:
            axis = images.ndim - 3  # channel axis of (N, C, H, W) or (N, crops, C, H, W)
            images = np.repeat(images, self.repeat, axis=axis)
        return np.ascontiguousarray(images, dtype=np.float32)

    def to_json(self):
        return {"mean": self.mean, "std": self.std, "repeat": self.repeat}

    @classmethod
    def from_json(cls, d):
        return cls(d.get("mean"), d.get("std"), d.get("repeat", 1))


# ------------------------------------------------------------------ datasets
def default_data_root(dataset):
    if dataset == "fashion-mnist":
        from minidl.data import FASHION_MNIST_DEFAULT_ROOT
        return FASHION_MNIST_DEFAULT_ROOT
    return None


def build_dataset(dataset, root, train, image_size=None, val_resize=None, crop="center",
                  augment=True, classes=None):
    """The train or validation split of ``dataset`` with its standard transform.
    Returns (dataset, InputSpec without the channel repetition)."""
    from minidl import data
    if dataset not in DATASETS:
        raise UsageError(f"--dataset: expected one of {list(DATASETS)}, got {dataset!r}")
    root = root if root is not None else default_data_root(dataset)
    if root is None:
        raise UsageError(f"--dataset {dataset} needs --data DIR (the dataset's root folder)")
    if dataset in IDX_STATS:
        steps = []
        if image_size not in (None, 28):
            steps.append(data.Resize(image_size))
        if train and augment and dataset == "fashion-mnist":  # digits must not be mirrored
            steps.append(data.RandomHorizontalFlip())
        transform = data.Compose(steps) if steps else None
        cls = data.FashionMNIST if dataset == "fashion-mnist" else data.MNIST
        ds = cls(root, train=train, transform=transform)
        return ds, InputSpec(*IDX_STATS[dataset])
    image_size = image_size or 224
    if train:
        transform = data.train_transform(image_size) if augment else \
            data.eval_transform(image_size, val_resize)
    elif crop == "ten":
        transform = data.ten_crop_transform(image_size, val_resize)
    elif crop == "multiscale":  # the whole (square) image; the model rescales it
        size = val_resize or int(round(image_size / 0.875))
        transform = data.eval_transform(size, size)
    else:
        transform = data.eval_transform(image_size, val_resize)
    split = "train" if train else "val"
    if dataset == "imagenet":
        ds = data.ImageNet(root, split, transform=transform, classes=classes)
    else:
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            raise UsageError(f"--dataset folder: expected {folder!r} (with one subfolder per class)")
        ds = data.ImageFolder(folder, transform=transform, classes=classes)
    return ds, InputSpec()


def dataset_channels(ds):
    """Channels of the dataset's images, from the first sample that decodes."""
    from minidl.data import CorruptImageError
    for index in range(min(len(ds), 50)):
        try:
            image, _ = ds[index]
        except CorruptImageError:
            continue
        return np.asarray(image).shape[-3]
    raise UsageError(f"none of the first {min(len(ds), 50)} images of {ds!r} could be decoded")


# ------------------------------------------------------------------ evaluation
def evaluate(model, loader, spec, device="cpu", crop="center", ks=(1, 5), limit_batches=None,
             stop=None, progress=None, scales=None):
    """Top-k accuracies (fractions) and the mean cross-entropy over ``loader``.
    ``stop()`` -> True aborts (returns None).  Ten-crop batches are (N, 10, C, H, W)."""
    model.eval()
    ks = tuple(k for k in ks if k <= _num_outputs(model, loader))
    correct = {k: 0 for k in ks}
    seen, loss_sum = 0, 0.0
    batches = len(loader) if limit_batches is None else min(len(loader), limit_batches)
    dtype = next(iter(model.parameters())).dtype  # float64 models get float64 inputs
    with minidl.no_grad():
        for i, (images, labels) in enumerate(loader):
            if i >= batches:
                break
            if stop is not None and stop():
                return None
            x = spec(images).astype(dtype, copy=False)
            if crop == "multiscale":
                kw = {} if scales is None else {"scales": scales}
                probs = model.predict_multiscale(minidl.as_tensor(x, device=device), **kw)
                probs = probs.numpy() if hasattr(probs, "numpy") else np.asarray(probs)
                scores = np.log(np.maximum(probs, 1e-12))
            elif x.ndim == 5:  # ten crops: average the softmax over the crops
                n, crops = x.shape[:2]
                logits = model(minidl.as_tensor(x.reshape((n * crops,) + x.shape[2:]), device=device))
                probs = F.softmax(logits, axis=1).numpy().reshape(n, crops, -1).mean(axis=1)
                scores = np.log(np.maximum(probs, 1e-12))
            else:
                scores = model(minidl.as_tensor(x, device=device)).numpy()
            scores = np.asarray(scores, dtype=np.float64)
            shifted = scores - scores.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss_sum += float(-log_probs[np.arange(len(labels)), labels].sum())
            for k, c in metrics.topk_correct(scores.astype(np.float32), labels, ks).items():
                correct[k] += c
            seen += len(labels)
            if progress is not None:
                progress(i + 1, batches)
    if seen == 0:
        raise ValueError("evaluate: the validation set yielded no samples (every image was unreadable)")
    result = {f"top{k}": correct[k] / seen for k in ks}
    result.update(loss=loss_sum / seen, samples=seen)
    return result


def _num_outputs(model, loader):
    return len(getattr(loader.dataset, "classes", [])) or 1000


def format_table(rows):
    """rows: list of (label, value) -> an aligned two-column text table."""
    width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    line = "-" * (width + 2 + value_width)
    return "\n".join([line] + [f"{label:<{width}}  {value:>{value_width}}" for label, value in rows]
                     + [line])


def load_weights_spec(path):
    """(weights file, its recorded metadata as Python values)."""
    file = weights_path(path)
    raw = read_weights_metadata(file)
    meta = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    return file, meta
