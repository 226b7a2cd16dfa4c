"""Conv2D -> ReLU -> 2x2 max pool as one op (CPU), pooling each block of the map in cache.

Notation as in ops/conv.py; here OH, OW (the conv's output size) are even and
PH, PW = OH / 2, OW / 2 is the pooled size.  z = conv2d(x, W) + b is the
pre-activation, (O, OH, OW) per sample.

    y[n, o, p, q] = relu( max_{a, b in {0, 1}} z[n, o, 2p + a, 2q + b] )

which equals max_pool2d(relu(z), 2): ReLU is monotone, so pooling first and
activating the 4x smaller map gives the same values.  Per block of output rows
(whole pooling windows) the op does the block's GEMM, its bias, the 2x2 max
with its argmax -- the FIRST maximum in row-major order, MaxPool2D's tie rule
-- and the ReLU, all while the block is in cache; only the pooled map and its
argmax (uint8) are written.  On Conv2D's stride-1 row route (ops/_conv_rows.py)
the blocks are the route's tiles, cut in whole row pairs (``pooled=True``):
their column bands, and so every product, are those of Conv2D's own forward.

Backward: a window's gradient goes to its argmax if the pooled value is > 0
(the ReLU's derivative there), else nowhere.  One pass writes the full-size
gradient at z; Conv2D's backward (dW, db, dx) takes it from there.

The same bits as conv2d -> relu -> max_pool2d: in a window whose maximum is
> 0 the first maximum of relu(z) is the first maximum of z (the entries ReLU
sets to 0 are smaller); a window whose maximum is <= 0 sends no gradient
either way.  (A NaN in a window may route its gradient differently.)

nn.Sequential runs Conv2D, ReLU, MaxPool2D(2) like this where nothing observes
the two maps in between (see nn/containers.py); the readable twin is
``conv2d_relu_maxpool_simple`` in ops/simple.py.
"""
import numpy as np

from tinynet.ops import _conv_rows
from tinynet.ops._conv_rows import channel_nonzero
from tinynet.ops._im2col import (_pad_batch_last, chunk_columns, conv_output_size,
                                 fill_chunk, im2col_rows, kept_row_blocks, pair_chunks,
                                 thread_scratch, workspace)
from tinynet.ops._parallel import block_bounds, copy_blocks, run_blocks
from tinynet.ops._ufuncs import relu_into
from tinynet.ops.conv import Conv2D
from tinynet.tensor import is_grad_enabled


def fusable_shape(x_shape, w_shape, stride, padding):
    """True when the conv output is even in both directions (whole 2x2 windows)."""
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, W, w_shape[2], w_shape[3], stride, padding)
    return OH % 2 == 0 and OW % 2 == 0 and OH > 0 and OW > 0


