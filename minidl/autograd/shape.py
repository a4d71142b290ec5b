"""Shape ops: reshape, permute, broadcast, indexing, pad, concat/stack/split."""
from __future__ import annotations

from .function import GenericFunction


class _Move(GenericFunction):
    """A shape op: it moves elements and does no arithmetic, so any dtype passes as it is."""

    moves_data_only = True


class Reshape(_Move):
    def forward(self, x):
        self.in_shape = x.shape
        return self.backend.reshape(x, self.shape)

    def backward(self, gy):
        return self.backend.reshape(gy, self.in_shape)


class Permute(_Move):
    def forward(self, x):
        return self.backend.transpose(x, self.axes)

    def backward(self, gy):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return self.backend.transpose(gy, tuple(inverse))


class BroadcastTo(_Move):
    def forward(self, x):
        self.in_shape = x.shape
        try:
            return self.backend.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"expand: cannot broadcast shape {x.shape} to {self.shape}") from None

    def backward(self, gy):
        return self.backend.sum_to_shape(gy, self.in_shape)


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


class GetItem(_Move):
    """Basic slicing scatters the gradient by assignment; advanced (integer array /
    boolean) indexing adds it up, so repeated indices accumulate."""

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        try:
            return self.backend.getitem(x, self.index)
        except IndexError as e:
            raise IndexError(f"getitem: index {self.index!r} is invalid for shape {x.shape}: {e}") from None

    def backward(self, gy):
        return self.backend.scatter(self.in_shape, self.index, gy, gy.dtype,
                                    accumulate=not _is_basic_index(self.index))


class Pad(_Move):
    """Constant padding; ``pad_width`` is NumPy's ((before, after), ...) per axis."""

    def forward(self, x):
        return self.backend.pad(x, self.pad_width, self.value)

    def backward(self, gy):
        index = tuple(slice(b, gy.shape[i] - a) for i, (b, a) in enumerate(self.pad_width))
        return self.backend.ascontiguous(self.backend.getitem(gy, index))


class Concat(_Move):
    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return self.backend.concat(xs, self.axis)

    def backward(self, gy):
        bounds, total = [], 0
        for s in self.sizes[:-1]:
            total += s
            bounds.append(total)
        # Views of gy, not copies: a gradient's consumer accumulates it (one pass) or makes
        # it contiguous itself where its kernel needs that; a leaf gets a copy (backward).
        # (DenseNet-121 splits every block's concatenated gradient at each layer: the
        # copies took 70 ms of a 2.1 s step.)
        return tuple(self.backend.split(gy, bounds, self.axis))


class Stack(_Move):
    def forward(self, *xs):
        return self.backend.stack(xs, self.axis)

    def backward(self, gy):
        be = self.backend
        n = gy.shape[self.axis]
        parts = be.split(gy, list(range(1, n)), self.axis)
        return tuple(be.reshape(p, p.shape[:self.axis] + p.shape[self.axis + 1:]) for p in parts)


class Split(_Move):
    """Split along ``axis`` at ``bounds`` (cumulative indices); one output per part."""

    def forward(self, x):
        return tuple(self.backend.ascontiguous(p) for p in self.backend.split(x, self.bounds, self.axis))

    def backward(self, *gys):
        return self.backend.concat(gys, self.axis)


# ---------------------------------------------------------------- public functions
def _as_tensor_list(tensors, op):
    from ..tensor import Tensor
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors, got none")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(t).__name__}")
    return tensors


def pad(x, pad, value=0.0):
    """PyTorch-style padding: ``pad`` lists (before, after) pairs starting from the last axis."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of values for at most {x.ndim} axes, got {tuple(pad)}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: expected non-negative padding, got {tuple(pad)}")
    width = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        width[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return Pad.apply(x, pad_width=tuple(width), value=value)


def concat(tensors, axis=0):
    from ..tensor import _dim
    tensors = _as_tensor_list(tensors, "concat")
    nd = tensors[0].ndim
    axis = _dim(axis, nd, "concat", "axis")
    ref = tensors[0].shape
    for t in tensors[1:]:
        if t.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref)) if i != axis):
            raise ValueError(
                f"concat: all shapes must match except on axis {axis}, got {ref} and {t.shape}")
    return Concat.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    tensors = _as_tensor_list(tensors, "stack")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all shapes must be equal, got {tensors[0].shape} and {t.shape}")
    from ..tensor import _dim
    return Stack.apply(*tensors, axis=_dim(axis, tensors[0].ndim + 1, "stack", "axis"))


def split(x, split_size_or_sections, axis=0):
    """Like torch.split: an int is the size of each chunk, a list gives every size."""
    from ..tensor import _dim
    axis = _dim(axis, x.ndim, "split", "axis")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: expected a positive chunk size, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes):
            raise ValueError(f"split: expected non-negative sizes, got {sizes}")
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to the axis length {n}")
    bounds, total = [], 0
    for s in sizes[:-1]:
        total += s
        bounds.append(total)
    out = Split.apply(x, bounds=bounds, axis=axis)
    return out if isinstance(out, tuple) else (out,)


def flatten(x, start_dim=1, end_dim=-1):
    return x.flatten(start_dim, end_dim)
