"""ResNet, ResNeXt, DenseNet, Xception, MobileNet v1/v2 and EfficientNet B0-B7.

Parameter counts must equal the reference table to the unit; MACs (conv + linear,
counted by ``minidl.summary`` at the reference input size) within 0.5%.  One
model per family runs a forward + backward at its reduced test size by default;
the other variants' forward + backward runs are marked slow.
"""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.models as models
from minidl import nn
from minidl.models.layers import StochasticDepth, drop_path, make_divisible
from minidl.models.resnet import ResNet

FAMILIES = ("resnet*", "resnext*", "densenet*", "xception", "mobilenet_v*", "efficientnet_b*")
NAMES = sorted({n for pattern in FAMILIES for n in models.list_models(pattern)})
# one representative per family for the default (not slow) forward/backward run
FAST_TRAIN_STEP = {"resnet18", "resnext50_32x4d", "densenet121", "xception", "mobilenet_v1",
                   "mobilenet_v2", "efficientnet_b0"}


def _slow_unless(names):
    return [pytest.param(n, marks=() if n in names else pytest.mark.slow) for n in NAMES]


def test_all_families_registered():
    expected = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                "resnext101_32x8d", "resnext101_64x4d", "densenet121", "densenet169", "densenet201",
                "densenet264", "xception", "mobilenet_v1", "mobilenet_v2",
                *(f"efficientnet_b{i}" for i in range(8))}
    assert expected == set(NAMES)
    for name in NAMES:
        info = models.model_info(name)
        assert info.year and info.top1 and info.paper and info.test_size, name


@pytest.mark.parametrize("name", NAMES)
def test_parameter_and_mac_counts_match_table(name):
    info = models.model_info(name)
    model = models.create(name)   # built once for both checks: construction dominates
    assert model.num_parameters(trainable_only=True) == info.params
    # shape_only skips the conv/linear arithmetic: full-resolution counts stay cheap
    report = minidl.summary(model, info.input_size, print_table=False, shape_only=True)
    assert report.output_shape == (1, 1000)
    assert report.gmacs == pytest.approx(info.gmacs, rel=0.005)


@pytest.mark.parametrize("name", _slow_unless(FAST_TRAIN_STEP))
def test_train_step_gives_every_parameter_a_gradient(name):
    minidl.manual_seed(0)
    size = models.model_info(name).test_size
    model = models.create(name, num_classes=10).train()
    logits = model(minidl.randn(2, 3, size, size))
    assert logits.shape == (2, 10)
    assert np.isfinite(logits.numpy()).all()
    F.cross_entropy(logits, minidl.tensor(np.array([1, 7]))).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"{name}: parameters without a gradient: {no_grad[:5]}"
    assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters())


# ---------------------------------------------------------------- shared blocks
def test_make_divisible_rounds_to_eight_without_losing_ten_percent():
    assert make_divisible(32 * 1.1) == 32          # 35.2 -> 32 (within 10%)
    assert make_divisible(16 * 1.4) == 24          # 22.4 -> 24
    assert make_divisible(320 * 1.1) == 352
    assert make_divisible(3) == 8                   # never below the divisor
    assert make_divisible(90, 16) == 96


def test_drop_path_drops_whole_samples_in_training_and_is_identity_in_eval():
    minidl.manual_seed(1)
    x = minidl.ones(400, 2, 3, 3)
    y = drop_path(x, 0.25, training=True).numpy().reshape(400, -1)
    per_sample = y[:, 0]
    assert np.all(y == per_sample[:, None])                       # one decision per sample
    assert set(np.unique(per_sample)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.15 < np.mean(per_sample == 0) < 0.35
    layer = StochasticDepth(0.5).eval()
    assert layer(x) is x
    assert drop_path(x, 0.0, training=True) is x


def test_stochastic_depth_rate_grows_linearly_over_blocks():
    model = models.create("efficientnet_b0")
    rates = [m.p for m in model.modules() if isinstance(m, StochasticDepth)]
    assert len(rates) == 16
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])


def test_efficientnet_is_deterministic_in_eval_mode():
    minidl.manual_seed(0)
    model = models.create("efficientnet_b0", num_classes=5, stochastic_depth_prob=0.5,
                          dropout=0.5).eval()
    x = minidl.randn(2, 3, 32, 32)
    with minidl.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


