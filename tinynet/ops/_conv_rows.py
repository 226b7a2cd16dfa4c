"""Stride-1 convolution as KH row-shifted matrix products (a CPU route of Conv2D).

Notation as in ops/conv.py; here SH = SW = 1 and H' = H + PT + PB, so OH = H' - KH + 1.

For stride 1, kernel row kh of output row i reads padded input row i + kh:
moving down one output row is moving down one input row.  So instead of the
whole patch matrix cols (C·KH·KW, L) this route builds only the patches along W,

    rows[(c, kw), (h, j, n)] = xpad[c, h, j + kw, n]          h = 0 .. H' - 1

a (C·KW, H'·OW·N) matrix, about KH times smaller, whose columns are in the
batch-last (row, column, sample) order of the output.  Output row i at kernel
row kh reads the columns of row i + kh, which are the output's columns moved
right by kh·OW·N; hence for ANY range [a, b) of output columns

    y2[:, a:b] = sum_kh  W_kh @ rows[:, a + kh·OW·N : b + kh·OW·N]      W_kh = W[:, :, kh, :] as (O, C·KW)

KH products with a sum of C·KW instead of one with C·KH·KW: the same
multiplications, a third of the copying for a 3x3 kernel.  Backward:

    dW[:, :, kh, :] = (rows[:, kh·OW·N : kh·OW·N + L] @ g2ᵀ)ᵀ       (C·KW, O) per kh
    dx = the same forward, of g, with the kernel flipped and C, O swapped:
         dx[n, c, h, w] = sum_{o, kh, kw} W[o, c, KH-1-kh, KW-1-kw] · gpad[n, o, h + kh, w + kw]
         with gpad = g padded by KH-1-PT, KH-1-PB rows and KW-1-PL, KW-1-PR columns

(the textbook fact that the input gradient of a stride-1 convolution is a
"full" convolution of the output gradient with the flipped kernel).

The whole row matrix is never built: each block of output columns builds only
the rows it reads (``rows_span``) in the thread's scratch, just before
multiplying them -- a quarter of the matrix plus KH - 1 rows per block, in
cache, instead of a 4 MB matrix (seed-003's convs) written to memory and read
back -- in forward from x, for dx from g, and for dW (per half of the columns)
from x again, which the layer keeps instead of the matrix: seed-003's peak
memory went from 45 to 34 MB.  When both dx and dW are wanted, ``backward``
does all of it in two passes over the pool: per block of channels of g, the
fused ReLU's mask and db; then dW's halves and dx's blocks of columns as one
set of parts.  Each hand-off to the pool costs tens of microseconds of waking
a thread on the benchmark machine, and each block of g is read while it is in
cache.

When: CPU, stride 1, and a sum C·KW of at least ``ROWS_MIN_K`` -- with a thin
sum (the first layer's C = 1) each of the KH products would rewrite the whole
output for a few multiply-adds per element, and one product over the full
patch matrix is cheaper (ops/conv.py then builds cols as before).  Measured
on the seed-003 convs (3x3, 32 -> 32, 14x14, batch 50): forward 25 % faster
on one thread than the full patch matrix.

Determinism: the output is cut into the same fixed blocks of columns for any
thread count and each block sums its KH products in the order kh = 0, 1, ..;
dW's parts are fixed (kh, half of the columns) products, the halves added in
order.  The readable twin of all this is ``conv2d_simple`` in ops/simple.py.
"""
import numpy as np

from tinynet.ops._im2col import thread_scratch
from tinynet.ops._parallel import block_bounds, copy_blocks, gemm_blocks, run_blocks

#: The smallest sum C·KW for which the row route is used (see the module docstring).
ROWS_MIN_K = 32

#: Backward in two passes over the pool (``backward``) where dx and dW are both
#: wanted; False runs the same arithmetic op by op (the tests compare the two).
TWO_PASS_BACKWARD = True


def rows_shape(x_shape, KW, padding):
    """(C·KW, H'·OW·N): the shape of the row-patch matrix of an (N, C, H, W) input."""
    N, C, H, W = x_shape
    PT, PB, PL, PR = padding
    return C * KW, (H + PT + PB) * (W + PL + PR - KW + 1) * N


