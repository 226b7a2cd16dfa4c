"""Stride-1 convolution, one matrix product per output row (a CPU route of Conv2D).

Notation as in ops/conv.py; here SH = SW = 1 and H' = H + PT + PB, so OH = H' - KH + 1.

For stride 1, kernel row kh of output row i reads padded input row i + kh:
moving down one output row is moving down one input row.  So instead of the
whole patch matrix cols (C·KH·KW, L) this route builds only the patches along W,

    rows[h, (c, kw), (j, n)] = xpad[c, h, j + kw, n]          h = 0 .. H' - 1

an (H', C·KW, OW·N) array, about KH times smaller than cols, padded row first.
Output row i reads the KH padded rows i .. i + KH - 1, and those are ONE
contiguous block rows[i : i + KH] -- a (KH·C·KW, OW·N) matrix without any
copying, whose row (kh, c, kw) is exactly cols' row for output row i.  So

    y2[:, row i] = Wm @ rows[i : i + KH].reshape(KH·C·KW, OW·N)

with Wm = W as one (O, KH·C·KW) matrix, columns in (kh, c, kw) order --
one product per output row (any run of its columns likewise), with the full
sum over kh, c and kw inside the product.  Backward:

    dW as (KH·C·KW, O) = sum over output rows i of  rows[i : i + KH] @ g2[:, row i]ᵀ
    dx = the same forward, of g, with the kernel flipped and C, O swapped:
         dx[n, c, h, w] = sum_{o, kh, kw} W[o, c, KH-1-kh, KW-1-kw] · gpad[n, o, h + kh, w + kw]
         with gpad = g padded by KH-1-PT, KH-1-PB rows and KW-1-PL, KW-1-PR columns

(the textbook fact that the input gradient of a stride-1 convolution is a
"full" convolution of the output gradient with the flipped kernel).

The whole row array is never built: each block of output columns builds only
the padded rows it reads (``under_kernel``) in the thread's scratch, just
before multiplying them -- its share of the array plus the KH - 1 rows below,
in cache, instead of a 4 MB array (seed-003's convs) written to memory and
read back -- in forward from x, for dx from g, and for dW (per half of the
columns) from x again, which the layer keeps: seed-003's peak memory went
from 45 to 32-35 MB.  When both dx and dW are wanted, ``backward`` does all of
it in two passes over the pool: per block of channels of g, the fused ReLU's
mask and db; then dW's halves and dx's blocks of columns as one set of parts.
Each hand-off to the pool costs tens of microseconds of waking a thread on
the benchmark machine, and each block of g is read while it is in cache.

When: CPU, stride 1, and a sum C·KW of at least ``ROWS_MIN_K`` -- with a thin
sum (the first layer's C = 1) the row array holds too little per product and
one product over the full patch matrix is cheaper (ops/conv.py then builds
cols as before).

Determinism: the output is cut into the same fixed blocks of columns for any
thread count, each output row's part of a block one product; dW's parts are
the two fixed halves of the columns, each adding its rows' products in row
order, and the halves are added in order.  The readable twin of all this is
``conv2d_simple`` in ops/simple.py.
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
    """(H', C·KW, OW·N): the shape of the row array of an (N, C, H, W) input."""
    N, C, H, W = x_shape
    PT, PB, PL, PR = padding
    return H + PT + PB, C * KW, (W + PL + PR - KW + 1) * N


def rows_bytes(x_shape, KW, padding, itemsize):
    """Bytes of the row array of an (N, C, H, W) input."""
    return int(np.prod(rows_shape(x_shape, KW, padding))) * itemsize


def applies(x_shape, w_shape, stride):
    """True when the row route can compute this conv (see the module docstring)."""
    C, KW = x_shape[1], w_shape[3]
    return tuple(stride) == (1, 1) and C * KW >= ROWS_MIN_K


def column_blocks(OH, OW, N, KH, O, K):
    """The fixed blocks of output columns [(a, b)] a row-route product (O, K) @
    (K, OH·OW·N) is cut into: ``gemm_blocks``' count, but each block at least
    2·KH output rows.  A block builds the KH - 1 padded rows below its own
    that the next block also builds; smaller blocks rebuild a larger share
    (seed-003's 14 rows in 4 blocks: 57 % more rows built than in one, in 2
    blocks 29 %), and measured on 2 threads the step took 8 % longer with 4
    blocks than with 2.  Shapes only: the same blocks for any thread count."""
    L = OH * OW * N
    return block_bounds(L, max(1, min(gemm_blocks(O, K, L), OH // (2 * KH))))


def fill_rows(x, KW, padding, out, prows=None):
    """rows[h, (c, kw), (j, n)] = xpad[c, h, j + kw, n] into ``out`` (H', C·KW, OW·N).

    x (N, C, H, W), best batch-last in memory (a conv output is); xpad is x
    padded by ``padding`` = (PT, PB, PL, PR), never built: each kernel column
    kw copies the block of x it sees and zeroes the rest.  ``prows`` = (h0, h1):
    the padded rows h0 .. h1 - 1 only (default all), into an ``out`` of
    h1 - h0 rows."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = padding
    OW = W + PL + PR - KW + 1
    h0, h1 = prows if prows is not None else (0, H + PT + PB)
    i0 = min(max(h0, PT), h1)                  # the first row holding image data
    i1 = max(i0, min(h1, PT + H))              # .. and one past its last
    xt = x.transpose(1, 2, 3, 0)                                   # (C, H, W, N)
    out5 = out.reshape(h1 - h0, C, KW, OW, N).transpose(1, 2, 0, 3, 4)   # (C, KW, h, OW, N) view
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


def under_kernel(x, KW, padding, KH, cols):
    """For each output row that the run of output columns ``cols`` touches:
    (a, b, m) -- its columns [a, b) within ``cols`` and m, the (KH·C·KW, b - a)
    matrix of the rows under the kernel (the patch-matrix columns of those
    output pixels, a view).  The padded rows they read are built once, in the
    thread's scratch, while they are in cache."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = padding
    row_len = (W + PL + PR - KW + 1) * N                           # OW·N columns a row
    i0, i1 = cols.start // row_len, -(-cols.stop // row_len)       # output rows touched
    span = thread_scratch((i1 - i0 + KH - 1, C * KW, row_len), x.dtype, slot=10)
    fill_rows(x, KW, padding, span, prows=(i0, i1 + KH - 1))
    for i in range(i0, i1):
        a, b = max(cols.start, i * row_len), min(cols.stop, (i + 1) * row_len)
        m = span[i - i0:i - i0 + KH, :, a - i * row_len:b - i * row_len]
        yield a, b, m.reshape(KH * C * KW, b - a)                  # a view: strides merge


def span_product(x, KW, padding, wm, cols, out):
    """out = the conv of x by the kernel matrix ``wm`` (O, KH·C·KW) for the output
    columns ``cols`` (a run of (row, column, sample) columns), into ``out`` (O,
    its width; any row stride): one product per output row (``under_kernel``),
    the whole sum over kh, c and kw inside it."""
    KH = wm.shape[1] // (x.shape[1] * KW)
    for a, b, m in under_kernel(x, KW, padding, KH, cols):
        np.matmul(wm, m, out=out[:, a - cols.start:b - cols.start])
    return out


def kernel_matrix(w):
    """W as one (O, KH·C·KW) matrix, columns in (kh, c, kw) order: the order of the
    KH rows of the row array under the kernel (``under_kernel``)."""
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(O, KH * C * KW)


def flipped_kernel_matrix(w):
    """The kernel_matrix of dx's convolution: W flipped in both directions with its
    channel axes swapped, (C, KH·O·KW)."""
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 2, 0, 3)).reshape(C, KH * O * KW)


def grad_w(x, g2, KH, KW, padding):
    """dW (O, C, KH, KW) from the conv's input x (N, C, H, W) and g2 (O, L).

    dW as (KH·C·KW, O) = sum over output rows i of (rows under the kernel at
    row i) @ g2[:, row i]ᵀ.  Parts: the two halves of the L columns, fixed,
    each adding its rows' products in row order; the halves are added in
    order: the same sum for any thread count."""
    dw = GradW(x, g2, KH, KW, padding)
    run_blocks(dw.part, dw.parts)
    return dw.total()


class GradW:
    """dW's fixed parts -- one half of L each, its rows' products added in row
    order -- and their ordered sum.

    ``x`` the conv's input (N, C, H, W), ``g2`` (O, L); ``part(h)`` for each h
    in ``parts`` (in any order, on any thread), then ``total()``.  A part first
    copies its half of g2 transposed, C-contiguous (OpenBLAS multiplies that
    layout 20 % faster than a transposed view)."""

    def __init__(self, x, g2, KH, KW, padding):
        O, L = g2.shape
        C = x.shape[1]
        self.x, self.g2, self.KH, self.KW, self.padding = x, g2, KH, KW, padding
        self.g2t = np.empty((L, O), dtype=g2.dtype)
        self.halves = block_bounds(L, 2)
        self.parts = list(range(len(self.halves)))
        self.partial = np.empty((len(self.halves), KH * C * KW, O), dtype=g2.dtype)

    def part(self, h):
        a, b = self.halves[h]
        self.g2t[a:b] = self.g2[:, a:b].T
        acc = self.partial[h]
        t = thread_scratch(acc.shape, acc.dtype, slot=4)
        for k, (r0, r1, m) in enumerate(under_kernel(self.x, self.KW, self.padding, self.KH,
                                                     slice(a, b))):
            np.matmul(m, self.g2t[r0:r1], out=acc if k == 0 else t)
            if k:
                acc += t

    def total(self):
        out = self.partial[0]
        for h in range(1, len(self.halves)):
            out += self.partial[h]
        KH, KW, O = self.KH, self.KW, out.shape[-1]
        C = out.shape[0] // (KH * KW)
        return np.ascontiguousarray(out.reshape(KH, C, KW, O).transpose(3, 1, 0, 2))


def channel_nonzero(a):
    """(rows,) bool: does row i of the 2-D float array ``a`` hold a value != 0?
    (-0.0 counts as 0: the sign bit is masked off.)"""
    bits = np.dtype(f"u{a.dtype.itemsize}")
    magnitude = bits.type(np.iinfo(bits).max >> 1)                  # every bit but the sign
    return (np.bitwise_or.reduce(np.ascontiguousarray(a).view(bits), axis=1) & magnitude) != 0


def backward(x, g, w, padding, dx_padding, relu_y2=None, nonzero=None, want_db=True):
    """dx, dW and db of a row-route conv, in two passes over the pool.

    x (N, C, H, W) the forward's input, g (N, O, OH, OW) any memory order,
    w (O, C, KH, KW), ``dx_padding`` g's padding for dx as a convolution
    (ops/conv.py ``_dx_padding``).  With
    ``relu_y2`` (O, L) -- a fused ReLU's output -- g is first multiplied by
    (y > 0); ``nonzero`` (O,) bool, if given, receives which channels of that
    gradient hold a value != 0.

    Pass 1, per block of channels of g (each block read once, while in cache):
    the ReLU mask and db's row sums.  Pass 2, all independent parts: per half
    of L, g's (L, O) transpose for dW and its rows' products; and dx's blocks of
    output columns (``span_product``).  The arithmetic is that of ``grad_w``,
    ``span_product`` and ``a.sum(axis=1)`` one op at a time -- the same bits --,
    with two hand-offs to the pool instead of four.
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

    dw = GradW(x, gm, KH, KW, padding)
    wf = flipped_kernel_matrix(w)                                  # (C, KH·O·KW)
    dx = np.empty((C, H * W * N), dtype=g.dtype)
    dx_blocks = column_blocks(H, W, N, KH, C, KH * O * KW)

    def second(p):
        if p[0] == "dx":
            s = slice(*p[1])
            span_product(g_as_x, KW, dx_padding, wf, s, dx[:, s])
        else:                                # one half of L: g's transpose, then its products
            dw.part(p[1])
    # dW's halves first: the longer parts, so the last ones to finish are short
    run_blocks(second, [("dw", h) for h in range(len(dw.halves))] + [("dx", b) for b in dx_blocks])
    return dx.reshape(C, H, W, N).transpose(3, 0, 1, 2), dw.total(), db


__all__ = ["ROWS_MIN_K", "applies", "rows_shape", "rows_bytes", "column_blocks", "fill_rows",
           "under_kernel", "span_product", "kernel_matrix", "flipped_kernel_matrix", "grad_w",
           "GradW", "channel_nonzero", "backward"]
