"""minidl-eval (``python -m minidl.evaluate``): top-1 / top-5 of trained weights on a
validation set, with a center crop, ten crops, or OverFeat's multi-scale evaluation.

    minidl-eval --weights runs/fmnist/best.json                 # model, dataset from the weights
    minidl-eval --weights w.safetensors --model resnet50 --dataset imagenet --data /data/imagenet \\
        --crop ten

Top-k as the lecture defines it: a sample counts as correct when its true label is
among the k highest scores.  Ten-crop averages the softmax of the ten crops; OverFeat's
multi-scale averages its per-scale spatial maxima (models/overfeat.py).  Prints a
table and writes JSON (``--output``).

This module also holds what training and evaluation share: building datasets, the
model (with its input adaptation for grayscale data) and the evaluation loop.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time

import numpy as np

import minidl
import minidl.functional as F
from minidl import metrics
from minidl.tools.checkpoint import CheckpointError, read_weights_metadata, weights_path
from minidl.tools.cli import non_negative_int, percent, positive_int

DATASETS = ("imagenet", "folder", "fashion-mnist", "mnist")
# per-channel statistics of the training sets (28x28 grayscale)
IDX_STATS = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


# ------------------------------------------------------------------ models
def import_zoo():
    import minidl.models as zoo
    return zoo


def model_input_channels(model):
    for module in model.modules():
        if isinstance(module, minidl.nn.Conv2d):
            return module.in_channels
    return None


def build_model(name, num_classes, data_channels=3, model_kwargs=None):
    """A registered model for ``num_classes``; grayscale data goes to a model built for one
    channel where the constructor offers ``in_channels``, else it is repeated to three
    (``InputSpec.repeat``).  Returns (model, input channels the model expects)."""
    zoo = import_zoo()
    try:
        info = zoo.model_info(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    kwargs = dict(model_kwargs or {})
    params = inspect.signature(info.constructor).parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if data_channels == 1 and "in_channels" not in kwargs and _takes_in_channels(info.constructor):
        kwargs["in_channels"] = 1
    if not accepts_any:
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise UsageError(f"model {name!r} takes no option(s) {unknown}; its options: "
                             f"{sorted(set(params) - {'num_classes'})}")
    try:
        model = zoo.create(name, num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise UsageError(f"model {name!r}: {e}") from None
    return model, model_input_channels(model) or data_channels


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
    with minidl.no_grad():
        for i, (images, labels) in enumerate(loader):
            if i >= batches:
                break
            if stop is not None and stop():
                return None
            x = spec(images)
            if crop == "multiscale":
                kw = {} if scales is None else {"scales": scales}
                probs = model.predict_multiscale(minidl.tensor(x, device=device), **kw)
                probs = probs.numpy() if hasattr(probs, "numpy") else np.asarray(probs)
                scores = np.log(np.maximum(probs, 1e-12))
            elif x.ndim == 5:  # ten crops: average the softmax over the crops
                n, crops = x.shape[:2]
                logits = model(minidl.tensor(x.reshape((n * crops,) + x.shape[2:]), device=device))
                probs = F.softmax(logits, axis=1).numpy().reshape(n, crops, -1).mean(axis=1)
                scores = np.log(np.maximum(probs, 1e-12))
            else:
                scores = model(minidl.tensor(x, device=device)).numpy()
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


# ------------------------------------------------------------------ CLI
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="minidl-eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True,
                   help="a checkpoint manifest (best.json/last.json), a run folder, or a .safetensors file")
    p.add_argument("--model", help="registered model name (default: recorded in the weights)")
    p.add_argument("--dataset", choices=DATASETS, help="default: recorded in the weights")
    p.add_argument("--data", help="dataset root (default for fashion-mnist: the Debian package's folder)")
    p.add_argument("--crop", choices=("center", "ten", "multiscale"), default="center")
    p.add_argument("--scales", type=lambda s: [positive_int(v) for v in s.split(",")],
                   help="multiscale: comma-separated square sizes (default: the paper's six)")
    p.add_argument("--image-size", type=positive_int)
    p.add_argument("--val-resize", type=positive_int)
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--workers", type=non_negative_int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda", "emu"), default="cpu")
    p.add_argument("--limit-batches", type=positive_int, help="evaluate only the first N batches (smoke tests)")
    p.add_argument("--output", help="JSON file for the results (default: eval.json beside the weights)")
    return p.parse_args(argv)


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


def run(args):
    file, meta = load_weights_spec(args.weights)
    model_name = args.model or meta.get("model")
    if not model_name:
        raise UsageError(f"--model is needed: {file!r} does not record its model")
    dataset = args.dataset or meta.get("dataset") or "fashion-mnist"
    root = args.data if args.data is not None else meta.get("data") if dataset == meta.get("dataset") else None
    image_size = args.image_size or meta.get("image_size")
    val_resize = args.val_resize or meta.get("val_resize")
    if args.crop == "multiscale" and not model_name.startswith("overfeat"):
        raise UsageError(f"--crop multiscale is OverFeat's evaluation; got --model {model_name}")
    ds, spec = build_dataset(dataset, root, train=False, image_size=image_size, val_resize=val_resize,
                             crop=args.crop, classes=meta.get("classes") if dataset != "fashion-mnist" else None)
    from minidl.data import DataLoader
    channels = dataset_channels(ds)
    model, in_channels = build_model(model_name, len(ds.classes), channels, meta.get("model_kwargs"))
    spec.repeat = in_channels // channels if in_channels != channels else 1
    try:
        minidl.io.load(file, model)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    model.to(args.device)
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)
    start = time.perf_counter()
    result = evaluate(model, loader, spec, device=args.device, crop=args.crop,
                      limit_batches=args.limit_batches, scales=args.scales)
    seconds = time.perf_counter() - start
    skipped = getattr(loader, "skipped_total", 0)
    rows = [("model", model_name), ("dataset", f"{dataset} ({result['samples']} images)"),
            ("crop", args.crop)]
    for k in (1, 5):  # top-5 of fewer than five classes does not exist: n/a, null in the JSON
        result.setdefault(f"top{k}", None)
    rows += [(f"top-{k}", percent(result[f"top{k}"])) for k in (1, 5)]
    rows += [("loss", f"{result['loss']:.4f}"), ("skipped", str(skipped)), ("time", f"{seconds:.1f} s")]
    print(format_table(rows))
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(file)), "eval.json")
    record = {"model": model_name, "weights": os.path.abspath(file), "dataset": dataset,
              "crop": args.crop, "seconds": seconds, "skipped": skipped, **result}
    try:
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
    except OSError as e:
        raise UsageError(f"cannot write the results to {out}: {e.strerror}") from None
    print(f"results written to {out}")
    return record


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (UsageError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"minidl-eval: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
