"""OverFeat (Sermanet et al., ICLR 2014): the "fast" (Table 1) and "accurate"
(Table 3 of the arXiv v4 paper) classifiers, with the fully
connected layers in their convolutional form, the paper's offset max pooling and its
multi-scale classification.

Layouts (no padding in the first two convolutions; 3x3 convolutions pad 1):

    fast,     231x231: 96 11x11/4, pool 2/2 | 256 5x5, pool 2/2 | 512 3x3 | 1024 3x3 |
              1024 3x3, pool 2/2 | fc6 3072 (a 6x6 conv) | fc7 4096 | fc8 classes
    accurate, 221x221: 96 7x7/2, pool 3/3 | 256 7x7, pool 2/2 | 512 | 512 | 1024 | 1024
              (3x3), pool 3/3 | fc 4096 (a 5x5 conv) | 4096 | classes

The classifier is ``features`` -> ``pool5`` -> ``classifier`` (convolutions): at the
reference size layer 5 pools to exactly one classifier window, the class map is 1x1
and ``forward`` returns (N, classes) logits; on a larger input ``forward`` returns
the dense class map (N, classes, H', W') -- the network slid over the image.

Offset max pooling (paper Sec. 3.3): the last pooling (kernel k = 2 for fast, 3 for
accurate) is applied at the k*k offsets (dx, dy) in {0..k-1}^2 of the unpooled
layer-5 maps, and the classifier runs on each of them, which shifts its viewing
window by one layer-5 pixel instead of k.  The paper describes it with the accurate
model's 3x3 pooling (9 offsets); the fast model's last pooling is 2x2, so it has 4.
``class_maps`` interleaves the k*k maps into one map k times denser.

Multi-scale classification (``predict_multiscale``): per scale (and, optionally,
horizontal flip), softmax class maps with offset pooling, then the spatial max per
class; those vectors are averaged over scales and flips -- the paper's steps (i)-(ii).
Resizing is bilinear (half-pixel centres, as OpenCV/PyTorch ``align_corners=False``),
done in NumPy outside the autograd graph.
"""
from __future__ import annotations

import numpy as np

from minidl import creation, functional as F, nn
from minidl.autograd import no_grad

from .registry import register_model

# (out_channels, kernel, stride, padding, pool_after): pool_after is the max-pool
# kernel (= stride) that follows the conv, 0 for none
_FAST = dict(convs=[(96, 11, 4, 0, 2), (256, 5, 1, 0, 2), (512, 3, 1, 1, 0),
                    (1024, 3, 1, 1, 0), (1024, 3, 1, 1, 2)],
             fc=(3072, 4096), window=6, input_size=231)
_ACCURATE = dict(convs=[(96, 7, 2, 0, 3), (256, 7, 1, 0, 2), (512, 3, 1, 1, 0), (512, 3, 1, 1, 0),
                        (1024, 3, 1, 1, 0), (1024, 3, 1, 1, 3)],
                 fc=(4096, 4096), window=5, input_size=221)

# the paper's six test scales (h, w), Table 3 (layer 5 unpooled: 17x17 ... for accurate)
PAPER_SCALES = ((245, 245), (281, 317), (317, 389), (389, 461), (461, 569), (569, 665))


