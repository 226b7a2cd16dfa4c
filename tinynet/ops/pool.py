"""2-D max pooling.

Notation
--------
N        batch size
C        channels
H, W     input height and width
KH, KW   window (kernel) height and width
S        stride, (SH, SW); defaults to the window size
P        padding, (PH, PW): rows/columns of -inf added on each side
OH, OW   output height and width: OH = (H + 2·PH - KH) // SH + 1 (floor, as
         PyTorch), likewise OW

x is (N, C, H, W), y is (N, C, OH, OW) with

    y[n, c, i, j] = max_{kh, kw} xpad[n, c, i·SH + kh, j·SW + kw].

The elements of all windows at one kernel offset (kh, kw) form a strided
view of the (padded) input, xpad[:, :, kh::SH, kw::SW] cut to OH x OW.  A
loop over the KH·KW offsets (never over pixels) keeps the running maximum of
those views and the offset it came from; backward writes g back through the
same views of dx, one offset at a time.  Nothing is copied into a windows
array, and every array keeps x's memory order: conv2d's output is
batch-last (C, H, W, N) in memory, in which each view is a run of N
contiguous values per pixel, so the ufuncs stream through memory.
"""
import numpy as np

from tinynet import _checks
from tinynet.backend import array_module
from tinynet.ops._parallel import block_bounds, copy_blocks, run_blocks
from tinynet.tensor import Function, as_tensor


def _offset_view(a, kh, kw, stride, out_hw):
    """The (N, C, OH, OW) view a[:, :, i·SH + kh, j·SW + kw]: every window's (kh, kw) element."""
    (SH, SW), (OH, OW) = stride, out_hw
    return a[:, :, kh:kh + SH * (OH - 1) + 1:SH, kw:kw + SW * (OW - 1) + 1:SW]


def _axis_order(a):
    """a's axes from the outermost to the innermost in memory (by stride)."""
    return tuple(sorted(range(a.ndim), key=lambda i: -abs(a.strides[i])))


def _empty_ordered(xp, shape, dtype, order):
    """An uninitialised array of ``shape`` whose axes lie in memory in ``order``."""
    buf = xp.empty(tuple(shape[i] for i in order), dtype=dtype)
    return buf.transpose(tuple(order.index(i) for i in range(len(order))))


def _channel_blocks(xp, a):
    """Fixed blocks of a's channel axis for the thread pool (one block off the CPU)."""
    C = a.shape[1]
    if xp is not np:
        return [(0, C)]
    return block_bounds(C, copy_blocks(a.size))


