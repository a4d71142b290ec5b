"""The geometry of one convolution or pooling: computed once, read by every backend.

``ConvGeometry`` and ``PoolGeometry`` hold every size an op's kernels need, output
sizes included; their fields have the names of the C++ structs in
kernels/launcher.h, to which the kernel backends copy them.  Autograd builds them
(``ConvGeometry.create`` / ``PoolGeometry.create``, after checking the user's
arguments) and stores them on the op's ``Function``; the CPU backend and the kernel
launchers read them and never recompute a size.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

INT32_MAX = 2 ** 31 - 1


@dataclass(frozen=True)
class ConvGeometry:
    """x (N, C, H, W) * weight (O, C/G, KH, KW) -> y (N, O, HO, WO); stride (sh, sw),
    padding (pt, pb, pl, pr) = top, bottom, left, right, dilation (dh, dw), G groups."""
    N: int
    C: int
    H: int
    W: int
    O: int  # noqa: E741 - the C++ struct's name
    KH: int
    KW: int
    HO: int
    WO: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    dh: int
    dw: int
    G: int

    @classmethod
    def create(cls, x_shape, w_shape, stride, padding, dilation, groups):
        """From the shapes and checked arguments: stride and dilation (h, w) pairs,
        padding (top, bottom, left, right).  The output size is PyTorch's
        floor((H + pt + pb - dh * (KH - 1) - 1) / sh) + 1 (columns alike)."""
        n, c, h, w = x_shape
        o, _, kh, kw = w_shape
        sh, sw = stride
        pt, pb, pl, pr = padding
        dh, dw = dilation
        ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        return cls(n, c, h, w, o, kh, kw, ho, wo, sh, sw, pt, pb, pl, pr, dh, dw, groups)

    # the arrays' shapes and the arguments as PyTorch spells them
    x_shape = property(lambda self: (self.N, self.C, self.H, self.W))
    w_shape = property(lambda self: (self.O, self.C // self.G, self.KH, self.KW))
    y_shape = property(lambda self: (self.N, self.O, self.HO, self.WO))
    stride = property(lambda self: (self.sh, self.sw))
    padding = property(lambda self: (self.pt, self.pb, self.pl, self.pr))
    dilation = property(lambda self: (self.dh, self.dw))

    def int32_products(self):
        """The element counts the kernels index with 32-bit ints."""
        return {"H*W": self.H * self.W, "HO*WO": self.HO * self.WO, "KH*KW": self.KH * self.KW,
                "C*KH*KW": self.C * self.KH * self.KW}


@dataclass(frozen=True)
class PoolGeometry:
    """x (N, C, H, W) -> y (N, C, OH, OW) over KH x KW windows at stride (sh, sw)
    with symmetric padding (ph, pw).  Adaptive pooling has no window: KH..pw are 0."""
    N: int
    C: int
    H: int
    W: int
    OH: int
    OW: int
    KH: int = 0
    KW: int = 0
    sh: int = 0
    sw: int = 0
    ph: int = 0
    pw: int = 0

    @classmethod
    def create(cls, x_shape, kernel, stride, padding, ceil_mode):
        """From the input shape and checked (h, w) pairs, with PyTorch's output sizes."""
        n, c, h, w = x_shape
        return cls(n, c, h, w, pool_output_size(h, kernel[0], stride[0], padding[0], ceil_mode),
                   pool_output_size(w, kernel[1], stride[1], padding[1], ceil_mode),
                   kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1])

    @classmethod
    def adaptive(cls, x_shape, output_size):
        n, c, h, w = x_shape
        return cls(n, c, h, w, output_size[0], output_size[1])

    x_shape = property(lambda self: (self.N, self.C, self.H, self.W))
    y_shape = property(lambda self: (self.N, self.C, self.OH, self.OW))

    def int32_products(self):
        """The element counts the kernels index with 32-bit ints."""
        return {"N*C": self.N * self.C, "H*W": self.H * self.W, "OH*OW": self.OH * self.OW}


def pool_output_size(size, kernel, stride, padding, ceil_mode):
    """PyTorch's pooling output length along one axis: floor or ceil of
    (size + 2*padding - kernel) / stride, plus one; with ``ceil_mode`` the last
    window must start inside the input or the left padding."""
    span = size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def check_int32(op, geometry):
    """ValueError naming ``op`` when a field of ``geometry``, or a product the kernels
    index with, exceeds the 32-bit range of the kernels' ints."""
    values = {f"{type(geometry).__name__}.{f.name}": getattr(geometry, f.name) for f in fields(geometry)}
    values.update((f"{type(geometry).__name__}.{name}", v) for name, v in geometry.int32_products().items())
    check_int32_sizes(op, values)


def check_int32_sizes(op, sizes):
    """ValueError naming ``op``, the size and the limit when a value of ``sizes``
    (name -> int) does not fit a kernel's 32-bit int."""
    for name, value in sizes.items():
        if not 0 <= value <= INT32_MAX:
            raise ValueError(f"{op}: {name} = {value} is outside the kernels' 32-bit index range [0, {INT32_MAX}]")