def bilinear_resize(images, size):
    """Resize an (N, C, H, W) array to ``size`` (h, w) by bilinear interpolation with
    half-pixel centres (align_corners=False); a NumPy array in and out."""
    images = np.asarray(images)
    out_h, out_w = size

    def axis_weights(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(images.dtype)

    y0, y1, wy = axis_weights(images.shape[2], out_h)
    x0, x1, wx = axis_weights(images.shape[3], out_w)
    rows = images[:, :, y0, :] * (1 - wy)[:, None] + images[:, :, y1, :] * wy[:, None]
    return rows[:, :, :, x0] * (1 - wx) + rows[:, :, :, x1] * wx


def offset_max_pool(x, kernel):
    """The paper's offset pooling: non-overlapping kernel x kernel max pooling of the
    (N, C, H, W) map started at each offset (dy, dx) in {0..kernel-1}^2.  Returns the
    kernel*kernel pooled maps, dy-major, each cropped to the size all offsets share,
    (H - kernel + 1) // kernel rows by (W - kernel + 1) // kernel columns."""
    h = (x.shape[2] - kernel + 1) // kernel
    w = (x.shape[3] - kernel + 1) // kernel
    if h < 1 or w < 1:
        raise ValueError(f"offset_max_pool: a {x.shape[2]}x{x.shape[3]} map is too small for "
                         f"{kernel}x{kernel} pooling at all {kernel * kernel} offsets")
    return [F.max_pool2d(x[:, :, dy:dy + h * kernel, dx:dx + w * kernel], kernel)
            for dy in range(kernel) for dx in range(kernel)]


class OverFeat(nn.Module):
    """``features`` (layers 1-5 up to the last pooling), ``pool5``, ``classifier``
    (fc6-fc8 as convolutions).  Initialization as the paper: weights N(0, 0.01),
    biases 0; dropout 0.5 on fc6 and fc7."""

    def __init__(self, layout, num_classes=1000, dropout=0.5):
        super().__init__()
        self.input_size = layout["input_size"]
        layers, in_channels = [], 3
        *convs, (last_out, last_k, last_s, last_p, last_pool) = layout["convs"]
        for out, kernel, stride, padding, pool in convs:
            layers += [nn.Conv2d(in_channels, out, kernel, stride=stride, padding=padding),
                       nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(pool))
            in_channels = out
        layers += [nn.Conv2d(in_channels, last_out, last_k, stride=last_s, padding=last_p),
                   nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool_kernel = last_pool
        self.pool5 = nn.MaxPool2d(last_pool)
        fc6, fc7 = layout["fc"]
        self.window = layout["window"]
        self.classifier = nn.Sequential(
            nn.Conv2d(last_out, fc6, self.window), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(fc6, fc7, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(fc7, num_classes, 1),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        maps = self.classifier(self.pool5(self.features(x)))
        if maps.shape[2:] == (1, 1):
            return maps.flatten(1)
        return maps

    def class_maps(self, x):
        """Dense class maps with offset pooling: (N, classes, k*h, k*w), where position
        (k*i + dy, k*j + dx) is the classifier window at pooled position (i, j) of the
        map pooled from offset (dy, dx).  k*k = 9 for accurate, 4 for fast."""
        k, n = self.pool_kernel, x.shape[0]
        pooled = offset_max_pool(self.features(x), k)
        maps = self.classifier(F.concat(pooled, 0))  # the k*k offsets batched together
        c, h, w = maps.shape[1:]
        maps = maps.reshape(k, k, n, c, h, w).permute(2, 3, 4, 0, 5, 1)  # n, c, h, dy, w, dx
        return maps.reshape(n, c, h * k, w * k)

    def _offset_scores(self, x):
        """Softmax scores per class, maximized over every classifier window of every
        pooling offset that fits: (N, classes).  An offset whose pooled map is smaller
        than the classifier window is skipped; at the reference size only offset (0, 0)
        fits, and the result is softmax(forward(x))."""
        k, feats, best = self.pool_kernel, self.features(x), None
        for dy in range(k):
            for dx in range(k):
                h, w = (feats.shape[2] - dy) // k, (feats.shape[3] - dx) // k
                if h < self.window or w < self.window:
                    continue
                pooled = self.pool5(feats[:, :, dy:dy + h * k, dx:dx + w * k])
                scores = F.softmax(self.classifier(pooled), 1).max(axis=(2, 3))
                best = scores if best is None else _maximum(best, scores)
        if best is None:
            raise ValueError(f"OverFeat: a {x.shape[2]}x{x.shape[3]} input is smaller than the "
                             f"classifier's {self.input_size}x{self.input_size} window")
        return best

    def predict_multiscale(self, images, scales=PAPER_SCALES, flip=False):
        """Multi-scale classification (paper Sec. 3.3): for each scale (a square side,
        or an (h, w) pair) the batch is resized bilinearly, classified densely with
        offset pooling, and each class's softmax score maximized over space; the
        per-scale vectors (and their horizontal flips with ``flip``) are averaged.
        The default scales are the paper's six (``PAPER_SCALES``, its Table 3).
        Runs without gradients, in the current train/eval mode (call ``eval()``
        first to switch dropout off).  Returns (N, classes) probabilities."""
        data = images.numpy() if hasattr(images, "numpy") else np.asarray(images, np.float32)
        device = getattr(images, "device", "cpu")
        total, count = None, 0
        with no_grad():
            for scale in scales:
                size = (scale, scale) if isinstance(scale, int) else tuple(scale)
                resized = data if data.shape[2:] == size else bilinear_resize(data, size)
                views = [resized, resized[:, :, :, ::-1]] if flip else [resized]
                for view in views:
                    x = creation.tensor(np.ascontiguousarray(view, dtype=np.float32),
                                        device=device)
                    scores = self._offset_scores(x)
                    total = scores if total is None else total + scores
                    count += 1
        return total / count


def _maximum(a, b):
    return F.relu(a - b) + b  # elementwise max, with the ops autograd has


@register_model(params=145_920_872, gmacs=2.801, input_size=231, year=2013, top1=60.72,
                top5=82.88, paper="Sermanet et al., OverFeat, ICLR 2014, fast model (top-1/top-5: "
                "the paper's Table 2 validation errors 39.28/17.12, 1 fast model, 1 scale, coarse "
                "stride)",
                test_size=231, recipe="overfeat", eval_resize=256)
def overfeat_fast(num_classes=1000, **kwargs):
    return OverFeat(_FAST, num_classes=num_classes, **kwargs)


@register_model(params=144_656_488, gmacs=5.355, input_size=221, year=2013, top1=64.26,
                recipe="overfeat", eval_resize=256,
                top5=85.82, paper="Sermanet et al., OverFeat, ICLR 2014, accurate model (top-1/"
                "top-5: the paper's Table 2 validation errors 35.74/14.18, 1 accurate model, 4 "
                "scales, fine stride; the paper gives no single-scale number for it)", test_size=221)
def overfeat_accurate(num_classes=1000, **kwargs):
    return OverFeat(_ACCURATE, num_classes=num_classes, **kwargs)
