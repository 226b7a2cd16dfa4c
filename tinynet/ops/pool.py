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

The windows are a strided view of the (padded) input, shaped
(KH, KW, N, C, OH, OW) -- for the usual case stride == window that view is
just x.reshape(N, C, OH, KH, OW, KW) reordered -- and are copied once so
that each kernel offset (kh, kw) is a contiguous (N, C, OH, OW) slab.  A loop
over the KH·KW offsets (never over pixels) then keeps the running maximum
and the offset it came from.  Backward writes g back through the same
strided view of dx, one offset at a time.
"""
import numpy as np

from tinynet.backend import array_module
from tinynet.ops.conv import workspace
from tinynet.tensor import Function, as_tensor


def _pair(value, what):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"max_pool2d: {what} must be an int or a pair of ints, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def _windows_view(xpad, kernel, stride, out_hw):
    """(KH, KW, N, C, OH, OW) strided view: [kh, kw, n, c, i, j] = xpad[n, c, i·SH+kh, j·SW+kw].

    Any memory order of xpad works: the strides are read from it.
    """
    (KH, KW), (SH, SW), (OH, OW) = kernel, stride, out_hw
    N, C = xpad.shape[:2]
    sN, sC, sH, sW = xpad.strides
    return array_module(xpad).lib.stride_tricks.as_strided(
        xpad, shape=(KH, KW, N, C, OH, OW), strides=(sH, sW, sN, sC, sH * SH, sW * SW))


def _channel_major(a):
    """True if a (N, C, H, W) array is laid out channel by channel in memory."""
    return a.strides[1] > a.strides[0]


def _swap_nc(a, swap):
    """a with its first two axes swapped (a view) if ``swap``; its own inverse."""
    return a.transpose(1, 0, 2, 3) if swap else a


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
        # Work in x's memory order of the (N, C) axes: conv2d's output is
        # channel-major, and gathering it batch-major would stride across
        # the whole tensor for every window.
        self.channel_major = _channel_major(x)
        x = _swap_nc(x, self.channel_major)
        B1, B2, H, W = x.shape                                # (N, C) or (C, N)
        (KH, KW), (PH, PW) = self.kernel, self.padding
        OH, OW = self._geometry(x.shape)
        xpad = x
        if PH or PW:
            xpad = xp.full((B1, B2, H + 2 * PH, W + 2 * PW), -np.inf, dtype=x.dtype)
            xpad[:, :, PH:PH + H, PW:PW + W] = x
        buf = workspace.empty(xp, (KH * KW, B1, B2, OH, OW), x.dtype)
        buf.reshape(KH, KW, B1, B2, OH, OW)[...] = _windows_view(
            xpad, self.kernel, self.stride, (OH, OW))         # one contiguous slab per offset
        index_dtype = xp.uint8 if KH * KW <= 256 else xp.int32
        y = buf[0].copy()
        argmax = xp.zeros(y.shape, dtype=index_dtype)
        for k in range(1, KH * KW):
            better = buf[k] > y                               # strictly: ties keep the first
            xp.maximum(y, buf[k], out=y)
            # argmax < k everywhere, so this sets it to k exactly where `better`
            # (arithmetic, much faster than a masked assignment)
            xp.maximum(argmax, better * index_dtype(k), out=argmax)
        workspace.give_back(buf)
        self.argmax, self.in_hw = argmax, (H, W)
        return _swap_nc(y, self.channel_major)

    def backward(self, g):
        xp = array_module(g)
        # Follow g's memory order (it is the bigger array); re-lay the small
        # integer argmax if it was stored the other way.
        channel_major = _channel_major(g)
        g = _swap_nc(g, channel_major)
        argmax = self.argmax
        if channel_major != self.channel_major:
            argmax = xp.ascontiguousarray(argmax.transpose(1, 0, 2, 3))
        B1, B2, OH, OW = g.shape
        H, W = self.in_hw
        (KH, KW), (SH, SW), (PH, PW) = self.kernel, self.stride, self.padding
        overlapping = SH < KH or SW < KW
        tiles_exactly = (not overlapping and (SH, SW) == (KH, KW) and not (PH or PW)
                         and (OH * SH, OW * SW) == (H, W))
        # every element is written exactly once when the windows tile x
        alloc = xp.empty if tiles_exactly else xp.zeros
        dxpad = alloc((B1, B2, H + 2 * PH, W + 2 * PW), dtype=g.dtype)
        slabs = _windows_view(dxpad, self.kernel, self.stride, (OH, OW))
        for kh in range(KH):
            for kw in range(KW):
                routed = argmax == kh * KW + kw                  # (B1, B2, OH, OW) bool
                if overlapping:     # windows share elements: accumulate
                    slabs[kh, kw] += g * routed
                else:               # each element in at most one window: write
                    xp.multiply(g, routed, out=slabs[kh, kw])
        dx = dxpad[:, :, PH:PH + H, PW:PW + W] if (PH or PW) else dxpad
        return (_swap_nc(dx, channel_major),)


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
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    padding = _pair(padding, "padding")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"max_pool2d: kernel_size and stride must be positive, got "
                         f"kernel_size={kernel_size!r}, stride={stride!r}")
    if min(padding) < 0 or padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"max_pool2d: padding must be between 0 and half the window "
                         f"(at most {(kernel[0] // 2, kernel[1] // 2)} for a "
                         f"{kernel[0]}x{kernel[1]} window), got {padding!r}")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"max_pool2d: input has dtype {x.dtype}; it must be floating "
                        f"point: convert with .astype('float32')")
    H, W = x.shape[2:]
    if kernel[0] > H + 2 * padding[0] or kernel[1] > W + 2 * padding[1]:
        raise ValueError(f"max_pool2d: window {kernel[0]}x{kernel[1]} is larger than the "
                         f"padded input {H + 2 * padding[0]}x{W + 2 * padding[1]} (input "
                         f"shape {x.shape}, padding {padding})")
    return MaxPool2D(kernel, stride, padding)(x)
