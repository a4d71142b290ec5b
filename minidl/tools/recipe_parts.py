"""What minidl-train adds to a plain run for the published recipes: pretrained weights,
the training augmentations (minidl/data/augment.py), Mixup/CutMix, an exponential moving
average of the weights, and gradient accumulation.  ``add_arguments`` declares the flags,
``FLAG_DEFAULTS`` their defaults; the Trainer calls the rest.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys

import numpy as np

from minidl.tools.cli import non_negative_float, positive_float, positive_int, unit_fraction
from minidl.tools.common import UsageError

FLAG_DEFAULTS = dict(pretrained=None, aa=None, color_jitter=None, pca_lighting=None,
                     photometric=False, scale_jitter=None, reprob=0.0, mixup=0.0, cutmix=0.0,
                     model_ema=False, model_ema_decay=0.9998, grad_accum_steps=1, min_lr=0.0,
                     patience=2, val_split=None)
# settings a resumed run cannot change (the data pipeline and the EMA), and those it can
RESUME_FIXED = {"pretrained", "aa", "color_jitter", "pca_lighting", "photometric", "scale_jitter",
                "reprob", "model_ema", "val_split"}
IDX_DATASETS = ("fashion-mnist", "mnist")
IDX_HELD_OUT = 5000     # of Fashion-MNIST's and MNIST's 60,000 training images
HELD_OUT_SEED = 0x76616C  # fixed: every run of a dataset holds out the same images

_AA_FORMS = "autoaugment, trivialaugment, or rand-m<M>-n<N> (e.g. rand-m9-n2)"


def _aa(spec):
    if spec in ("autoaugment", "trivialaugment") or re.fullmatch(r"rand-m\d+-n\d+", spec):
        return spec
    raise argparse.ArgumentTypeError(f"expected {_AA_FORMS}, got {spec!r}")


def _scale_range(spec):
    try:
        low, high = (int(v) for v in spec.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (e.g. 256,512), got {spec!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 < MIN <= MAX, got {spec!r}")
    return [low, high]


def add_arguments(add):
    add("--pretrained", help="initial weights: 'true' for the model's published file (downloaded "
                             "to $MINIDL_HOME/weights), or a .pth / .safetensors path; a new "
                             "classifier is made for the dataset's classes")
    add("--aa", type=_aa, help=f"augmentation policy: {_AA_FORMS}")
    add("--color-jitter", type=non_negative_float, help="brightness, contrast and saturation jitter")
    add("--pca-lighting", type=non_negative_float, help="AlexNet PCA lighting noise std (paper: 0.1)")
    add("--photometric", action="store_const", const=True,
        help="GoogLeNet's photometric distortions (Howard 2013)")
    add("--scale-jitter", type=_scale_range, help="VGG scale jittering: shorter side in MIN,MAX, then "
                                                  "a random crop of --image-size")
    add("--reprob", type=unit_fraction, help="RandomErasing probability")
    add("--mixup", type=non_negative_float, help="Mixup alpha (0: off)")
    add("--cutmix", type=non_negative_float, help="CutMix alpha (0: off)")
    add("--model-ema", action="store_const", const=True,
        help="keep an exponential moving average of the weights, validated beside them")
    add("--model-ema-decay", type=unit_fraction, help="EMA decay per optimizer step (default 0.9998)")
    add("--grad-accum-steps", type=positive_int, help="batches per optimizer step")
    add("--min-lr", type=non_negative_float, help="cosine: the lr it anneals to; plateau: the lowest lr "
                                                  "(default 0)")
    add("--val-split", type=int, help="hold out this many training images (fixed seed) to validate "
                                      "and choose 'best' on; the test set is reported at the end "
                                      "(default: 5000 of 60000, i.e. 1/12, for the IDX sets and a --dataset "
                                      "folder without val/; 0 elsewhere)")
    add("--patience", type=int, help="plateau: epochs without improvement before a decay (default 2)")


RGB_AUGMENTATIONS = ("aa", "color_jitter", "pca_lighting", "photometric", "scale_jitter", "reprob")


def fit_recipe_to_dataset(cfg, given):
    """On the IDX digit sets, leave out the recipe's RGB augmentations, saying so (the same
    flags given explicitly stay, and are refused with a clear error)."""
    if cfg["dataset"] not in IDX_DATASETS:
        return
    dropped = [key for key in RGB_AUGMENTATIONS if cfg[key] and key not in given]
    for key in dropped:
        cfg[key] = FLAG_DEFAULTS[key]
    if dropped:
        print(f"minidl-train: note: the recipe's {', '.join('--' + k.replace('_', '-') for k in dropped)} "
              f"need RGB images and are left out for --dataset {cfg['dataset']}", file=sys.stderr)


def _image_dataset(cfg, flag):
    if cfg["dataset"] not in ("imagenet", "folder"):
        raise UsageError(f"{flag} needs RGB images (--dataset imagenet or folder), got --dataset "
                         f"{cfg['dataset']}")


def train_transform(cfg):
    """The training transform the flags ask for, or None for the dataset's standard one."""
    from minidl import data
    from minidl.data import augment as A
    wanted = [cfg["aa"], cfg["color_jitter"], cfg["pca_lighting"], cfg["photometric"],
              cfg["scale_jitter"], cfg["reprob"]]
    if not any(wanted):
        return None
    for flag, key in (("--pca-lighting", "pca_lighting"), ("--scale-jitter", "scale_jitter"),
                      ("--reprob", "reprob"), ("--color-jitter", "color_jitter"),
                      ("--photometric", "photometric"), ("--aa", "aa")):
        if cfg[key]:
            _image_dataset(cfg, flag)
    size = cfg["image_size"]
    try:
        crop = A.ScaleJitter(*cfg["scale_jitter"], crop=size) if cfg["scale_jitter"] else None
    except ValueError as e:
        raise UsageError(f"--scale-jitter with --image-size {size}: {e}") from None
    steps = [crop or data.RandomResizedCrop(size), data.RandomHorizontalFlip()]
    if cfg["aa"] == "autoaugment":
        steps.append(A.AutoAugment())
    elif cfg["aa"] == "trivialaugment":
        steps.append(A.TrivialAugmentWide())
    elif cfg["aa"]:
        magnitude, num_ops = (int(v) for v in re.fullmatch(r"rand-m(\d+)-n(\d+)", cfg["aa"]).groups())
        steps.append(A.RandAugment(num_ops, magnitude))
    if cfg["color_jitter"]:
        steps.append(A.ColorJitter(cfg["color_jitter"], cfg["color_jitter"], cfg["color_jitter"]))
    if cfg["photometric"]:
        steps.append(A.PhotometricDistort())
    steps.append(data.ToArray())
    if cfg["pca_lighting"]:
        steps.append(A.Lighting(cfg["pca_lighting"]))
    steps.append(data.Normalize())
    if cfg["reprob"]:
        steps.append(A.RandomErasing(cfg["reprob"], value="random"))
    return data.Compose(steps)


