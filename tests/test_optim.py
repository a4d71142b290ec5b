"""Optimizers and LR schedules against hand-written float64 references."""
import math

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.optim import lr_scheduler as sched

STEPS = 3


def make_params(seed=0, shapes=((3, 4), (5,))):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(minidl.tensor(rng.standard_normal(s), dtype="float64")) for s in shapes]


def grad_sequence(params, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(p.shape) for p in params] for _ in range(steps)]


def run_optimizer(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = minidl.tensor(g, dtype="float64")
        opt.step()
    return [p.numpy() for p in params]


# ---------------------------------------------------------------- references
def sgd_reference(x, grads, lr, momentum, dampening, weight_decay, nesterov):
    x, buf = x.copy(), None
    for g in grads:
        d = g + weight_decay * x
        if momentum != 0:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        x = x - lr * d
    return x


def rmsprop_tf_reference(x, grads, lr, alpha, eps, momentum, weight_decay, centered,
                         eps_inside_sqrt, initial_square):
    x = x.copy()
    ms = np.full_like(x, initial_square)
    mg = np.zeros_like(x)
    mom = np.zeros_like(x)
    for g in grads:
        g = g + weight_decay * x
        ms = alpha * ms + (1 - alpha) * g * g
        den = ms
        if centered:
            mg = alpha * mg + (1 - alpha) * g
            den = ms - mg * mg
        den = np.sqrt(den + eps) if eps_inside_sqrt else np.sqrt(den) + eps
        mom = momentum * mom + lr * g / den
        x = x - mom
    return x


def adam_reference(x, grads, lr, betas, eps, weight_decay, amsgrad, decoupled):
    x = x.copy()
    m, v, vmax = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        if decoupled:
            x = x * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vh = vmax if amsgrad else v
        m_hat = m / (1 - b1 ** t)
        v_hat = vh / (1 - b2 ** t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
    return x


def check_against_reference(opt_factory, reference):
    params = make_params()
    start = [p.numpy().copy() for p in params]
    grads = grad_sequence(params)
    got = run_optimizer(opt_factory(params), params, grads)
    for i, (x0, x) in enumerate(zip(start, got)):
        expected = reference(x0, [step[i] for step in grads])
        assert not np.allclose(expected, x0)  # the reference itself moved
        np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("momentum,dampening,weight_decay,nesterov", [
    (0.0, 0.0, 0.0, False), (0.9, 0.0, 0.0, False), (0.9, 0.3, 0.0, False),
    (0.9, 0.0, 1e-2, True), (0.5, 0.1, 5e-2, False)])
def test_sgd_matches_reference(momentum, dampening, weight_decay, nesterov):
    kw = dict(lr=0.1, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
    check_against_reference(lambda ps: optim.SGD(ps, **kw), lambda x, gs: sgd_reference(x, gs, **kw))


def test_sgd_nesterov_requires_momentum_and_no_dampening():
    with pytest.raises(ValueError, match="SGD: nesterov requires momentum > 0 and dampening == 0"):
        optim.SGD(make_params(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="dampening=0.5"):
        optim.SGD(make_params(), lr=0.1, momentum=0.9, dampening=0.5, nesterov=True)


@pytest.mark.parametrize("centered,eps_inside_sqrt,momentum,weight_decay,initial_square,eps", [
    (False, True, 0.9, 0.0, 1.0, 1e-3), (False, True, 0.0, 1e-2, 1.0, 1.0),
    (True, True, 0.9, 0.0, 1.0, 1e-3), (False, False, 0.9, 0.0, 0.0, 1e-8)])
def test_rmsprop_tf_style_matches_reference(centered, eps_inside_sqrt, momentum, weight_decay,
                                            initial_square, eps):
    kw = dict(lr=0.05, alpha=0.9, eps=eps, momentum=momentum, weight_decay=weight_decay,
              centered=centered, eps_inside_sqrt=eps_inside_sqrt, initial_square=initial_square)
    check_against_reference(lambda ps: optim.RMSprop(ps, **kw),
                            lambda x, gs: rmsprop_tf_reference(x, gs, **kw))


def test_rmsprop_defaults_are_tf_recipe():
    opt = optim.RMSprop(make_params(), lr=0.1)
    g = opt.param_groups[0]
    assert (g["alpha"], g["eps"], g["momentum"], g["initial_square"], g["eps_inside_sqrt"]) == \
        (0.9, 1e-3, 0.9, 1.0, True)


@pytest.mark.parametrize("cls,weight_decay,amsgrad", [
    (optim.Adam, 0.0, False), (optim.Adam, 0.1, False), (optim.Adam, 0.0, True),
    (optim.AdamW, 0.1, False), (optim.AdamW, 0.1, True)])
def test_adam_and_adamw_match_reference(cls, weight_decay, amsgrad):
    kw = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-8, weight_decay=weight_decay, amsgrad=amsgrad)
    check_against_reference(lambda ps: cls(ps, **kw),
                            lambda x, gs: adam_reference(x, gs, decoupled=cls is optim.AdamW, **kw))


def test_adam_and_adamw_differ_with_weight_decay():
    grads = grad_sequence(make_params())
    a, b = make_params(), make_params()
    xa = run_optimizer(optim.Adam(a, lr=0.01, weight_decay=0.1), a, grads)
    xb = run_optimizer(optim.AdamW(b, lr=0.01, weight_decay=0.1), b, grads)
    assert not np.allclose(xa[0], xb[0])


@pytest.mark.parametrize("factory,max_ratio", [
    (lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9), 0.05),
    (lambda ps: optim.RMSprop(ps, lr=0.01), 0.05),
    (lambda ps: optim.Adam(ps, lr=0.05), 0.05)])
def test_optimizers_lower_a_quadratic(factory, max_ratio):
    rng = np.random.default_rng(3)
    A = minidl.tensor(rng.standard_normal((8, 5)) / 2, dtype="float32")
    b = minidl.tensor(rng.standard_normal((8, 1)), dtype="float32")
    x = nn.Parameter(minidl.zeros(5, 1))
    opt = factory([x])
    best = np.linalg.lstsq(A.numpy().astype(np.float64), b.numpy().astype(np.float64), rcond=None)[0]
    f_min = float(np.sum((A.numpy() @ best - b.numpy()) ** 2))

    def loss_fn():
        r = A @ x - b
        return (r * r).sum()

    start = loss_fn().item() - f_min
    for _ in range(200):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    end = loss_fn().item() - f_min
    assert end < max_ratio * start, (start, end)


def test_param_groups_use_their_own_lr_and_weight_decay():
    w, bias = make_params(shapes=((2, 3), (3,)))
    w0, b0 = w.numpy().copy(), bias.numpy().copy()
    opt = optim.SGD([{"params": [w]}, {"params": [bias], "lr": 0.5, "weight_decay": 0.0}],
                    lr=0.1, weight_decay=0.2)
    gw, gb = np.ones((2, 3)), np.full(3, 2.0)
    w.grad, bias.grad = minidl.tensor(gw, dtype="float64"), minidl.tensor(gb, dtype="float64")
    opt.step()
    np.testing.assert_allclose(w.numpy(), w0 - 0.1 * (gw + 0.2 * w0))
    np.testing.assert_allclose(bias.numpy(), b0 - 0.5 * gb)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]


def test_add_param_group_and_errors():
    a, b = make_params()
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999) and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match=r"unknown options \['momentum'\]"):
        optim.Adam([{"params": [a], "momentum": 0.9}])
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="expected Parameters/Tensors, got ndarray"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="expected lr >= 0, got -1"):
        optim.SGD([a], lr=-1)


