"""Optimizer family (kernels/optim.{h,cu,cuh}) for KernelBackend: the fused multi-tensor
SGD, Adam/AdamW and RMSprop steps (contract and semantics: Backend.sgd_update,
adam_update, rmsprop_update).  Tensors go to the kernels in lists, one list per dtype,
so a whole model's parameters take a few launches (float16/bfloat16 lists too, computed
in float); a tensor the kernels do not take (non-contiguous, or state of another dtype)
gets the generic in-place form.  ``skip`` (GradScaler's device flag) goes to the kernels,
which then return without touching anything."""
from __future__ import annotations

import numpy as np

from ..base import Backend
from .operand import Operand


def _lists(be, op, params, grads, states):
    """Split tensor k into kernel lists by dtype: {dtype: (indices, grads cast)}, and the
    indices the kernels cannot take.  ``states``: name -> list of arrays, or None."""
    by_dtype, generic = {}, []
    for k, (p, g) in enumerate(zip(params, grads)):
        if g.shape != p.shape:
            raise ValueError(f"{op}: grad {g.dtype}{tuple(g.shape)} does not match param {p.dtype}{tuple(p.shape)}")
        state = [s[k] for s in states.values() if s is not None]
        if any(s is None or s.shape != p.shape for s in state):
            raise ValueError(f"{op}: every state array must be given and shaped like its param "
                             f"{tuple(p.shape)}")
        if not p.flags.c_contiguous or any(s.dtype != p.dtype or not s.flags.c_contiguous for s in state):
            generic.append(k)
            continue
        indices, cast = by_dtype.setdefault(p.dtype, ([], []))
        indices.append(k)
        cast.append(be.c(be.cast_like(g, p)))
    return by_dtype, generic


def _scalar_operand(be, name, a):
    """A 0-d float32 device array (GradScaler's flag or inverse scale) as an Operand."""
    if not isinstance(a, be.xp.ndarray):  # emu: NumPy's reductions return scalars, CuPy's arrays
        a = be.xp.asarray(a)
    return Operand(name, a, (), np.dtype(np.float32))


def _skip_operand(be, skip):
    """GradScaler's flag as the launchers' ``skip`` address (0: apply the step)."""
    return 0 if skip is None else _scalar_operand(be, "skip", skip)


def amp_unscale(be, grads, inv_scale, found_inf):
    """Backend.amp_unscale: one multi-tensor launch per dtype list; a non-contiguous
    gradient takes the generic form.  ``found_inf`` must be a device array (updated in
    place)."""
    by_dtype, generic = {}, []
    for k, g in enumerate(grads):
        (by_dtype.setdefault(g.dtype, []) if g.flags.c_contiguous else generic).append(k)
    flag = Operand("found_inf", found_inf, (), np.dtype(np.float32))
    inv = _scalar_operand(be, "inv_scale", be.astype(inv_scale, np.float32))
    for dtype, indices in by_dtype.items():
        be.launch("amp_unscale", dtype, [Operand("grad", grads[k], grads[k].shape, dtype) for k in indices],
                  [int(grads[k].size) for k in indices], inv, flag)
    if generic:
        Backend.amp_unscale(be, [grads[k] for k in generic], inv_scale, found_inf)


def _launch(be, op, params, grads, states, scalars, skip):
    by_dtype, generic = _lists(be, op, params, grads, states)
    for dtype, (indices, cast) in by_dtype.items():
        def operands(name, arrays):
            if arrays is None:
                return []
            return [Operand(name, arrays[k], arrays[k].shape, dtype) for k in indices]
        lists = [operands("param", params), [Operand("grad", g, g.shape, dtype) for g in cast]]
        lists += [operands(name, arrays) for name, arrays in states.items()]
        be.launch(op, dtype, *lists, [int(params[k].size) for k in indices], *scalars, _skip_operand(be, skip))
    return generic


def _pick(arrays, indices):
    return None if arrays is None else [arrays[k] for k in indices]


def sgd_update(be, params, grads, bufs, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
               first_step=False, skip=None):
    states = {"buf": bufs if momentum != 0 else None}
    generic = _launch(be, "sgd_update", params, grads, states,
                      (float(lr), float(momentum), float(dampening), float(weight_decay), int(bool(nesterov)),
                       int(bool(first_step))), skip)
    if generic:
        Backend.sgd_update(be, _pick(params, generic), _pick(grads, generic), _pick(states["buf"], generic) or
                           [None] * len(generic), lr, momentum, dampening, weight_decay, nesterov, first_step, skip)


def adam_update(be, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False, skip=None):
    states = {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs, "max_exp_avg_sq": max_exp_avg_sqs}
    generic = _launch(be, "adam_update", params, grads, states,
                      (float(lr), float(beta1), float(beta2), float(eps), float(weight_decay),
                       int(bool(decoupled)), int(step)), skip)
    if generic:
        Backend.adam_update(be, *(_pick(a, generic) for a in (params, grads, exp_avgs, exp_avg_sqs,
                                                              max_exp_avg_sqs)),
                            step, lr, beta1, beta2, eps, weight_decay, decoupled, skip)


def rmsprop_update(be, params, grads, square_avgs, grad_avgs, bufs, lr, alpha, eps, momentum=0.0,
                   weight_decay=0.0, eps_inside_sqrt=True, skip=None):
    states = {"square_avg": square_avgs, "grad_avg": grad_avgs, "buf": bufs if momentum != 0 else None}
    generic = _launch(be, "rmsprop_update", params, grads, states,
                      (float(lr), float(alpha), float(eps), float(momentum), float(weight_decay),
                       int(bool(eps_inside_sqrt))), skip)
    if generic:
        Backend.rmsprop_update(be, *(_pick(a, generic) for a in (params, grads, square_avgs, grad_avgs,
                                                                 states["buf"])),
                               lr, alpha, eps, momentum, weight_decay, eps_inside_sqrt, skip)
