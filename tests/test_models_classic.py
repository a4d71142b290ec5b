"""AlexNet, OverFeat, VGG, GoogLeNet, Inception-v2/v3: exact parameter counts, the
train-mode aux heads, forward/backward at the reduced test resolution, and
OverFeat's offset pooling and multi-scale classification.

The models over ~50M parameters take tens of seconds just to initialize on a
2-core machine, so their checks are marked slow (the zoo-wide test covers their
counts as well).  OverFeat's pooling and multi-scale tests use the real layouts
(kernels, strides, paddings, pooling) with narrowed channels, so they are cheap.
"""
import numpy as np
import pytest

import minidl
import minidl.models as models
from minidl import functional as F
from minidl.autograd import no_grad
from minidl.models.overfeat import (_ACCURATE, _FAST, OverFeat, bilinear_resize,
                                    offset_max_pool)

SMALL = ["googlenet", "inception_v2", "inception_v3"]
LARGE = ["alexnet", "alexnet_owt", "overfeat_fast", "overfeat_accurate", "vgg16", "vgg19",
         "vgg16_bn", "vgg19_bn"]
# the registered counts are for the inference network, without the train-only aux heads
NO_AUX = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}


def num_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_backward(model, size, batch=2, num_outputs=1):
    """One training step's forward and backward; returns the outputs."""
    minidl.manual_seed(0)
    model.train()
    out = model(minidl.randn(batch, 3, size, size))
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == num_outputs
    labels = minidl.tensor(np.arange(batch) % outs[0].shape[1])
    loss = F.cross_entropy(outs[0], labels)
    for aux in outs[1:]:
        loss = loss + 0.3 * F.cross_entropy(aux, labels)
    loss.backward()
    for o in outs:
        assert np.isfinite(o.numpy()).all()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without a gradient: {missing[:5]}"
    return outs


def test_all_registered():
    for name in SMALL + LARGE:
        assert name in models.list_models()


@pytest.mark.parametrize("name", SMALL)
def test_param_count_small(name):
    model = models.create(name, **NO_AUX.get(name, {}))
    assert num_params(model) == models.model_info(name).params


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_param_count_large(name):
    assert num_params(models.create(name)) == models.model_info(name).params


# ---------------------------------------------------------------- GoogLeNet (paper)
def test_googlenet_aux_heads_train_only():
    model = models.create("googlenet", num_classes=10)
    # the two aux heads of the paper: 1x1 conv 128, fc 1024, fc classes
    assert num_params(model) == 6_998_552 - 1_025_000 + 10_250 + (
        (512 * 128 + 128) + (2048 * 1024 + 1024) + (1024 * 10 + 10)) + (
        (528 * 128 + 128) + (2048 * 1024 + 1024) + (1024 * 10 + 10))
    assert model.inception3a.branch3[1].conv.kernel_size == (5, 5)  # the paper's true 5x5
    logits, aux1, aux2 = forward_backward(model, models.model_info("googlenet").test_size,
                                          num_outputs=3)
    assert logits.shape == aux1.shape == aux2.shape == (2, 10)
    model.eval()
    x = minidl.randn(1, 3, 64, 64)
    with no_grad():
        a, b = model(x), model(x)
    assert a.shape == (1, 10)  # eval: logits only, dropout off
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_googlenet_without_aux_has_no_aux_modules():
    model = models.create("googlenet", num_classes=10, aux_logits=False)
    assert model.aux1 is None and model.aux2 is None
    assert model(minidl.randn(1, 3, 64, 64)).shape == (1, 10)  # train mode too


# ---------------------------------------------------------------- Inception v2 / v3
def test_inception_v2_forward_backward():
    model = models.create("inception_v2", num_classes=10)
    (logits,) = forward_backward(model, models.model_info("inception_v2").test_size)
    assert logits.shape == (2, 10)


def test_inception_v3_forward_backward_reduced_size():
    model = models.create("inception_v3", num_classes=10, aux_logits=False)
    (logits,) = forward_backward(model, models.model_info("inception_v3").test_size)
    assert logits.shape == (2, 10)


def test_inception_v3_aux_head_count():
    with_aux = models.create("inception_v3", aux_logits=True)
    assert num_params(with_aux) == 27_161_264


@pytest.mark.slow
def test_inception_v3_aux_head_train_only_at_299():
    model = models.create("inception_v3", num_classes=10)
    model.train()
    with no_grad():
        logits, aux = model(minidl.randn(2, 3, 299, 299))
    assert logits.shape == aux.shape == (2, 10)
    model.eval()
    with no_grad():
        assert model(minidl.randn(1, 3, 299, 299)).shape == (1, 10)


# ---------------------------------------------------------------- AlexNet / VGG
def test_alexnet_owt_forward_backward():
    model = models.create("alexnet_owt", num_classes=10)
    (logits,) = forward_backward(model, models.model_info("alexnet_owt").test_size)
    assert logits.shape == (2, 10)


@pytest.mark.slow
def test_alexnet_paper_forward_backward():
    model = models.create("alexnet", num_classes=10)
    convs = [m for m in model.features if isinstance(m, minidl.nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert sum(isinstance(m, minidl.nn.LocalResponseNorm) for m in model.features) == 2
    (logits,) = forward_backward(model, 227, batch=1)
    assert logits.shape == (1, 10)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "vgg19_bn"])