def test_zero_grad_and_params_without_grad_are_skipped():
    a, b = make_params()
    b0 = b.numpy().copy()
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = minidl.tensor(np.ones(a.shape), dtype="float64")
    opt.step()
    np.testing.assert_array_equal(b.numpy(), b0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.RMSprop(ps, lr=0.01, centered=True),
    lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True)])
def test_optimizer_state_dict_round_trip_continues_identically(factory):
    grads = grad_sequence(make_params(), steps=5)
    a = make_params()
    opt_a = factory(a)
    run_optimizer(opt_a, a, grads[:2])
    saved = opt_a.state_dict()
    # the saved state is plain NumPy and does not alias the live buffers
    assert all(isinstance(v, (np.ndarray, int)) for s in saved["state"].values() for v in s.values())
    b = [nn.Parameter(minidl.tensor(p.numpy().copy(), dtype="float64")) for p in a]
    opt_b = factory(b)
    opt_b.param_groups[0]["lr"] = 123.0  # overwritten by the load
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    xa = run_optimizer(opt_a, a, grads[2:])
    xb = run_optimizer(opt_b, b, grads[2:])
    for u, v in zip(xa, xb):
        np.testing.assert_array_equal(u, v)


def test_optimizer_load_state_dict_rejects_other_layouts():
    opt = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    other = optim.SGD(make_params(shapes=((3, 4),)), lr=0.1)
    with pytest.raises(ValueError, match="group 0 has 1 parameters in the state dict, 2 in the optimizer"):
        opt.load_state_dict(other.state_dict())
    bad = optim.SGD(make_params(shapes=((4, 3), (5,))), lr=0.1, momentum=0.9)
    p = bad.param_groups[0]["params"][0]
    p.grad = minidl.tensor(np.ones(p.shape), dtype="float64")
    bad.step()
    with pytest.raises(ValueError, match=r"has shape \(4, 3\), the parameter \(3, 4\)"):
        opt.load_state_dict(bad.state_dict())


