"""Run by tests/test_pretrained.py under $MINIDL_TORCH_PYTHON (an interpreter with torch and
torchvision): build a torchvision model with seeded random weights and randomized batch-norm
statistics, torch.save its state dict, and save its eval-mode logits on a seeded input.

    python torchvision_logits.py <model> <out.pth> <out_logits.npy> <input.npy> <zip|legacy>
"""
import sys

import numpy as np
import torch
import torchvision

name, pth, logits_path, input_path, layout = sys.argv[1:6]
torch.manual_seed(0)
model = getattr(torchvision.models, name)(weights=None).eval()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
    x = torch.from_numpy(np.load(input_path))
    np.save(logits_path, model(x).double().numpy())
torch.save(model.state_dict(), pth, _use_new_zipfile_serialization=(layout == "zip"))
