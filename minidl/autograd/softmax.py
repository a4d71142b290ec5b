"""PLACEHOLDER: being written by a helper."""

def softmax(*args, **kwargs):
    raise NotImplementedError("softmax")


def log_softmax(*args, **kwargs):
    raise NotImplementedError("log_softmax")


def cross_entropy(*args, **kwargs):
    raise NotImplementedError("cross_entropy")


