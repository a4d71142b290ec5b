"""Image transforms, seeded per sample: every transform is a callable ``t(img, rng)``.

``rng`` is a ``numpy.random.Generator``; datasets and the DataLoader derive it as
``np.random.default_rng([seed, epoch, index])``, so an augmented sample depends only on
those three numbers, never on the process or the order in which samples are drawn.
Transforms take a PIL image and return a PIL image or, from ``ToArray`` on, a float32
CHW NumPy array.

JPEG decoding: Pillow, chosen deliberately.  Measured here (CPU time, best of 9, a 52 KB
500x375 JPEG): Pillow 1.5-1.6 ms, simplejpeg 1.0 ms, simplejpeg with fast DCT and
upsampling 0.85-0.93 ms (and visibly different pixels).  The whole training sample
(decode + RandomResizedCrop + flip + ToArray + Normalize) costs ~2.7 ms with Pillow, so
simplejpeg would save ~20% of it, and only for JPEGs.  We keep Pillow alone because
(1) augmented pixels then do not depend on which optional decoder a machine has, so a
seed reproduces a run anywhere; (2) Pillow reads every file ImageNet actually holds
(CMYK and grayscale JPEGs, a PNG named .JPEG) and reports truncated ones; (3) it is one
dependency instead of two code paths; (4) at ~2.7 ms of CPU per sample, two idle cores
already exceed the 250 images/s target (benchmarks/data_pipeline.py).  Pillow's ``draft()`` gives DCT-domain downscaling by 1/2, 1/4
or 1/8 while decoding (0.8-1.1 ms instead of 1.5 ms at 1/2): ``RandomResizedCrop`` and
``Resize`` receive the still-undecoded image from the dataset and call it when the
region they keep is at least twice the output size, which pays off for large photos.
For a 500x375 photo cropped to 224 the region is never that large (upsampling from a
half-size decode would lose detail), so those decode at full size.  pillow-simd, a
drop-in replacement with faster resizing, works unchanged but is not required.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BILINEAR = Image.Resampling.BILINEAR  # Pillow's resize antialiases when it shrinks

__all__ = ["Compose", "RandomResizedCrop", "RandomCrop", "RandomHorizontalFlip", "Resize",
           "CenterCrop", "TenCrop", "ToArray", "Normalize", "IMAGENET_MEAN", "IMAGENET_STD",
           "train_transform", "eval_transform", "ten_crop_transform", "to_array"]


def _pair(size, what):
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{what}: size must be a positive int or (height, width), got {size!r}")
    return size


def _check_pil(img, what):
    if not isinstance(img, Image.Image):
        raise TypeError(f"{what}: expected a PIL image, got {type(img).__name__}; put it "
                        "before ToArray()")


def _draft(img, box, out_w, out_h):
    """Let a not-yet-decoded JPEG decode at 1/2, 1/4 or 1/8 scale when the region ``box``
    (left, upper, right, lower, in original pixels) stays at least ``out_w x out_h``.
    Returns the box in the coordinates of the image as it will be decoded."""
    if getattr(img, "format", None) != "JPEG" or not getattr(img, "tile", None):
        return box  # not a JPEG, or already decoded
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    if box_w < 2 * out_w or box_h < 2 * out_h:
        return box
    width, height = img.size
    # Pillow picks the largest factor s in {8,4,2} with size // request >= s
    request = (math.ceil(width * out_w / box_w), math.ceil(height * out_h / box_h))
    drafted = img.draft(img.mode, request)
    if not drafted:
        return box
    scale = width / drafted[1][2]
    return tuple(c / scale for c in box)


class Compose:
    """Apply transforms in order, passing the same per-sample ``rng`` to each."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable t(img, rng), "
                                f"got {type(t).__name__}")

    def __call__(self, img, rng):
        for t in self.transforms:
            img = t(img, rng)
        return img

    def __repr__(self):
        inner = ",\n".join(f"    {t!r}" for t in self.transforms)
        return f"Compose([\n{inner}\n])"