def _pool_block(z, out, argmax, maxes, i):
    """2x2 max of z (O, 2r, 2c, N) with the first-max argmax, then ReLU, into
    out / argmax (O, r, c, N); the per-channel max of the block into maxes[i].

    The four elements of every window are first copied side by side into the
    thread's scratch (4, O, r, c, N), so the running maximum works on
    contiguous memory with no temporaries -- twice as fast as on the strided
    views of z.  The same comparisons in the same order as MaxPool2D: the same
    bits."""
    shape = out.shape
    win = thread_scratch((4,) + shape, z.dtype, slot=5)
    for k in range(4):
        win[k] = z[:, k // 2::2, k % 2::2]
    best = win[0]                                      # the running maximum, in place
    index = thread_scratch(shape, np.uint8, slot=6)
    better = thread_scratch(shape, np.bool_, slot=7)
    k_where = thread_scratch(shape, np.uint8, slot=8)
    index[...] = 0
    for k in (1, 2, 3):
        np.greater(win[k], best, out=better)           # strictly: ties keep the first
        np.maximum(best, win[k], out=best)
        np.multiply(better, np.uint8(k), out=k_where)
        np.maximum(index, k_where, out=index)
    if maxes is not None:
        np.maximum.reduce(best.reshape(shape[0], -1), axis=1, out=maxes[i])
    relu_into(best, out)
    argmax[...] = index


class Conv2DReLUPool(Conv2D):
    """max_pool2d(relu(conv2d(x, W) + b), 2) -- see the module docstring.

    Shapes: x (N, C, H, W), W (O, C, KH, KW), b (O,) -> y (N, O, OH/2, OW/2),
    returned as a batch-last view like Conv2D's output.  ``observe`` as in
    Conv2D (the per-channel maximum of z, and where its gradient is nonzero).
    """

    def __init__(self, stride=(1, 1), padding=(0, 0, 0, 0), observe=None):
        super().__init__(stride, padding, fuse_relu=True, observe=observe)

    def forward(self, x, w, b=None):
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = conv_output_size(H, W, KH, KW, self.stride, self.padding)
        y = np.empty((O, OH // 2, OW // 2, N), dtype=x.dtype)
        argmax = np.empty((O, OH // 2, OW // 2, N), dtype=np.uint8)
        self.route = self.choose_route(np, x.shape, w.shape, x.dtype.itemsize)
        self.streamed = self.route == "streamed"
        if self.route == "rows":
            saved, maxes = self._forward_rows_pool(x, w, b, y, argmax)
        else:
            saved, maxes = self._forward_chunks_pool(x, w, b, y, argmax)
        if maxes is not None:
            self.observe("max", maxes.max(axis=0))
        if is_grad_enabled():
            self.saved = saved      # padded input (streamed), x (rows) or patch matrix
            self.w, self.x_shape, self.y, self.argmax = w, x.shape, y, argmax
            self.conv_hw = (OH, OW)
        elif self.route not in ("streamed", "rows"):     # the padded input / x: not ours
            workspace.give_back(saved)
        return y.transpose(3, 0, 1, 2)                                  # (N, O, PH, PW)

    def _forward_rows_pool(self, x, w, b, y, argmax):
        """The row route (stride 1): per tile of the conv output (the tiles and the
        products of Conv2D's own forward: the same bits), the tile's products into
        the thread's scratch, its bias and its 2x2 max while it is in cache -- the
        full-size map is never written.  Returns x (what backward needs) and the
        per-tile channel maxima for the observer (or None)."""
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = 2 * y.shape[1], 2 * y.shape[2]
        wm = _conv_rows.kernel_matrix(w)                               # (O, KH·C·KW)
        tiles = _conv_rows.tiles(OH, OW, N, KH, C * KW, x.dtype.itemsize, pooled=True)
        maxes = np.empty((len(tiles), O), dtype=x.dtype) if self.observe else None

        def part(t):
            i0, i1, j0, j1 = tiles[t]
            z = thread_scratch((O, i1 - i0, (j1 - j0) * N), x.dtype, slot=2)
            _conv_rows.span_product(x, KW, self.padding, wm, tiles[t], z)
            if b is not None:
                z += b[:, None, None]
            p, q = slice(i0 // 2, i1 // 2), slice(j0 // 2, j1 // 2)
            _pool_block(z.reshape(O, i1 - i0, j1 - j0, N), y[:, p, q], argmax[:, p, q],
                        maxes, t)
        run_blocks(part, range(len(tiles)))
        return x, maxes

    def _forward_chunks_pool(self, x, w, b, y, argmax):
        """The patch-matrix routes: per chunk of whole windows (the very chunks
        Conv2D uses, ops/_im2col.py: the same matrix products) the GEMM, the bias,
        the 2x2 max and the ReLU while the chunk is in cache.  Returns what
        backward needs (the padded input when streamed, else the patch matrix)
        and the per-chunk channel maxima for the observer (or None)."""
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = 2 * y.shape[1], 2 * y.shape[2]
        K, L = C * KH * KW, OH * OW * N
        w2 = w.reshape(O, K)
        xpad = _pad_batch_last(x, self.padding)
        if self.streamed:       # patch columns in the thread's cache-sized buffer
            chunks = pair_chunks(K, OH, OW, N, x.dtype.itemsize)
            cols_all = None
        else:                   # runs of row pairs, patch columns kept for backward
            chunks = kept_row_blocks(O, OH, OW, N, x.dtype.itemsize)
            cols_all = workspace.empty(np, (K, L), x.dtype)
            cols6 = cols_all.reshape(C, KH, KW, OH, OW, N)
        maxes = np.empty((len(chunks), O), dtype=x.dtype) if self.observe else None

        def part(i):
            i0, i1, j0, j1 = chunks[i]
            n = (i1 - i0) * (j1 - j0) * N
            if cols_all is None:
                cols = fill_chunk(xpad, KH, KW, self.stride, chunks[i],
                                  thread_scratch((K, n), x.dtype))
            else:
                im2col_rows(xpad, KH, KW, self.stride, (i0, i1), cols6)
                cols = cols_all[:, chunk_columns(chunks[i], OW, N)]
            z = thread_scratch((O, n), x.dtype, slot=2)
            np.matmul(w2, cols, out=z)
            if b is not None:
                z += b[:, None]
            p, q = slice(i0 // 2, i1 // 2), slice(j0 // 2, j1 // 2)
            _pool_block(z.reshape(O, i1 - i0, j1 - j0, N), y[:, p, q], argmax[:, p, q],
                        maxes, i)
        run_blocks(part, range(len(chunks)))
        return (xpad if self.streamed else cols_all), maxes

    def backward(self, g):
        """The gradient at z (each window's to its argmax, where the pooled value is
        > 0), then Conv2D's backward without a ReLU."""
        y, argmax = self.y, self.argmax
        O, PH, PW, N = y.shape
        OH, OW = self.conv_hw
        gb = g.transpose(1, 2, 3, 0)                                    # (O, PH, PW, N)
        if not gb.flags.c_contiguous:
            # e.g. from Flatten's backward (N, O, PH, PW): one transposing copy of the
            # small pooled gradient keeps every pass below streaming through memory
            gb = np.ascontiguousarray(gb)
        gz = np.empty((O, OH, OW, N), dtype=g.dtype)
        nonzero = np.empty(O, dtype=bool) if self.observe else None
        # db = the row sums of gz, taken per block of channels while it is in cache
        # (the same reduction as Conv2D's row_sums: the same bits)
        gb_ = np.empty(O, dtype=g.dtype) if self._wants_bias_grad() else None

        def part(chans):
            c = slice(*chans)
            gm = gb[c] * (y[c] > 0)                     # the ReLU's derivative at the max
            for k in range(4):
                np.multiply(gm, argmax[c] == k, out=gz[c, k // 2::2, k % 2::2])
            if nonzero is not None:         # any value != 0 (-0.0 is 0) in each channel
                nonzero[c] = channel_nonzero(gm.reshape(gm.shape[0], -1))
            if gb_ is not None:
                np.sum(gz[c].reshape(gz[c].shape[0], -1), axis=1, out=gb_[c])
        run_blocks(part, block_bounds(O, copy_blocks(gz.size)))
        if nonzero is not None:
            self.observe("grad_nonzero", nonzero)
        self.y = self.argmax = None
        self.fuse_relu, self.observe = False, None     # the ReLU is done: plain conv backward
        return super().backward(gz.transpose(3, 0, 1, 2), gb=gb_)


def conv2d_relu_maxpool(x, weight, bias=None, stride=1, padding=0):
    """max_pool2d(relu(conv2d(x, weight, bias, stride, padding)), 2) as one op.

    Arguments and checks as ``conv2d``.  Where the fused op does not apply (an
    odd conv output size, arrays on the GPU) the three ops run one after the
    other: the result is the same.  Returns y (N, O, OH/2, OW/2)."""
    from tinynet.ops.conv import conv_operands
    from tinynet.ops.elementwise import relu
    from tinynet.ops.pool import max_pool2d
    operands, stride, pad = conv_operands(x, weight, bias, stride, padding)
    x, weight = operands[0], operands[1]
    if type(x.data) is not np.ndarray or not fusable_shape(x.shape, weight.shape, stride, pad):
        return max_pool2d(relu(Conv2D(stride, pad)(*operands)), 2)
    return Conv2DReLUPool(stride, pad)(*operands)


__all__ = ["Conv2DReLUPool", "conv2d_relu_maxpool", "fusable_shape"]
