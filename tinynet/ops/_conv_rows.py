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
one product per output row (any band of its columns likewise), with the full
sum over kh, c and kw inside the product.  Backward:

    dW as (KH·C·KW, O) = sum over output rows i of  rows[i : i + KH] @ g2[:, row i]ᵀ
    dx = the same forward, of g, with the kernel flipped and C, O swapped:
         dx[n, c, h, w] = sum_{o, kh, kw} W[o, c, KH-1-kh, KW-1-kw] · gpad[n, o, h + kh, w + kw]
         with gpad = g padded by KH-1-PT, KH-1-PB rows and KW-1-PL, KW-1-PR columns

(the textbook fact that the input gradient of a stride-1 convolution is a
"full" convolution of the output gradient with the flipped kernel).

The whole row array is never built.  The output grid is cut into tiles
(``tiles``): bands of whole column pairs, as wide as keep one product's
right-hand side in the core's L2 cache, times a few bands of rows.  A tile
builds only its part of the row array -- its rows plus the KH - 1 below, its
columns only, about KW values per input value where the patch matrix takes
KH·KW -- in the thread's scratch, right before multiplying it
(``under_kernel``, ``span_product``): in forward from x, for dx from g, and
for dW from x again, which the layer keeps (no 4 MB array per conv written to
memory and read back: seed-003's peak memory went from 45 to 32-35 MB).  The
fused max pool (ops/conv_relu_pool.py) pools each tile while it is in cache.
When both dx and dW are wanted, ``backward`` does all of it in two passes:
per block of channels of g, the fused ReLU's mask and db (on the calling
thread alone for a small g: ``PASS1_MIN_ELEMENTS``); then dW's tiles and dx's
tiles as one set of parts.  Each hand-off to the pool
costs tens of microseconds of waking a thread on the benchmark machine, and
each block of g is read while it is in cache.