class RandomResizedCrop:
    """Crop a random region (area fraction in ``scale``, aspect ratio in ``ratio``) and
    resize it to ``size``: the Inception-style training crop, with torchvision's sampling
    (ten tries, then a center crop with the ratio clamped)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), draft=True):
        self.size = _pair(size, "RandomResizedCrop")
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"RandomResizedCrop: scale must satisfy 0 < min <= max <= 1, "
                             f"got {tuple(scale)}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"RandomResizedCrop: ratio must satisfy 0 < min <= max, "
                             f"got {tuple(ratio)}")
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.draft = draft

    def get_params(self, width, height, rng):
        """(left, top, crop_width, crop_height) in pixels of a ``width x height`` image."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return left, top, w, h
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            w, h = int(round(height * self.ratio[1])), height
        else:
            w, h = width, height
        return (width - w) // 2, (height - h) // 2, w, h

    def __call__(self, img, rng):
        _check_pil(img, "RandomResizedCrop")
        left, top, w, h = self.get_params(img.size[0], img.size[1], rng)
        box = (left, top, left + w, top + h)
        out_h, out_w = self.size
        if self.draft:
            box = _draft(img, box, out_w, out_h)
        return img.resize((out_w, out_h), BILINEAR, box=box)

    def __repr__(self):
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomCrop:
    """Crop a random ``size`` window after zero-padding each side by ``padding`` pixels
    (the CIFAR/MNIST-style augmentation)."""

    def __init__(self, size, padding=0):
        self.size = _pair(size, "RandomCrop")
        self.padding = int(padding)
        if self.padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")

    def __call__(self, img, rng):
        _check_pil(img, "RandomCrop")
        width, height = img.size
        out_h, out_w = self.size
        p = self.padding
        if width + 2 * p < out_w or height + 2 * p < out_h:
            raise ValueError(f"RandomCrop: crop {out_h}x{out_w} is larger than the padded "
                             f"image {height + 2 * p}x{width + 2 * p}")
        top = int(rng.integers(0, height + 2 * p - out_h + 1)) - p
        left = int(rng.integers(0, width + 2 * p - out_w + 1)) - p
        # PIL fills the part of the box outside the image with zeros
        return img.crop((left, top, left + out_w, top + out_h))

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, img, rng):
        if rng.random() >= self.p:
            return img
        if isinstance(img, Image.Image):
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.ascontiguousarray(np.asarray(img)[..., ::-1])

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Resize the shorter side to ``size`` (an int, keeping the aspect ratio as
    torchvision does) or to exactly ``(height, width)``; PIL bilinear, antialiased."""

    def __init__(self, size, draft=True):
        if isinstance(size, numbers.Integral):
            if size <= 0:
                raise ValueError(f"Resize: size must be positive, got {size}")
            self.size = int(size)
        else:
            self.size = _pair(size, "Resize")
        self.draft = draft

    def output_size(self, width, height):
        """(width, height) after resizing a ``width x height`` image."""
        if not isinstance(self.size, int):
            return self.size[1], self.size[0]
        if width <= height:
            return self.size, int(self.size * height / width)
        return int(self.size * width / height), self.size

    def __call__(self, img, rng):
        _check_pil(img, "Resize")
        width, height = img.size
        out_w, out_h = self.output_size(width, height)
        if (out_w, out_h) == (width, height):
            return img
        box = (0, 0, width, height)
        if self.draft:
            box = _draft(img, box, out_w, out_h)
        return img.resize((out_w, out_h), BILINEAR, box=box)

    def __repr__(self):
        return f"Resize({self.size})"


def _center_box(width, height, out_w, out_h):
    top = int(round((height - out_h) / 2.0))
    left = int(round((width - out_w) / 2.0))
    return left, top, left + out_w, top + out_h


class CenterCrop:
    """Crop the central ``size`` window (zero-padded where the image is smaller)."""

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img, rng):
        _check_pil(img, "CenterCrop")
        out_h, out_w = self.size
        return img.crop(_center_box(img.size[0], img.size[1], out_w, out_h))

    def __repr__(self):
        return f"CenterCrop({self.size})"


def to_array(img):
    """PIL image or HWC/HW uint8 array -> CHW float32 array in [0, 1]."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"ToArray: expected an HxW or HxWxC image, got shape {arr.shape}")
    out = np.empty((arr.shape[2], arr.shape[0], arr.shape[1]), np.float32)
    out[...] = arr.transpose(2, 0, 1)
    if arr.dtype == np.uint8:
        out *= np.float32(1 / 255)
    return out


