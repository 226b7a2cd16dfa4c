"""2-D convolution by im2col and one matrix product.

Notation
--------
N        batch size
C        input channels
H, W     input height and width
O        output channels (number of filters)
KH, KW   kernel height and width
S        stride, (SH, SW) = (vertical, horizontal)
P        padding, (PT, PB, PL, PR) = (top, bottom, left, right) zero rows/columns
OH, OW   output height and width: OH = (H + PT + PB - KH) // SH + 1, likewise OW
K        = C·KH·KW, the length of one patch (one row of the flattened weight)
L        = N·OH·OW, the number of output pixels in the batch

x is (N, C, H, W) (NCHW), the weight W is (O, C, KH, KW), the bias b is (O,),
and y is (N, O, OH, OW).  Like every deep-learning library, "convolution"
here is cross-correlation (the kernel is not flipped):

    y[n, o, i, j] = b[o] + sum_{c, kh, kw} W[o, c, kh, kw] · xpad[n, c, i·SH + kh, j·SW + kw]

im2col turns that sum into a matrix product.  cols (K, L) holds in column
(n, i, j) the patch that output pixel sees, rows ordered (c, kh, kw) like
W.reshape(O, K).  Then

    forward   y2 = W2 @ cols                 W2 = W.reshape(O, K), y2 is (O, L)
    backward  dW2 = g2 @ colsᵀ               g2 = g as (O, L); computed as (cols @ g2ᵀ)ᵀ
              db = g2.sum(axis=1)
              dcols = W2ᵀ @ g2               then col2im scatters dcols back to dx

(for horizontal stride 1 dx is computed by an equivalent, cheaper route:
see Conv2D._dx_rows).

Why (K, L) and not (L, K): rows of cols are then runs of neighbouring
pixels, so building cols and scattering dcols back (col2im) copy contiguous
runs, and y2 (O, L) is already laid out channel by channel.

The op itself orders the columns (i, j, n) -- batch innermost, im2col's
``batch_last=True`` -- rather than the (n, i, j) of the plain functions:
then a row of cols is one run of OW·N contiguous values per output row
instead of N runs of OW (14 values for a 14x14 map), which makes building
cols, scattering back and pooling several times cheaper.  y is returned as
a transposed view of y2, memory order (O, OH, OW, N); numpy and CuPy handle
any memory order, ReLU and MaxPool2D keep it, the next conv2d reads its
input in it without a transposing copy, and in backward g2 is then a free
reshape of g.

Speed (CPU): the three GEMMs do the arithmetic; what is left is memory
traffic -- building cols (a K x L matrix, 80 MB for a 5x5 conv of 32
channels on a batch of 128 at 14x14) and scattering back.  The im2col
buffers are recycled between training steps through ``workspace``.
"""
from collections import OrderedDict

import numpy as np

from tinynet.backend import array_module
from tinynet.tensor import Function, Tensor, as_tensor, is_grad_enabled