def rows_bytes(x_shape, KW, padding, itemsize):
    """Bytes of the row-patch matrix of an (N, C, H, W) input."""
    CK, cols = rows_shape(x_shape, KW, padding)
    return CK * cols * itemsize


def applies(x_shape, w_shape, stride):
    """True when the row route can compute this conv (see the module docstring)."""
    C, KW = x_shape[1], w_shape[3]
    return tuple(stride) == (1, 1) and C * KW >= ROWS_MIN_K


def fill_rows(x, KW, padding, out, prows=None, row_major=False):
    """rows[(c, kw), (h, j, n)] = xpad[c, h, j + kw, n] into ``out`` (C·KW, H'·OW·N).

    x (N, C, H, W), best batch-last in memory (a conv output is); xpad is x
    padded by ``padding`` = (PT, PB, PL, PR), never built: each kernel column
    kw copies the block of x it sees and zeroes the rest.  ``prows`` = (h0, h1):
    the padded rows h0 .. h1 - 1 only (default all); ``out`` is then
    (C·KW, (h1 - h0)·OW·N), the columns h0·OW·N .. h1·OW·N of the whole matrix.
    ``row_major``: ``out`` is (h1 - h0, C·KW, OW·N) instead, padded row first
    (the same values, rows[:, h, :] = out[h - h0]), so that the KH rows under
    the kernel are one contiguous (KH·C·KW, OW·N) matrix."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = padding
    OW = W + PL + PR - KW + 1
    h0, h1 = prows if prows is not None else (0, H + PT + PB)
    i0 = min(max(h0, PT), h1)                  # the span's first row holding image data
    i1 = max(i0, min(h1, PT + H))              # .. and one past its last
    xt = x.transpose(1, 2, 3, 0)                                   # (C, H, W, N)
    if row_major:
        out5 = out.reshape(h1 - h0, C, KW, OW, N).transpose(1, 2, 0, 3, 4)
    else:
        out5 = out.reshape(C, KW, h1 - h0, OW, N)
    out5[:, :, :i0 - h0] = 0
    out5[:, :, i1 - h0:] = 0
    for kw in range(KW):
        # output column j reads input column j + kw - PL
        j0 = min(OW, max(0, PL - kw))
        j1 = max(j0, min(OW, W + PL - kw))
        inside = out5[:, kw, i0 - h0:i1 - h0]                      # (C, rows, OW, N)
        inside[:, :, :j0] = 0
        inside[:, :, j1:] = 0
        if j1 > j0:
            inside[:, :, j0:j1] = xt[:, i0 - PT:i1 - PT, j0 + kw - PL:j1 + kw - PL]


def rows_span(x, KW, padding, KH, cols):
    """The columns of x's row-patch matrix that the output columns ``cols`` read
    (for any kh), built in the thread's scratch while they are in cache, instead
    of the whole matrix beforehand.  Output rows h0 .. h1 - 1 read padded rows
    h0 .. h1 + KH - 2.  Returns (span, first): output column c at kernel row kh
    reads span[:, first + (c - cols.start) + kh·OW·N]."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = padding
    row_len = (W + PL + PR - KW + 1) * N                           # OW·N columns a row
    h0, h1 = cols.start // row_len, -(-cols.stop // row_len) + KH - 1
    span = thread_scratch((C * KW, (h1 - h0) * row_len), x.dtype, slot=10)
    fill_rows(x, KW, padding, span, prows=(h0, h1))
    return span, cols.start - h0 * row_len