class ToArray:
    """HWC uint8 (a PIL image) -> CHW float32 in [0, 1]."""

    def __call__(self, img, rng):
        return to_array(img)

    def __repr__(self):
        return "ToArray()"


class TenCrop:
    """The four corner crops and the center crop of ``size``, and the same five of the
    horizontally flipped image, as one (10, C, H, W) float32 array in [0, 1] (torchvision's
    order).  Follow it with ``Normalize``; a model sees the 10 crops as a batch."""

    def __init__(self, size):
        self.size = _pair(size, "TenCrop")

    def __call__(self, img, rng):
        _check_pil(img, "TenCrop")
        width, height = img.size
        out_h, out_w = self.size
        if out_w > width or out_h > height:
            raise ValueError(f"TenCrop: crop {out_h}x{out_w} is larger than the image "
                             f"{height}x{width}; resize first")
        full = to_array(img)
        boxes = [(0, 0), (width - out_w, 0), (0, height - out_h),
                 (width - out_w, height - out_h)]
        center = _center_box(width, height, out_w, out_h)
        boxes.append(center[:2])
        crops = [full[:, t:t + out_h, l:l + out_w] for l, t in boxes]
        flipped = full[:, :, ::-1]
        crops += [flipped[:, t:t + out_h, l:l + out_w] for l, t in boxes]
        return np.ascontiguousarray(np.stack(crops))

    def __repr__(self):
        return f"TenCrop({self.size})"


class Normalize:
    """(x - mean) / std per channel, on a CHW (or NCHW) float array."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean has {self.mean.size} values but std has "
                             f"{self.std.size}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.ravel()}")

    def __call__(self, x, rng):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Normalize: expected a float array (put ToArray() first), "
                            f"got {type(x).__name__}")
        if x.ndim < 3 or x.shape[-3] != self.mean.shape[0]:
            raise ValueError(f"Normalize: expected {self.mean.shape[0]} channels in a CHW "
                             f"array, got shape {x.shape}")
        out = np.subtract(x, self.mean, dtype=np.float32)
        out /= self.std
        return out

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


def train_transform(image_size=224, scale=(0.08, 1.0), mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """RandomResizedCrop + horizontal flip + ToArray + Normalize (the ImageNet recipe)."""
    return Compose([RandomResizedCrop(image_size, scale=scale), RandomHorizontalFlip(),
                    ToArray(), Normalize(mean, std)])


def eval_transform(image_size=224, resize_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Resize the shorter side to ``resize_size`` (default image_size / 0.875, i.e. 256 for
    224) + CenterCrop + ToArray + Normalize."""
    if resize_size is None:
        resize_size = int(round(image_size / 0.875))
    return Compose([Resize(resize_size), CenterCrop(image_size), ToArray(), Normalize(mean, std)])


def ten_crop_transform(image_size=224, resize_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Resize + TenCrop + Normalize: each sample is a (10, C, H, W) array."""
    if resize_size is None:
        resize_size = int(round(image_size / 0.875))
    return Compose([Resize(resize_size), TenCrop(image_size), Normalize(mean, std)])
