"""Learning-rate schedules.

Every schedule is a closed form ``factor(t)`` of the step count ``t`` and sets
``group["lr"] = initial_lr * factor(t)`` for each parameter group (each group
keeps its own base lr in ``group["initial_lr"]``).  Closed forms, rather than
PyTorch's recursive updates, make three things simple: a fractional epoch
(``step(2.5)``), resuming from a state dict, and composition.

Convention (as PyTorch's): building a scheduler sets the lr for t = 0; call
``step()`` once per epoch *or* once per iteration - the unit of ``step_size``,
``T_max``, ``milestones`` and ``total_steps`` is whatever you step by.

Warmup composes with any schedule: ``LinearWarmup(opt, warmup_steps,
after=CosineAnnealingLR(opt, T_max=total - warmup_steps))`` ramps the factor
linearly from ``start_factor`` to 1 over ``warmup_steps`` and then follows
``after`` with its clock starting at 0 when the warmup ends (so give ``after``
the length of the post-warmup phase).  Only the outer
scheduler is stepped; the inner one is used through its closed form.
"""
from __future__ import annotations

import copy
import math
from bisect import bisect_right


class LRScheduler:
    def __init__(self, optimizer):
        from .optimizer import Optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def factor(self, t):
        """The lr multiplier at step ``t`` (a float; fractional steps allowed)."""
        raise NotImplementedError

    def lr_at(self, t):
        """The lr of every group at step ``t``, without changing anything."""
        f = self.factor(t)
        return [base * f for base in self.base_lrs]

    def _apply(self):
        for group, lr in zip(self.optimizer.param_groups, self.lr_at(self.last_step)):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def step(self, epoch=None):
        """Advance one step, or jump to step ``epoch`` (e.g. a fractional epoch 2.5)."""
        if epoch is None:
            self.last_step += 1
        else:
            if epoch < 0:
                raise ValueError(f"{type(self).__name__}.step: expected a step >= 0, got {epoch!r}")
            self.last_step = epoch
        self._apply()

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items()
                if k not in ("optimizer", "after", "lr_lambda")}

    def load_state_dict(self, state):
        self.__dict__.update({k: copy.deepcopy(v) for k, v in state.items() if k != "after_state"})
        self._apply()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.state_dict().items()
                         if k not in ("base_lrs", "_last_lr", "last_step", "after_state"))
        return f"{type(self).__name__}({args})"


def _check_positive(owner, name, value, integer=False):
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else isinstance(value, (int, float))
    if not ok or value <= 0:
        kind = "a positive int" if integer else "a positive number"
        raise ValueError(f"{owner}: expected {name} to be {kind}, got {value!r}")


class ConstantLR(LRScheduler):
    """factor = 1 (useful as a warmup's ``after``)."""

    def factor(self, t):
        return 1.0