# --------------------------------------------------------------------------
# argument normalization
# --------------------------------------------------------------------------
def _pair(value, what, op="conv2d"):
    """An int or a pair of ints -> a pair of positive ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in pair):
        raise ValueError(f"{op}: {what} must be a positive int or a pair of positive ints, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def _quad(pad):
    """Padding as int, (PH, PW) or (PT, PB, PL, PR) -> (PT, PB, PL, PR)."""
    if isinstance(pad, (int, np.integer)):
        return (int(pad),) * 4
    pad = tuple(int(p) for p in pad)
    return (pad[0], pad[0], pad[1], pad[1]) if len(pad) == 2 else pad


def conv_output_size(H, W, KH, KW, stride=1, pad=0):
    """(OH, OW) for an H x W input, a KH x KW kernel, stride and padding."""
    SH, SW = _pair(stride, "stride")
    PT, PB, PL, PR = _quad(pad)
    return (H + PT + PB - KH) // SH + 1, (W + PL + PR - KW) // SW + 1


def same_padding(H, W, KH, KW, stride=1):
    """TensorFlow's "same" padding (PT, PB, PL, PR): output size ceil(H / SH).

    The total padding along an axis is max((OH - 1)·SH + KH - H, 0); an odd
    total puts the extra row (column) at the bottom (right).  For an odd
    kernel and stride 1 that is K // 2 on every side.
    """
    SH, SW = _pair(stride, "stride")
    pads = []
    for size, k, s in ((H, KH, SH), (W, KW, SW)):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


# --------------------------------------------------------------------------
# workspace: big scratch arrays reused from one training step to the next
# --------------------------------------------------------------------------
class Workspace:
    """Keeps the large scratch arrays (the im2col matrices) that
    an op is done with, and hands them out again on the next step.

    Why: a conv layer's im2col matrix is tens of megabytes, and a fresh numpy
    array that large is fresh memory from the operating system, which zero-fills
    every page on first touch -- about as slow as filling the matrix itself.
    An array enters only through ``give_back``, called by the op that made it
    once nothing else can see it.  At most ``max_bytes`` are kept, the least
    recently returned going first; ``clear()`` empties it.  CuPy keeps its own
    memory pool, so device arrays are not kept here.
    """

    def __init__(self, max_bytes=512 << 20):
        self.max_bytes, self.bytes, self._free = max_bytes, 0, OrderedDict()

    def empty(self, xp, shape, dtype):
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        if xp is np:
            stack = self._free.get((shape, dtype))
            if stack:
                buf = stack.pop()
                self.bytes -= buf.nbytes
                return buf
        return xp.empty(shape, dtype=dtype)

    def give_back(self, buf):
        """Keep ``buf`` -- a numpy array owning its memory that nobody else
        references any more -- for a later ``empty`` of the same shape."""
        if not (type(buf) is np.ndarray and buf.base is None and buf.flags.c_contiguous
                and buf.nbytes <= self.max_bytes):
            return
        key = (buf.shape, buf.dtype)
        self._free.setdefault(key, []).append(buf)
        self._free.move_to_end(key)
        self.bytes += buf.nbytes
        while self.bytes > self.max_bytes:            # evict the oldest
            oldest = next(iter(self._free))
            stack = self._free[oldest]
            self.bytes -= stack.pop(0).nbytes
            if not stack:
                del self._free[oldest]

    def clear(self):
        self._free.clear()
        self.bytes = 0


workspace = Workspace()


def _carve(xp, spare, dtype, *shapes):
    """Arrays of ``shapes`` and ``dtype``: consecutive views into the contiguous
    array ``spare`` if it is big enough, else arrays from the workspace."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    if spare is None or spare.dtype != dtype or sum(sizes) > spare.size:
        return [workspace.empty(xp, shape, dtype) for shape in shapes]
    flat, start, views = spare.reshape(-1), 0, []
    for shape, size in zip(shapes, sizes):
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return views


# --------------------------------------------------------------------------
# im2col / col2im
# --------------------------------------------------------------------------
def _pad(x, pad):
    """x (N, C, H, W) with PT/PB zero rows and PL/PR zero columns around it.

    The copy is stored channel-major, (C, N, H', W') in memory, the order in
    which im2col reads it in the (n, i, j) column order.
    """
    PT, PB, PL, PR = pad
    if not (PT or PB or PL or PR):
        return x
    N, C, H, W = x.shape
    xpad = array_module(x).zeros((C, N, H + PT + PB, W + PL + PR), dtype=x.dtype)
    xpad[:, :, PT:PT + H, PL:PL + W] = x.transpose(1, 0, 2, 3)
    return xpad.transpose(1, 0, 2, 3)


