"""minidl-eval (``python -m minidl.evaluate``): top-1 / top-5 of trained weights on a
validation set, with a center crop, ten crops, or OverFeat's multi-scale evaluation.

    minidl-eval --weights runs/fmnist/best.json                 # model, dataset from the weights
    minidl-eval --weights w.safetensors --model resnet50 --dataset imagenet --data /data/imagenet \\
        --crop ten

Top-k: a sample counts as correct when its true label is among the k highest scores.
Ten-crop averages the softmax of the ten crops; OverFeat's multi-scale averages its
per-scale spatial maxima (models/overfeat.py).  Prints a table and writes JSON
(``--output``).  The model's image sizes default to those recorded in the weights, else
to the model's registered ones.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import minidl
from minidl.tools.amp_training import AMP_CHOICES, amp_context
from minidl.tools.checkpoint import CheckpointError
from minidl.tools.distributed_run import Ranks
from minidl.tools.cli import DEVICES, device, non_negative_int, percent, positive_int, show_defaults
from minidl.tools.common import (DATASETS, IDX_STATS, UsageError, build_dataset, build_model,
                                 dataset_channels, eval_sizes, evaluate, format_table,
                                 load_weights_spec)

# ------------------------------------------------------------------ CLI
def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="minidl-eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights",
                        help="a checkpoint manifest (best.json/last.json), a run folder, or a .safetensors file")
    source.add_argument("--pretrained", help="published ImageNet weights of --model: 'true' (from "
                                             "$MINIDL_HOME/weights), or a torchvision .pth / timm "
                                             ".safetensors file")
    p.add_argument("--model", help="registered model name (default: recorded in the weights)")
    p.add_argument("--dataset", choices=DATASETS, help="default: recorded in the weights")
    p.add_argument("--data", help="dataset root (default for fashion-mnist: the Debian package's folder)")
    p.add_argument("--crop", choices=("center", "ten", "multiscale"), default="center")
    p.add_argument("--scales", type=lambda s: [positive_int(v) for v in s.split(",")],
                   help="multiscale: comma-separated square sizes (default: the paper's six)")
    p.add_argument("--image-size", type=positive_int,
                   help="input size (default: recorded in the weights, else the model's)")
    p.add_argument("--val-resize", type=positive_int,
                   help="shorter side before the center crop (default: recorded in the weights, "
                        "else the model's)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--workers", type=non_negative_int, default=0)
    p.add_argument("--device", type=device, choices=DEVICES, default="cpu")
    p.add_argument("--amp", choices=AMP_CHOICES, default="off",
                   help="evaluate in mixed precision, as minidl-train --amp (default off)")
    p.add_argument("--limit-batches", type=positive_int, help="evaluate only the first N batches (smoke tests)")
    p.add_argument("--output", help="JSON file for the results (default: eval.json beside the weights)")
    show_defaults(p)
    return p.parse_args(argv)


def run(args, ranks=None):
    if args.pretrained:  # ImageNet weights of another framework: no minidl metadata
        if not args.model:
            raise UsageError("--pretrained needs --model")
        file, meta = args.pretrained, {"dataset": "imagenet"}
    else:
        file, meta = load_weights_spec(args.weights)
    model_name = args.model or meta.get("model")
    if not model_name:
        raise UsageError(f"--model is needed: {file!r} does not record its model")
    dataset = args.dataset or meta.get("dataset") or "fashion-mnist"
    root = args.data if args.data is not None else meta.get("data") if dataset == meta.get("dataset") else None
    image_size = args.image_size or meta.get("image_size")
    val_resize = args.val_resize or meta.get("val_resize")
    if dataset not in IDX_STATS:
        image_size, val_resize = eval_sizes(model_name, image_size, val_resize)
    if args.crop == "multiscale" and not model_name.startswith("overfeat"):
        raise UsageError(f"--crop multiscale is OverFeat's evaluation; got --model {model_name}")
    ds, spec = build_dataset(dataset, root, train=False, image_size=image_size, val_resize=val_resize,
                             crop=args.crop, classes=meta.get("classes") if dataset != "fashion-mnist" else None)
    from minidl.data import DataLoader
    channels = dataset_channels(ds)
    model, in_channels = build_model(model_name, len(ds.classes), channels, meta.get("model_kwargs"))
    spec.repeat = in_channels // channels if in_channels != channels else 1
    try:
        if args.pretrained:  # num_classes None: the classifier must fit, no new head
            from minidl.models.pretrained import load_pretrained
            load_pretrained(model, model_name, True if args.pretrained.lower() == "true" else args.pretrained,
                            num_classes=None)
        else:
            minidl.io.load(file, model)
    except (ValueError, FileNotFoundError) as e:
        raise CheckpointError(str(e)) from None
    model.to(args.device)
    ranks = ranks if ranks is not None else Ranks()
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers,
                        sampler=ranks.sampler(len(ds), 0, train=False))  # under mpiexec: a shard per rank
    start = time.perf_counter()
    with amp_context(args.amp):
        result = ranks.reduce_metrics(evaluate(model, loader, spec, device=args.device, crop=args.crop,
                                               limit_batches=args.limit_batches, scales=args.scales))
    if not ranks.main:
        return result
    seconds = time.perf_counter() - start
    skipped = getattr(loader, "skipped_total", 0)
    rows = [("model", model_name), ("dataset", f"{dataset} ({result['samples']} images)"),
            ("crop", args.crop), ("amp", args.amp)]
    for k in (1, 5):  # top-5 of fewer than five classes does not exist: n/a, null in the JSON
        result.setdefault(f"top{k}", None)
    rows += [(f"top-{k}", percent(result[f"top{k}"])) for k in (1, 5)]
    rows += [("loss", f"{result['loss']:.4f}"), ("skipped", str(skipped)), ("time", f"{seconds:.1f} s")]
    print(format_table(rows))
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(file)), "eval.json")
    record = {"model": model_name, "weights": os.path.abspath(file), "dataset": dataset,
              "crop": args.crop, "amp": args.amp, "seconds": seconds, "skipped": skipped, **result}
    try:
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
    except OSError as e:
        raise UsageError(f"cannot write the results to {out}: {e.strerror}") from None
    print(f"results written to {out}")
    return record


def main(argv=None):
    args = parse_args(argv)
    from minidl.distributed import launched_world_size
    ranks = Ranks.start(args.device) if launched_world_size() > 1 else Ranks()
    try:
        run(args, ranks)
    except (UsageError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"minidl-eval: error: {e}", file=sys.stderr)
        return ranks.fail(2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
