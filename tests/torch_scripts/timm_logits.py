"""Run by tests/test_pretrained.py under $MINIDL_TORCH_PYTHON (an interpreter with torch and
timm): build a timm model with seeded random weights and randomized batch-norm statistics,
save its state dict as safetensors (timm's own names), and save its eval-mode logits on a
seeded input.  Exit code 3: timm is not installed there.

    python timm_logits.py <timm model> <out.safetensors> <out_logits.npy> <input.npy>
"""
import sys

import numpy as np
import torch

try:
    import timm
except ImportError:
    sys.exit(3)
from safetensors.torch import save_file

name, weights, logits_path, input_path = sys.argv[1:5]
torch.manual_seed(0)
model = timm.create_model(name, pretrained=False).eval()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
    x = torch.from_numpy(np.load(input_path))
    np.save(logits_path, model(x).double().numpy())
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
