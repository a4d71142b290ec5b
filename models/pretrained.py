"""Pretrained weights: ``create(name, pretrained=True | "path")``.

Sources, by file name:

- ``*.pth`` / ``*.pt`` / ``*.bin``: a torchvision (or any ``torch.save``) state dict, read
  by ``minidl.pth.read_pth`` without importing torch, mapped by
  ``load_torchvision_state_dict``;
- ``*.safetensors``: minidl's own checkpoints, or timm / Hugging Face ``model.safetensors``
  files, whose names are mapped to ours where timm's differ (EfficientNet, MobileNet v1;
  timm's ResNet, DenseNet, VGG, legacy_xception and Inception-v3 already use ours; a file
  without Inception-v3's auxiliary head, as timm's, leaves that head freshly initialized).

``pretrained=True`` uses the torchvision file listed in ``TORCHVISION_WEIGHTS`` from the
weights folder (``$MINIDL_HOME/weights``, else ``~/.cache/minidl/weights``), downloading it
when missing and checking the SHA-256 prefix in its name as torchvision does.  Models
without published weights are listed, with the reason, in ``NO_WEIGHTS``.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request

from minidl import io as mio
from minidl.pth import read_pth

from .torchvision_compat import load_torchvision_state_dict

_TV = "https://download.pytorch.org/models/"

# torchvision's IMAGENET1K_V1 weights: the ones trained with each paper's own recipe
TORCHVISION_WEIGHTS = {
    "alexnet_owt": _TV + "alexnet-owt-7be5be79.pth",
    "vgg16": _TV + "vgg16-397923af.pth", "vgg16_bn": _TV + "vgg16_bn-6c64b313.pth",
    "vgg19": _TV + "vgg19-dcbb9e9d.pth", "vgg19_bn": _TV + "vgg19_bn-c79401a0.pth",
    "resnet18": _TV + "resnet18-f37072fd.pth", "resnet34": _TV + "resnet34-b627a593.pth",
    "resnet50": _TV + "resnet50-0676ba61.pth", "resnet101": _TV + "resnet101-63fe2227.pth",
    "resnet152": _TV + "resnet152-394f9c45.pth",
    "resnext50_32x4d": _TV + "resnext50_32x4d-7cdf4587.pth",
    "resnext101_32x8d": _TV + "resnext101_32x8d-8ba56ff5.pth",
    "resnext101_64x4d": _TV + "resnext101_64x4d-173b62eb.pth",
    "densenet121": _TV + "densenet121-a639ec97.pth", "densenet169": _TV + "densenet169-b2777c0a.pth",
    "densenet201": _TV + "densenet201-c1103571.pth",
    "inception_v3": _TV + "inception_v3_google-0cc3c7bd.pth",
    "mobilenet_v2": _TV + "mobilenet_v2-b0353104.pth",
    "efficientnet_b0": _TV + "efficientnet_b0_rwightman-7f5810bc.pth",
    "efficientnet_b1": _TV + "efficientnet_b1_rwightman-bac287d4.pth",
    "efficientnet_b2": _TV + "efficientnet_b2_rwightman-c35c1473.pth",
    "efficientnet_b3": _TV + "efficientnet_b3_rwightman-b3899882.pth",
    "efficientnet_b4": _TV + "efficientnet_b4_rwightman-23ab8bcd.pth",
    "efficientnet_b5": _TV + "efficientnet_b5_lukemelas-1a07897c.pth",
    "efficientnet_b6": _TV + "efficientnet_b6_lukemelas-24a108a5.pth",
    "efficientnet_b7": _TV + "efficientnet_b7_lukemelas-c5b4e57e.pth",
}

NO_WEIGHTS = {
    "alexnet": "the paper's two-GPU AlexNet (LRN, grouped convs): no published weights fit it; "
               "torchvision's alexnet is minidl's alexnet_owt",
    "googlenet": "the paper's GoogLeNet (LRN, true 5x5 branches): torchvision's googlenet is a "
                 "batch-norm variant whose weights do not map",
    "overfeat_fast": "OverFeat's released weights are in its own binary format, not torch or safetensors",
    "overfeat_accurate": "OverFeat's released weights are in its own binary format, not torch or "
                         "safetensors",
    "inception_v2": "no framework publishes BN-Inception weights with this layout",
    "densenet264": "never released by the authors, torchvision or timm",
    "xception": "torchvision has none; use a timm model.safetensors file via pretrained='path'",
    "mobilenet_v1": "torchvision has none; use a timm mobilenetv1_100 model.safetensors file via "
                    "pretrained='path' with activation='relu6' (timm's blocks use ReLU6)",
    "lenet5": "a 32x32 digit network: train it (minutes) instead",
    "lenet5_bn_w2": "a 32x32 digit network: train it (minutes) instead",
}

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def weights_dir():
    """The folder pretrained files are looked up in and downloaded to."""
    home = os.environ.get("MINIDL_HOME")
    if home:
        return os.path.join(home, "weights")
    return os.path.join(os.path.expanduser("~"), ".cache", "minidl", "weights")


def check_hash_prefix(path):
    """Compare the file's SHA-256 with the hex prefix in its name (``name-<prefix>.pth``)."""
    match = _HASH_IN_NAME.search(os.path.basename(path))
    if not match:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        raise ValueError(f"pretrained: {path} is corrupt or not the published file: its SHA-256 "
                         f"starts {digest.hexdigest()[:len(match.group(1))]}, its name says "
                         f"{match.group(1)}; delete it and download again")


