"""The model zoo: one parametrized test over every registered model.

For each model:
- the trainable parameters of the inference network (train-only aux heads not
  counted) equal the registered reference exactly, at 1000 classes;
- the conv + linear MACs at the reference input size are within 0.5% of the
  reference (counted by ``minidl.summary(..., shape_only=True)``);
- in train mode, a batch of 2 at the model's ``test_size`` gives (2, 1000)
  logits without NaN (aux logits too, where the model has them), and backward
  gives every parameter a finite gradient.

One model at 1000 classes serves all checks; the MAC count takes a shape-only
forward at the reference size (conv/linear arithmetic skipped), which costs
seconds even for EfficientNet-B7 at 600 px.  Only inception_v3's aux-head check
(a forward at 299 px) is marked slow.  ``python -m minidl.models`` prints this comparison
as a table (and a plot).
"""
import sys
import time

import numpy as np
import pytest

import minidl
import minidl.models as models
from minidl.tools.summary import input_channels

NAMES = models.list_models()
MAC_TOLERANCE = 0.005

# keyword options for the training-mode test: inception_v3's aux head needs a 17x17
# Mixed_6e map (a ~299 px input), so at test_size it is built without it; the head
# is exercised at its reference size in test_zoo_aux_heads
TRAIN_OPTIONS = {"inception_v3": {"aux_logits": False}}
AUX_MODELS = {"googlenet": 3, "inception_v3": 2}   # name -> outputs in train mode


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("name", NAMES)
def test_zoo(name):
    info = models.model_info(name)
    assert info.test_size, f"{name}: register a test_size"
    # one model at 1000 classes serves every check: a second build would cost more
    # (the initialization of VGG's or OverFeat's classifier) than the wider last layer
    minidl.manual_seed(0)
    model = models.create(name, num_classes=1000, **TRAIN_OPTIONS.get(name, {}))

    report = minidl.summary(model, info.input_size, print_table=False, shape_only=True)
    assert report.used_params == info.params, (
        f"{name}: {report.used_params:,} trainable params in the inference network, "
        f"reference {info.params:,} (all params incl. train-only parts: {report.total_params:,})")
    assert abs(report.gmacs - info.gmacs) <= MAC_TOLERANCE * info.gmacs, (
        f"{name}: {report.gmacs:.4f} GMACs at {info.input_size}, reference {info.gmacs}")

    # forward and backward in train mode at the reduced test size
    model.train()
    x = minidl.randn(2, input_channels(model), info.test_size, info.test_size)
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
        assert logits.shape == (2, 1000), f"{name}: logits of shape {logits.shape}"
        assert np.isfinite(logits).all(), f"{name}: non-finite logits"
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"{name}: parameters without a gradient: {no_grad[:10]}"
    bad = [n for n, p in model.named_parameters()
           if p.grad is not None and not np.isfinite(p.grad.numpy()).all()]
    assert not bad, f"{name}: non-finite gradients in {bad[:10]}"


# inception_v3's aux check is a 299 px forward (~14 s on 2 shared cores): slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "inception_v3" else n
                                  for n in sorted(set(AUX_MODELS) & set(NAMES))])
def test_zoo_aux_heads(name):
    """Aux heads: extra logits in train mode only, at the reference input size."""
    info = models.model_info(name)
    model = models.create(name, num_classes=10)
    x = minidl.randn(2, input_channels(model), info.input_size, info.input_size)  # 2: BN batch stats
    with minidl.no_grad():
        outs = _outputs(model.train()(x))
        assert len(outs) == AUX_MODELS[name]
        assert all(o.shape == (2, 10) for o in outs)
        out = model.eval()(x[:1])
        assert not isinstance(out, (tuple, list)) and out.shape == (1, 10)


