"""Pretrained weights: the torch-free .pth reader (and its refusal of code), timm names,
the weights folder and download path, and - where $MINIDL_TORCH_PYTHON names an
interpreter with torch and torchvision - logits equal to torchvision's."""
import hashlib
import io
import os
import pickle
import subprocess
import sys
import types
import urllib.error
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minidl
import minidl.models as models
from minidl import io as mio
from minidl.pth import UnsafePickleError, read_pth
from minidl.models import pretrained

HERE = os.path.dirname(os.path.abspath(__file__))
_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage",
                  np.dtype(np.float64): "DoubleStorage"}


class _StorageRef:
    def __init__(self, key, array):
        self.key, self.array = key, array


def write_pth(path, state, monkeypatch, legacy=False):
    """torch.save's zip layout, written without torch: fake ``torch`` modules let pickle name
    ``torch._utils._rebuild_tensor_v2`` and the storage types as torch does."""
    torch_mod, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch_mod._utils = utils
    storage_types = {}
    for dtype, name in _STORAGE_NAMES.items():
        storage_types[dtype] = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch_mod, name, storage_types[dtype])
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __init__(self, key, array):
            self.ref, self.shape = _StorageRef(key, np.ascontiguousarray(array)), array.shape

        def __reduce__(self):
            strides = tuple(s // self.ref.array.itemsize for s in self.ref.array.strides)
            return _rebuild_tensor_v2, (self.ref, 0, self.shape, strides, False, OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _StorageRef):
                return ("storage", storage_types[obj.array.dtype], obj.key, "cpu", obj.array.size)
            return None

    tensors = OrderedDict((k, Tensor(str(i), np.asarray(v))) for i, (k, v) in enumerate(state.items()))
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(tensors)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for t in tensors.values():
            z.writestr(f"archive/data/{t.ref.key}", t.ref.array.tobytes())


class _Evil:
    def __reduce__(self):
        return os.system, ("echo pwned > pwned.txt",)


def test_read_pth_round_trip(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    state = OrderedDict(w=rng.standard_normal((3, 4)).astype(np.float32),
                        n=np.arange(5, dtype=np.int64), d=rng.standard_normal(2))
    write_pth(tmp_path / "m.pth", state, monkeypatch)
    monkeypatch.undo()
    got = read_pth(tmp_path / "m.pth")
    assert list(got) == list(state)
    for k in state:
        np.testing.assert_array_equal(got[k], state[k])
        assert got[k].dtype == state[k].dtype


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_pickle_calling_os_system_is_refused(tmp_path, monkeypatch, layout):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    payload = pickle.dumps({"weight": _Evil()}, protocol=2)
    if layout == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", payload)
    else:
        header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
        path.write_bytes(header + payload)
    with pytest.raises(UnsafePickleError, match=r"asks for (posix|nt|os)\.system.*refused"):
        read_pth(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_not_a_torch_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.pth").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="neither a zip archive nor a legacy torch.save file"):
        read_pth(tmp_path / "x.pth")


def timm_efficientnet_b0_state(rng):
    """timm's efficientnet_b0 names and shapes, spelled from its architecture string
    (ds_r1_k3_s1_e1_c16_se0.25, ir_r2_k3_s2_e6_c24_se0.25, ir_r2_k5_s2_e6_c40_se0.25,
    ir_r3_k3_s2_e6_c80_se0.25, ir_r3_k5_s1_e6_c112_se0.25, ir_r4_k5_s2_e6_c192_se0.25,
    ir_r1_k3_s1_e6_c320_se0.25)."""
    state = OrderedDict()

    def conv(name, shape, bias=False):
        state[name + ".weight"] = rng.standard_normal(shape).astype(np.float32) * 0.1
        if bias:
            state[name + ".bias"] = rng.standard_normal(shape[0]).astype(np.float32) * 0.1

    def bn(name, c):
        state[name + ".weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        state[name + ".bias"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        state[name + ".running_mean"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        state[name + ".running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        state[name + ".num_batches_tracked"] = np.array(0, np.int64)

    conv("conv_stem", (32, 3, 3, 3))
    bn("bn1", 32)
    stages = [(1, 3, 1, 16), (2, 3, 6, 24), (2, 5, 6, 40), (3, 3, 6, 80), (3, 5, 6, 112),
              (4, 5, 6, 192), (1, 3, 6, 320)]
    c = 32
    for s, (repeats, k, e, out) in enumerate(stages):
        for i in range(repeats):
            p, mid, se = f"blocks.{s}.{i}", c * e, int(c * 0.25)
            if e == 1:
                conv(p + ".conv_dw", (c, 1, k, k))
                bn(p + ".bn1", c)
                conv(p + ".se.conv_reduce", (se, c, 1, 1), True)
                conv(p + ".se.conv_expand", (c, se, 1, 1), True)
                conv(p + ".conv_pw", (out, c, 1, 1))
                bn(p + ".bn2", out)
            else:
                conv(p + ".conv_pw", (mid, c, 1, 1))
                bn(p + ".bn1", mid)
                conv(p + ".conv_dw", (mid, 1, k, k))
                bn(p + ".bn2", mid)
                conv(p + ".se.conv_reduce", (se, mid, 1, 1), True)
                conv(p + ".se.conv_expand", (mid, se, 1, 1), True)
                conv(p + ".conv_pwl", (out, mid, 1, 1))
                bn(p + ".bn3", out)
            c = out
    conv("conv_head", (1280, 320, 1, 1))
    bn("bn2", 1280)
    conv("classifier", (1000, 1280), True)
    return state


def test_timm_efficientnet_b0_safetensors_loads(tmp_path):
    state = timm_efficientnet_b0_state(np.random.default_rng(0))
    from safetensors.numpy import save_file
    save_file(dict(state), str(tmp_path / "model.safetensors"))
    net = models.create("efficientnet_b0", pretrained=str(tmp_path / "model.safetensors"))
    ours = dict(net.state_dict())
    np.testing.assert_array_equal(ours["features.0.0.weight"], state["conv_stem.weight"])
    np.testing.assert_array_equal(ours["features.1.0.block.1.fc2.bias"], state["blocks.0.0.se.conv_expand.bias"])
    np.testing.assert_array_equal(ours["features.4.2.block.1.0.weight"], state["blocks.3.2.conv_dw.weight"])
    np.testing.assert_array_equal(ours["features.6.3.block.3.1.running_var"], state["blocks.5.3.bn3.running_var"])
    np.testing.assert_array_equal(ours["features.8.1.bias"], state["bn2.bias"])
    np.testing.assert_array_equal(ours["classifier.1.weight"], state["classifier.weight"])


def test_own_safetensors_and_new_head(tmp_path):
    src = models.create("resnet18")
    mio.save(src, tmp_path / "r18.safetensors")
    net = models.create("resnet18", num_classes=10, pretrained=tmp_path / "r18.safetensors")
    ours, theirs = dict(net.state_dict()), dict(src.state_dict())
    np.testing.assert_array_equal(ours["layer4.1.conv2.weight"], theirs["layer4.1.conv2.weight"])
    assert ours["fc.weight"].shape == (10, 512)
    with pytest.raises(ValueError, match="model keys without a value .*layer1.2.conv1.weight"):
        models.create("resnet34", pretrained=tmp_path / "r18.safetensors")


def test_pretrained_true_offline_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(pretrained.urllib.request, "urlopen", offline)
    folder = os.path.join(str(tmp_path), "weights")
    with pytest.raises(FileNotFoundError, match=rf"resnet18-f37072fd\.pth is not in {folder}.*put it at"):
        models.create("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="googlenet has no published weights: the paper's GoogLeNet"):
        models.create("googlenet", pretrained=True)


def test_registry_lists_weights_or_a_reason_for_every_model():
    for name in models.list_models():
        assert (name in pretrained.TORCHVISION_WEIGHTS) != (name in pretrained.NO_WEIGHTS), name


class _FakeResponse(io.BytesIO):
    headers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.mark.parametrize("hash_ok", [True, False])
def test_download_checks_hash_prefix(tmp_path, monkeypatch, hash_ok):
    src = models.create("lenet5")
    write_pth(tmp_path / "src.pth", src.state_dict(), monkeypatch)
    monkeypatch.undo()
    data = (tmp_path / "src.pth").read_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8] if hash_ok else "00000000"
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(pretrained.TORCHVISION_WEIGHTS, "lenet5", f"https://example.invalid/lenet5-{prefix}.pth")
    monkeypatch.delitem(pretrained.NO_WEIGHTS, "lenet5")
    monkeypatch.setattr(pretrained.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(data))
    target = tmp_path / "home" / "weights" / f"lenet5-{prefix}.pth"
    if hash_ok:
        net = models.create("lenet5", pretrained=True)
        for k, v in src.state_dict().items():
            np.testing.assert_array_equal(dict(net.state_dict())[k], v)
        assert target.is_file()
    else:
        with pytest.raises(ValueError, match="corrupt or not the published file"):
            models.create("lenet5", pretrained=True)
        assert not target.exists() and not os.listdir(target.parent)


TORCH_PYTHON = os.environ.get("MINIDL_TORCH_PYTHON")


@pytest.mark.skipif(not TORCH_PYTHON, reason="set MINIDL_TORCH_PYTHON to a Python with torch and "
                                             "torchvision to compare logits against torchvision")
@pytest.mark.parametrize("name,layout", [("resnet18", "zip"), ("mobilenet_v2", "zip"),
                                         ("densenet121", "legacy"), ("efficientnet_b0", "zip")])
def test_logits_match_torchvision(tmp_path, name, layout):
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([TORCH_PYTHON, os.path.join(HERE, "torch_scripts", "torchvision_logits.py"), name,
                    str(tmp_path / "w.pth"), str(tmp_path / "logits.npy"), str(tmp_path / "x.npy"), layout],
                   check=True, timeout=600)
    net = models.create(name, pretrained=str(tmp_path / "w.pth"))
    net.eval()
    with minidl.no_grad():
        got = net(minidl.tensor(x)).numpy()
    np.testing.assert_allclose(got, np.load(tmp_path / "logits.npy"), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not TORCH_PYTHON, reason="set MINIDL_TORCH_PYTHON to a Python with torch and "
                                             "timm to compare logits against timm")
@pytest.mark.parametrize("ours,kwargs,theirs", [("mobilenet_v1", {"activation": "relu6"}, "mobilenetv1_100"),
                                                ("xception", {}, "legacy_xception"),
                                                ("inception_v3", {}, "inception_v3")])
def test_logits_match_timm(tmp_path, ours, kwargs, theirs):
    """timm's own safetensors (its names) load with timm's logits; timm's Inception-v3 has
    no auxiliary head, which keeps its fresh initialization.  Random weights with random
    batch-norm statistics let activations grow through the deep nets (Inception-v3's
    logits reach 1e12), so the bound is relative to the largest logit."""
    x = np.random.default_rng(0).standard_normal((2, 3, 128, 128)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([TORCH_PYTHON, os.path.join(HERE, "torch_scripts", "timm_logits.py"), theirs,
                           str(tmp_path / "model.safetensors"), str(tmp_path / "logits.npy"), str(tmp_path / "x.npy")],
                          timeout=600)
    if proc.returncode == 3:
        pytest.skip(f"timm is not installed for {TORCH_PYTHON}")
    assert proc.returncode == 0
    net = models.create(ours, pretrained=str(tmp_path / "model.safetensors"), **kwargs)
    net.eval()
    with minidl.no_grad():
        got = net(minidl.tensor(x)).numpy()
    want = np.load(tmp_path / "logits.npy")
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (got, want)


def test_timm_mobilenet_v1_names_map_to_ours(tmp_path):
    """timm's mobilenetv1_100 names (stem, blocks.<stage>.<i>.{conv_dw,bn1,conv_pw,bn2},
    classifier; listed from timm 1.0.31) load into every block in order."""
    net = models.create("mobilenet_v1")
    values = [v for _, v in net.state_dict().items()]
    names = ["conv_stem.weight"] + [f"bn1.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                          "num_batches_tracked")]
    for stage, blocks in enumerate((1, 2, 2, 6, 2)):
        for i in range(blocks):
            for conv, bn in (("conv_dw", "bn1"), ("conv_pw", "bn2")):
                names += [f"blocks.{stage}.{i}.{conv}.weight"] + [
                    f"blocks.{stage}.{i}.{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                              "num_batches_tracked")]
    names += ["classifier.weight", "classifier.bias"]
    rng = np.random.default_rng(1)
    state = {n: (rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f" else v.copy())
             for n, v in zip(names, values)}
    from safetensors.numpy import save_file
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = dict(models.create("mobilenet_v1", pretrained=str(tmp_path / "model.safetensors")).state_dict())
    np.testing.assert_array_equal(loaded["features.0.0.weight"], state["conv_stem.weight"])
    np.testing.assert_array_equal(loaded["features.1.dw.0.weight"], state["blocks.0.0.conv_dw.weight"])
    np.testing.assert_array_equal(loaded["features.6.pw.1.running_var"], state["blocks.3.0.bn2.running_var"])
    np.testing.assert_array_equal(loaded["features.13.dw.1.bias"], state["blocks.4.1.bn1.bias"])
    np.testing.assert_array_equal(loaded["classifier.weight"], state["classifier.weight"])


def test_timm_regularizer_names():
    net = models.create("efficientnet_b0", num_classes=10, drop_rate=0.3, drop_path_rate=0.1)
    assert net.classifier[0].p == 0.3
    depths = [m.stochastic_depth.p for m in net.modules() if hasattr(m, "stochastic_depth")]
    assert depths[0] == 0 and 0 < depths[-1] < 0.1
    assert models.create("mobilenet_v2", num_classes=10, drop_rate=0.5).classifier[0].p == 0.5
    with pytest.raises(TypeError, match="vgg16 has no drop_path_rate"):
        models.create("vgg16", drop_path_rate=0.1)


@pytest.mark.parametrize("name,first,last", [("resnet50", 0.0, 0.2), ("resnext50_32x4d", 0.0, 0.2),
                                             ("mobilenet_v2", 0.2 * 2 / 17, 0.2 * 15 / 17)])
def test_drop_path_rate_in_resnet_and_mobilenet_v2(name, first, last):
    """timm's drop_path_rate: ResNet's block k of n drops with p * k / (n - 1) (the first
    block never), MobileNetV2's shortcut blocks with p * k / n; evaluation is unchanged and
    training drops whole samples' branches."""
    net = models.create(name, num_classes=10, drop_rate=0.1, drop_path_rate=0.2)
    rates = [m.drop_path.p for m in net.modules() if getattr(m, "drop_path", None) is not None]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(last)
    assert rates[0] == pytest.approx(first) if first else rates[0] > 0
    plain = models.create(name, num_classes=10)
    plain.load_state_dict(net.state_dict())  # no new parameters: the same state dict
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    net.eval(), plain.eval()
    with minidl.no_grad():
        np.testing.assert_array_equal(net(x).numpy(), plain(x).numpy())
    net.train(), plain.train()
    minidl.manual_seed(0)
    with minidl.no_grad():
        assert not np.allclose(net(x).numpy(), plain(x).numpy())
    with pytest.raises(TypeError, match="give drop_rate or dropout, not both"):
        models.create("vgg16", drop_rate=0.1, dropout=0.2)


def test_truncated_pth_is_a_clear_error(tmp_path, monkeypatch):
    write_pth(tmp_path / "m.pth", OrderedDict(w=np.ones((4, 4), np.float32)), monkeypatch)
    monkeypatch.undo()
    data = (tmp_path / "m.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="cut.pth is damaged or not a torch.save file"):
        read_pth(tmp_path / "cut.pth")