def download(url, path):
    """Fetch ``url`` into ``path`` with a progress bar; the file appears only once complete
    and its hash prefix matched."""
    from tqdm import tqdm
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(path)) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))
    try:
        check_hash_prefix(partial)
    except ValueError:
        os.unlink(partial)
        raise
    os.replace(partial, path)


def published_file(name):
    """The local path of ``name``'s published weights, downloaded when missing."""
    if name in NO_WEIGHTS:
        raise ValueError(f"pretrained: {name} has no published weights: {NO_WEIGHTS[name]}")
    if name not in TORCHVISION_WEIGHTS:
        raise ValueError(f"pretrained: no weights are registered for {name!r}; pass "
                         f"pretrained='path/to/file' (.pth or .safetensors)")
    url = TORCHVISION_WEIGHTS[name]
    path = os.path.join(weights_dir(), os.path.basename(url))
    if os.path.isfile(path):
        return path
    try:
        download(url, path)
    except (urllib.error.URLError, OSError) as e:
        raise FileNotFoundError(
            f"pretrained: {os.path.basename(path)} is not in {weights_dir()} and could not be "
            f"downloaded ({e}). Fetch {url} elsewhere and put it at {path} (set MINIDL_HOME to "
            f"use another folder)") from None
    return path


def _timm_efficientnet_key(key):
    """timm's EfficientNet names -> torchvision's (ours)."""
    fixed = {"conv_stem.weight": "features.0.0.weight", "conv_head.weight": "features.8.0.weight"}
    if key in fixed:
        return fixed[key]
    for timm_prefix, ours in (("bn1.", "features.0.1."), ("bn2.", "features.8.1."),
                              ("classifier.", "classifier.1.")):
        if key.startswith(timm_prefix):
            return ours + key[len(timm_prefix):]
    m = re.match(r"blocks\.(\d+)\.(\d+)\.(.+)$", key)
    if not m:
        return key
    stage, index, rest = int(m.group(1)), m.group(2), m.group(3)
    if stage == 0:   # depthwise-separable block: dw, SE, project
        parts = {"conv_dw": "0.0", "bn1": "0.1", "se.conv_reduce": "1.fc1", "se.conv_expand": "1.fc2",
                 "conv_pw": "2.0", "bn2": "2.1"}
    else:            # inverted residual: expand, dw, SE, project
        parts = {"conv_pw": "0.0", "bn1": "0.1", "conv_dw": "1.0", "bn2": "1.1",
                 "se.conv_reduce": "2.fc1", "se.conv_expand": "2.fc2", "conv_pwl": "3.0", "bn3": "3.1"}
    for part, ours in parts.items():
        if rest.startswith(part + "."):
            return f"features.{stage + 1}.{index}.block.{ours}.{rest[len(part) + 1:]}"
    return key