def test_optimizer_keeps_float32_params_float32():
    p = nn.Parameter(minidl.ones(4))
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9), optim.RMSprop([p]), optim.Adam([p])):
        p.grad = minidl.ones(4, dtype="float64")  # a float64 grad must not promote the param
        opt.step()
        assert p.dtype == np.float32


def test_clip_grad_norm_matches_numpy():
    a, b = make_params()
    ga, gb = np.full(a.shape, 3.0), np.full(b.shape, -4.0)
    a.grad, b.grad = minidl.tensor(ga, dtype="float64"), minidl.tensor(gb, dtype="float64")
    total = math.sqrt(np.sum(ga ** 2) + np.sum(gb ** 2))
    got = nn.clip_grad_norm_([a, b], max_norm=1.0)
    assert isinstance(got, minidl.Tensor) and got.shape == () and got.dtype == np.float64
    assert float(got) == pytest.approx(total)
    clipped = math.sqrt(np.sum(a.grad.numpy() ** 2) + np.sum(b.grad.numpy() ** 2))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), ga / (total + 1e-6))
    assert float(nn.clip_grad_norm_([a, b], max_norm=10.0)) == pytest.approx(clipped)  # no change below max
    np.testing.assert_allclose(a.grad.numpy(), ga / (total + 1e-6))
    assert float(nn.clip_grad_norm_([a, b], 1.0, norm_type=float("inf"))) == pytest.approx(
        max(np.abs(a.grad.numpy()).max(), np.abs(b.grad.numpy()).max()))


# ---------------------------------------------------------------- schedules
def lrs_over(scheduler, steps=10):
    out = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr()[0])
        assert scheduler.optimizer.param_groups[0]["lr"] == out[-1]
    return out


def fresh_opt(lr=0.1):
    return optim.SGD(make_params(), lr=lr, momentum=0.9)


def closed_forms():
    base = 0.1
    return [
        (lambda o: sched.StepLR(o, step_size=3, gamma=0.5), lambda t: base * 0.5 ** (t // 3)),
        (lambda o: sched.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.1),
         lambda t: base * 0.1 ** sum(t >= m for m in (2, 5, 9))),
        (lambda o: sched.CosineAnnealingLR(o, T_max=8, eta_min=0.001),
         lambda t: 0.001 + (base - 0.001) * (1 + math.cos(math.pi * min(t, 8) / 8)) / 2),
        (lambda o: sched.PolyLR(o, total_steps=10, power=0.9), lambda t: base * (1 - t / 10) ** 0.9),
        (lambda o: sched.ExponentialLR(o, gamma=0.8), lambda t: base * 0.8 ** t),
        (lambda o: sched.LinearWarmup(o, warmup_steps=4, start_factor=0.1),
         lambda t: base * (0.1 + 0.9 * t / 4) if t < 4 else base),
        (lambda o: sched.LinearWarmup(o, 3, after=sched.CosineAnnealingLR(o, T_max=7)),
         lambda t: base * t / 3 if t < 3 else base * (1 + math.cos(math.pi * (t - 3) / 7)) / 2),
        (lambda o: sched.LinearWarmup(o, 2, after=sched.MultiStepLR(o, [3, 6], gamma=0.5), start_factor=0.5),
         lambda t: base * (0.5 + 0.5 * t / 2) if t < 2 else base * 0.5 ** sum(t - 2 >= m for m in (3, 6))),
    ]


@pytest.mark.parametrize("make,closed_form", closed_forms())
def test_scheduler_matches_closed_form(make, closed_form):
    got = lrs_over(make(fresh_opt()), steps=10)
    np.testing.assert_allclose(got, [closed_form(t) for t in range(11)], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make,closed_form", closed_forms())
def test_scheduler_state_dict_resumes(make, closed_form):
    first = make(fresh_opt())
    for _ in range(4):
        first.step()
    saved = first.state_dict()
    resumed = make(fresh_opt())
    resumed.load_state_dict(saved)
    assert resumed.get_last_lr()[0] == pytest.approx(closed_form(4), abs=1e-15)
    resumed.step()
    assert resumed.get_last_lr()[0] == pytest.approx(closed_form(5), abs=1e-15)


def test_lambda_and_constant_schedules():
    opt = fresh_opt(lr=0.2)
    s = sched.LambdaLR(opt, lambda t: 1.0 / (1 + t))
    assert lrs_over(s, 3) == pytest.approx([0.2, 0.1, 0.2 / 3, 0.05])
    assert "lr_lambda" not in s.state_dict()
    assert lrs_over(sched.ConstantLR(fresh_opt(lr=0.2)), 3) == [0.2] * 4


def test_scheduler_scales_each_group_and_accepts_fractional_steps():
    a, b = make_params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    s = sched.LinearWarmup(opt, warmup_steps=2, after=sched.CosineAnnealingLR(opt, T_max=10))
    assert s.get_last_lr() == [0.0, 0.0]
    s.step(1.5)
    np.testing.assert_allclose(s.get_last_lr(), [0.075, 0.0075])
    s.step(7.0)
    c = (1 + math.cos(math.pi * 5 / 10)) / 2
    np.testing.assert_allclose(s.get_last_lr(), [0.1 * c, 0.01 * c])
    np.testing.assert_allclose(s.lr_at(12), [0.0, 0.0], atol=1e-18)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.01]


def test_scheduler_argument_errors():
    opt = fresh_opt()
    with pytest.raises(ValueError, match="StepLR: expected step_size to be a positive number, got 0"):
        sched.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match=r"MultiStepLR: expected non-negative increasing milestones, got \[5, 2\]"):
        sched.MultiStepLR(opt, [5, 2])
    with pytest.raises(TypeError, match="LinearWarmup: expected an LRScheduler"):
        sched.LinearWarmup(opt, 3, after="cosine")
    with pytest.raises(ValueError, match="must drive the same optimizer"):
        sched.LinearWarmup(opt, 3, after=sched.StepLR(fresh_opt(), 2))
    with pytest.raises(TypeError, match="StepLR: expected an Optimizer, got list"):
        sched.StepLR([], 2)


