"""``--amp {off,fp16,bf16}`` for minidl-train and minidl-eval: autocast around the
forward pass, a ``GradScaler`` for fp16, and the rule for a non-finite loss.

Under AMP a non-finite loss is expected now and then (an fp16 overflow): the step is
skipped and, in fp16, the loss scale backed off (the scaled backward of a NaN loss
gives non-finite gradients, so ``GradScaler.step`` skips and ``update`` halves the
scale; bf16 keeps a scaler of fixed scale 1 for the skip).  Both happen on the
device, so minidl-train reads the losses only at its log points, as without AMP, and
reports the skipped steps then.  Only ``MAX_NONFINITE_STEPS`` such steps in a row stop the run: from the
initial scale 2**16, ten halvings leave 2**6, so a loss that is still not finite
then is not an artefact of the scaling.
"""
from __future__ import annotations

import contextlib

import minidl
from minidl.amp import GradScaler, autocast

AMP_CHOICES = ("off", "fp16", "bf16")
AMP_DTYPES = {"fp16": minidl.float16, "bf16": minidl.bfloat16}
MAX_NONFINITE_STEPS = 10
SCALER_KEY = "amp_scaler"  # the scaler's state in a checkpoint's train state


def default_amp(device):
    """off on the CPU and the emulator; on a GPU bf16 where the card computes it
    (compute capability 8.0 and later) and the array library stores it, else fp16."""
    if device != "cuda":
        return "off"
    import cupy
    major = int(cupy.cuda.Device().compute_capability[:-1])
    try:
        cupy.zeros(1, dtype=minidl.bfloat16)
    except (TypeError, ValueError):  # a CuPy without bfloat16 arrays
        return "fp16"
    return "bf16" if major >= 8 else "fp16"


def amp_context(mode):
    """The autocast context of ``mode`` (a no-op context for off)."""
    return contextlib.nullcontext() if mode == "off" else autocast(AMP_DTYPES[mode])


class AmpTraining:
    """One run's mixed-precision state: the mode, the scaler and the run of non-finite losses."""

    def __init__(self, mode):
        if mode not in AMP_CHOICES:
            raise ValueError(f"--amp: expected one of {', '.join(AMP_CHOICES)}, got {mode!r}")
        self.mode = mode
        # fp16: dynamic loss scaling; bf16: no scaling (scale 1), but the scaler still skips
        # a step with non-finite gradients on the device, so that no step waits on a read
        self.scaler = GradScaler(init_scale=1.0 if mode == "bf16" else 2.0 ** 16, enabled=mode != "off",
                                 dynamic=mode == "fp16")
        self.nonfinite_run = 0

    def autocast(self):
        return amp_context(self.mode)

    def tolerates_nonfinite(self, finite):
        """Count the run of non-finite losses; True when this one is skipped (AMP on and
        fewer than MAX_NONFINITE_STEPS in a row)."""
        self.nonfinite_run = 0 if finite else self.nonfinite_run + 1
        return self.mode != "off" and 0 < self.nonfinite_run <= MAX_NONFINITE_STEPS

    def backward(self, loss):
        """Backward of the scaled loss (the loss itself without fp16 scaling)."""
        self.scaler.scale(loss).backward()

    def step(self, optimizer, clip=None):
        """Optional clipping of the unscaled gradients (``clip()``), the step (skipped on
        the device for non-finite gradients) and the scale update."""
        if clip is not None:
            self.scaler.unscale_(optimizer)
            clip()
        self.scaler.step(optimizer)
        self.scaler.update()

    def backward_and_step(self, loss, optimizer, clip=None):
        optimizer.zero_grad()
        self.backward(loss)
        self.step(optimizer, clip)

    def skip(self, loss, optimizer):
        """Skip the step of a non-finite loss; in fp16 run it through the scaler, which
        skips it on the device and backs off the scale."""
        if self.scaler.enabled:
            self.backward_and_step(loss, optimizer)

    def state_dict(self):
        return self.scaler.state_dict()

    def load_state_dict(self, state):
        if state:
            self.scaler.load_state_dict(state)
