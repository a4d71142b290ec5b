"""Run by tests/test_pretrained.py under $MINIDL_TORCH_PYTHON (an interpreter with torch and
timm): build a timm model with seeded random weights and randomized batch-norm statistics,
save its state dict as safetensors (timm's own names), and save its eval-mode logits on a
seeded input.  Exit code 3: timm is not installed there.

    python timm_logits.py <timm model> <out.safetensors> <out_logits.npy> <input.npy>
"""
import sys

import torch

try:
    import timm
except ImportError:
    sys.exit(3)
from reference_logits import randomized_logits
from safetensors.torch import save_file

name, weights, logits_path, input_path = sys.argv[1:5]
torch.manual_seed(0)
model = timm.create_model(name, pretrained=False)
randomized_logits(model, input_path, logits_path)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