class LambdaLR(LRScheduler):
    """factor = lr_lambda(t)."""

    def __init__(self, optimizer, lr_lambda):
        if not callable(lr_lambda):
            raise TypeError(f"LambdaLR: expected a callable lr_lambda, got {type(lr_lambda).__name__}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def factor(self, t):
        return float(self.lr_lambda(t))  # (the function itself is not saved in state_dict)


class StepLR(LRScheduler):
    """factor = gamma ** floor(t / step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        _check_positive("StepLR", "step_size", step_size)
        self.step_size, self.gamma = step_size, float(gamma)
        super().__init__(optimizer)

    def factor(self, t):
        return self.gamma ** math.floor(t / self.step_size)


class MultiStepLR(LRScheduler):
    """factor = gamma ** (number of milestones <= t)."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        milestones = list(milestones)
        if milestones != sorted(milestones) or any(m < 0 for m in milestones):
            raise ValueError(f"MultiStepLR: expected non-negative increasing milestones, got {milestones!r}")
        self.milestones, self.gamma = milestones, float(gamma)
        super().__init__(optimizer)

    def factor(self, t):
        return self.gamma ** bisect_right(self.milestones, t)


class ExponentialLR(LRScheduler):
    """factor = gamma ** t."""

    def __init__(self, optimizer, gamma):
        _check_positive("ExponentialLR", "gamma", gamma)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def factor(self, t):
        return self.gamma ** t


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 for t <= T_max,
    then eta_min (no restart, unlike PyTorch's periodic closed form)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        _check_positive("CosineAnnealingLR", "T_max", T_max)
        self.T_max, self.eta_min = T_max, float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, t):
        c = (1.0 + math.cos(math.pi * min(t, self.T_max) / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]

    def factor(self, t):  # for composition; exact only when eta_min == 0
        return (1.0 + math.cos(math.pi * min(t, self.T_max) / self.T_max)) / 2.0


class PolyLR(LRScheduler):
    """factor = (1 - min(t, total_steps) / total_steps) ** power (DeepLab's "poly")."""

    def __init__(self, optimizer, total_steps, power=1.0):
        _check_positive("PolyLR", "total_steps", total_steps)
        if power < 0:
            raise ValueError(f"PolyLR: expected power >= 0, got {power!r}")
        self.total_steps, self.power = total_steps, float(power)
        super().__init__(optimizer)

    def factor(self, t):
        return (1.0 - min(t, self.total_steps) / self.total_steps) ** self.power


class ReduceLROnPlateau(LRScheduler):
    """factor = gamma ** (number of plateaus so far): the one schedule driven by results.
    Call ``report(value)`` after each validation; after ``patience`` reports in a row
    without an improvement of more than ``threshold`` (relative) over the best, the factor
    is multiplied by ``gamma`` (AlexNet: "divide by 10 when the validation error stops
    improving").  ``mode``: "max" for accuracy, "min" for a loss.  ``min_lr`` bounds the
    decay."""

    def __init__(self, optimizer, mode="max", gamma=0.1, patience=2, threshold=1e-4, min_lr=0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        _check_positive("ReduceLROnPlateau", "gamma", gamma)
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"ReduceLROnPlateau: expected patience to be an int >= 0, got {patience!r}")
        self.mode, self.gamma, self.patience = mode, float(gamma), patience
        self.threshold, self.min_lr = float(threshold), float(min_lr)
        self.best, self.bad_reports, self.reductions = None, 0, 0
        super().__init__(optimizer)

    def factor(self, t):
        return self.gamma ** self.reductions

    def lr_at(self, t):
        return [max(base * self.factor(t), min(self.min_lr, base)) for base in self.base_lrs]

    def _improves(self, value):
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.threshold * abs(self.best)
        return value < self.best - self.threshold * abs(self.best)

    def report(self, value):
        """Record a validation result; returns True when it reduced the lr."""
        value = float(value)
        if not math.isfinite(value):
            return False
        if self._improves(value):
            self.best, self.bad_reports = value, 0
            return False
        self.bad_reports += 1
        if self.bad_reports <= self.patience:
            return False
        self.reductions += 1
        self.bad_reports = 0
        self._apply()
        return True


class LinearWarmup(LRScheduler):
    """Linear warmup, then ``after`` (another scheduler on the same optimizer, or
    None for a constant lr).  For t < warmup_steps:
    lr = base_lr * (start_factor + (1 - start_factor) * t / warmup_steps);
    afterwards lr = after.lr_at(t - warmup_steps)."""

    def __init__(self, optimizer, warmup_steps, after=None, start_factor=0.0):
        _check_positive("LinearWarmup", "warmup_steps", warmup_steps)
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"LinearWarmup: expected start_factor in [0, 1], got {start_factor!r}")
        if after is not None:
            if not isinstance(after, LRScheduler):
                raise TypeError(f"LinearWarmup: expected an LRScheduler (or None) as after, "
                                f"got {type(after).__name__}")
            if after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: the after scheduler must drive the same optimizer")
        self.warmup_steps, self.start_factor, self.after = warmup_steps, float(start_factor), after
        super().__init__(optimizer)

    def factor(self, t):
        if t < self.warmup_steps:
            return self.start_factor + (1.0 - self.start_factor) * t / self.warmup_steps
        return 1.0 if self.after is None else self.after.factor(t - self.warmup_steps)

    def lr_at(self, t):
        if t < self.warmup_steps or self.after is None:
            return super().lr_at(t)
        return self.after.lr_at(t - self.warmup_steps)

    def state_dict(self):
        state = super().state_dict()
        if self.after is not None:
            state["after_state"] = self.after.state_dict()
        return state

    def load_state_dict(self, state):
        if self.after is not None and "after_state" in state:
            self.after.__dict__.update(copy.deepcopy(state["after_state"]))
        super().load_state_dict(state)
