"""The augmentations of published ImageNet recipes, seeded per sample like every transform
(``t(img, rng)``, see transforms.py), and Mixup/CutMix on a batch.

Image operations are Pillow's own (``ImageOps``, ``ImageEnhance``, affine ``transform``),
as in the AutoAugment authors' PIL implementation.  The policies' operation sets and
magnitude ranges are the published ones, binned as in torchvision:

- AutoAugment (Cubuk et al., 2019), ImageNet policy: 25 sub-policies of two operations,
  each with a probability and a magnitude bin of 10.
- RandAugment (Cubuk et al., 2020): N operations drawn uniformly from 14, all at
  magnitude M of 31 bins (M=9 in the paper's ImageNet setting for ResNet-50).
- TrivialAugmentWide (Mueller & Hutter, 2021): one operation from 14, with a uniformly
  drawn magnitude bin of 31, over the "wide" ranges.

Photometric: ``ColorJitter`` (torchvision's semantics), ``Lighting`` (AlexNet's PCA noise
with the ImageNet RGB eigenvalues/eigenvectors published with fb.resnet.torch, on [0, 1]
pixels), ``PhotometricDistort`` (Howard, 2013, used by GoogLeNet: brightness, contrast
and colour, each by a factor in [0.5, 1.5], in random order).  Geometric: ``ScaleJitter``
(VGG: shorter side to a random S in [S_min, S_max], then a random crop).  ``RandomErasing``
(Zhong et al., 2020) works on the normalized CHW array.  ``MixupCutmix`` mixes a batch with
its reversed self and returns soft targets for ``cross_entropy``.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .transforms import RandomCrop, Resize, _check_pil

__all__ = ["AutoAugment", "RandAugment", "TrivialAugmentWide", "ColorJitter", "Lighting",
           "PhotometricDistort", "ScaleJitter", "RandomErasing", "MixupCutmix",
           "IMAGENET_PCA_EIGVAL", "IMAGENET_PCA_EIGVEC"]

# principal components of ImageNet RGB pixels in [0, 1] (fb.resnet.torch, after AlexNet §4.1)
IMAGENET_PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045])
IMAGENET_PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                                [-0.5808, -0.0045, -0.8140],
                                [-0.5836, -0.6948, 0.4203]])


def _fill(img):
    return (128,) * len(img.getbands())


def _affine(img, matrix):
    return img.transform(img.size, Image.Transform.AFFINE, matrix, Image.Resampling.NEAREST,
                         fillcolor=_fill(img))


# operation name -> f(img, signed magnitude); photometric factors are 1 + magnitude
_OPS = {
    "Identity": lambda img, m: img,
    "ShearX": lambda img, m: _affine(img, (1, m, 0, 0, 1, 0)),
    "ShearY": lambda img, m: _affine(img, (1, 0, 0, m, 1, 0)),
    "TranslateX": lambda img, m: _affine(img, (1, 0, m, 0, 1, 0)),
    "TranslateY": lambda img, m: _affine(img, (1, 0, 0, 0, 1, m)),
    "Rotate": lambda img, m: img.rotate(m, Image.Resampling.NEAREST, fillcolor=_fill(img)),
    "Brightness": lambda img, m: ImageEnhance.Brightness(img).enhance(1 + m),
    "Color": lambda img, m: ImageEnhance.Color(img).enhance(1 + m),
    "Contrast": lambda img, m: ImageEnhance.Contrast(img).enhance(1 + m),
    "Sharpness": lambda img, m: ImageEnhance.Sharpness(img).enhance(1 + m),
    "Posterize": lambda img, m: ImageOps.posterize(img, int(m)),
    "Solarize": lambda img, m: ImageOps.solarize(img, m),
    "AutoContrast": lambda img, m: ImageOps.autocontrast(img),
    "Equalize": lambda img, m: ImageOps.equalize(img),
    "Invert": lambda img, m: ImageOps.invert(img),
}
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
           "Contrast", "Sharpness"}


def _space(bins, width, height, wide=False):
    """Operation name -> the magnitudes of its ``bins`` bins (None: no magnitude)."""
    shear, rotate, enhance = (0.99, 135.0, 0.99) if wide else (0.3, 30.0, 0.9)
    tx, ty = (32.0, 32.0) if wide else (150 / 331 * width, 150 / 331 * height)
    posterize_span = 6 if wide else 4
    return {
        "Identity": None,
        "ShearX": np.linspace(0, shear, bins), "ShearY": np.linspace(0, shear, bins),
        "TranslateX": np.linspace(0, tx, bins), "TranslateY": np.linspace(0, ty, bins),
        "Rotate": np.linspace(0, rotate, bins),
        "Brightness": np.linspace(0, enhance, bins), "Color": np.linspace(0, enhance, bins),
        "Contrast": np.linspace(0, enhance, bins), "Sharpness": np.linspace(0, enhance, bins),
        "Posterize": 8 - np.round(np.arange(bins) / ((bins - 1) / posterize_span)).astype(int),
        "Solarize": np.linspace(255, 0, bins),
        "AutoContrast": None, "Equalize": None,
    }


def _apply(img, name, magnitudes, level, rng):
    magnitude = 0.0 if magnitudes is None else float(magnitudes[level])
    if name in _SIGNED and rng.random() < 0.5:
        magnitude = -magnitude
    return _OPS[name](img, magnitude)


def _check_image(img, what):
    _check_pil(img, what)
    if img.mode not in ("RGB", "L"):
        raise ValueError(f"{what}: expected an RGB or L image, got mode {img.mode!r}")


class AutoAugment:
    """AutoAugment's ImageNet policy: one of 25 sub-policies, uniformly; each of its two
    operations applies with its own probability at its own magnitude bin (of 10)."""

    POLICY = (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)), (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)), (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)), (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)), (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)), (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    )

    def __call__(self, img, rng):
        _check_image(img, "AutoAugment")
        space = _space(10, *img.size)
        for name, prob, level in self.POLICY[int(rng.integers(len(self.POLICY)))]:
            if rng.random() < prob:
                magnitudes = None if name == "Invert" else space[name]
                img = _apply(img, name, magnitudes, level or 0, rng)
        return img

    def __repr__(self):
        return "AutoAugment(policy='imagenet')"


class RandAugment:
    """``num_ops`` operations drawn uniformly (with replacement), each at bin ``magnitude``
    of ``num_bins``."""

    def __init__(self, num_ops=2, magnitude=9, num_bins=31):
        if num_ops < 0:
            raise ValueError(f"RandAugment: num_ops must be >= 0, got {num_ops}")
        if not 0 <= magnitude < num_bins:
            raise ValueError(f"RandAugment: magnitude must be in [0, {num_bins - 1}], got {magnitude}")
        self.num_ops, self.magnitude, self.num_bins = int(num_ops), int(magnitude), int(num_bins)

    def __call__(self, img, rng):
        _check_image(img, "RandAugment")
        space = _space(self.num_bins, *img.size)
        names = list(space)
        for _ in range(self.num_ops):
            name = names[int(rng.integers(len(names)))]
            img = _apply(img, name, space[name], self.magnitude, rng)
        return img

    def __repr__(self):
        return f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, num_bins={self.num_bins})"


class TrivialAugmentWide:
    """One operation drawn uniformly, at a uniformly drawn bin of ``num_bins``, over the
    wide magnitude ranges."""

    def __init__(self, num_bins=31):
        self.num_bins = int(num_bins)

    def __call__(self, img, rng):
        _check_image(img, "TrivialAugmentWide")
        space = _space(self.num_bins, *img.size, wide=True)
        names = list(space)
        name = names[int(rng.integers(len(names)))]
        return _apply(img, name, space[name], int(rng.integers(self.num_bins)), rng)

    def __repr__(self):
        return f"TrivialAugmentWide(num_bins={self.num_bins})"


def _jitter_range(value, name, hue=False):
    limit = 0.5 if hue else math.inf
    if not 0 <= value <= limit:
        raise ValueError(f"ColorJitter: {name} must be in [0, {limit}], got {value}")
    return (-value, value) if hue else (max(0.0, 1.0 - value), 1.0 + value)


def _shift_hue(img, shift):
    h, s, v = img.convert("HSV").split()
    h = h.point(lambda x: (x + int(round(shift * 255))) % 256)
    return Image.merge("HSV", (h, s, v)).convert(img.mode)


class ColorJitter:
    """Brightness, contrast, saturation factors uniform in [1 - x, 1 + x] and a hue shift
    uniform in [-hue, hue] (fraction of the colour circle), applied in random order."""

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
        self.ranges = {"brightness": _jitter_range(brightness, "brightness"),
                       "contrast": _jitter_range(contrast, "contrast"),
                       "saturation": _jitter_range(saturation, "saturation"),
                       "hue": _jitter_range(hue, "hue", hue=True)}
        self.amounts = (brightness, contrast, saturation, hue)

    _ENHANCE = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
                "saturation": ImageEnhance.Color}

    def __call__(self, img, rng):
        _check_image(img, "ColorJitter")
        names = list(self.ranges)
        for i in rng.permutation(len(names)):
            name = names[i]
            low, high = self.ranges[name]
            if low == high:
                continue
            factor = rng.uniform(low, high)
            if name != "hue":
                img = self._ENHANCE[name](img).enhance(factor)
            elif img.mode == "RGB":
                img = _shift_hue(img, factor)
        return img

    def __repr__(self):
        b, c, s, h = self.amounts
        return f"ColorJitter(brightness={b}, contrast={c}, saturation={s}, hue={h})"


class Lighting:
    """AlexNet's PCA colour augmentation on a CHW float array in [0, 1] (before Normalize):
    adds ``eigvec @ (alpha * eigval)`` to every pixel, alpha ~ N(0, alphastd^2) per sample."""

    def __init__(self, alphastd=0.1, eigval=IMAGENET_PCA_EIGVAL, eigvec=IMAGENET_PCA_EIGVEC):
        self.alphastd = float(alphastd)
        self.eigval = np.asarray(eigval, np.float64)
        self.eigvec = np.asarray(eigvec, np.float64)

    def __call__(self, x, rng):
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[0] != 3:
            raise ValueError("Lighting: expected a 3xHxW float array (put ToArray() first), got "
                             f"{type(x).__name__} {getattr(x, 'shape', '')}")
        alpha = rng.normal(0.0, self.alphastd, size=3)
        rgb = self.eigvec @ (alpha * self.eigval)
        return (x + rgb.astype(x.dtype).reshape(3, 1, 1)).astype(x.dtype, copy=False)

    def __repr__(self):
        return f"Lighting(alphastd={self.alphastd})"


class PhotometricDistort:
    """Brightness, contrast and colour, each by a factor uniform in [1 - s, 1 + s], in a
    random order (Howard 2013, s = 0.5)."""

    def __init__(self, strength=0.5):
        self.jitter = ColorJitter(brightness=strength, contrast=strength, saturation=strength)
        self.strength = strength

    def __call__(self, img, rng):
        return self.jitter(img, rng)

    def __repr__(self):
        return f"PhotometricDistort(strength={self.strength})"


class ScaleJitter:
    """VGG's training scale jittering: the shorter side resized to S uniform in
    [min_size, max_size] (integers), then a random ``crop`` x ``crop`` window."""

    def __init__(self, min_size=256, max_size=512, crop=224):
        if not 0 < crop <= min_size <= max_size:
            raise ValueError(f"ScaleJitter: expected 0 < crop <= min_size <= max_size, got crop={crop}, "
                             f"min_size={min_size}, max_size={max_size}")
        self.min_size, self.max_size, self.crop = int(min_size), int(max_size), RandomCrop(crop)

    def __call__(self, img, rng):
        _check_pil(img, "ScaleJitter")
        size = int(rng.integers(self.min_size, self.max_size + 1))
        return self.crop(Resize(size)(img, rng), rng)

    def __repr__(self):
        return f"ScaleJitter(min_size={self.min_size}, max_size={self.max_size}, crop={self.crop.size[0]})"


class RandomErasing:
    """With probability ``p``, replace a random rectangle (area fraction in ``scale``,
    aspect ratio in ``ratio``) of a CHW float array by ``value`` (a number, or "random"
    for N(0, 1) noise per pixel).  Put it after Normalize."""

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p}")
        if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomErasing: expected 0 < scale[0] <= scale[1] <= 1 and "
                             f"0 < ratio[0] <= ratio[1], got scale={scale}, ratio={ratio}")
        if value != "random" and not isinstance(value, (int, float)):
            raise ValueError(f"RandomErasing: value must be a number or 'random', got {value!r}")
        self.p, self.scale, self.ratio, self.value = float(p), tuple(scale), tuple(ratio), value

    def __call__(self, x, rng):
        if not isinstance(x, np.ndarray) or x.ndim != 3:
            raise TypeError(f"RandomErasing: expected a CHW float array (put it after ToArray), "
                            f"got {type(x).__name__}")
        if rng.random() >= self.p:
            return x
        channels, height, width = x.shape
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = height * width * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < h < height and 0 < w < width:
                top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                out = x.copy()
                if self.value == "random":
                    out[:, top:top + h, left:left + w] = rng.standard_normal((channels, h, w))
                else:
                    out[:, top:top + h, left:left + w] = self.value
                return out
        return x

    def __repr__(self):
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, value={self.value!r})"


class MixupCutmix:
    """Mixup (Zhang et al., 2018) or CutMix (Yun et al., 2019) of a batch with its reverse,
    as in timm: per batch, CutMix with probability ``switch_prob`` when both are enabled;
    lambda ~ Beta(alpha, alpha); CutMix's lambda is corrected to the pasted box's area.
    ``__call__(images (N,C,H,W), labels (N,), rng)`` -> (mixed images, soft targets (N, K)),
    with ``label_smoothing`` applied to both one-hot targets before mixing."""

    def __init__(self, num_classes, mixup_alpha=0.2, cutmix_alpha=1.0, switch_prob=0.5,
                 label_smoothing=0.0):
        if num_classes < 1:
            raise ValueError(f"MixupCutmix: num_classes must be >= 1, got {num_classes}")
        if mixup_alpha < 0 or cutmix_alpha < 0 or mixup_alpha == cutmix_alpha == 0:
            raise ValueError(f"MixupCutmix: alphas must be >= 0 and one of them > 0, got "
                             f"mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}")
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.switch_prob, self.label_smoothing = float(switch_prob), float(label_smoothing)

    def soft_targets(self, labels):
        off = self.label_smoothing / self.num_classes
        targets = np.full((len(labels), self.num_classes), off, np.float32)
        targets[np.arange(len(labels)), labels] += 1.0 - self.label_smoothing
        return targets

    def __call__(self, images, labels, rng):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4 or labels.shape != (images.shape[0],):
            raise ValueError(f"MixupCutmix: expected images (N, C, H, W) and labels (N,), got "
                             f"{images.shape} and {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"MixupCutmix: labels must be in [0, {self.num_classes}), got "
                             f"[{labels.min()}, {labels.max()}]")
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        flipped = images[::-1]
        if use_cutmix:
            height, width = images.shape[2:]
            cut = math.sqrt(1.0 - lam)
            cy, cx = int(rng.integers(height)), int(rng.integers(width))
            h, w = int(height * cut), int(width * cut)
            top, bottom = max(cy - h // 2, 0), min(cy + h // 2, height)
            left, right = max(cx - w // 2, 0), min(cx + w // 2, width)
            mixed = images.copy()
            mixed[:, :, top:bottom, left:right] = flipped[:, :, top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        else:
            mixed = (lam * images + (1.0 - lam) * flipped).astype(images.dtype)
        targets = self.soft_targets(labels)
        return mixed, (lam * targets + (1.0 - lam) * targets[::-1]).astype(np.float32)

    def __repr__(self):
        return (f"MixupCutmix(num_classes={self.num_classes}, mixup_alpha={self.mixup_alpha}, "
                f"cutmix_alpha={self.cutmix_alpha}, switch_prob={self.switch_prob}, "
                f"label_smoothing={self.label_smoothing})")