def _pad_batch_last(x, pad):
    """x (N, C, H, W) as a C-contiguous (C, H', W', N) array, zero-padded.

    Batch-last ("CHWN") is the memory order Conv2D works in: a conv output,
    and everything ReLU and MaxPool2D make from it, is already laid out so,
    and then this is only the padding copy (or nothing at all).
    """
    PT, PB, PL, PR = pad
    xt = x.transpose(1, 2, 3, 0)                                        # (C, H, W, N) view
    if not (PT or PB or PL or PR):
        return xt if xt.flags.c_contiguous else array_module(x).ascontiguousarray(xt)
    C, H, W, N = xt.shape
    xpad = array_module(x).zeros((C, H + PT + PB, W + PL + PR, N), dtype=x.dtype)
    xpad[:, PT:PT + H, PL:PL + W] = xt
    return xpad


def im2col(x, KH, KW, stride=1, pad=0, out=None, batch_last=False):
    """The patch matrix of x: (C·KH·KW, N·OH·OW).

    x (N, C, H, W); stride an int or (SH, SW); pad an int, (PH, PW) or
    (PT, PB, PL, PR).  Element [(c, kh, kw), (n, i, j)] is
    xpad[n, c, i·SH + kh, j·SW + kw].  The patches are first a strided view
    of the padded input (no copy, any memory order), then copied once into
    the GEMM layout (into ``out`` if given: a C-contiguous (K, L) array).

    ``batch_last=True`` orders the columns (i, j, n) instead of (n, i, j):
    the layout Conv2D uses.  With the batch innermost, a row of cols is
    copied in runs of OW·N contiguous values (stride 1) instead of runs of
    OW, which makes the copy (and col2im, and pooling) several times cheaper
    for small images; the arithmetic is the same.
    """
    xp = array_module(x)
    SH, SW = _pair(stride, "stride")
    pad = _quad(pad)
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, W, KH, KW, (SH, SW), pad)
    if out is None:
        out = xp.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    elif out.shape != (C * KH * KW, N * OH * OW) or not out.flags.c_contiguous:
        raise ValueError(f"im2col: out must be a C-contiguous array of shape "
                         f"{(C * KH * KW, N * OH * OW)}, got {out.shape}")
    if batch_last:
        xpad = _pad_batch_last(x, pad)                                  # (C, H', W', N)
        sC, sH, sW, sN = xpad.strides
        patches = xp.lib.stride_tricks.as_strided(
            xpad, shape=(C, KH, KW, OH, OW, N), strides=(sC, sH, sW, sH * SH, sW * SW, sN))
        out.reshape(C, KH, KW, OH, OW, N)[...] = patches
        return out
    xpad = _pad(x, pad)
    sN, sC, sH, sW = xpad.strides
    patches = xp.lib.stride_tricks.as_strided(
        xpad, shape=(C, KH, KW, N, OH, OW), strides=(sC, sH, sW, sN, sH * SH, sW * SW))
    out.reshape(C, KH, KW, N, OH, OW)[...] = patches
    return out