When: CPU, stride 1, and a sum C·KW of at least ``ROWS_MIN_K`` -- with a thin
sum (the first layer's C = 1) the row array holds too little per product and
one product over the full patch matrix is cheaper (ops/conv.py then builds
cols as before).

Determinism: the tiles depend on the shapes alone, each output row's part of a
tile one product; dW's parts are the tiles, each adding its rows' products
in row order, and the tiles' sums are added in tile order.  The readable
twin of all this is ``conv2d_simple`` in ops/simple.py.
"""
import functools

import numpy as np

from tinynet.ops._im2col import thread_scratch
from tinynet.ops._parallel import block_bounds, copy_blocks, run_blocks

#: The smallest sum C·KW for which the row route is used (see the module docstring).
ROWS_MIN_K = 32

#: Backward in two passes over the pool (``backward``) where dx and dW are both
#: wanted; False runs the same arithmetic op by op (the tests compare the two).
TWO_PASS_BACKWARD = True

#: Pass 1 of ``backward`` (ReLU mask and db: three passes over g, a reduction
#: among them) is cut into blocks of at least this many elements of g.  On the
#: benchmark machine seed-003's (32, 9800) gradient was done faster by the
#: calling thread alone than in four blocks on two threads (the step 2.4 %
#: faster: ``scripts/ab_blocks.py scripts/variants/pass1_in_blocks.py``);
#: seed-001's (64, 25088) still gains from four (in one block its step was 4 %
#: slower, 8 alternating processes).
PASS1_MIN_ELEMENTS = 1 << 18


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


#: Bytes of the right-hand side of one of a tile's products, (KH·C·KW, columns):
#: columns are added to a tile, in whole column pairs, while it stays within the
#: core's L2 cache (1 MiB per core on the benchmark machine), where it was just
#: built.  Seed-001's second conv (a sum of 800): 2 columns of 128 samples, the
#: forward 13 % and dW 12 % faster than the streamed patch matrix in 512-column
#: chunks, which writes 25 values per input value where a tile writes about KW;
#: seed-003's convs (a sum of 288, 50 samples): the whole width of 14 columns.
TILE_ROW_BYTES = 1 << 20

#: Row bands are added while the tiles are an odd number below this (and the
#: bands stay at least KH rows high): an even number of tiles shares out evenly
#: over 2 threads (seed-001's second conv, 7 column bands: one row band -> 7
#: tiles, two -> 14: the step 3 % faster).
MIN_TILES = 8

#: A tile's span -- the padded rows it builds in its thread's scratch, which the
#: thread keeps -- is held under this by cutting more row bands; shapes whose
#: thinnest tiles still need more take the streamed route (ops/conv.py).
TILE_SPAN_BYTES = 4 << 20


def cut_bands(n, pieces, pairs=True):
    """[(a, b)] cutting range(n) into ``pieces`` near-equal runs, the longer runs
    first (the pool takes them first, so the threads finish together); with
    ``pairs`` runs of whole pairs: even bounds, only the last run can end on an
    odd n."""
    unit = 2 if pairs else 1
    units = -(-n // unit)
    pieces = max(1, min(pieces, units))
    q, r = divmod(units, pieces)
    starts = [p * q + min(p, r) for p in range(pieces + 1)]
    return [(unit * starts[p], min(unit * starts[p + 1], n)) for p in range(pieces)]


@functools.lru_cache(maxsize=256)
def tiles(OH, OW, N, KH, CKW, itemsize, pooled=False):
    """The fixed tiles ((i0, i1, j0, j1), ..) the output grid of a row-route product is
    cut into (shapes only: the same tiles for any thread count), in row-band-major
    order.

    Column bands of whole column pairs, as wide as keep a product's right-hand
    side (KH·CKW, columns·N) within TILE_ROW_BYTES; then as few row bands as
    make the number of tiles even or at least MIN_TILES, none thinner than KH
    rows (each row band rebuilds the KH - 1 padded rows the next one also reads:
    seed-003's 14 rows in 4 bands built 57 % more rows than in one, and the step
    took 8 % longer than with 2) -- more where a tile's span (its rows plus the
    KH - 1 below, CKW values per output column) would exceed TILE_SPAN_BYTES.
    ``pooled``: row bands of whole row pairs too, so that the fused max pool
    takes whole 2x2 windows from a tile.  Pooled or not, an output row's product
    is the same product (the column bands do not change): the same bits.
    (Cached: several calls per step ask for the same shapes; a tuple.)"""
    col_pairs = -(-OW // 2)
    pair_bytes = KH * CKW * 2 * N * itemsize
    per_band = max(1, min(col_pairs, TILE_ROW_BYTES // pair_bytes))
    col_bands = cut_bands(OW, -(-col_pairs // per_band))

    def grid(bands):
        return tuple((i0, i1, j0, j1) for i0, i1 in cut_bands(OH, bands, pooled)
                     for j0, j1 in col_bands)

    def more(bands):                # another row band wanted?
        thinner = bands < (-(-OH // 2) if pooled else OH)
        odd = bands * len(col_bands) % 2 and bands * len(col_bands) < MIN_TILES
        too_big = tile_span_bytes(grid(bands), N, KH, CKW, itemsize) > TILE_SPAN_BYTES
        return thinner and (too_big or (odd and bands < OH // KH))
    bands = 1
    while more(bands):
        bands += 1
    return grid(bands)


def tile_span_bytes(tile_list, N, KH, CKW, itemsize):
    """The largest span (bytes of thread scratch) among ``tile_list``."""
    return max((i1 - i0 + KH - 1) * CKW * (j1 - j0) * N * itemsize
               for i0, i1, j0, j1 in tile_list)


def fill_rows(x, KW, padding, out, prows=None, pcols=None):
    """rows[h, (c, kw), (j, n)] = xpad[c, h, j + kw, n] into ``out`` (H', C·KW, OW·N).

    x (N, C, H, W), best batch-last in memory (a conv output is); xpad is x
    padded by ``padding`` = (PT, PB, PL, PR), never built: each kernel column
    kw copies the block of x it sees and zeroes the rest.  ``prows`` = (h0, h1)
    and ``pcols`` = (j0, j1): only padded rows h0 .. h1 - 1 and output columns
    j0 .. j1 - 1 (default all), into an ``out`` of h1 - h0 rows and
    (j1 - j0)·N columns."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = padding
    OW = W + PL + PR - KW + 1
    h0, h1 = prows if prows is not None else (0, H + PT + PB)
    c0, c1 = pcols if pcols is not None else (0, OW)
    i0 = min(max(h0, PT), h1)                  # the first row holding image data
    i1 = max(i0, min(h1, PT + H))              # .. and one past its last
    xt = x.transpose(1, 2, 3, 0)                                   # (C, H, W, N)
    out5 = out.reshape(h1 - h0, C, KW, c1 - c0, N).transpose(1, 2, 0, 3, 4)  # (C, KW, h, j, N)
    out5[:, :, :i0 - h0] = 0
    out5[:, :, i1 - h0:] = 0
    for kw in range(KW):
        # output column j reads input column j + kw - PL
        j0 = min(c1, max(c0, PL - kw))
        j1 = max(j0, min(c1, W + PL - kw))
        inside = out5[:, kw, i0 - h0:i1 - h0]                      # (C, rows, j, N)
        inside[:, :, :j0 - c0] = 0
        inside[:, :, j1 - c0:] = 0
        if j1 > j0:
            inside[:, :, j0 - c0:j1 - c0] = xt[:, i0 - PT:i1 - PT, j0 + kw - PL:j1 + kw - PL]


def under_kernel(x, KW, padding, KH, tile):
    """For each output row i of ``tile`` = (i0, i1, j0, j1): (i, m), m the
    (KH·C·KW, (j1 - j0)·N) matrix of the rows under the kernel -- the
    patch-matrix columns of output pixels (i, j0 .. j1 - 1), all samples -- a
    view of the tile's span: its padded rows i0 .. i1 + KH - 2, columns j0 ..
    j1 - 1 only, built once in the thread's scratch while they are in cache."""
    N, C = x.shape[:2]
    i0, i1, j0, j1 = tile
    n = (j1 - j0) * N
    span = thread_scratch((i1 - i0 + KH - 1, C * KW, n), x.dtype, slot=10)
    fill_rows(x, KW, padding, span, prows=(i0, i1 + KH - 1), pcols=(j0, j1))
    for i in range(i0, i1):
        yield i, span[i - i0:i - i0 + KH].reshape(KH * C * KW, n)    # a view: rows merge


def span_product(x, KW, padding, wm, tile, out):
    """The conv of x by the kernel matrix ``wm`` (O, KH·C·KW) on ``tile``, into
    ``out`` (O, i1 - i0, (j1 - j0)·N) -- any strides with unit last stride, e.g.
    the tile's region of y2 viewed as (O, OH, OW·N): one product per output row
    (``under_kernel``), the whole sum over kh, c and kw inside it."""
    KH = wm.shape[1] // (x.shape[1] * KW)
    i0 = tile[0]
    for i, m in under_kernel(x, KW, padding, KH, tile):
        np.matmul(wm, m, out=out[:, i - i0])
    return out


def tile_region(a3, tile, N):
    """The tile's (O, i1 - i0, (j1 - j0)·N) region of a3 (O, OH, OW·N) -- a view."""
    i0, i1, j0, j1 = tile
    return a3[:, i0:i1, j0 * N:j1 * N]


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
    row i) @ g2[:, row i]ᵀ.  Parts: the tiles (``tiles``), fixed by the shapes,
    each adding its rows' products in row order; the tiles' sums are added in
    tile order: the same sum for any thread count."""
    dw = GradW(x, g2, KH, KW, padding)
    run_blocks(dw.part, dw.parts)
    return dw.total()


class GradW:
    """dW's fixed parts -- one tile of the output each, its rows' products added
    in row order -- and their ordered sum.

    ``x`` the conv's input (N, C, H, W), ``g2`` (O, L) with L in (i, j, n)
    order; ``part(t)`` for each t in ``parts`` (in any order, on any thread),
    then ``total()``.  A product's right-hand side is g2's columns of the row
    in the tile seen transposed, (n, O) -- no copy."""

    def __init__(self, x, g2, KH, KW, padding):
        O, L = g2.shape
        N, C, H, W = x.shape
        PT, PB, PL, PR = padding
        OH, OW = H + PT + PB - KH + 1, W + PL + PR - KW + 1
        self.x, self.KH, self.KW, self.padding, self.N = x, KH, KW, padding, N
        self.g3 = g2.reshape(O, OH, OW * N)
        self.tiles = tiles(OH, OW, N, KH, C * KW, g2.dtype.itemsize)
        self.parts = list(range(len(self.tiles)))
        self.partial = np.empty((len(self.tiles), KH * C * KW, O), dtype=g2.dtype)

    def part(self, t):
        tile = self.tiles[t]
        acc = self.partial[t]
        tmp = thread_scratch(acc.shape, acc.dtype, slot=4)
        g_tile = tile_region(self.g3, tile, self.N)                # (O, rows, n)
        for i, m in under_kernel(self.x, self.KW, self.padding, self.KH, tile):
            np.matmul(m, g_tile[:, i - tile[0]].T, out=acc if i == tile[0] else tmp)
            if i > tile[0]:
                acc += tmp

    def total(self):
        out = self.partial[0]
        for t in range(1, len(self.tiles)):                      # in tile order
            out += self.partial[t]
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
    """dx, dW and db of a row-route conv, in two passes.

    x (N, C, H, W) the forward's input, g (N, O, OH, OW) any memory order,
    w (O, C, KH, KW), ``dx_padding`` g's padding for dx as a convolution
    (ops/conv.py ``_dx_padding``).  With
    ``relu_y2`` (O, L) -- a fused ReLU's output -- g is first multiplied by
    (y > 0); ``nonzero`` (O,) bool, if given, receives which channels of that
    gradient hold a value != 0.

    Pass 1, per block of channels of g (each block read once, while in cache;
    one block, on the calling thread, below PASS1_MIN_ELEMENTS values of g):
    the ReLU mask and db's row sums.  Pass 2, all independent parts: dW's tiles
    (``GradW``), each its rows' products, and dx's tiles (``span_product``).  The
    arithmetic is that of ``grad_w``, ``_dx_flipped`` and ``a.sum(axis=1)`` one
    op at a time -- the same bits -- with at most two hand-offs to the pool
    instead of four.
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
    run_blocks(first, block_bounds(O, copy_blocks(gm.size, PASS1_MIN_ELEMENTS)))

    dw = GradW(x, gm, KH, KW, padding)
    wf = flipped_kernel_matrix(w)                                  # (C, KH·O·KW)
    dx = np.empty((C, H, W * N), dtype=g.dtype)
    dx_tiles = tiles(H, W, N, KH, O * KW, g.dtype.itemsize)

    def second(p):
        if p[0] == "dx":
            tile = dx_tiles[p[1]]
            span_product(g_as_x, KW, dx_padding, wf, tile, tile_region(dx, tile, N))
        else:                                # one tile of the output: its rows' products
            dw.part(p[1])
    # dW's tiles first: the longer parts, so the last ones to finish are short
    run_blocks(second, [("dw", t) for t in dw.parts] + [("dx", t) for t in range(len(dx_tiles))])
    return dx.reshape(C, H, W, N).transpose(3, 0, 1, 2), dw.total(), db


__all__ = ["ROWS_MIN_K", "PASS1_MIN_ELEMENTS", "TILE_ROW_BYTES", "MIN_TILES", "TILE_SPAN_BYTES", "applies",
           "rows_shape", "rows_bytes", "cut_bands", "tiles", "tile_span_bytes", "tile_region", "fill_rows",
           "under_kernel", "span_product", "kernel_matrix", "flipped_kernel_matrix", "grad_w",
           "GradW", "channel_nonzero", "backward"]