# ---------------------------------------------------------------- python -m minidl.models
def test_models_cli_table_and_plot(tmp_path, capsys, monkeypatch):
    from minidl.models.__main__ import main
    assert main(["--table", "--models", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,689,512" in out and "1.814" in out and "✓" in out
    with pytest.raises(SystemExit):
        main(["--table", "--models", "no_such_model*"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # as if it were not installed
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[plot\]" in the minidl clone'):
        main(["--plot", str(tmp_path / "zoo.png"), "--models", "resnet18"])
    monkeypatch.undo()
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    assert main(["--plot", str(tmp_path / "zoo.png"), "--models", "resnet18"]) == 0
    assert (tmp_path / "zoo.png").stat().st_size > 0


def test_list_models_sorts_naturally_and_matches_case_insensitively():
    assert models.list_models("resnet*") == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert models.list_models("ResNet1*") == ["resnet18", "resnet101", "resnet152"]
    assert models.model_info("ResNet50").name == "resnet50"


def test_models_cli_lists_models_and_filters_by_pattern(capsys):
    from minidl.models.__main__ import main
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(models.list_models())
    assert main(["vgg1*"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]
    assert "138.4M" in out


def test_a_model_name_typo_suggests_the_near_names(capsys):
    with pytest.raises(ValueError, match=r"unknown model 'resnet05' \(did you mean resnet50"):
        models.create("resnet05")
    from minidl.models.__main__ import main
    with pytest.raises(SystemExit):
        main(["resnt50"])
    err = capsys.readouterr().err
    assert "did you mean resnet50?" in err and "vgg16" not in err


def test_in_chans_is_another_name_of_in_channels_and_lenet_fits_mnist():
    net = models.create("lenet5")
    assert net.features[0].in_channels == 1 and net.classifier[-1].out_features == 10
    assert models.create("lenet5", in_chans=3).features[0].in_channels == 3
    assert models.lenet.lenet5(in_chans=2).features[0].in_channels == 2
    with pytest.raises(TypeError, match="got both in_chans and in_channels"):
        models.create("lenet5", in_chans=3, in_channels=3)


def test_models_table_counts_all_models_in_seconds():
    """--table builds every model without drawing its weights and counts by shape
    propagation; the CPU time of this process is measured (the machine may be shared)."""
    from minidl.models.__main__ import count_model
    start, cpu = time.perf_counter(), time.process_time()
    rows = [count_model(name) for name in NAMES]
    cpu_seconds, seconds = time.process_time() - cpu, time.perf_counter() - start
    print(f"--table: {len(rows)} models counted in {seconds:.1f} s ({cpu_seconds:.1f} s CPU)")
    assert cpu_seconds <= 5.0
    assert [r.name for r in rows if not (r.params_ok and r.gmacs_ok)] == []


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "overfeat_fast", "googlenet", "densenet121",
                                  "efficientnet_b0", "mobilenet_v1", "xception"])
def test_the_fast_count_agrees_with_the_full_forward(name):
    """The table's shortcuts (no weight init, shape-only layers) change no count or shape."""
    from minidl.nn import init
    info = models.model_info(name)
    with init.skip_init():
        model = models.create(name, num_classes=1000)
    fast = minidl.summary(model, info.test_size, print_table=False, shape_only=True)
    minidl.manual_seed(0)
    full_model = models.create(name, num_classes=1000)
    full = minidl.summary(full_model, info.test_size, print_table=False)
    assert (fast.total_macs, fast.used_params, fast.total_params) == \
        (full.total_macs, full.used_params, full.total_params)
    assert [(r.name, r.output_shape, r.params, r.macs) for r in fast.rows] == \
        [(r.name, r.output_shape, r.params, r.macs) for r in full.rows]


def test_skip_init_still_checks_its_arguments():
    from minidl.nn import init
    t = minidl.zeros(3, 4)
    with init.skip_init():
        assert init.kaiming_uniform_(t) is t and not t.numpy().any()
        with pytest.raises(ValueError, match="expected a <= b"):
            init.uniform_(t, 1.0, 0.0)
    assert init.normal_(t).numpy().any()