def col2im(cols, x_shape, KH, KW, stride=1, pad=0, batch_last=False):
    """The adjoint of im2col: sum each patch column back onto the input.

    cols (C·KH·KW, N·OH·OW) -> dx of x_shape (N, C, H, W).  A pixel that
    sits in several patches (kernel wider than the stride) receives the sum
    of their entries.  The loop runs over the KH·KW kernel offsets only: at
    offset (kh, kw) the rows (c, kh, kw) of cols land on the strided slice
    xpad[:, :, kh::SH, kw::SW] (OH x OW of it), and within one offset no two
    output pixels share an input pixel, so a plain slice ``+=`` is exact
    (no scatter-add needed).  dx is a view of a (C, N, H+PT+PB, W+PL+PR)
    buffer (the same memory order as cols); with ``batch_last=True`` (cols
    in im2col's (i, j, n) column order) of a (C, H+PT+PB, W+PL+PR, N) one.
    """
    xp = array_module(cols)
    SH, SW = _pair(stride, "stride")
    PT, PB, PL, PR = _quad(pad)
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, W, KH, KW, (SH, SW), (PT, PB, PL, PR))
    if batch_last:
        per_offset = cols.reshape(C, KH, KW, OH, OW, N)
        dxpad = xp.zeros((C, H + PT + PB, W + PL + PR, N), dtype=cols.dtype)
        for kh in range(KH):
            for kw in range(KW):
                dxpad[:, kh:kh + SH * (OH - 1) + 1:SH,
                      kw:kw + SW * (OW - 1) + 1:SW] += per_offset[:, kh, kw]
        return dxpad[:, PT:PT + H, PL:PL + W].transpose(3, 0, 1, 2)
    per_offset = cols.reshape(C, KH, KW, N, OH, OW)
    dxpad = xp.zeros((C, N, H + PT + PB, W + PL + PR), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            dxpad[:, :, kh:kh + SH * (OH - 1) + 1:SH,
                  kw:kw + SW * (OW - 1) + 1:SW] += per_offset[:, kh, kw]
    return dxpad[:, :, PT:PT + H, PL:PL + W].transpose(1, 0, 2, 3)


# --------------------------------------------------------------------------
# the op
# --------------------------------------------------------------------------
class Conv2D(Function):
    """y = conv2d(x, W) + b as one GEMM over the im2col matrix.

    Shapes: x (N, C, H, W), W (O, C, KH, KW), b (O,) or absent
    -> y (N, O, OH, OW).  ``stride`` is (SH, SW), ``padding`` (PT, PB, PL, PR).

    Memory order: the op works batch-last -- cols in im2col's
    ``batch_last`` column order (i, j, n), so y2 = W2 @ cols is (O, OH, OW, N)
    in memory and y is returned as a transposed view of it.  ReLU and
    MaxPool2D keep that order, so the next conv2d reads its input without a
    transposing copy, and in backward g arrives in it: g2 is a free reshape.

    Backward: dW = (cols @ g2ᵀ)ᵀ (one GEMM), db = g summed over N, OH, OW,
    and dx -- the most expensive part, skipped when x does not require grad
    (the first layer: images never need a gradient).  dx is computed

    * in general as col2im(W2ᵀ @ g2): a GEMM, then KH·KW scatter passes;
    * when SW = 1 (and PL, PR < KW), by ``_dx_rows``: the same sum, done as a
      convolution along W (im2col of g along W only, one GEMM) and a col2im
      along H (KH passes).  Same result and the same arithmetic, but it moves
      a fraction of the memory (1.5x faster for 5x5 kernels, 1.7x for 3x3).

    Backward consumes cols (its memory is reused for dcols, then handed to
    the workspace for the next step); a second backward (retain_graph=True)
    rebuilds it from x.
    """

    def __init__(self, stride=(1, 1), padding=(0, 0, 0, 0)):
        self.stride, self.padding = tuple(stride), tuple(padding)

    def forward(self, x, w, b=None):
        xp = array_module(x)
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = conv_output_size(H, W, KH, KW, self.stride, self.padding)
        cols = im2col(x, KH, KW, self.stride, self.padding, batch_last=True,
                      out=workspace.empty(xp, (C * KH * KW, OH * OW * N), x.dtype))  # (K, L)
        y2 = xp.matmul(w.reshape(O, -1), cols)                          # (O, L)
        if b is not None:
            y2 += b[:, None]
        if is_grad_enabled():
            self.cols, self.w, self.x_shape = cols, w, x.shape
        else:
            workspace.give_back(cols)
        return y2.reshape(O, OH, OW, N).transpose(3, 0, 1, 2)          # (N, O, OH, OW)

    def backward(self, g):
        xp = array_module(g)
        w, (x_in, w_in) = self.w, self.inputs[:2]
        O, C, KH, KW = w.shape
        PT, PB, PL, PR = self.padding
        g2 = g.transpose(1, 2, 3, 0).reshape(O, -1)    # (O, L); free when g is batch-last
        cols, self.cols = self.cols, None
        if cols is None and w_in.requires_grad:       # a second backward (retain_graph)
            cols = im2col(x_in.data, KH, KW, self.stride, self.padding, batch_last=True,
                          out=workspace.empty(xp, (C * KH * KW, g2.shape[1]), g.dtype))
        gx = gw = None
        if w_in.requires_grad:      # as dW2ᵀ = cols @ g2ᵀ: OpenBLAS is faster this way round
            gw = xp.ascontiguousarray(xp.matmul(cols, g2.T).T).reshape(w.shape)
        if x_in.requires_grad and self.stride[1] == 1 and max(PL, PR) < KW:
            gx = self._dx_rows(g, cols)
        elif x_in.requires_grad:
            dcols = xp.matmul(w.reshape(O, -1).T, g2,
                              out=cols if cols is not None else None)   # (K, L)
            gx = col2im(dcols, self.x_shape, KH, KW, self.stride, self.padding,
                        batch_last=True)
            cols = dcols
        if cols is not None:
            workspace.give_back(cols)
        if len(self.inputs) == 2:
            return gx, gw
        gb = g2.sum(axis=1) if self.inputs[2].requires_grad else None   # (O,)
        return gx, gw, gb

    def _dx_rows(self, g, spare):
        """dx for SW = 1: a convolution along W, then col2im along H.

        dx[n, c, h, w] = sum over o, kh, kw of W[o, c, kh, kw] · g[n, o, i, w + PL - kw]
        where i·SH + kh = h + PT.  For each kernel row kh,

            T[kh, c, (i, w, n)] = sum_{o, kw'} Wr[(kh, c), (o, kw')] · gcols[(o, kw'), (i, w, n)]

        with kw' = KW-1-kw, Wr = W flipped along kw, and gcols the im2col
        of g along W only: gcols[(o, kw'), (i, w, n)] = gW[n, o, i, w + kw'],
        gW being g with KW-1-PL zero columns on the left and KW-1-PR on the
        right.  That is one GEMM, (KH·C, O·KW) @ (O·KW, OH·W·N); then row i
        of T[kh] is added to row i·SH + kh of the padded dx (KH passes).
        Everything is batch-last, like the forward pass.  gcols and T are
        carved out of ``spare`` (cols, no longer needed) when it is big enough.
        """
        xp = array_module(g)
        O, C, KH, KW = self.w.shape
        N, _, H, W = self.x_shape
        PT, PB, PL, PR = self.padding
        SH = self.stride[0]
        OH = g.shape[2]
        gW = _pad_batch_last(g, (0, 0, KW - 1 - PL, KW - 1 - PR))      # (O, OH, W + KW - 1, N)
        sO, sI, sJ, sN = gW.strides
        g_cols, t = _carve(xp, spare, g.dtype, (O * KW, OH * W * N), (KH * C, OH * W * N))
        g_cols.reshape(O, KW, OH, W, N)[...] = xp.lib.stride_tricks.as_strided(
            gW, shape=(O, KW, OH, W, N), strides=(sO, sJ, sI, sJ, sN))
        w_rows = self.w[:, :, :, ::-1].transpose(2, 1, 0, 3).reshape(KH * C, O * KW)
        xp.matmul(w_rows, g_cols, out=t)                                # (KH·C, OH·W·N)
        per_row = t.reshape(KH, C, OH, W, N)
        dxpad = xp.zeros((C, H + PT + PB, W, N), dtype=g.dtype)
        for kh in range(KH):
            dxpad[:, kh:kh + SH * (OH - 1) + 1:SH] += per_row[kh]
        for buf in (g_cols, t):
            workspace.give_back(buf)          # ignores the views carved from spare
        return dxpad[:, PT:PT + H].transpose(3, 0, 1, 2)


# --------------------------------------------------------------------------
# the wrapper: argument checks with messages a student can act on
# --------------------------------------------------------------------------
def _conv_padding(padding, H, W, KH, KW, stride):
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            return same_padding(H, W, KH, KW, stride)
        raise ValueError(f"conv2d: padding must be an int, a pair (PH, PW), 'same' or "
                         f"'valid', got {padding!r}")
    ok = isinstance(padding, (int, np.integer)) or (
        isinstance(padding, (tuple, list)) and len(padding) in (2, 4)
        and all(isinstance(p, (int, np.integer)) for p in padding))
    if not ok:
        raise ValueError(f"conv2d: padding must be an int, a pair (PH, PW), "
                         f"(top, bottom, left, right), 'same' or 'valid', got {padding!r}")
    pad = _quad(padding)
    if min(pad) < 0:
        raise ValueError(f"conv2d: padding must not be negative, got {padding!r}")
    return pad


def _is_float(dtype):
    return np.issubdtype(np.dtype(dtype), np.floating)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation) of a batch of images.

    x       (N, C, H, W) Tensor: a batch in NCHW layout
    weight  (O, C, KH, KW) Tensor: O filters of C channels each
    bias    (O,) Tensor or None
    stride  int or (SH, SW)
    padding int, (PH, PW), (PT, PB, PL, PR), "valid" (no padding) or "same"
            (output size ceil(H / SH), as in TensorFlow: for odd kernels and
            stride 1 that is K // 2 on each side; otherwise an odd total puts
            the extra row/column at the bottom/right)

    Returns y (N, O, OH, OW) with OH = (H + PT + PB - KH) // SH + 1.
    """
    x = as_tensor(x)
    weight = as_tensor(weight, like=x)
    if x.ndim != 4:
        hint = ""
        if x.ndim == 2:
            hint = (f"; for flattened images reshape first, e.g. MNIST (N, 784) -> "
                    f"x.reshape(N, 1, 28, 28)")
        elif x.ndim == 3:
            hint = "; for a single image or a single channel add the missing axis"
        raise ValueError(f"conv2d: input must be 4-D (N, C, H, W) (NCHW layout), got "
                         f"shape {x.shape}{hint}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (O, C, KH, KW), got shape "
                         f"{weight.shape}")
    N, C, H, W = x.shape
    O, WC, KH, KW = weight.shape
    if C != WC:
        raise ValueError(f"conv2d: input has {C} channels but the weight expects {WC} "
                         f"(weight shape (O, C, KH, KW) = {weight.shape}, input shape "
                         f"(N, C, H, W) = {x.shape})")
    operands = [x, weight]
    if bias is not None:
        bias = as_tensor(bias, like=x)
        if bias.shape != (O,):
            raise ValueError(f"conv2d: bias must have shape (O,) = ({O},), one value per "
                             f"output channel, got shape {bias.shape}")
        operands.append(bias)
    if not _is_float(weight.dtype):
        raise TypeError(f"conv2d: weight has dtype {weight.dtype}; it must be floating "
                        f"point (float32 or float64)")
    if not _is_float(x.dtype):          # e.g. uint8 pixels: no gradient, cast is exact enough
        x = operands[0] = Tensor(x.data.astype(weight.dtype))
    for name, t in zip(("input", "weight", "bias"), operands):
        if t.dtype != weight.dtype:
            raise TypeError(f"conv2d: {name} has dtype {t.dtype} but the weight has "
                            f"{weight.dtype}; tinynet does not promote silently: convert "
                            f"with .astype('{weight.dtype}')")
    stride = _pair(stride, "stride")
    pad = _conv_padding(padding, H, W, KH, KW, stride)
    Hp, Wp = H + pad[0] + pad[1], W + pad[2] + pad[3]
    if KH > Hp or KW > Wp:
        raise ValueError(f"conv2d: kernel {KH}x{KW} is larger than the padded input "
                         f"{Hp}x{Wp} (input {H}x{W}, padding (top, bottom, left, right) "
                         f"= {pad}); use a smaller kernel or more padding")
    return Conv2D(stride, pad)(*operands)