def test_reduce_lr_on_plateau_divides_after_patience_and_resumes():
    p = minidl.tensor(np.zeros(2), requires_grad=True)
    opt = minidl.optim.SGD([p], lr=0.01)
    plateau = sched.ReduceLROnPlateau(opt, mode="max", gamma=0.1, patience=1, min_lr=1e-4)
    results = [0.10, 0.20, 0.19, 0.20, 0.18, 0.30, 0.29, 0.28, 0.27, 0.26, 0.25]
    lrs = []
    for value in results:
        plateau.report(value)
        plateau.step()
        lrs.append(opt.param_groups[0]["lr"])
    # no improvement twice in a row (patience 1) -> /10: after 0.20 (best), 0.19, 0.20 ; then 0.30 best, ...
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 1e-4, 1e-4, 1e-4, 1e-4])
    state = plateau.state_dict()
    again = sched.ReduceLROnPlateau(minidl.optim.SGD([p], lr=0.01), mode="max", gamma=0.1, patience=1,
                                    min_lr=1e-4)
    again.load_state_dict(state)
    assert again.get_last_lr() == pytest.approx([1e-4]) and again.best == 0.30
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'up'"):
        sched.ReduceLROnPlateau(opt, mode="up")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("momentum,dampening,nesterov,first_step", [
    (0.0, 0.0, False, False), (0.9, 0.0, False, True), (0.9, 0.1, False, False), (0.9, 0.0, True, False)])
def test_cpu_fused_sgd_update_matches_the_generic_form(dtype, momentum, dampening, nesterov, first_step):
    """backend/cpu/optim.py's one-pass update against Backend.sgd_update (PyTorch's
    semantics, in place), and its fallback for a non-contiguous parameter."""
    from minidl.backend import get_backend
    from minidl.backend.base import Backend
    cpu = get_backend("cpu")
    rng = np.random.default_rng(0)
    p = rng.standard_normal((37, 5)).astype(dtype)
    g = rng.standard_normal(p.shape).astype(dtype)
    b = rng.standard_normal(p.shape).astype(dtype)
    args = (0.1, momentum, dampening, 1e-2, nesterov, first_step)
    p1, b1, p2, b2 = p.copy(), b.copy(), p.copy(), b.copy()
    cpu.sgd_update([p1], [g], [b1] if momentum else None, *args)
    Backend.sgd_update(cpu, [p2], [g], [b2] if momentum else None, *args)
    rtol = 1e-6 if dtype == "float32" else 1e-15
    np.testing.assert_allclose(p1, p2, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(b1, b2, rtol=rtol, atol=rtol)
    assert not np.array_equal(p1, p)
    p3 = np.asfortranarray(p)  # not C-contiguous: the generic form, still in place
    cpu.sgd_update([p3], [g], [b.copy()] if momentum else None, *args)
    np.testing.assert_allclose(p3, p2, rtol=rtol, atol=rtol)
