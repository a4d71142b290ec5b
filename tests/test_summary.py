"""minidl.summary: parameters and MACs against hand counts, shape-only mode, argument
checks, and the hooks it leaves behind (none)."""
import pytest

import minidl
from minidl import functional as F
from minidl import nn
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


# OwnConv's functional 1x1 convolution: its output elements * in_channels * 1 * 1
OWN_MACS = {OwnConv: lambda module, args, out: out.numel() * module.weight.shape[1]}

# batch 2, 16x16 input: conv1 16x16 out, pool -> 8x8, conv2 (8-3)//2+1 = 3x3
HAND_MACS = {
    "features.0": 2 * 8 * 16 * 16 * 3 * 3 * 3,       # 110,592
    "features.4": 2 * 16 * 3 * 3 * (8 // 2) * 3 * 3,  # 10,368
    "own": 2 * 4 * 3 * 3 * 16,                        # 1,152
    "fc": 2 * 4 * 4,                                  # 32 per call
}


def test_summary_counts_params_and_macs_by_hand():
    net = HandNet()
    rep = minidl.summary(net, (16, 16), batch_size=2, print_table=False, custom_macs=OWN_MACS)
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
    full = minidl.summary(net, (3, 16, 16), batch_size=2, custom_macs=OWN_MACS)
    printed = capsys.readouterr().out
    assert "Total params:" in printed and "features.4" in printed
    assert "122,176" in printed and "61.088 KMACs per sample" in printed
    fast = minidl.summary(net, 16, batch_size=2, shape_only=True, print_table=False,
                          custom_macs=OWN_MACS)
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
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), Broken())
    with pytest.raises(RuntimeError, match="boom"):
        minidl.summary(net, 8, print_table=False, shape_only=True)
    for module in net.modules():                 # no hook and no shape-only forward is left
        assert not module._forward_pre_hooks and not module._forward_hooks
        assert "forward" not in vars(module)
