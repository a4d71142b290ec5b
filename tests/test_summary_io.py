"""minidl.summary (params/MACs against hand counts), minidl.io (safetensors round
trip, atomic writes, mismatch reports) and load_torchvision_state_dict (synthetic
state dicts written from torchvision's layouts; logits against a pure-PyTorch
ResNet-18 where torch is installed)."""
import os
import sys

import numpy as np
import pytest

import minidl
import minidl.io as mio
import minidl.models as models
from minidl import functional as F
from minidl import nn
from minidl.models.torchvision_compat import torchvision_key
from minidl.tools import summary as summary_module


# ---------------------------------------------------------------- summary
class OwnConv(nn.Module):
    """A composite with its own parameter and a functional conv, plus a child."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(minidl.randn(4, 16, 1, 1))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(F.conv2d(x, self.weight))


class HandNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),                        # 224 params
            nn.BatchNorm2d(8),                                    # 16
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, stride=2, groups=2, bias=False),  # 576
        )
        self.own = OwnConv()                                      # 64
        self.pool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(4, 4)                                 # 20, called twice
        self.aux = nn.Linear(4, 3)                                # 15, never called

    def forward(self, x):
        return self.fc(self.fc(self.pool(self.own(self.features(x)))))


# batch 2, 16x16 input: conv1 16x16 out, pool -> 8x8, conv2 (8-3)//2+1 = 3x3
HAND_MACS = {
    "features.0": 2 * 8 * 16 * 16 * 3 * 3 * 3,       # 110,592
    "features.4": 2 * 16 * 3 * 3 * (8 // 2) * 3 * 3,  # 10,368
    "own": 2 * 4 * 3 * 3 * 16,                        # 1,152
    "fc": 2 * 4 * 4,                                  # 32 per call
}


def test_summary_counts_params_and_macs_by_hand():
    net = HandNet()
    rep = minidl.summary(net, (16, 16), batch_size=2, print_table=False)
    assert isinstance(rep, summary_module.ModelSummary) and rep.input_shape == (2, 3, 16, 16)
    assert rep.total_params == 224 + 16 + 576 + 64 + 20 + 15
    assert rep.unused_params == 15 and rep.used_params == 900
    assert rep.trainable_params == rep.total_params
    assert rep.total_macs == sum(HAND_MACS.values()) + HAND_MACS["fc"]
    assert rep.macs_per_sample == rep.total_macs // 2
    assert rep.output_shape == (2, 4)
    rows = {}
    for r in rep.rows:
        rows.setdefault(r.name, []).append(r)
    assert [r.name for r in rep.rows] == ["features.0", "features.1", "features.2", "features.3",
                                          "features.4", "own", "own.act", "pool", "fc", "fc"]
    assert rows["features.0"][0].output_shape == (2, 8, 16, 16)
    assert rows["features.4"][0].output_shape == (2, 16, 3, 3)
    assert rows["features.4"][0].macs == HAND_MACS["features.4"]
    assert rows["own"][0].macs == HAND_MACS["own"] and rows["own"][0].params == 64
    assert [r.params for r in rows["fc"]] == [20, 0]        # a shared layer counts once
    assert [r.macs for r in rows["fc"]] == [32, 32]
    assert rows["pool"][0].type == "GlobalAvgPool2d"


def test_summary_shape_only_gives_the_same_counts_and_restores_modes(capsys):
    net = HandNet()
    net.train()
    net.features[1].eval()
    full = minidl.summary(net, (3, 16, 16), batch_size=2)
    printed = capsys.readouterr().out
    assert "Total params:" in printed and "features.4" in printed
    assert "122,176" in printed and "61.088 KMACs per sample" in printed
    fast = minidl.summary(net, 16, batch_size=2, shape_only=True, print_table=False)
    assert (fast.total_macs, fast.total_params) == (full.total_macs, full.total_params)
    assert [r.output_shape for r in fast.rows] == [r.output_shape for r in full.rows]
    assert net.training and net.fc.training and not net.features[1].training
    assert minidl.is_grad_enabled()
    # the patched hooks are gone: a normal forward still builds a graph
    out = net(minidl.randn(1, 3, 16, 16))
    assert out.requires_grad


def test_summary_takes_the_channels_from_the_first_conv():
    gray = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    rep = minidl.summary(gray, 8, print_table=False)
    assert rep.input_shape == (1, 1, 8, 8) and rep.total_macs == 2 * 36 * 9 + 3 * 72
    assert minidl.summary(gray, (1, 8, 8), print_table=False).total_macs == rep.total_macs


def test_summary_rejects_bad_arguments():
    with pytest.raises(ValueError, match="input_size"):
        minidl.summary(HandNet(), (1, 2, 3, 4), print_table=False)
    with pytest.raises(ValueError, match="batch_size"):
        minidl.summary(HandNet(), 16, batch_size=0, print_table=False)
    with pytest.raises(TypeError, match="Module"):
        minidl.summary(object(), 16)


def test_summary_restores_patches_after_an_error():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    call = nn.Module.__call__
    with pytest.raises(RuntimeError, match="boom"):
        minidl.summary(Broken(), 8, print_table=False)
    assert nn.Module.__call__ is call


# ---------------------------------------------------------------- io
def small_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5))


def test_io_round_trip_is_exact(tmp_path):
    net = small_net()
    net.train()
    net(minidl.randn(2, 3, 6, 6))            # moves running stats and num_batches_tracked
    path = tmp_path / "net.safetensors"
    assert mio.save(net, path) == str(path)
    other = small_net()
    assert mio.load(path, other) is other
    want, got = net.state_dict(), other.state_dict()
    assert list(want) == list(got)
    for k in want:
        assert got[k].dtype == want[k].dtype
        np.testing.assert_array_equal(got[k], want[k])
    assert int(got["1.num_batches_tracked"]) == 1
    raw = mio.load(path)
    assert set(raw) == set(want) and raw["0.weight"].dtype == np.float32


def test_io_saves_a_state_dict_of_tensors_and_arrays(tmp_path):
    path = tmp_path / "sd.safetensors"
    mio.save({"a": minidl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)),
              "b": np.ones(3, dtype=np.int64)}, path, metadata={"epoch": "3"})
    sd = mio.load(path)
    np.testing.assert_array_equal(sd["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert sd["b"].dtype == np.int64
    with pytest.raises(TypeError, match="NumPy array or a Tensor"):
        mio.save({"a": [1, 2]}, path)
    with pytest.raises(TypeError, match="Module or a mapping"):
        mio.save(3, path)


@pytest.mark.parametrize("fail_at", ["replace", "fsync"])
def test_io_write_is_atomic(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "ckpt.safetensors"
    first = small_net()
    mio.save(first, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(mio.os, fail_at, crash)
    with pytest.raises(OSError, match="simulated crash"):
        mio.save(small_net(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before                       # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]      # and no temporary file is left
    restored = mio.load(path, small_net())
    np.testing.assert_array_equal(restored.state_dict()["4.weight"], first.state_dict()["4.weight"])


def test_io_load_into_a_wrong_architecture_lists_the_keys(tmp_path):
    path = tmp_path / "net.safetensors"
    mio.save(small_net(), path)
    wrong = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
                          nn.Linear(5, 2))
    with pytest.raises(ValueError) as err:
        mio.load(path, wrong)
    msg = str(err.value)
    assert str(path) in msg
    assert "'0.weight' (expected (6, 3, 3, 3), got (4, 3, 3, 3))" in msg   # mis-shaped
    assert "'1.running_mean'" in msg and "unexpected" in msg                # not in the model
    assert "'4.bias'" in msg and "missing" in msg                          # not in the file


def test_io_load_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        mio.load(tmp_path / "absent.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        mio.load(bad)


# ---------------------------------------------------------------- torchvision layouts
# Key -> shape lists written from torchvision's model definitions (not from ours).
def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def tv_resnet18_keys(num_classes=1000):
    keys = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    cin = 64
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for b in range(2):
            p = f"layer{stage}.{b}"
            keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            keys.update(_bn(f"{p}.bn1", planes))
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys.update(_bn(f"{p}.bn2", planes))
            if b == 0 and stage > 1:
                keys[f"{p}.downsample.0.weight"] = (planes, cin, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", planes))
            cin = planes
    keys.update({"fc.weight": (num_classes, 512), "fc.bias": (num_classes,)})
    return keys


def tv_mobilenet_v2_keys(num_classes=1000):
    keys = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    cin, idx = 32, 1
    for t, c, n, _ in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for _ in range(n):
            p, hidden, j = f"features.{idx}.conv", cin * t, 0
            if t != 1:
                keys[f"{p}.0.0.weight"] = (hidden, cin, 1, 1)
                keys.update(_bn(f"{p}.0.1", hidden))
                j = 1
            keys[f"{p}.{j}.0.weight"] = (hidden, 1, 3, 3)
            keys.update(_bn(f"{p}.{j}.1", hidden))
            keys[f"{p}.{j + 1}.weight"] = (c, hidden, 1, 1)
            keys.update(_bn(f"{p}.{j + 2}", c))
            cin, idx = c, idx + 1
    keys["features.18.0.weight"] = (1280, 320, 1, 1)
    keys.update(_bn("features.18.1", 1280))
    keys.update({"classifier.1.weight": (num_classes, 1280), "classifier.1.bias": (num_classes,)})
    return keys


def tv_densenet121_keys(num_classes=1000, old_style=False):
    keys = {"features.conv0.weight": (64, 3, 7, 7), **_bn("features.norm0", 64)}
    c = 64
    for i, n in enumerate((6, 12, 24, 16), start=1):
        for j in range(1, n + 1):
            p = f"features.denseblock{i}.denselayer{j}"
            sep = "." if old_style else ""
            keys.update(_bn(f"{p}.norm{sep}1", c))
            keys[f"{p}.conv{sep}1.weight"] = (128, c, 1, 1)
            keys.update(_bn(f"{p}.norm{sep}2", 128))
            keys[f"{p}.conv{sep}2.weight"] = (32, 128, 3, 3)
            c += 32
        if i < 4:
            keys.update(_bn(f"features.transition{i}.norm", c))
            keys[f"features.transition{i}.conv.weight"] = (c // 2, c, 1, 1)
            c //= 2
    keys.update(_bn("features.norm5", c))
    keys.update({"classifier.weight": (num_classes, c), "classifier.bias": (num_classes,)})
    return keys


def tv_efficientnet_b0_keys(num_classes=1000):
    keys = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    cin = 32
    # torchvision's B0 table: expand ratio, kernel, output channels, layers
    for stage, (t, k, c, n) in enumerate([(1, 3, 16, 1), (6, 3, 24, 2), (6, 5, 40, 2), (6, 3, 80, 3),
                                          (6, 5, 112, 3), (6, 5, 192, 4), (6, 3, 320, 1)], start=1):
        for j in range(n):
            p, hidden, i = f"features.{stage}.{j}.block", cin * t, 0
            if t != 1:
                keys[f"{p}.0.0.weight"] = (hidden, cin, 1, 1)
                keys.update(_bn(f"{p}.0.1", hidden))
                i = 1
            keys[f"{p}.{i}.0.weight"] = (hidden, 1, k, k)
            keys.update(_bn(f"{p}.{i}.1", hidden))
            squeeze = max(1, cin // 4)
            se = f"{p}.{i + 1}"
            keys.update({f"{se}.fc1.weight": (squeeze, hidden, 1, 1), f"{se}.fc1.bias": (squeeze,),
                         f"{se}.fc2.weight": (hidden, squeeze, 1, 1), f"{se}.fc2.bias": (hidden,)})
            keys[f"{p}.{i + 2}.0.weight"] = (c, hidden, 1, 1)
            keys.update(_bn(f"{p}.{i + 2}.1", c))
            cin = c
    keys["features.8.0.weight"] = (1280, 320, 1, 1)
    keys.update(_bn("features.8.1", 1280))
    keys.update({"classifier.1.weight": (num_classes, 1280), "classifier.1.bias": (num_classes,)})
    return keys


TV_LAYOUTS = {  # name -> (key generator, torchvision's parameter count at 1000 classes)
    "resnet18": (tv_resnet18_keys, 11_689_512),
    "mobilenet_v2": (tv_mobilenet_v2_keys, 3_504_872),
    "densenet121": (tv_densenet121_keys, 7_978_856),
    "efficientnet_b0": (tv_efficientnet_b0_keys, 5_288_548),
}


def synthetic_state_dict(keys, seed=0):
    rng = np.random.default_rng(seed)
    sd = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = np.array(7, dtype=np.int64)
        elif k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            sd[k] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return sd


def _param_count(keys):
    return sum(int(np.prod(s)) for k, s in keys.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def _needs(name):
    if name not in models.list_models():
        pytest.skip(f"{name} is not registered yet")


@pytest.mark.parametrize("name", sorted(TV_LAYOUTS))
def test_torchvision_state_dict_maps_every_key(name):
    _needs(name)
    make_keys, tv_params = TV_LAYOUTS[name]
    keys = make_keys(num_classes=10)
    assert _param_count(make_keys()) == tv_params        # the layout list itself is right
    sd = synthetic_state_dict(keys)
    model = models.create(name, num_classes=10)
    result = models.load_torchvision_state_dict(model, sd)
    assert result.dropped == [] and result.missing == []
    ours = model.state_dict()
    assert set(ours) == set(keys)
    for k, v in sd.items():
        np.testing.assert_array_equal(ours[k], v, err_msg=k)


def test_torchvision_old_style_densenet_keys():
    _needs("densenet121")
    keys = tv_densenet121_keys(num_classes=10, old_style=True)
    assert "features.denseblock1.denselayer1.norm.1.weight" in keys
    assert torchvision_key("features.denseblock1.denselayer1.norm.1.weight") == \
        "features.denseblock1.denselayer1.norm1.weight"
    assert torchvision_key("features.transition1.norm.weight") == "features.transition1.norm.weight"
    sd = synthetic_state_dict(keys, seed=1)
    model = models.create("densenet121", num_classes=10)
    models.load_torchvision_state_dict(model, sd)
    ours = model.state_dict()
    np.testing.assert_array_equal(ours["features.denseblock4.denselayer16.conv2.weight"],
                                  sd["features.denseblock4.denselayer16.conv.2.weight"])


def test_torchvision_errors_list_the_keys():
    _needs("resnet18")
    model = models.create("resnet18", num_classes=10)
    sd = synthetic_state_dict(tv_resnet18_keys(num_classes=10))
    old = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    models.load_torchvision_state_dict(model, old)           # pre-1.0 checkpoints: no counters
    extra = dict(sd, **{"layer5.0.conv1.weight": np.zeros((1, 1, 1, 1), np.float32)})
    with pytest.raises(ValueError, match=r"unmapped torchvision keys \(1\): layer5.0.conv1.weight"):
        models.load_torchvision_state_dict(model, extra)
    thousand = synthetic_state_dict(tv_resnet18_keys(num_classes=1000))
    with pytest.raises(ValueError, match=r"fc.weight \(expected \(10, 512\), got \(1000, 512\)\)"):
        models.load_torchvision_state_dict(model, thousand)
    partial = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    with pytest.raises(ValueError, match="model keys without a value.*fc.weight"):
        models.load_torchvision_state_dict(model, partial)
    assert models.load_torchvision_state_dict(model, partial, strict=False).missing == \
        ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("name, hint", [("googlenet", "paper"), ("alexnet", "alexnet_owt")])
def test_torchvision_refuses_models_without_a_counterpart(name, hint):
    _needs(name)
    model = models.create(name, num_classes=10)
    with pytest.raises(ValueError, match=hint):
        models.load_torchvision_state_dict(model, {})


def test_torchvision_inception_v3_aux_keys_dropped_without_the_head():
    _needs("inception_v3")
    model = models.create("inception_v3", num_classes=10, aux_logits=False)
    sd = {k: v for k, v in model.state_dict().items()}
    sd["AuxLogits.fc.weight"] = np.zeros((10, 768), np.float32)
    result = models.load_torchvision_state_dict(model, sd)
    assert result.dropped == ["AuxLogits.fc.weight"]


# ---------------------------------------------------------------- against PyTorch
def _torch_resnet18(torch, num_classes):
    """torchvision's ResNet-18, rebuilt in plain torch.nn with torchvision's names
    (torchvision itself is not installed here)."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(planes))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + idt)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, planes in enumerate((64, 128, 256, 512), start=1):
                stride = 1 if i == 1 else 2
                setattr(self, f"layer{i}", tnn.Sequential(Block(cin, planes, stride),
                                                          Block(planes, planes, 1)))
                cin = planes
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(torch.mean(x, dim=(2, 3)), 1))

    return Net()


def test_resnet18_logits_match_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional comparison)")
    _needs("resnet18")
    sd = synthetic_state_dict(tv_resnet18_keys(num_classes=10), seed=2)
    ref = _torch_resnet18(torch, 10)
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()}, strict=True)
    ref.eval()
    model = models.create("resnet18", num_classes=10).eval()
    models.load_torchvision_state_dict(model, sd)
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    with minidl.no_grad():
        got = model(minidl.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- python -m minidl.models
def test_models_cli_table_and_plot(tmp_path, capsys, monkeypatch):
    _needs("resnet18")
    from minidl.models.__main__ import main
    assert main(["--table", "--models", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11,689,512" in out and "1.814" in out and "✓" in out
    with pytest.raises(SystemExit):
        main(["--table", "--models", "no_such_model*"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # as if it were not installed
    with pytest.raises(SystemExit, match="pip install 'minidl\\[plot\\]'"):
        main(["--plot", str(tmp_path / "zoo.png"), "--models", "resnet18"])
    monkeypatch.undo()
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    assert main(["--plot", str(tmp_path / "zoo.png"), "--models", "resnet18"]) == 0
    assert (tmp_path / "zoo.png").stat().st_size > 0