def test_vgg_forward_backward(name):
    model = models.create(name, num_classes=10)
    (logits,) = forward_backward(model, models.model_info(name).test_size)
    assert logits.shape == (2, 10)


# ---------------------------------------------------------------- OverFeat
def narrow(layout, divisor=16):
    """The same geometry with 1/divisor of the channels and a small classifier."""
    convs = [(c // divisor, k, s, p, pool) for c, k, s, p, pool in layout["convs"]]
    return dict(layout, convs=convs, fc=(32, 32))


def test_offset_max_pool_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 11, 10)).astype(np.float32)
    pooled = offset_max_pool(minidl.tensor(a), 3)
    assert len(pooled) == 9
    h, w = (11 - 2) // 3, (10 - 2) // 3
    for i, p in enumerate(pooled):
        dy, dx = divmod(i, 3)
        crop = a[:, :, dy:dy + 3 * h, dx:dx + 3 * w].reshape(2, 3, h, 3, w, 3)
        np.testing.assert_array_equal(p.numpy(), crop.max(axis=(3, 5)))


@pytest.mark.parametrize("layout, offsets, size", [(_FAST, 4, 247), (_ACCURATE, 9, 245)])
def test_overfeat_offset_class_maps(layout, offsets, size):
    """At the smallest input where every offset's pooled map holds one classifier
    window (layer 5 unpooled: 13x13 fast, 17x17 accurate = the paper's 245x245 row),
    the dense class map has one position per offset: 2x2 (fast's 2x2 pooling) or
    3x3 (accurate's 3x3 pooling, the paper's 9 offsets)."""
    minidl.manual_seed(0)
    model = OverFeat(narrow(layout), num_classes=10).eval()
    x = minidl.randn(2, 3, size, size)
    with no_grad():
        feats = model.features(x)
        k = model.pool_kernel
        assert k * k == offsets
        assert feats.shape[2] == k * model.window + k - 1
        maps = model.class_maps(x)
        assert maps.shape == (2, 10, k, k)
        # offset (dy, dx) sits at map position (dy, dx); (0, 0) is the plain network
        plain = model(x)
        assert plain.shape == (2, 10)  # a 1x1 class map comes back as logits
        np.testing.assert_allclose(maps.numpy()[:, :, 0, 0], plain.numpy(),
                                   rtol=1e-5, atol=1e-6)
        dy, dx = k - 1, 1
        shifted = feats[:, :, dy:, dx:]
        direct = model.classifier(model.pool5(shifted))
        np.testing.assert_allclose(maps.numpy()[:, :, dy, dx], direct.numpy()[:, :, 0, 0],
                                   rtol=1e-5, atol=1e-6)


def test_overfeat_reference_size_is_plain_classifier():
    minidl.manual_seed(0)
    model = OverFeat(narrow(_FAST), num_classes=10).eval()
    x = minidl.randn(2, 3, 231, 231)
    with no_grad():
        logits = model(x)
        assert logits.shape == (2, 10)
        # at the reference size layer 5 pools to exactly one classifier window, so
        # only offset (0, 0) fits and one-scale multi-scale = softmax(forward)
        probs = model.predict_multiscale(x, scales=(231,))
        np.testing.assert_allclose(probs.numpy(), F.softmax(logits, 1).numpy(),
                                   rtol=1e-5, atol=1e-7)


def test_overfeat_predict_multiscale_tiny_scale_set():
    minidl.manual_seed(0)
    model = OverFeat(narrow(_ACCURATE), num_classes=10).eval()
    images = minidl.randn(2, 3, 230, 236).numpy()
    scales = (221, (245, 261))
    with no_grad():
        probs = model.predict_multiscale(images, scales=scales, flip=True)
        assert probs.shape == (2, 10)
        # the paper's rule: spatial max of each class's softmax per scale and flip,
        # then the mean of those vectors
        expected = []
        for size in ((221, 221), (245, 261)):
            resized = bilinear_resize(images, size)
            for view in (resized, resized[:, :, :, ::-1]):
                x = minidl.tensor(np.ascontiguousarray(view))
                expected.append(model._offset_scores(x).numpy())
        np.testing.assert_allclose(probs.numpy(), np.mean(expected, axis=0), rtol=1e-5)
        # at (245, 261) layer 5 is 17x18 unpooled: every offset fits one window
        dense = model.class_maps(minidl.tensor(bilinear_resize(images, (245, 261))))
        assert dense.shape == (2, 10, 3, 3)
        # the plain network slides too: 6x6 pooled columns hold 2 classifier windows
        assert model(minidl.tensor(bilinear_resize(images, (245, 261)))).shape == (2, 10, 1, 2)
    p = probs.numpy()
    assert np.all(p > 0) and np.all(p <= 1)


def test_bilinear_resize():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((1, 2, 7, 9)).astype(np.float32)
    np.testing.assert_array_equal(bilinear_resize(a, (7, 9)), a)
    const = np.full((1, 1, 5, 5), 3.0, np.float32)
    np.testing.assert_allclose(bilinear_resize(const, (11, 8)), 3.0)
    torch = pytest.importorskip("torch", reason="optional comparison with PyTorch's interpolate")
    for size in ((13, 4), (3, 17)):
        ref = torch.nn.functional.interpolate(torch.from_numpy(a), size=size, mode="bilinear",
                                              align_corners=False).numpy()
        np.testing.assert_allclose(bilinear_resize(a, size), ref, rtol=1e-5, atol=1e-6)