def held_out_split(cfg, train_set, unaugmented_train, required=False):
    """(train, validation) Subsets of ``train_set`` when --val-split holds images out, else
    None.  ``unaugmented_train()`` builds the training images with the evaluation transform.
    ``required``: the dataset has no validation images of its own (a folder without val/)."""
    from minidl.data import Subset
    count = cfg["val_split"]
    if count is None:
        count = min(IDX_HELD_OUT, len(train_set) // 12) if cfg["dataset"] in IDX_DATASETS or required else 0
    if count == 0:
        if required:
            raise UsageError(f"--val-split: {cfg['data']!r} has no val/ folder, so validation images are held "
                             f"out of its {len(train_set)} training images: expected N > 0, got {count}")
        return None
    if not 0 < count < len(train_set):
        raise UsageError(f"--val-split: expected 0 <= N < {len(train_set)} (the training images), got {count}")
    order = np.random.default_rng(HELD_OUT_SEED).permutation(len(train_set))
    return Subset(train_set, np.sort(order[count:])), Subset(unaugmented_train(), np.sort(order[:count]))


def batch_mixer(cfg, num_classes):
    """Mixup/CutMix of each training batch, or None."""
    if not (cfg["mixup"] or cfg["cutmix"]):
        return None
    from minidl.data.augment import MixupCutmix
    return MixupCutmix(num_classes, cfg["mixup"], cfg["cutmix"])


def mix_batch(mixer, images, labels, seed, epoch, batch):
    """(images, soft targets) of one batch, seeded by its position in the run."""
    return mixer(images, labels, np.random.default_rng([seed, epoch, batch, 0x6D6978]))


def report_plateau(scheduler, top1):
    """Give the epoch's validation top-1 to a ReduceLROnPlateau (also behind a warmup)."""
    from minidl.optim.lr_scheduler import ReduceLROnPlateau
    target = getattr(scheduler, "after", None) or scheduler
    if isinstance(target, ReduceLROnPlateau) and top1 is not None and target.report(top1):
        print(f"minidl-train: validation top-1 stopped improving: lr x{target.gamma:g}", flush=True)


def load_initial_weights(model, cfg, num_classes):
    from minidl.models.pretrained import load_pretrained
    source = True if str(cfg["pretrained"]).lower() == "true" else cfg["pretrained"]
    try:
        load_pretrained(model, cfg["model"], source, num_classes)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(f"--pretrained: {e}") from None


class ModelEma:
    """ema = decay * ema + (1 - decay) * weights after every optimizer step, for every
    floating-point parameter and buffer (integer buffers are copied).  Kept on the
    model's device, as arrays of its backend."""

    def __init__(self, model, decay):
        self.decay = float(decay)
        self.shadow = {name: t.backend.copy(t.data) for name, t in model._state_items()}
        self.backend = next(t.backend for _, t in model._state_items())

    def update(self, model):
        for name, t in model._state_items():
            s = self.shadow[name]
            if s.dtype.kind == "f":
                s *= self.decay
                s += (1.0 - self.decay) * t.data
            else:
                s[...] = t.data

    def state_dict(self):
        return {name: self.backend.to_numpy(a) for name, a in self.shadow.items()}

    def load_state_dict(self, arrays):
        missing = sorted(set(self.shadow) - set(arrays))
        if missing:
            raise ValueError(f"the checkpoint's EMA weights lack {missing[:10]}")
        for name, s in self.shadow.items():
            s[...] = self.backend.asarray(arrays[name])

    @contextlib.contextmanager
    def applied(self, model):
        """The model holds the EMA weights inside the block, its own weights after it."""
        raw = {name: t.backend.copy(t.data) for name, t in model._state_items()}
        for name, t in model._state_items():
            t.data[...] = self.shadow[name]
        try:
            yield model
        finally:
            for name, t in model._state_items():
                t.data[...] = raw[name]