# ---------------------------------------------------------------- family options
def test_resnet_zero_init_residual_and_init():
    model = models.create("resnet18", zero_init_residual=True)
    for block in list(model.layer1) + list(model.layer4):
        assert np.all(block.bn2.weight.numpy() == 0)
    assert np.all(model.bn1.weight.numpy() == 1)
    # Kaiming normal, fan_out: std = sqrt(2 / (64 * 7 * 7))
    assert model.conv1.weight.numpy().std() == pytest.approx(np.sqrt(2 / (64 * 49)), rel=0.1)


def test_resnet50_is_v1_5_stride_in_the_3x3():
    block = ResNet("bottleneck", (1, 1, 1, 1)).layer2[0]    # resnet50's blocks, fewer of them
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)


def test_resnext_grouped_width():
    block = ResNet("bottleneck", (1, 1, 1, 1), groups=32, width_per_group=8).layer1[0]  # 32x8d
    assert block.conv2.groups == 32 and block.conv2.in_channels == 256
    assert block.conv2.weight.shape == (256, 8, 3, 3)


def test_mobilenet_v1_width_and_resolution_multipliers():
    thin = models.create("mobilenet_v1", alpha=0.5, rho=160 / 224)
    assert thin.default_input_size == 160
    assert thin.classifier.in_features == 512
    assert thin.num_parameters() < models.create("mobilenet_v1").num_parameters() / 2
    with minidl.no_grad():
        assert thin.eval()(minidl.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_mobilenet_v2_width_multiplier():
    model = models.create("mobilenet_v2", width_mult=1.4)
    assert model.last_channel == 1792
    assert models.create("mobilenet_v2", width_mult=0.5).last_channel == 1280


def test_efficientnet_compound_scaling_constructor():
    # phi = 0 is B0; phi = 1 has B2's width (1.1) and depth (1.2) coefficients
    assert models.efficientnet(0).num_parameters() == models.model_info("efficientnet_b0").params
    b2_shape = models.efficientnet(1)
    assert b2_shape.num_parameters() == models.model_info("efficientnet_b2").params
    assert b2_shape.default_input_size == round(224 * 1.15) == 258
    assert models.create("efficientnet_b7").default_input_size == 600


# ---------------------------------------------------------------- torchvision names
@pytest.mark.parametrize("name, keys", [
    ("resnet50", ["conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight",
                  "layer4.2.conv3.weight", "layer4.2.bn3.bias", "fc.weight"]),
    ("densenet121", ["features.conv0.weight", "features.norm0.weight",
                     "features.denseblock1.denselayer1.norm1.weight",
                     "features.denseblock4.denselayer16.conv2.weight",
                     "features.transition3.conv.weight", "features.norm5.running_mean",
                     "classifier.weight"]),
    ("mobilenet_v2", ["features.0.0.weight", "features.0.1.weight", "features.1.conv.0.0.weight",
                      "features.1.conv.1.weight", "features.2.conv.0.0.weight",
                      "features.2.conv.3.running_var", "features.18.0.weight", "classifier.1.bias"]),
    ("efficientnet_b0", ["features.0.0.weight", "features.1.0.block.0.0.weight",
                         "features.1.0.block.1.fc1.weight", "features.1.0.block.2.1.weight",
                         "features.2.0.block.0.0.weight", "features.2.0.block.2.fc2.bias",
                         "features.7.0.block.3.0.weight", "features.8.0.weight",
                         "classifier.1.weight"]),
])
def test_torchvision_parameter_names(name, keys):
    state = models.create(name).state_dict()
    missing = [k for k in keys if k not in state]
    assert not missing


def test_torchvision_shapes_of_key_tensors():
    state = models.create("efficientnet_b0").state_dict()
    assert state["features.1.0.block.0.0.weight"].shape == (32, 1, 3, 3)       # depthwise
    assert state["features.2.0.block.2.fc1.weight"].shape == (4, 96, 1, 1)    # SE: 16 // 4
    assert state["features.8.0.weight"].shape == (1280, 320, 1, 1)
    assert "features.1.0.stochastic_depth.p" not in state


def test_xception_flows():
    model = models.create("xception")
    blocks = [getattr(model, f"block{i}") for i in range(1, 13)]
    assert sum(b.skip is not None for b in blocks) == 4                       # entry x3 + exit
    assert all(b.skip is None for b in blocks[3:11])                           # middle flow x8
    assert isinstance(blocks[0].rep[0], nn.Module) and not isinstance(blocks[0].rep[0], nn.ReLU)


# ---------------------------------------------------------------- PyTorch parity (optional)
def _randomized(module, seed=0):
    """Random weights and BN statistics (variances positive), in eval mode."""
    rng = np.random.default_rng(seed)
    state = {k: (rng.uniform(0.5, 1.5, v.shape) if k.endswith("running_var")
                 else rng.normal(0, 0.3, v.shape)).astype(v.dtype) if v.dtype.kind == "f" else v
             for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    return module.eval(), {k: v for k, v in state.items() if v.dtype.kind == "f"}


def _torch_blocks():
    torch = pytest.importorskip("torch", reason="PyTorch is optional; parity checks need it")
    tf = torch.nn.functional

    def conv_bn(x, s, conv, bn, stride=1, padding=0, groups=1, eps=1e-5):
        x = tf.conv2d(x, s[conv + ".weight"], s.get(conv + ".bias"), stride, padding, 1, groups)
        return tf.batch_norm(x, s[bn + ".running_mean"], s[bn + ".running_var"], s[bn + ".weight"],
                             s[bn + ".bias"], False, 0.0, eps)

    def bottleneck(x, s):   # torchvision Bottleneck, stride 2 in conv2 (v1.5), downsample
        y = tf.relu(conv_bn(x, s, "conv1", "bn1"))
        y = tf.relu(conv_bn(y, s, "conv2", "bn2", stride=2, padding=1, groups=2))
        y = conv_bn(y, s, "conv3", "bn3")
        return tf.relu(y + conv_bn(x, s, "downsample.0", "downsample.1", stride=2))

    def mbconv(x, s):       # torchvision MBConv (expand 6, k5, stride 1, residual) in eval
        y = tf.silu(conv_bn(x, s, "block.0.0", "block.0.1"))
        c = y.shape[1]
        y = tf.silu(conv_bn(y, s, "block.1.0", "block.1.1", padding=2, groups=c))
        scale = tf.conv2d(tf.silu(tf.conv2d(y.mean((2, 3), keepdim=True), s["block.2.fc1.weight"],
                                            s["block.2.fc1.bias"])),
                          s["block.2.fc2.weight"], s["block.2.fc2.bias"])
        y = conv_bn(y * torch.sigmoid(scale), s, "block.3.0", "block.3.1")
        return x + y

    def dense_block(x, s):  # torchvision _DenseBlock of two layers
        feats = [x]
        for i in (1, 2):
            h = torch.cat(feats, 1)
            p = f"denselayer{i}."
            h = tf.batch_norm(h, s[p + "norm1.running_mean"], s[p + "norm1.running_var"],
                              s[p + "norm1.weight"], s[p + "norm1.bias"], False, 0.0, 1e-5)
            h = conv_bn(tf.relu(h), s, p + "conv1", p + "norm2")
            feats.append(tf.conv2d(tf.relu(h), s[p + "conv2.weight"], None, 1, 1))
        return torch.cat(feats, 1)

    def xception_block(x, s):   # Keras Xception entry block (relu first, grow first, stride 2)
        y = x
        for i in (1, 4):
            y = tf.relu(y)
            y = tf.conv2d(y, s[f"rep.{i}.conv1.weight"], None, 1, 1, 1, y.shape[1])
            y = conv_bn(y, s, f"rep.{i}.pointwise", f"rep.{i + 1}")
        y = tf.max_pool2d(y, 3, 2, 1)
        return y + conv_bn(x, s, "skip", "skipbn", stride=2)

    return torch, {"bottleneck": bottleneck, "mbconv": mbconv, "dense_block": dense_block,
                   "xception_block": xception_block}


def _block(kind):
    from minidl.models.densenet import DenseBlock
    from minidl.models.efficientnet import MBConv
    from minidl.models.resnet import Bottleneck
    from minidl.models.xception import XceptionBlock
    return {"bottleneck": (lambda: Bottleneck(16, 8, stride=2, groups=2, width_per_group=64), 16),
            "mbconv": (lambda: MBConv(8, 8, 5, 1, 6, 0.5, {}), 8),
            "dense_block": (lambda: DenseBlock(2, 6, 4, 4, 0.0), 6),
            "xception_block": (lambda: XceptionBlock(8, 12, 2, 2), 8)}[kind]


@pytest.mark.parametrize("kind", ["bottleneck", "mbconv", "dense_block", "xception_block"])
def test_block_matches_pytorch_reference(kind):
    torch, reference = _torch_blocks()
    build, channels = _block(kind)
    block, state = _randomized(build())
    x = np.random.default_rng(1).normal(size=(2, channels, 9, 9)).astype(np.float32)
    with minidl.no_grad():
        ours = block(minidl.tensor(x)).numpy()
    theirs = reference[kind](torch.from_numpy(x),
                             {k: torch.from_numpy(v) for k, v in state.items()}).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
