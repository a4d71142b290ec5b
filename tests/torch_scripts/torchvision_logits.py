"""Run by tests/test_pretrained.py under $MINIDL_TORCH_PYTHON (an interpreter with torch and
torchvision): build a torchvision model with seeded random weights and randomized batch-norm
statistics, torch.save its state dict, and save its eval-mode logits on a seeded input.

    python torchvision_logits.py <model> <out.pth> <out_logits.npy> <input.npy> <zip|legacy>
"""
import sys

import torch
import torchvision
from reference_logits import randomized_logits

name, pth, logits_path, input_path, layout = sys.argv[1:6]
torch.manual_seed(0)
model = getattr(torchvision.models, name)(weights=None)
randomized_logits(model, input_path, logits_path)
torch.save(model.state_dict(), pth, _use_new_zipfile_serialization=(layout == "zip"))