# timm's mobilenetv1_100 (its EfficientNet builder): blocks per stage, in our features order
_TIMM_MOBILENET_V1_STAGES = (1, 2, 2, 6, 2)


def _timm_mobilenet_v1_key(key):
    """timm's mobilenetv1_* names -> ours (features.0 = stem, features.1..13 = dw/pw blocks)."""
    for timm_prefix, ours in (("conv_stem.", "features.0.0."), ("bn1.", "features.0.1.")):
        if key.startswith(timm_prefix):
            return ours + key[len(timm_prefix):]
    m = re.match(r"blocks\.(\d+)\.(\d+)\.(conv_dw|bn1|conv_pw|bn2)\.(.+)$", key)
    if not m:
        return key
    stage, index = int(m.group(1)), int(m.group(2))
    block = 1 + sum(_TIMM_MOBILENET_V1_STAGES[:stage]) + index
    part = {"conv_dw": "dw.0", "bn1": "dw.1", "conv_pw": "pw.0", "bn2": "pw.1"}[m.group(3)]
    return f"features.{block}.{part}.{m.group(4)}"


# timm's names where they differ from ours; timm's legacy_xception, inception_v3, ResNet,
# DenseNet and VGG use ours already (timm's inception_v3 has no auxiliary head)
_TIMM_KEY_MAPS = {"efficientnet": _timm_efficientnet_key, "mobilenet_v1": _timm_mobilenet_v1_key}


def timm_to_minidl(name, state_dict):
    """Rename a timm state dict's keys for model ``name``."""
    for prefix, mapper in _TIMM_KEY_MAPS.items():
        if name.startswith(prefix):
            return {mapper(k): v for k, v in state_dict.items()}
    return dict(state_dict)


def _new_head_keys(model, state, num_classes):
    """Keys of the classifier the file was trained with, when ``model`` has another number
    of classes: mis-shaped in their first dimension only, which is ``num_classes`` here."""
    shapes = {k: tuple(t.shape) for k, t in model._state_items()}
    return [k for k, v in state.items() if k in shapes and tuple(v.shape) != shapes[k]
            and shapes[k][0] == num_classes and tuple(v.shape[1:]) == shapes[k][1:]]


def _load_state(model, state, num_classes):
    state = dict(state)
    head = _new_head_keys(model, state, num_classes)
    for key in head:
        del state[key]
    # a file without the auxiliary head (timm's Inception-v3): used only in training, it
    # keeps its fresh initialization
    aux = [k for k, _ in model._state_items() if k.startswith("AuxLogits.")]
    no_aux = aux if aux and not any(k.startswith("AuxLogits.") for k in state) else []
    result = load_torchvision_state_dict(model, state, strict=not (head or no_aux))
    left = sorted(set(result.missing) - set(head) - set(no_aux))
    if left:
        raise ValueError(f"pretrained: the file gives no value to {len(left)} model keys beside "
                         f"the new {num_classes}-class head: {left[:10]}")


def load_pretrained(model, name, source, num_classes=1000):
    """Load ``source`` (True: the published file; or a path) into ``model`` (built as
    ``name``) and return it.  With ``num_classes`` other than the file's, the classifier
    keeps its fresh initialization (fine-tuning) and everything else is loaded."""
    path = published_file(name) if source is True else os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained: no weights file at {path!r}")
    if path.endswith(".safetensors"):
        state = mio.load(path)
        ours = {k for k, _ in model._state_items()}
        mapped = timm_to_minidl(name, state)
        if len(ours & set(mapped)) > len(ours & set(state)):  # timm's names
            state = mapped
    elif path.endswith((".pth", ".pt", ".bin")):
        state = read_pth(path)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    else:
        raise ValueError(f"pretrained: expected a .pth, .pt, .bin or .safetensors file, got {path!r}")
    if not isinstance(state, dict):
        raise ValueError(f"pretrained: {path!r} holds a {type(state).__name__}, not a state dict")
    _load_state(model, state, num_classes)
    return model
