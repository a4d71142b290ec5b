"""PLACEHOLDER: being written by a helper."""

def conv2d(*args, **kwargs):
    raise NotImplementedError("conv2d")


def linear(*args, **kwargs):
    raise NotImplementedError("linear")


