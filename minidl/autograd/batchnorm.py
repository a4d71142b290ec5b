"""PLACEHOLDER: being written by a helper."""

def batch_norm(*args, **kwargs):
    raise NotImplementedError("batch_norm")


