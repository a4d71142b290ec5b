"""PLACEHOLDER: being written by a helper."""

def softmax_forward(*args, **kwargs):
    raise NotImplementedError("softmax_forward")


def softmax_backward(*args, **kwargs):
    raise NotImplementedError("softmax_backward")


def cross_entropy_forward(*args, **kwargs):
    raise NotImplementedError("cross_entropy_forward")


def cross_entropy_backward(*args, **kwargs):
    raise NotImplementedError("cross_entropy_backward")


