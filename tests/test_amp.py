"""minidl.amp: the autocast op policy, the per-context cast cache and GradScaler."""
import ml_dtypes
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.amp import GradScaler, autocast
from minidl.nn.utils import clip_grad_norm_

LOW = [minidl.float16, minidl.bfloat16]


def _small_net():
    minidl.manual_seed(0)
    return minidl.nn.Sequential(minidl.nn.Conv2d(1, 4, 3), minidl.nn.BatchNorm2d(4), minidl.nn.ReLU(),
                                minidl.nn.Flatten(), minidl.nn.Linear(4 * 6 * 6, 3))


@pytest.mark.parametrize("low", LOW, ids=str)
def test_policy_table_low_float32_and_follow(device, low):
    x = minidl.randn(2, 3, 6, 6, device=device)
    w = minidl.randn(4, 3, 3, 3, device=device)
    a, b = minidl.randn(3, 5, device=device), minidl.randn(5, 2, device=device)
    with autocast(low):
        conv = F.conv2d(x, w)
        lin = F.linear(a, minidl.randn(4, 5, device=device))
        mm = a @ b
        assert conv.dtype == low and lin.dtype == low and mm.dtype == low
        assert F.softmax(mm, axis=1).dtype == np.float32
        assert F.log_softmax(mm, axis=1).dtype == np.float32
        assert F.cross_entropy(mm, np.array([0, 1, 1])).dtype == np.float32
        # batch norm: float32 statistics, the activations' dtype out (no cast passes)
        bn = minidl.nn.BatchNorm2d(4).to(device)
        assert bn(conv).dtype == low and bn.running_mean.dtype == np.float32
        assert mm.sum().dtype == np.float32 and mm.mean().dtype == np.float32
        assert F.relu(conv).dtype == low and (mm * 2).dtype == low  # elementwise follows its input
        assert (mm + b[:, :2].sum(axis=0)).dtype == np.float32  # half with float32 promotes
    assert F.conv2d(x, w).dtype == np.float32 and (a @ b).dtype == np.float32  # nothing changes outside


@pytest.mark.parametrize("low", LOW, ids=str)
def test_master_weights_stay_float32_and_receive_gradients(low):
    model = _small_net()
    x, y = minidl.randn(4, 1, 8, 8), np.array([0, 1, 2, 0])
    with autocast(low):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad is not None and p.grad.dtype == np.float32, name
    reference = _small_net()
    F.cross_entropy(reference(x), y).backward()
    # within 8 ulps of the low format, relative to the model's largest gradient: the conv
    # output and its gradient are rounded, and batch norm's backward (a difference of
    # nearly equal terms) amplifies that (the conv bias's true gradient is zero)
    tol = 8 * float(ml_dtypes.finfo(low).eps)
    largest = max(float(np.abs(q.grad.numpy()).max()) for q in reference.parameters())
    for p, q in zip(model.parameters(), reference.parameters()):
        assert np.abs(p.grad.numpy() - q.grad.numpy()).max() <= tol * largest


def test_cast_cache_casts_a_parameter_once_per_context():
    layer = minidl.nn.Linear(5, 3)
    x = minidl.randn(2, 5)
    with autocast(minidl.float16):
        first, second = layer(x), layer(x)
    assert first.grad_fn.inputs[1] is second.grad_fn.inputs[1]  # one cast of the weight
    with autocast(minidl.float16):
        third = layer(x)
    assert third.grad_fn.inputs[1] is not first.grad_fn.inputs[1]  # a new context casts anew
    (first.sum() + second.sum()).backward()
    assert np.allclose(layer.weight.grad.numpy(), 2 * np.tile(x.numpy().sum(axis=0), (3, 1)), rtol=2e-3)


def test_autocast_rejects_other_dtypes_and_can_be_disabled():
    with pytest.raises(ValueError, match="float16 or bfloat16, got float32"):
        with autocast(minidl.float32):
            pass
    a = minidl.randn(2, 2)
    with autocast(minidl.bfloat16):
        with autocast(enabled=False):
            assert (a @ a).dtype == np.float32
        assert (a @ a).dtype == minidl.bfloat16


# ---------------------------------------------------------------- GradScaler
def _step(model, opt, scaler, x, y, inject_inf=False):
    opt.zero_grad()
    with autocast(minidl.float16):
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    if inject_inf:
        g = model[0].weight.grad
        g.data = g.data.copy()
        g.data.reshape(-1)[0] = np.inf
    scaler.step(opt)
    scaler.update()


def _state_bytes(model, opt):
    """The parameters and the optimizer's array state (host counters such as Adam's
    ``step`` count skipped steps too, see GradScaler)."""
    return ([p.numpy().tobytes() for p in model.parameters()]
            + [v.tobytes() for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray)])


@pytest.mark.parametrize("make_opt", [lambda ps: minidl.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
                                      lambda ps: minidl.optim.Adam(ps, lr=1e-3)], ids=["sgd", "adam"])
