"""The model zoo: one parametrized test over every registered model.

For each model:
- the trainable parameters of the inference network (train-only aux heads not
  counted) equal the registered reference exactly, at 1000 classes;
- the conv + linear MACs at the reference input size are within 0.5% of the
  reference (counted by ``minidl.summary(..., shape_only=True)``);
- in train mode, a batch of 2 at the model's ``test_size`` gives (2, num_classes)
  logits without NaN (aux logits too, where the model has them), and backward
  gives every parameter a finite gradient.

The MAC counts of the largest inputs (EfficientNet-B5..B7 at 456-600 px) take
a full-resolution forward of the non-conv layers, so they are marked slow and run
in test_zoo_macs_full_resolution (``pytest -m slow``).
"""
import time

import numpy as np
import pytest

import minidl
import minidl.models as models

NAMES = models.list_models()
MAC_TOLERANCE = 0.005

# reference-size MAC checks kept out of the default run (seconds each on 2 cores)
SLOW_MACS = {"efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}
# keyword options for the training-mode test: inception_v3's aux head needs a 17x17
# Mixed_6e map (a ~299 px input), so at test_size it is built without it; the head
# is exercised at its reference size in test_zoo_aux_heads
TRAIN_OPTIONS = {"inception_v3": {"aux_logits": False}}
AUX_MODELS = {"googlenet": 3, "inception_v3": 2}   # name -> outputs in train mode


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _check_reference(name, info, at_size):
    model = models.create(name, num_classes=1000)
    report = minidl.summary(model, at_size, print_table=False, shape_only=True)
    assert report.used_params == info.params, (
        f"{name}: {report.used_params:,} trainable params in the inference network, "
        f"reference {info.params:,} (all params incl. train-only parts: {report.total_params:,})")
    return report


@pytest.mark.parametrize("name", NAMES)
def test_zoo(name):
    info = models.model_info(name)
    assert info.test_size, f"{name}: register a test_size"

    # parameters (and MACs at the reference size, unless that is a slow check)
    full = name not in SLOW_MACS
    report = _check_reference(name, info, info.input_size if full else info.test_size)
    if full:
        assert abs(report.gmacs - info.gmacs) <= MAC_TOLERANCE * info.gmacs, (
            f"{name}: {report.gmacs:.4f} GMACs at {info.input_size}, reference {info.gmacs}")
    del report

    # forward and backward at the reduced test size
    minidl.manual_seed(0)
    model = models.create(name, num_classes=10, **TRAIN_OPTIONS.get(name, {})).train()
    x = minidl.randn(2, 3, info.test_size, info.test_size)
    start = time.perf_counter()
    outs = _outputs(model(x))
    loss = outs[0].mean()
    for aux in outs[1:]:
        loss = loss + aux.mean()
    loss.backward()
    seconds = time.perf_counter() - start
    print(f"{name}: forward+backward of 2 x {info.test_size}px in train mode: {seconds:.2f} s")
    for out in outs:
        logits = out.numpy()
        assert logits.shape == (2, 10), f"{name}: logits of shape {logits.shape}"
        assert np.isfinite(logits).all(), f"{name}: non-finite logits"
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"{name}: parameters without a gradient: {no_grad[:10]}"
    bad = [n for n, p in model.named_parameters()
           if p.grad is not None and not np.isfinite(p.grad.numpy()).all()]
    assert not bad, f"{name}: non-finite gradients in {bad[:10]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_MACS & set(NAMES)))
def test_zoo_macs_full_resolution(name):
    info = models.model_info(name)
    report = _check_reference(name, info, info.input_size)
    assert abs(report.gmacs - info.gmacs) <= MAC_TOLERANCE * info.gmacs, (
        f"{name}: {report.gmacs:.4f} GMACs at {info.input_size}, reference {info.gmacs}")


@pytest.mark.parametrize("name", sorted(set(AUX_MODELS) & set(NAMES)))
def test_zoo_aux_heads(name):
    """Aux heads: extra logits in train mode only, at the reference input size."""
    info = models.model_info(name)
    model = models.create(name, num_classes=10)
    x = minidl.randn(1, 3, info.input_size, info.input_size)
    with minidl.no_grad():
        outs = _outputs(model.train()(x))
        assert len(outs) == AUX_MODELS[name]
        assert all(o.shape == (1, 10) for o in outs)
        assert _outputs(model.eval()(x))[0].shape == (1, 10)
        assert not isinstance(model(x), (tuple, list))
