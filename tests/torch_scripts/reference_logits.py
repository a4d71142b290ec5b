"""Shared by the torch scripts: a model's eval-mode logits with randomized batch-norm
statistics and affine parameters (so that a loader mixing up BN tensors shows)."""
import numpy as np
import torch


def randomized_logits(model, input_path, logits_path):
    """Randomize ``model``'s BN (seeded by the caller), save its logits on the input."""
    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        x = torch.from_numpy(np.load(input_path))
        np.save(logits_path, model(x).double().numpy())
