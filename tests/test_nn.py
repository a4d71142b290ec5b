"""nn: Module registration and state, containers, layers against float64 references,
initialization, and a tiny CNN that overfits a fixed batch."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn, optim


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 4))
        self.register_buffer("scratch", minidl.zeros(2), persistent=False)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)))


def tiny_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))


def t64(a, requires_grad=False):
    return minidl.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=requires_grad)


# ---------------------------------------------------------------- registration and traversal
def test_named_parameters_buffers_and_modules():
    net = Small()
    assert [n for n, _ in net.named_parameters()] == [
        "conv.weight", "conv.bias", "bn.weight", "bn.bias", "head.1.weight", "head.1.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "scratch", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == ["", "conv", "bn", "head", "head.0", "head.1"]
    assert [n for n, _ in net.named_children()] == ["conv", "bn", "head"]
    assert all(p.requires_grad and isinstance(p, nn.Parameter) for p in net.parameters())
    assert net.head[1].weight.shape == (4, 8)
    assert "scratch" not in net.state_dict()  # non-persistent buffer
    assert list(net.state_dict()) == ["conv.weight", "conv.bias", "bn.weight", "bn.bias",
                                      "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
                                      "head.1.weight", "head.1.bias"]


def test_shared_parameters_and_modules_are_listed_once():
    net = nn.Module()
    net.a = nn.Linear(2, 3)
    net.b = nn.Linear(2, 3)
    net.b.weight = net.a.weight
    net.again = net.a
    assert [n for n, _ in net.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    assert [n for n, _ in net.named_modules()] == ["", "a", "b"]
    assert net.num_parameters() == 3 * 2 + 3 + 3


def test_reassignment_and_deletion_update_registries():
    net = nn.Module()
    net.w = nn.Parameter(minidl.ones(2))
    net.w = nn.Linear(2, 2)  # a parameter slot replaced by a module
    assert [n for n, _ in net.named_parameters()] == ["w.weight", "w.bias"]
    del net.w
    assert list(net.parameters()) == []
    net.register_parameter("bias", None)
    net.bias = None
    assert list(net.named_parameters()) == [] and net.bias is None
    with pytest.raises(TypeError, match=r"Module.bias: expected a Parameter or None for a registered "
                                        r"parameter, got ndarray"):
        net.bias = np.zeros(3)
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nothing'"):
        net.nothing


def test_assigning_before_init_names_the_fix():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(TypeError, match=r"Broken: cannot assign a submodule before Module.__init__\(\)"):
        Broken()


def test_parameter_counts_of_small_nets_match_hand_counts():
    # conv 3*8*3*3 (no bias) + BN 2*8 + linear 288*4 + 4
    assert tiny_cnn().num_parameters() == 216 + 16 + 1156
    grouped = nn.Conv2d(8, 16, 3, groups=4, bias=False)
    assert grouped.weight.shape == (16, 2, 3, 3) and grouped.num_parameters() == 288
    depthwise = nn.Conv2d(32, 32, 3, groups=32)
    assert depthwise.num_parameters() == 32 * 9 + 32
    assert nn.BatchNorm2d(10, affine=False).num_parameters() == 0
    assert nn.Linear(5, 7, bias=False).num_parameters() == 35


def test_train_eval_propagate_recursively():
    net = Small()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.head.eval()
    assert net.training and not net.head[0].training and not net.head[1].training


def test_zero_grad_apply_and_requires_grad():
    net = Small()
    for p in net.parameters():
        p.grad = minidl.ones(*p.shape)
    net.zero_grad(set_to_none=False)
    assert all(float(p.grad.numpy().sum()) == 0.0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    visited = []
    net.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Conv2d", "BatchNorm2d", "Flatten", "Linear", "Sequential", "Small"]
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_casts_float_params_and_buffers_only():
    net = Small().double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.bn.running_var.dtype == np.float64
    assert net.bn.num_batches_tracked.dtype == np.int64
    weight = net.conv.weight
    net.to("cpu", dtype="float32")
    assert net.conv.weight is weight and weight.dtype == np.float32 and weight.device == "cpu"
    with pytest.raises(ValueError, match="device: expected one of"):
        net.to("tpu")


# ---------------------------------------------------------------- state dicts
def test_state_dict_round_trip_copies_both_ways():
    minidl.manual_seed(0)
    src, dst = Small(), Small()
    state = src.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert not np.array_equal(state["conv.weight"], dst.conv.weight.numpy())
    dst.load_state_dict(state)
    for (name, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype
    # neither side aliases the other's arrays
    state["conv.weight"][...] = 7.0
    assert not np.any(dst.conv.weight.numpy() == 7.0)
    assert not np.any(src.conv.weight.numpy() == 7.0)
    # Tensors load as well as arrays
    dst.load_state_dict(OrderedDict((k, minidl.tensor(v)) for k, v in src.state_dict().items()))
    np.testing.assert_array_equal(dst.head[1].bias.numpy(), src.head[1].bias.numpy())


def test_strict_load_lists_missing_unexpected_and_mis_shaped_keys():
    net = Small()
    before = net.conv.bias.numpy().copy()
    state = net.state_dict()
    del state["head.1.bias"], state["bn.running_var"]
    state["extra.weight"] = np.zeros(3)
    state["conv.weight"] = np.zeros((8, 3, 5, 5))
    state["conv.bias"] = np.full(8, 5.0)
    with pytest.raises(ValueError) as err:
        net.load_state_dict(state)
    assert str(err.value) == (
        "Small.load_state_dict: error(s) loading the state dict:\n"
        "  missing keys: 'bn.running_var', 'head.1.bias'\n"
        "  unexpected keys: 'extra.weight'\n"
        "  mis-shaped keys: 'conv.weight' (expected (8, 3, 3, 3), got (8, 3, 5, 5))")
    np.testing.assert_array_equal(net.conv.bias.numpy(), before)  # nothing loaded on error
    # non-strict: missing/unexpected are reported, a mis-shaped key is still an error
    with pytest.raises(ValueError, match="mis-shaped keys: 'conv.weight'"):
        net.load_state_dict(state, strict=False)
    state["conv.weight"] = np.ones((8, 3, 3, 3))
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["bn.running_var", "head.1.bias"]
    assert result.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(net.conv.bias.numpy(), np.full(8, 5.0, np.float32))


def test_repr_is_nested_and_shows_layer_arguments():
    assert repr(tiny_cnn()) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
        "  (2): ReLU()\n"
        "  (3): MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False)\n"
        "  (4): Flatten(start_dim=1, end_dim=-1)\n"
        "  (5): Linear(in_features=288, out_features=4, bias=True)\n"
        ")")
    text = repr(Small())
    assert "  (head): Sequential(\n    (0): Flatten(start_dim=1, end_dim=-1)\n" in text
    assert "Conv2d(4, 8, kernel_size=(3, 1), stride=(2, 2), padding=(0, 1, 0, 1), dilation=(2, 2), " \
           "groups=2)" == repr(nn.Conv2d(4, 8, (3, 1), stride=2, padding=(0, 1, 0, 1), dilation=2, groups=2))
    assert repr(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)) == \
        "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=2.0)"
    assert repr(nn.AvgPool2d(3, 1, 1, count_include_pad=False)).endswith("count_include_pad=False)")
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2)"


# ---------------------------------------------------------------- forward hooks
def test_forward_hooks_see_and_replace_inputs_and_outputs_in_order():
    net = Small()
    calls = []

    def pre(module, args):
        calls.append(("pre", type(module).__name__, args[0].shape))
        return args[0] * 2.0                     # a single value replaces the one argument

    def post_first(module, args, out):
        calls.append(("post", type(module).__name__, args[0].shape, out.shape))

    def post_second(module, args, out):
        return out + 1.0

    x = minidl.randn(2, 3, 3, 3)
    plain = net.conv(x).numpy()
    handles = [net.conv.register_forward_pre_hook(pre), net.conv.register_forward_hook(post_first),
               net.conv.register_forward_hook(post_second)]
    hooked = net.conv(x).numpy()
    expected = 2.0 * (plain - net.conv.bias.numpy()[:, None, None]) + net.conv.bias.numpy()[:, None, None] + 1.0
    np.testing.assert_allclose(hooked, expected, rtol=1e-5, atol=1e-5)
    assert calls == [("pre", "Conv2d", (2, 3, 3, 3)), ("post", "Conv2d", (2, 3, 3, 3), (2, 8, 1, 1))]
    net(x)                                       # hooks also fire when called from a parent
    assert len(calls) == 4
    for handle in handles:
        handle.remove()
    handles[0].remove()                          # removing twice is harmless
    np.testing.assert_array_equal(net.conv(x).numpy(), plain)
    assert len(calls) == 4


def test_forward_pre_hook_tuple_replaces_all_arguments_and_handle_is_a_context_manager():
    cat = nn.Concat(1)
    a, b = minidl.ones(1, 2), minidl.zeros(1, 3)
    with cat.register_forward_pre_hook(lambda module, args: (args[1], args[0])):
        np.testing.assert_array_equal(cat(a, b).numpy(), [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(cat(a, b).numpy(), [[1, 1, 0, 0, 0]])
    with pytest.raises(TypeError, match="callable"):
        cat.register_forward_hook("not a hook")


# ---------------------------------------------------------------- containers
def test_sequential_and_module_list_and_dict():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    seq = nn.Sequential(a, b)
    seq.append(c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == [b, c]
    named = nn.Sequential(OrderedDict(stem=a, head=b))
    assert named["stem"] is a and [n for n, _ in named.named_children()] == ["stem", "head"]
    with pytest.raises(IndexError, match="Sequential: index 3 out of range for length 3"):
        seq[3]
    with pytest.raises(TypeError, match="Sequential.append: expected a Module, got int"):
        seq.append(3)
    lst = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    del lst[0]
    assert len(lst) == 2 and [n for n, _ in lst.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]
    d = nn.ModuleDict({"x": nn.Linear(1, 1)})
    d["y"] = nn.Linear(1, 2)
    assert list(d) == ["x", "y"] and "y" in d and d.num_parameters() == 2 + 4


# ---------------------------------------------------------------- initialization
def test_default_init_follows_pytorch_bounds_and_seed():
    minidl.manual_seed(123)
    conv = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)
    w = conv.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert np.abs(conv.bias.numpy()).max() <= bound
    minidl.manual_seed(123)
    np.testing.assert_array_equal(nn.Conv2d(16, 32, 3).weight.numpy(), w)


def test_init_functions_match_their_distributions():
    minidl.manual_seed(0)
    w = nn.Parameter(minidl.zeros(256, 128, 3, 3))
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / (128 * 9))
    lin = nn.Parameter(minidl.zeros(300, 200))
    nn.init.xavier_uniform_(lin)
    assert np.abs(lin.numpy()).max() <= math.sqrt(6 / 500)
    nn.init.xavier_normal_(lin, gain=2.0)
    assert lin.numpy().std() == pytest.approx(2 * math.sqrt(2 / 500), rel=0.02)
    nn.init.normal_(lin, mean=3.0, std=0.5)
    assert lin.numpy().mean() == pytest.approx(3.0, abs=0.01) and lin.numpy().std() == pytest.approx(0.5, rel=0.02)
    nn.init.trunc_normal_(lin, std=1.0, a=-1.0, b=2.0)
    x = lin.numpy()
    assert x.min() >= -1.0 and x.max() <= 2.0 and x.min() < -0.99 and x.max() > 1.9
    # mean of N(0,1) truncated to [-1, 2]: (phi(-1) - phi(2)) / (Phi(2) - Phi(-1))
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    assert x.mean() == pytest.approx((phi(-1) - phi(2)) / (Phi(2) - Phi(-1)), abs=0.01)
    nn.init.trunc_normal_(lin, mean=0.0, std=1.0, a=3.0, b=3.1)  # narrow tail interval
    assert lin.numpy().min() >= 3.0 and lin.numpy().max() <= 3.1
    nn.init.constant_(lin, 0.25)
    assert np.all(lin.numpy() == 0.25) and lin.dtype == np.float32
    assert nn.init.calculate_fan_in_and_fan_out(w) == (128 * 9, 256 * 9)
    with pytest.raises(ValueError, match="init.kaiming_normal_: expected mode 'fan_in' or 'fan_out', got 'fan'"):
        nn.init.kaiming_normal_(w, mode="fan")


# ---------------------------------------------------------------- layers against references
def conv_reference(x, w, b, stride, pad, dilation, groups):
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    n_, _, h, wd = x.shape
    o_, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n_, o_, ho, wo))
    per_group = o_ // groups
    for n in range(n_):
        for o in range(o_):
            g = o // per_group
            for i in range(ho):
                for j in range(wo):
                    patch = x[n, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                              j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    out[n, o, i, j] = np.sum(patch * w[o]) + (0 if b is None else b[o])
    return out


@pytest.mark.parametrize("kw,pad4", [
    (dict(kernel_size=3, stride=2, padding=1), (1, 1, 1, 1)),
    (dict(kernel_size=(3, 2), dilation=2, groups=2, padding=(0, 1, 1, 0), bias=False), (0, 1, 1, 0)),
    (dict(kernel_size=1, groups=4), (0, 0, 0, 0))])
def test_conv2d_module_matches_reference(kw, pad4):
    conv = nn.Conv2d(4, 8, **kw).double()
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 6))
    bias = None if conv.bias is None else conv.bias.numpy()
    expected = conv_reference(x, conv.weight.numpy(), bias, conv.stride, pad4, conv.dilation, conv.groups)
    np.testing.assert_allclose(conv(t64(x)).numpy(), expected, rtol=1e-10, atol=1e-10)


def test_linear_module_and_backward_match_reference():
    lin = nn.Linear(5, 3).double()
    x = np.random.default_rng(1).standard_normal((4, 5))
    y = lin(t64(x))
    np.testing.assert_allclose(y.numpy(), x @ lin.weight.numpy().T + lin.bias.numpy(), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.ones((4, 3)).T @ x, rtol=1e-12)
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(3, 4.0))


def test_pool_modules_match_reference():
    x8 = np.random.default_rng(2).standard_normal((1, 2, 8, 8))
    y = nn.MaxPool2d(3, stride=2, ceil_mode=True)(t64(x8)).numpy()
    # ceil_mode: (8 - 3) / 2 rounds up to 3 strides, so a 4th window is clipped at the edge
    expected = np.array([[[[x8[0, c, i:i + 3, j:j + 3].max() for j in range(0, 8, 2)]
                           for i in range(0, 8, 2)] for c in range(2)]])
    np.testing.assert_allclose(y, expected)
    x = x8[:, :, :7, :7]
    y = nn.AvgPool2d(2)(t64(x)).numpy()
    expected = x[:, :, :6, :6].reshape(1, 2, 3, 2, 3, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(y, expected)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(t64(x)).numpy(), x.mean(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(nn.GlobalAvgPool2d()(t64(x)).numpy(), x.mean(axis=(2, 3)))


def test_activation_modules_match_reference():
    x = np.linspace(-8, 8, 33)
    cases = [(nn.ReLU(inplace=True), np.maximum(x, 0)), (nn.ReLU6(), np.clip(x, 0, 6)),
             (nn.Sigmoid(), 1 / (1 + np.exp(-x))), (nn.SiLU(), x / (1 + np.exp(-x))),
             (nn.Swish(), x / (1 + np.exp(-x))), (nn.Tanh(), np.tanh(x)), (nn.Identity(7), x)]
    for module, expected in cases:
        np.testing.assert_allclose(module(t64(x)).numpy(), expected, rtol=1e-12, atol=1e-12,
                                   err_msg=type(module).__name__)
    logits = np.random.default_rng(3).standard_normal((3, 5))
    soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(nn.Softmax(dim=1)(t64(logits)).numpy(), soft, rtol=1e-12)
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(t64(logits)).numpy(), np.log(soft), rtol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_loss_matches_reference(smoothing):
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    per_row = (1 - smoothing) * -logp[np.arange(6), labels] + smoothing * -logp.mean(axis=1)
    got = nn.CrossEntropyLoss(label_smoothing=smoothing)(t64(logits), minidl.tensor(labels))
    assert got.item() == pytest.approx(per_row.mean(), rel=1e-12)
    got = nn.CrossEntropyLoss(reduction="sum", label_smoothing=smoothing)(t64(logits), labels)
    assert got.item() == pytest.approx(per_row.sum(), rel=1e-12)


def test_dropout_train_and_eval():
    minidl.manual_seed(5)
    drop = nn.Dropout(0.25)
    x = minidl.ones(20000, dtype="float64")
    y = drop(x).numpy()
    assert np.mean(y == 0) == pytest.approx(0.25, abs=0.02)
    np.testing.assert_allclose(y[y != 0], 1 / 0.75)
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match=r"Dropout: expected a probability p in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


def test_local_response_norm_module_matches_reference():
    x = np.random.default_rng(6).standard_normal((2, 7, 3, 3))
    size, alpha, beta, k = 5, 1e-2, 0.75, 2.0
    sq = np.pad(x ** 2, ((0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)))
    window = np.stack([sq[:, c:c + size].sum(axis=1) for c in range(7)], axis=1)
    expected = x / (k + alpha / size * window) ** beta
    got = nn.LocalResponseNorm(size, alpha, beta, k)(t64(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


# ---------------------------------------------------------------- batch norm
def test_batchnorm2d_running_stats_in_train_and_used_in_eval():
    rng = np.random.default_rng(7)
    bn = nn.BatchNorm2d(3, eps=1e-5, momentum=0.1).double()
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    bn.load_state_dict({**bn.state_dict(), "weight": gamma, "bias": beta})
    x = rng.standard_normal((4, 3, 5, 5)) * 2 + np.array([1.0, -2.0, 0.5]).reshape(1, 3, 1, 1)
    y = bn(t64(x)).numpy()
    mean, var_b = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    var_u = x.var(axis=(0, 2, 3), ddof=1)
    c = (1, 3, 1, 1)
    np.testing.assert_allclose(y, (x - mean.reshape(c)) / np.sqrt(var_b.reshape(c) + 1e-5)
                               * gamma.reshape(c) + beta.reshape(c), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var_u, rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 1
    bn.eval()
    x2 = rng.standard_normal((2, 3, 4, 4))
    rm, rv = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    y2 = bn(t64(x2)).numpy()
    np.testing.assert_allclose(y2, (x2 - rm.reshape(c)) / np.sqrt(rv.reshape(c) + 1e-5)
                               * gamma.reshape(c) + beta.reshape(c), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)  # eval leaves them alone
    assert int(bn.num_batches_tracked.item()) == 1


def test_batchnorm_cumulative_average_and_1d():
    rng = np.random.default_rng(8)
    bn = nn.BatchNorm1d(4, momentum=None).double()
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)) + 3
    out = bn(t64(a)).numpy()
    np.testing.assert_allclose(out, (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5), rtol=1e-10, atol=1e-12)
    bn(t64(b))
    np.testing.assert_allclose(bn.running_mean.numpy(), (a.mean(0) + b.mean(0)) / 2, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), (a.var(0, ddof=1) + b.var(0, ddof=1)) / 2, rtol=1e-12)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 4 channels \(num_features\), got 3"):
        bn(t64(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input, got shape \(2, 3\)"):
        nn.BatchNorm2d(3)(t64(np.zeros((2, 3))))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(6\) and out_channels \(8\) must both be "
                                         r"divisible by groups \(4\)"):
        nn.Conv2d(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="Conv2d: expected padding 'same' or 'valid' as a string, got 'full'"):
        nn.Conv2d(3, 8, 3, padding="full")
    with pytest.raises(ValueError, match="Linear: expected in_features to be a positive int, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="MaxPool2d: padding should be at most half the kernel size"):
        nn.MaxPool2d(2, padding=2)


# ---------------------------------------------------------------- end to end
def test_tiny_cnn_overfits_a_fixed_batch():
    minidl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((16, 3, 12, 12)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 4, 16))
    net = tiny_cnn()
    opt = optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    start = None
    for step in range(200):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        start = loss.item() if start is None else start
        if loss.item() < 0.05 * start:
            break
    assert loss.item() < 0.05 * start, (start, loss.item(), step)


def test_fuse_conv_relu_keeps_names_results_and_gradients():
    """nn.fuse_conv_relu: each Conv2d followed by a ReLU in a Sequential (nested too)
    takes relu=True and the ReLU becomes an Identity; the state_dict keys, the output and
    every gradient equal the unfused model's; a Conv2d before anything else, and a
    Sequential subclass with a forward of its own, are left alone."""
    class Custom(nn.Sequential):
        def forward(self, x):
            y = self[0](x)
            return self[1](y) + y  # reads the conv's output after the ReLU

    def build():
        minidl.manual_seed(5)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU()),
                             nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2), nn.ReLU(),
                             Custom(nn.Conv2d(2, 2, 1), nn.ReLU()))

    plain, fused = build(), nn.fuse_conv_relu(build())
    assert [type(m).__name__ for m in fused] == ["Conv2d", "Identity", "MaxPool2d", "Sequential", "Conv2d",
                                                 "BatchNorm2d", "ReLU", "Custom"]
    assert fused[0].relu and fused[3][0].relu and isinstance(fused[3][1], nn.Identity)
    assert not fused[4].relu and not fused[7][0].relu and type(fused[7][1]) is nn.ReLU
    assert "relu=True" in repr(fused[0])
    assert list(plain.state_dict()) == list(fused.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 10, 10))
    outs = []
    for model in (plain, fused):
        model.to(minidl.float64)
        xt = minidl.tensor(x, requires_grad=True)
        out = model(xt)
        (out * out).sum().backward()
        outs.append((out.numpy(), xt.grad.numpy(), [p.grad.numpy() for p in model.parameters()]))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-12, atol=1e-12)
    for a, b in zip(outs[1][2], outs[0][2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