def test_injected_inf_skips_the_step_bit_identically_and_halves_the_scale(make_opt):
    model = _small_net()
    opt = make_opt(model.parameters())
    scaler = GradScaler()
    x, y = minidl.randn(4, 1, 8, 8), np.array([0, 1, 2, 0])
    _step(model, opt, scaler, x, y)
    before = _state_bytes(model, opt)
    assert scaler.get_scale() == 2.0 ** 16
    _step(model, opt, scaler, x, y, inject_inf=True)
    assert _state_bytes(model, opt) == before
    assert scaler.get_scale() == 2.0 ** 15 and scaler.consecutive_skipped_steps() == 1
    _step(model, opt, scaler, x, y)
    assert _state_bytes(model, opt) != before and scaler.consecutive_skipped_steps() == 0


def test_a_skipped_first_step_leaves_no_optimizer_state_behind():
    model = _small_net()
    opt = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params = [p.numpy().copy() for p in model.parameters()]
    _step(model, opt, GradScaler(), minidl.randn(4, 1, 8, 8), np.array([0, 1, 2, 0]), inject_inf=True)
    assert all(np.array_equal(p.numpy(), q) for p, q in zip(model.parameters(), params))
    assert all(not np.asarray(v).any() for s in opt.state.values() for v in s.values())


def test_growth_interval_doubles_the_scale():
    model = _small_net()
    opt = minidl.optim.SGD(model.parameters(), lr=0.01)
    scaler = GradScaler(init_scale=256.0, growth_interval=3)
    x, y = minidl.randn(4, 1, 8, 8), np.array([0, 1, 2, 0])
    scales = []
    for _ in range(7):
        _step(model, opt, scaler, x, y)
        scales.append(scaler.get_scale())
    assert scales == [256.0, 256.0, 512.0, 512.0, 512.0, 1024.0, 1024.0]
    _step(model, opt, scaler, x, y, inject_inf=True)
    assert scaler.get_scale() == 512.0 and scaler.state_dict()["growth_tracker"] == 0


def test_unscale_then_clipping_clips_the_true_gradients():
    x, y = minidl.randn(4, 1, 8, 8), np.array([0, 1, 2, 0])
    model, reference = _small_net(), _small_net()
    opt = minidl.optim.SGD(model.parameters(), lr=0.1)
    ref_opt = minidl.optim.SGD(reference.parameters(), lr=0.1)
    scaler = GradScaler(init_scale=1024.0)
    loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    norm = clip_grad_norm_(model.parameters(), 0.1)
    F.cross_entropy(reference(x), y).backward()
    ref_norm = clip_grad_norm_(reference.parameters(), 0.1)
    assert np.isclose(float(norm), float(ref_norm), rtol=1e-5)
    for p, q in zip(model.parameters(), reference.parameters()):
        assert np.allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-8)
    scaler.step(opt)  # no second unscale
    ref_opt.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        assert np.allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(RuntimeError, match="already called"):
        scaler.unscale_(opt)
    scaler.update()
    assert scaler.get_scale() == 1024.0


def test_state_dict_round_trip_and_disabled_scaler():
    scaler = GradScaler(init_scale=8.0, growth_interval=5)
    model = _small_net()
    opt = minidl.optim.SGD(model.parameters(), lr=0.01)
    x, y = minidl.randn(4, 1, 8, 8), np.array([0, 1, 2, 0])
    _step(model, opt, scaler, x, y)
    _step(model, opt, scaler, x, y)
    state = scaler.state_dict()
    assert state == {"scale": 8.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 5,
                     "growth_tracker": 2, "consecutive_skipped": 0}
    other = GradScaler()
    other.load_state_dict(state)
    assert other.state_dict() == state
    with pytest.raises(ValueError, match="growth_tracker"):
        other.load_state_dict({"scale": 1.0})
    off = GradScaler(enabled=False)
    loss = F.cross_entropy(model(x), y)
    assert off.scale(loss) is loss and off.state_dict() == {}


def test_defaults_are_pytorchs_and_bad_arguments_are_named():
    s = GradScaler()
    assert (s.get_scale(), s.growth_factor, s.backoff_factor, s.growth_interval) == (2.0 ** 16, 2.0, 0.5, 2000)
    with pytest.raises(ValueError, match="backoff_factor"):
        GradScaler(backoff_factor=1.5)
    with pytest.raises(ValueError, match="growth_interval"):
        GradScaler(growth_interval=0)


def test_unscale_takes_read_only_and_strided_gradients():
    """unscale_ scales gradients in place: a read-only or non-contiguous .grad (set by
    hand) is replaced by an owned copy first (Backend.owned), never written through."""
    w = minidl.nn.Parameter(minidl.ones(3, 2))
    source = np.full((2, 3), 8.0, np.float32)
    source.flags.writeable = False
    w.grad = minidl.tensor(source).T  # read-only and strided
    scaler = GradScaler(init_scale=4.0)
    scaler.scale(minidl.ones(1))
    scaler.unscale_(minidl.optim.SGD([w], lr=0.1))
    assert w.grad.numpy().tolist() == [[2.0, 2.0]] * 3 and source[0, 0] == 8.0
