"""End to end on a kernel device: a training step of a real model gives the same
loss and gradients as on the CPU backend, and an optimizer step keeps them equal.

Runs on ``emu`` at a tiny size everywhere, and on ``cuda`` where there is a GPU
(benchmarks/gpu_check.sh runs it there)."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.models as models
from conftest import CUDA_REASON, device_params


def _step(model, images, labels, device):
    # float64, batch 4: at 1x1 spatial size the last BatchNorms normalize over the batch
    # alone, and over 2 values they amplify rounding differences beyond any tolerance
    model.to(device, dtype="float64")
    model.train()
    x = minidl.tensor(images, device=device)
    y = minidl.tensor(labels, device=device)
    opt = minidl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    grads = {n: p.grad.numpy() for n, p in model.named_parameters()}
    return losses, grads


@pytest.mark.timeout(600)
@pytest.mark.parametrize("device", device_params("emu", "cuda"))
@pytest.mark.parametrize("name,size,batch,kwargs", [
    ("resnet18", 32, 4, {}),
    ("densenet121", 32, 4, {}),
    ("mobilenet_v2", 64, 4, {"dropout": 0.0}),  # dropout 0: each device draws its own masks
])
def test_training_steps_match_cpu(device, name, size, batch, kwargs):
    if device == "emu":  # emu runs every CUDA thread on the CPU: one small model there
        if name != "resnet18":
            pytest.skip("emu runs every CUDA thread on the CPU: resnet18 alone covers it")
        size = 16
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, size, size))
    labels = rng.integers(0, 10, batch)
    minidl.manual_seed(0)
    ref_model = models.create(name, num_classes=10, **kwargs)
    state = ref_model.state_dict()
    ref_losses, ref_grads = _step(ref_model, images, labels, "cpu")
    model = models.create(name, num_classes=10, **kwargs)
    model.load_state_dict(state)
    losses, grads = _step(model, images, labels, device)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-8, err_msg="losses differ from the CPU backend")
    # BatchNorm over a handful of values makes some gradients huge and others
    # cancel to rounding noise (a bias feeding a conv + BN has a true gradient of 0),
    # so the tolerance is relative to the largest gradient of the whole model
    scale = max(np.abs(g).max() for g in ref_grads.values())
    for key, g in ref_grads.items():
        np.testing.assert_allclose(grads[key], g, rtol=1e-6, atol=1e-7 * scale,
                                   err_msg=f"gradient of {key} differs from the CPU backend")


def test_allow_tf32_defaults_follow_pytorch_and_take_only_bools():
    from minidl.cuda import AllowTF32
    fresh = AllowTF32()
    assert (fresh.matmul, fresh.conv) == (False, True)  # torch: matmul off, cuDNN conv on
    assert (minidl.cuda.allow_tf32.matmul, minidl.cuda.allow_tf32.conv) == (False, False)  # tests: off
    with pytest.raises(TypeError, match=r"allow_tf32.matmul: expected True or False, got 1"):
        fresh.matmul = 1
    fresh.conv = False
    assert "conv=False" in repr(fresh)


@pytest.mark.skipif(CUDA_REASON is not None, reason=f"TF32 matmul needs a GPU: {CUDA_REASON}")
def test_allow_tf32_matmul_switches_cublas_precision_on_cuda():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 512)), rng.standard_normal((512, 256))
    want = a @ b
    errors = {}
    for flag in (False, True):
        minidl.cuda.allow_tf32.matmul = flag
        try:
            got = (minidl.tensor(a, dtype="float32", device="cuda")
                   @ minidl.tensor(b, dtype="float32", device="cuda")).numpy()
        finally:
            minidl.cuda.allow_tf32.matmul = False
        errors[flag] = np.abs(got - want).max() / np.abs(want).max()
    assert errors[False] < 1e-5 < errors[True] < 1e-2, errors
