"""The recipe augmentations (minidl/data/augment.py), Mixup/CutMix, and cross_entropy with
soft targets against a float64 loop reference and finite differences."""
import math

import numpy as np
import pytest
from PIL import Image, ImageOps

import minidl
import minidl.functional as F
from helpers import gradcheck
from minidl.data import augment as A
from minidl.data.transforms import Compose, Normalize, ToArray


def photo(seed=0, size=(48, 40)):
    """A smooth RGB test image (gradients plus noise), so every operation changes it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([xx * 5, yy * 6, (xx + yy) * 3], -1) % 256
    pixels = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def soft_ce_ref(logits, target, smoothing):
    losses = []
    for row, probs in zip(logits, target):
        top = max(row)
        log_total = top + math.log(sum(math.exp(v - top) for v in row))
        k = len(row)
        losses.append(-sum(((1 - smoothing) * p + smoothing / k) * (v - log_total)
                           for v, p in zip(row, probs)))
    return np.array(losses)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_soft_cross_entropy_matches_reference(reduction, smoothing, device):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 7)) * 3
    target = rng.dirichlet(np.ones(7), size=5)
    got = F.cross_entropy(minidl.tensor(logits, dtype="float64", device=device), target,
                          reduction=reduction, label_smoothing=smoothing).numpy()
    ref = soft_ce_ref(logits, target, smoothing)
    ref = {"none": ref, "mean": ref.mean(), "sum": ref.sum()}[reduction]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_soft_cross_entropy_equals_hard_for_one_hot():
    rng = np.random.default_rng(2)
    logits = minidl.tensor(rng.standard_normal((6, 4)), dtype="float64")
    labels = np.array([0, 3, 1, 2, 2, 0])
    hard = F.cross_entropy(logits, labels, label_smoothing=0.2).numpy()
    soft = F.cross_entropy(logits, np.eye(4)[labels], label_smoothing=0.2).numpy()
    np.testing.assert_allclose(soft, hard, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_soft_cross_entropy_gradient(reduction):
    rng = np.random.default_rng(3)
    target = rng.dirichlet(np.ones(5), size=4)
    gradcheck(lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=0.1),
              rng.standard_normal((4, 5)))


def test_soft_cross_entropy_rejects_wrong_shape():
    logits = minidl.tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"soft targets must have the logits' shape \(3, 4\), got \(3, 5\)"):
        F.cross_entropy(logits, np.zeros((3, 5), np.float32))


@pytest.mark.parametrize("make", [A.AutoAugment, lambda: A.RandAugment(2, 9), A.TrivialAugmentWide,
                                  lambda: A.ColorJitter(0.4, 0.4, 0.4, 0.1),
                                  A.PhotometricDistort])
def test_policies_are_seeded_per_sample_and_change_images(make):
    t, img = make(), photo()
    outs = [np.asarray(t(img, np.random.default_rng([0, 0, i]))) for i in range(12)]
    again = [np.asarray(t(img, np.random.default_rng([0, 0, i]))) for i in range(12)]
    for a, b in zip(outs, again):
        np.testing.assert_array_equal(a, b)
        assert a.shape == np.asarray(img).shape and a.dtype == np.uint8
    assert sum(not np.array_equal(o, np.asarray(img)) for o in outs) >= 6


def test_autoaugment_policy_is_the_published_imagenet_one():
    policy = A.AutoAugment.POLICY
    assert len(policy) == 25 and all(len(sub) == 2 for sub in policy)
    assert policy[0] == (("Posterize", 0.4, 8), ("Rotate", 0.6, 9))
    ops = {name for sub in policy for name, _, _ in sub}
    assert ops == {"Posterize", "Rotate", "Solarize", "AutoContrast", "Equalize", "Color",
                   "Contrast", "Invert", "Sharpness", "ShearX"}


def test_magnitude_space_matches_published_ranges():
    space = A._space(31, 224, 224)
    assert space["Rotate"][-1] == 30 and space["ShearX"][-1] == pytest.approx(0.3)
    assert space["TranslateX"][-1] == pytest.approx(150 / 331 * 224)
    assert space["Posterize"][0] == 8 and space["Posterize"][-1] == 4
    assert space["Solarize"][0] == 255 and space["Solarize"][-1] == 0
    wide = A._space(31, 224, 224, wide=True)
    assert wide["Rotate"][-1] == 135 and wide["TranslateX"][-1] == 32 and wide["Posterize"][-1] == 2
    assert len(space) == 14 and set(space) == set(wide)


def test_randaugment_op_matches_pillow_directly():
    # one op (Solarize or Equalize draw no sign): compare against Pillow on the same image
    img = photo(4)
    t = A.RandAugment(num_ops=1, magnitude=15)
    names = list(A._space(31, *img.size))
    for i in range(40):
        rng = np.random.default_rng(i)
        name = names[int(np.random.default_rng(i).integers(len(names)))]
        if name == "Equalize":
            np.testing.assert_array_equal(np.asarray(t(img, rng)), np.asarray(ImageOps.equalize(img)))
        elif name == "Solarize":
            np.testing.assert_array_equal(np.asarray(t(img, rng)),
                                          np.asarray(ImageOps.solarize(img, 255 - 15 * 255 / 30)))


def test_policies_refuse_other_modes():
    with pytest.raises(ValueError, match="expected an RGB or L image, got mode 'RGBA'"):
        A.AutoAugment()(Image.new("RGBA", (8, 8)), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"magnitude must be in \[0, 30\], got 31"):
        A.RandAugment(2, 31)


def test_lighting_adds_the_pca_offset():
    x = np.full((3, 4, 5), 0.5, np.float32)
    rng = np.random.default_rng(7)
    out = A.Lighting(0.1)(x, rng)
    alpha = np.random.default_rng(7).normal(0, 0.1, 3)
    offset = sum(alpha[i] * A.IMAGENET_PCA_EIGVAL[i] * A.IMAGENET_PCA_EIGVEC[:, i] for i in range(3))
    np.testing.assert_allclose(out, np.broadcast_to(0.5 + offset.reshape(3, 1, 1), x.shape), rtol=1e-6)
    assert out.dtype == np.float32


def test_scale_jitter_sizes():
    img = photo(size=(300, 200))
    t = A.ScaleJitter(256, 512, 224)
    out = t(img, np.random.default_rng(0))
    assert out.size == (224, 224)
    sizes = {int(np.random.default_rng(i).integers(256, 513)) for i in range(50)}
    assert min(sizes) >= 256 and max(sizes) <= 512 and len(sizes) > 20
    with pytest.raises(ValueError, match="crop <= min_size"):
        A.ScaleJitter(200, 512, 224)


def test_random_erasing_erases_one_box():
    x = np.ones((3, 32, 32), np.float32)
    out = A.RandomErasing(p=1.0, value=0.0)(x, np.random.default_rng(3))
    erased = np.argwhere(out[0] == 0)
    assert len(erased) > 0 and np.all(x == 1)
    (t, l), (b, r) = erased.min(0), erased.max(0)
    assert len(erased) == (b - t + 1) * (r - l + 1)
    assert 0.02 * 1024 * 0.8 <= len(erased) <= 0.33 * 1024 * 1.2
    np.testing.assert_array_equal(out[1], out[0])
    assert A.RandomErasing(p=0.0)(x, np.random.default_rng(3)) is x


def test_pipeline_with_every_augmentation():
    t = Compose([A.ScaleJitter(64, 80, 56), A.AutoAugment(), A.ColorJitter(0.4, 0.4, 0.4),
                 ToArray(), A.Lighting(), Normalize(), A.RandomErasing(p=1.0, value="random")])
    out = t(photo(size=(90, 70)), np.random.default_rng(0))
    assert out.shape == (3, 56, 56) and out.dtype == np.float32 and np.all(np.isfinite(out))


@pytest.mark.parametrize("mixup_alpha,cutmix_alpha", [(0.2, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixup_cutmix_targets_match_pixel_shares(mixup_alpha, cutmix_alpha):
    rng = np.random.default_rng(0)
    images = np.stack([np.full((1, 8, 8), float(i)) for i in range(4)]).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    mix = A.MixupCutmix(4, mixup_alpha, cutmix_alpha)
    for seed in range(10):
        mixed, targets = mix(images, labels, np.random.default_rng(seed))
        assert targets.shape == (4, 4) and np.allclose(targets.sum(1), 1)
        for i in range(4):
            j = 3 - i
            lam = targets[i, i]
            # the mean pixel is lam * own value + (1 - lam) * partner's value
            np.testing.assert_allclose(mixed[i].mean(), lam * i + (1 - lam) * j, atol=1e-5)
            assert targets[i, j] == pytest.approx(1 - lam, abs=1e-6)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        mix(images, np.array([0, 1, 2, 4]), rng)