class MaxPool2D(Function):
    """y = the maximum of each KH x KW window; the gradient goes to its argmax.

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW).

    Tie rule: each window sends its whole gradient to exactly ONE element,
    the FIRST maximum in row-major order within the window (smallest kh,
    then smallest kw) -- the running maximum is replaced only by a strictly
    greater value.  (PyTorch's CPU kernel picks the same one.)  Where
    windows overlap (stride < window) an element that is the argmax of
    several windows receives the sum of their gradients.  (A window holding
    a NaN outputs NaN; its gradient still goes to one of its elements.)

    Saved for backward: the argmax offset kh·KW + kw of every window, as
    uint8 (int32 for windows of more than 256 elements) -- not the input.
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel, self.stride, self.padding = kernel_size, stride, padding

    def _geometry(self, shape):
        N, C, H, W = shape
        (KH, KW), (SH, SW), (PH, PW) = self.kernel, self.stride, self.padding
        return (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1

    def forward(self, x):
        xp = array_module(x)
        N, C, H, W = x.shape
        (KH, KW), (PH, PW) = self.kernel, self.padding
        OH, OW = self._geometry(x.shape)
        xpad = x
        if PH or PW:                                          # -inf, in x's memory order
            xpad = _empty_ordered(xp, (N, C, H + 2 * PH, W + 2 * PW), x.dtype, _axis_order(x))
            xpad.fill(-np.inf)
            xpad[:, :, PH:PH + H, PW:PW + W] = x
        index_dtype = xp.uint8 if KH * KW <= 256 else xp.int32
        y = _empty_ordered(xp, (N, C, OH, OW), x.dtype, _axis_order(xpad))
        argmax = _empty_ordered(xp, (N, C, OH, OW), index_dtype, _axis_order(xpad))

        def part(chans):            # a block of channels: the whole loop over offsets
            c = slice(*chans)
            xc, yc, ac = xpad[:, c], y[:, c], argmax[:, c]
            yc[...] = _offset_view(xc, 0, 0, self.stride, (OH, OW))
            ac[...] = 0
            better = xp.empty_like(yc, dtype=bool)           # scratch, in yc's memory order
            k_where = xp.empty_like(ac)
            for k in range(1, KH * KW):
                window_k = _offset_view(xc, k // KW, k % KW, self.stride, (OH, OW))
                xp.greater(window_k, yc, out=better)         # strictly: ties keep the first
                xp.maximum(yc, window_k, out=yc)
                # argmax < k everywhere, so this sets it to k exactly where `better`
                # (arithmetic, much faster than a masked assignment)
                xp.multiply(better, index_dtype(k), out=k_where)
                xp.maximum(ac, k_where, out=ac)
        run_blocks(part, _channel_blocks(xp, xpad))
        self.argmax, self.in_hw = argmax, (H, W)
        return y

    def backward(self, g):
        xp = array_module(g)
        argmax = self.argmax
        order = _axis_order(argmax)                           # x's memory order
        if _axis_order(g) != order:
            # e.g. g from Flatten's backward (N, C, H, W) while x was batch-last:
            # one transposing copy of g here keeps dx -- and so the ReLU and
            # conv backward after it -- in x's order; mixing orders in the
            # elementwise ops below would be far slower.
            relaid = _empty_ordered(xp, g.shape, g.dtype, order)
            relaid[...] = g
            g = relaid
        N, C, OH, OW = g.shape
        H, W = self.in_hw
        (KH, KW), (SH, SW), (PH, PW) = self.kernel, self.stride, self.padding
        overlapping = SH < KH or SW < KW
        tiles_exactly = (not overlapping and (SH, SW) == (KH, KW) and not (PH or PW)
                         and (OH * SH, OW * SW) == (H, W))
        dxpad = _empty_ordered(xp, (N, C, H + 2 * PH, W + 2 * PW), g.dtype, order)

        def part(chans):            # a block of channels, offsets in order k = 0, 1, ..
            c = slice(*chans)
            gc, ac, dc = g[:, c], argmax[:, c], dxpad[:, c]
            if not tiles_exactly:   # else every element is written exactly once below
                dc.fill(0)
            for k in range(KH * KW):
                routed = ac == k                              # (N, c, OH, OW) bool
                slab = _offset_view(dc, k // KW, k % KW, self.stride, (OH, OW))
                if overlapping:     # windows share elements: accumulate
                    slab += gc * routed
                else:               # each element in at most one window: write
                    xp.multiply(gc, routed, out=slab)
        run_blocks(part, _channel_blocks(xp, dxpad))
        dx = dxpad[:, :, PH:PH + H, PW:PW + W] if (PH or PW) else dxpad
        return (dx,)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling over KH x KW windows of a batch of images.

    x            (N, C, H, W) Tensor
    kernel_size  int or (KH, KW)
    stride       int or (SH, SW); default: kernel_size (non-overlapping windows)
    padding      int or (PH, PW): -inf rows/columns on each side, at most half
                 the window (as in PyTorch)

    Returns y (N, C, OH, OW), OH = (H + 2·PH - KH) // SH + 1 (rows that do
    not fill a whole window are dropped, as in PyTorch).  The gradient of a
    window goes to its first maximum in row-major order (see MaxPool2D).
    """
    x = as_tensor(x)
    kernel = _checks.pair("max_pool2d", "kernel_size", kernel_size)
    stride = kernel if stride is None else _checks.pair("max_pool2d", "stride", stride)
    padding = _checks.pair("max_pool2d", "padding", padding, minimum=0)
    if min(padding) < 0 or padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"max_pool2d: padding must be between 0 and half the window "
                         f"(at most {(kernel[0] // 2, kernel[1] // 2)} for a "
                         f"{kernel[0]}x{kernel[1]} window), got {padding!r}")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if not _checks.is_float(x.dtype):
        raise TypeError(f"max_pool2d: input has dtype {x.dtype}; it must be floating "
                        f"point: convert with .astype('float32')")
    H, W = x.shape[2:]
    if kernel[0] > H + 2 * padding[0] or kernel[1] > W + 2 * padding[1]:
        raise ValueError(f"max_pool2d: window {kernel[0]}x{kernel[1]} is larger than the "
                         f"padded input {H + 2 * padding[0]}x{W + 2 * padding[1]} (input "
                         f"shape {x.shape}, padding {padding})")
    return MaxPool2D(kernel, stride, padding)(x)
