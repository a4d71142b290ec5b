"""``GradScaler``: dynamic loss scaling for float16 training, as PyTorch's.

    scaler = GradScaler()
    with autocast(minidl.float16):
        loss = criterion(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)            # optional: clip the true gradients here
    scaler.step(optimizer)                # skipped when a gradient is inf/NaN
    scaler.update()                       # backoff on overflow, growth after an interval

The scale, the growth tracker and the overflow flag are 0-d float32 arrays on the
parameters' device, and the skip-or-apply decision stays there, so a step reads
nothing back to the host.  minidl's optimizers (``skips_on_device``) take the flag
itself: their fused updates return before touching anything when it is set, so a
skipped step leaves parameters and state bit-identical at no cost (as PyTorch's fused
optimizers take found_inf).  For any other optimizer ``step`` keeps copies of the
parameters and of its array state and selects them back where the flag is set.
Host-side counters in the optimizer state (Adam's ``step``) count skipped steps too.
"""
from __future__ import annotations

import math

from ..dtypes import float32
from ..tensor import Tensor


def _is_array(v):
    return hasattr(v, "shape") and hasattr(v, "dtype")


class GradScaler:
    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True, dynamic=True):
        """``dynamic=False`` keeps the scale at ``init_scale`` and only skips the steps
        with non-finite gradients, on the device (bfloat16 needs no scaling, but a step
        on a NaN loss must not reach the weights)."""
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"GradScaler: expected a finite init_scale > 0, got {init_scale!r}")
        if not growth_factor > 1.0:
            raise ValueError(f"GradScaler: expected growth_factor > 1, got {growth_factor!r}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: expected 0 < backoff_factor < 1, got {backoff_factor!r}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
            raise ValueError(f"GradScaler: expected a positive int growth_interval, got {growth_interval!r}")
        self.enabled, self.dynamic = bool(enabled), bool(dynamic)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = growth_interval
        self._init_scale, self._init_tracker, self._init_skipped = float(init_scale), 0, 0
        self._backend = None  # set by the first scale(): the arrays live on the loss's device
        self._unscaled = set()  # ids of the optimizers unscale_d in this iteration

    # ------------------------------------------------------------ device state
    def _ensure(self, backend):
        if self._backend is None:
            self._backend = be = backend
            full = lambda v: be.full((), v, float32)  # noqa: E731
            self._scale, self._tracker = full(self._init_scale), full(self._init_tracker)
            # consecutive skipped steps, read by callers that stop after too many
            self._skipped = full(self._init_skipped)
            self._found_inf = full(0.0)
        return self._backend

    def scale(self, loss):
        """``loss`` times the current scale (float32)."""
        if not self.enabled:
            return loss
        if not isinstance(loss, Tensor):
            raise TypeError(f"GradScaler.scale: expected a Tensor loss, got {type(loss).__name__}")
        be = self._ensure(loss.backend)
        return loss * Tensor._wrap(be.astype(self._scale, loss.dtype), loss.device)

    def _params_with_grads(self, optimizer):
        return [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale (in place of ``.grad``) and note
        whether any is inf/NaN; once per optimizer per iteration."""
        if not self.enabled:
            return
        if id(optimizer) in self._unscaled:
            raise RuntimeError("GradScaler.unscale_: already called on this optimizer since the last update()")
        if self._backend is None:
            raise RuntimeError("GradScaler.unscale_: no scaled loss yet; call scale(loss).backward() first")
        be = self._backend
        grads = []
        for p in self._params_with_grads(optimizer):  # owned, writable arrays for the in-place pass
            p.grad.data = be.owned(p.grad.data)
            grads.append(p.grad.data)
        # grads *= 1/scale and found_inf = 1 where any is inf/NaN, on the device (a few
        # multi-tensor launches on the kernel backends)
        be.amp_unscale(grads, be.div(1.0, self._scale), self._found_inf)
        self._unscaled.add(id(optimizer))

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step()`` unless a gradient was inf/NaN, decided on the device."""
        if not self.enabled:
            return optimizer.step(*args, **kwargs)
        if id(optimizer) not in self._unscaled:
            self.unscale_(optimizer)
        be = self._backend
        if getattr(optimizer, "skips_on_device", False):
            return optimizer.step(*args, skip_if=self._found_inf, **kwargs)
        skip = be.greater(self._found_inf, 0.0)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        for p in params:  # the discarded step of a skip then computes on zeros, not on inf/NaN
            if p.grad is not None:
                p.grad.data = be.where(skip, be.zeros_like(p.grad.data), p.grad.data)
        saved_params = [be.copy(p.data) for p in params]  # optimizers update p.data in place
        saved_state = {key: {k: be.copy(v) for k, v in state.items() if _is_array(v)}
                       for key, state in optimizer.state.items()}
        result = optimizer.step(*args, **kwargs)
        for p, old in zip(params, saved_params):
            p.data = be.where(skip, old, p.data)
        for key, state in optimizer.state.items():
            old_state = saved_state.get(key, {})
            for k, v in state.items():
                if _is_array(v):
                    # state created by this step starts from zeros when the step is skipped
                    state[k] = be.where(skip, old_state[k] if k in old_state else be.zeros_like(v), v)
        return result

    def update(self):
        """Back off the scale after an overflow; grow it after ``growth_interval`` clean steps."""
        if not self.enabled or self._backend is None:
            self._unscaled.clear()
            return
        be = self._backend
        inf = be.greater(self._found_inf, 0.0)
        self._skipped = be.astype(be.where(inf, be.add(self._skipped, 1.0), 0.0), float32)
        self._found_inf = be.zeros_like(self._found_inf)
        self._unscaled.clear()
        if not self.dynamic:
            return
        tracker = be.add(self._tracker, 1.0)
        grow = be.where(inf, False, be.greater_equal(tracker, float(self.growth_interval)))
        scale = be.where(grow, be.mul(self._scale, self.growth_factor), self._scale)
        self._scale = be.astype(be.where(inf, be.mul(self._scale, self.backoff_factor), scale), float32)
        self._tracker = be.astype(be.where(be.where(inf, True, grow), 0.0, tracker), float32)

    # ------------------------------------------------------------ host reads
    def get_scale(self):
        """The current scale as a float (reads the device)."""
        return float(self._backend.to_numpy(self._scale)) if self._backend is not None else self._init_scale

    def consecutive_skipped_steps(self):
        """How many of the latest steps in a row were skipped (reads the device)."""
        return int(self._backend.to_numpy(self._skipped)) if self._backend is not None else self._init_skipped

    def state_dict(self):
        if not self.enabled:
            return {}
        tracker = int(self._backend.to_numpy(self._tracker)) if self._backend is not None else self._init_tracker
        return {"scale": self.get_scale(), "growth_factor": self.growth_factor,
                "backoff_factor": self.backoff_factor, "growth_interval": self.growth_interval,
                "growth_tracker": tracker, "consecutive_skipped": self.consecutive_skipped_steps()}

    def load_state_dict(self, state):
        if not self.enabled:
            return
        try:
            scale, tracker = float(state["scale"]), int(state["growth_tracker"])
            self.growth_factor, self.backoff_factor = float(state["growth_factor"]), float(state["backoff_factor"])
            self.growth_interval = int(state["growth_interval"])
            skipped = int(state.get("consecutive_skipped", 0))
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError("GradScaler.load_state_dict: expected a dict with scale, growth_factor, "
                             f"backoff_factor, growth_interval and growth_tracker ({e})") from None
        self._init_scale, self._init_tracker, self._init_skipped = scale, tracker, skipped
        if self._backend is not None:
            be, self._backend = self._backend, None
            self._ensure(be)