def span_product(x, KW, padding, wcat, cols, out):
    """out = the conv of x by the kernel matrix ``wcat`` (O, KH·C·KW) for the output
    columns ``cols`` (any run of (row, column, sample) columns), written into
    ``out`` (O, its width; any row stride).

    Output row i reads padded rows i .. i + KH - 1 of x: built padded row first
    (``fill_rows(row_major=True)``) in the thread's scratch, those KH rows are
    one (KH·C·KW, OW·N) matrix -- a view, no copy -- so each output row (or the
    part of it in ``cols``) is ONE product, its sum over kh, c and kw in the
    order of ``wcat``, with nothing to add up afterwards."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = padding
    row_len = (W + PL + PR - KW + 1) * N                           # OW·N columns a row
    KH = wcat.shape[1] // (C * KW)
    i0, i1 = cols.start // row_len, -(-cols.stop // row_len)       # output rows touched
    span = thread_scratch((i1 - i0 + KH - 1, C * KW, row_len), x.dtype, slot=10)
    fill_rows(x, KW, padding, span, prows=(i0, i1 + KH - 1), row_major=True)
    for i in range(i0, i1):
        a = max(cols.start, i * row_len)
        b = min(cols.stop, (i + 1) * row_len)
        under_kernel = span[i - i0:i - i0 + KH, :, a - i * row_len:b - i * row_len]
        np.matmul(wcat, under_kernel.reshape(KH * C * KW, b - a),
                  out=out[:, a - cols.start:b - cols.start])
    return out


def kernel_matrix(w):
    """W as one (O, KH·C·KW) matrix, columns in (kh, c, kw) order: the order of the
    KH stacked rows of the row-major row matrix (``span_product``)."""
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(O, KH * C * KW)


def flipped_kernel_matrix(w):
    """The kernel_matrix of dx's convolution: W flipped in both directions with its
    channel axes swapped, (C, KH·O·KW)."""
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 2, 0, 3)).reshape(C, KH * O * KW)


def grad_w(x, g2, KH, KW, padding):
    """dW (O, C, KH, KW) from the conv's input x (N, C, H, W) and g2 (O, L).

    For each kh, (C·KW, L) @ (L, O) -- x's row-patch matrix, shifted by kh rows,
    times g2ᵀ -- with g2 copied once to a C-contiguous (L, O) (OpenBLAS
    multiplies that layout 20 % faster than a transposed view).  Parts: the
    two halves of the L columns, fixed, each building its rows' span once and
    doing its KH products; the halves' products are added in order: the same
    sum for any thread count."""
    O, L = g2.shape
    g2t = np.empty((L, O), dtype=g2.dtype)

    def transpose_part(cols):
        s = slice(*cols)
        g2t[s] = g2[:, s].T
    run_blocks(transpose_part, block_bounds(L, copy_blocks(g2.size)))
    dw = GradW(x, g2t, KH, KW, padding)
    run_blocks(dw.part, dw.parts)
    return dw.total()


class GradW:
    """dW's fixed parts -- the KH products of one half of L -- and their ordered sum.

    ``x`` the conv's input (N, C, H, W), ``g2t`` (L, O) C-contiguous; ``part(h)``
    for each h in ``parts`` (in any order, on any thread), then ``total()``."""

    def __init__(self, x, g2t, KH, KW, padding):
        L, O = g2t.shape
        N, C, H, W = x.shape
        self.x, self.g2t, self.KH, self.KW, self.padding = x, g2t, KH, KW, padding
        self.row_len = (W + padding[2] + padding[3] - KW + 1) * N
        self.halves = block_bounds(L, 2)
        self.parts = list(range(len(self.halves)))
        self.partial = np.empty((KH, len(self.halves), C * KW, O), dtype=g2t.dtype)

    def part(self, h):
        a, b = self.halves[h]
        span, first = rows_span(self.x, self.KW, self.padding, self.KH, slice(a, b))
        for kh in range(self.KH):
            s = first + kh * self.row_len
            np.matmul(span[:, s:s + b - a], self.g2t[a:b], out=self.partial[kh, h])

    def total(self):
        out = self.partial[:, 0]
        for h in range(1, len(self.halves)):
            out += self.partial[:, h]
        KH, KW, O = self.KH, self.KW, out.shape[-1]
        CK = out.shape[1]
        return np.ascontiguousarray(out.reshape(KH, CK // KW, KW, O).transpose(3, 1, 0, 2))


def channel_nonzero(a):
    """(rows,) bool: does row i of the 2-D float array ``a`` hold a value != 0?
    (-0.0 counts as 0: the sign bit is masked off.)"""
    bits = np.dtype(f"u{a.dtype.itemsize}")
    magnitude = bits.type(np.iinfo(bits).max >> 1)                  # every bit but the sign
    return (np.bitwise_or.reduce(np.ascontiguousarray(a).view(bits), axis=1) & magnitude) != 0


def backward(x, g, w, padding, dx_padding, relu_y2=None, nonzero=None, want_db=True):
    """dx, dW and db of a row-route conv, in two passes over the pool.

    x (N, C, H, W) the forward's input, g (N, O, OH, OW) any memory order,
    w (O, C, KH, KW), ``dx_padding`` g's
    padding for dx as a convolution (ops/conv.py ``_dx_padding``).  With
    ``relu_y2`` (O, L) -- a fused ReLU's output -- g is first multiplied by
    (y > 0); ``nonzero`` (O,) bool, if given, receives which channels of that
    gradient hold a value != 0.

    Pass 1, per block of channels of g (each block read once, while in cache):
    the ReLU mask and db's row sums.  Pass 2, all independent parts: per half
    of L, g's (L, O) transpose for dW and its KH products; and dx's blocks of
    output columns (``span_product``).  The arithmetic is that of ``grad_w``,
    ``span_product`` and ``a.sum(axis=1)`` one op at a time -- the same bits --,
    with two hand-offs to the pool instead of five.
    Returns (dx (N, C, H, W) batch-last view, dW (O, C, KH, KW), db (O,) or None).
    """
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    _, _, OH, OW = g.shape
    L = OH * OW * N
    g4 = g.transpose(1, 2, 3, 0)                                   # (O, OH, OW, N)
    copy_g = not g4.flags.c_contiguous      # strided reads are slow: copy them first
    if relu_y2 is None and not copy_g:
        gm = g4.reshape(O, L)                                      # g itself, no copy
    else:
        gm = np.empty((O, L), dtype=g.dtype)
    gm4 = gm.reshape(O, OH, OW, N)
    y4 = None if relu_y2 is None else relu_y2.reshape(O, OH, OW, N)
    g_as_x = gm4.transpose(3, 0, 1, 2)                            # (N, O, OH, OW) view
    g2t = np.empty((L, O), dtype=g.dtype)
    db = np.empty(O, dtype=g.dtype) if want_db else None

    def first(chans):
        s = slice(*chans)
        if copy_g:                           # g not batch-last: one transposing copy
            gm4[s] = g4[s]
        if y4 is not None:                   # the fused ReLU's backward: g · (y > 0)
            positive = np.greater(y4[s], 0, out=thread_scratch(y4[s].shape, np.bool_, slot=9))
            np.multiply(gm4[s] if copy_g else g4[s], positive, out=gm4[s])
        if nonzero is not None:
            nonzero[s] = channel_nonzero(gm[s])
        if db is not None:
            np.sum(gm[s], axis=1, out=db[s])
    run_blocks(first, block_bounds(O, copy_blocks(gm.size)))

    dw = GradW(x, g2t, KH, KW, padding)
    wf = flipped_kernel_matrix(w)                                  # (C, KH·O·KW)
    dx = np.empty((C, H * W * N), dtype=g.dtype)
    dx_blocks = block_bounds(H * W * N, gemm_blocks(C, KH * O * KW, H * W * N))

    def second(p):
        if p[0] == "dx":
            s = slice(*p[1])
            span_product(g_as_x, KW, dx_padding, wf, s, dx[:, s])
        else:                                # one half of L: g's transpose, then its products
            a, b = dw.halves[p[1]]
            g2t[a:b] = gm[:, a:b].T
            dw.part(p[1])
    # dW's halves first: the longer parts, so the last ones to finish are short
    run_blocks(second, [("dw", h) for h in range(len(dw.halves))] + [("dx", b) for b in dx_blocks])
    return dx.reshape(C, H, W, N).transpose(3, 0, 1, 2), dw.total(), db


__all__ = ["ROWS_MIN_K", "applies", "rows_shape", "rows_bytes", "fill_rows",
           "span_product", "kernel_matrix", "flipped_kernel_matrix", "grad_w", "GradW",
           "channel_nonzero", "backward"]
