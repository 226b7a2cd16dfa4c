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
channels on a batch of 128 at 14x14) and scattering back.  A cols that
fits the last-level cache is built whole and kept for backward (its buffer
recycled between training steps through ``workspace``); a larger one is
never written out: forward fills and multiplies it in cache-sized chunks of
columns, and backward rebuilds each chunk for dW (``STREAM_MIN_BYTES``,
``pair_chunks`` in ops/_im2col.py).  For stride 1 and a thick sum (C·KW of
at least 32: every conv after the first in the seed networks) the CPU takes
a third route that never builds cols at all: per tile of the output, the
patches along W only, and one product per output row over the KH rows under
the kernel (ops/_conv_rows.py, "rows"); its dx is the same kind of product of
g with the flipped kernel.  (Seed-001's second conv, 5x5 over 32 channels,
takes it too: its tiles are 2 columns wide.)

Routes (``Conv2D.route``, chosen from the shapes alone): "rows", "kept"
(cols built whole), "streamed" (cols in chunks) and "device" (CuPy: cols
whole, one product each way).

Threads: on the CPU the forward pass is cut into fixed blocks of output
rows, each building its part of cols and doing its part of the GEMM; the
backward GEMMs are cut likewise (ops/_parallel.py).  The blocks depend on
the shapes only, so results are bit-identical for any thread count.  The
machinery (im2col, col2im, workspaces) lives in ops/_im2col.py; the
readable twin of this op is ``conv2d_simple`` in ops/simple.py.
"""
import numpy as np

from tinynet import _checks
from tinynet.backend import array_module
from tinynet.ops._im2col import (Workspace, _carve, _pad_batch_last, _pair, _quad,  # noqa: F401
                                 chunk_columns, chunk_segments, col2im, conv_output_size,
                                 fill_chunk, im2col, im2col_rows, kept_row_blocks, pair_chunks,
                                 same_padding, thread_scratch, workspace)
from tinynet.ops import _conv_rows
from tinynet.ops._parallel import (blas_one_thread, block_bounds, copy_blocks, gemm, row_sums,
                                   run_blocks)
from tinynet.ops._ufuncs import relu_into
from tinynet.tensor import Function, Tensor, as_tensor, is_grad_enabled

#: A patch matrix larger than this is streamed in cache-sized chunks instead of
#: being written out whole (see ops/_im2col.py, CHUNK_BYTES).  Below it the whole
#: matrix stays in the last-level cache (32 MiB on the machine this was tuned
#: on), where keeping it for backward is cheaper than rebuilding it: measured
#: (paired runs) streaming was 5-10 % slower for the 10-11 MB matrices of the
#: seed-001 first conv and the seed-003 convs, and 37 % faster in forward (8 %
#: over forward + backward) for the 80 MB one of the seed-001 second conv.
STREAM_MIN_BYTES = 16 << 20

#: ``_dx_rows_bands``: a band of dx's columns holds about this many bytes of T, and its
#: gcols are built about this many bytes at a time.  Seed-001's second conv: bands of
#: 2 columns, 6 rows of g at a time; its step within 1-3 % of the time with the whole
#: 16 MB T (paired runs, 2026-12-07), 16 MB less at its peak.
DX_BAND_BYTES = 2 << 20

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

    * on the "rows" route (stride 1) as the row route's forward of g with the
      flipped kernel (``_dx_flipped``), when g's padding KH-1-PT, .. is not
      negative;
    * in general as col2im(W2ᵀ @ g2): a GEMM, then KH·KW scatter passes;
    * when SW = 1 (and PL, PR < KW), by ``_dx_rows``: the same sum, done as a
      convolution along W (im2col of g along W only, one GEMM) and a col2im
      along H (KH passes).  Same result and the same arithmetic, but it moves
      a fraction of the memory (1.5x faster for 5x5 kernels, 1.7x for 3x3);
      on the CPU in bands of dx's columns, each built and added in cache.

    Backward consumes cols (its memory is reused for dcols, then handed to
    the workspace for the next step); a second backward (retain_graph=True)
    rebuilds it from x (the row route keeps x itself: each tile of the output
    builds the rows it reads, in forward and backward alike).  A streamed cols
    (larger than STREAM_MIN_BYTES, CPU) is never kept: forward saves the padded
    input and backward rebuilds the chunks, summing dW over fixed groups of
    chunks in a fixed order.
    """

    #: True: the op is conv2d followed by ReLU (nn.Sequential fuses the pair
    #: where nothing observes the pre-activation; see nn/containers.py)
    fuse_relu = False
    #: True (set by forward): the patch matrix was streamed in chunks, not kept
    streamed = False

    def __init__(self, stride=(1, 1), padding=(0, 0, 0, 0), fuse_relu=False, observe=None):
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.fuse_relu = fuse_relu
        # fused only: observe(event, per_channel) reports what the fused op never
        # materializes -- ("max", (O,) largest pre-activation of each channel) in
        # forward, ("grad_nonzero", (O,) bool: the gradient at the pre-activation is
        # nonzero somewhere in the channel) in backward.  The diagnose Recorder uses it
        # to watch a fused pair exactly (see nn/containers.py).
        self.observe = observe if fuse_relu else None

    #: how forward computed (and backward computes): "rows" (stride 1: one product per
    #: output row over the KH input rows under the kernel, ops/_conv_rows.py), "kept"
    #: (the whole patch matrix), "streamed" (the patch matrix in chunks) or "device"
    #: (CuPy: the whole patch matrix, one product)
    route = None

    def choose_route(self, xp, x_shape, w_shape, itemsize):
        """The route for these shapes (a function of the shapes alone)."""
        if xp is not np:
            return "device"
        N, C, H, W = x_shape
        O, _, KH, KW = w_shape
        OH, OW = conv_output_size(H, W, KH, KW, self.stride, self.padding)
        # the row array is never built whole: each tile builds its span in its
        # thread's scratch, which the thread keeps between steps -- bounded here
        if _conv_rows.applies(x_shape, w_shape, self.stride):
            tiles = _conv_rows.tiles(OH, OW, N, KH, C * KW, itemsize, pooled=True)  # the larger
            if (_conv_rows.tile_span_bytes(tiles, N, KH, C * KW, itemsize)
                    <= _conv_rows.TILE_SPAN_BYTES):
                return "rows"
        return "streamed" if C * KH * KW * OH * OW * N * itemsize > STREAM_MIN_BYTES else "kept"

    def forward(self, x, w, b=None):
        xp = array_module(x)
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = conv_output_size(H, W, KH, KW, self.stride, self.padding)
        K, L = C * KH * KW, OH * OW * N
        w2 = w.reshape(O, K)
        self.route = self.choose_route(xp, x.shape, w.shape, x.dtype.itemsize)
        self.streamed = self.route == "streamed"
        if self.route == "rows":
            y2, saved, maxes = self._forward_rows(x, w, b)
        elif self.streamed:
            # a patch matrix larger than the caches: chunks of output pixels, each on
            # the pool, fill their columns into the thread's cache-sized buffer and
            # multiply at once -- the (K, L) matrix is never written out; backward
            # rebuilds the chunks from the padded input
            xpad = _pad_batch_last(x, self.padding)
            chunks = pair_chunks(K, OH, OW, N, x.dtype.itemsize)
            y2 = np.empty((O, L), dtype=x.dtype)
            maxes = np.empty((len(chunks), O), dtype=x.dtype) if self.observe else None

            def part(i):
                segs, n = chunk_segments(chunks[i], OW, N)
                cols = fill_chunk(xpad, KH, KW, self.stride, chunks[i],
                                  thread_scratch((K, n), x.dtype))
                if len(segs) == 1:
                    np.matmul(w2, cols, out=y2[:, segs[0]])
                    self._finish_block(b, y2[:, segs[0]], maxes, i)
                    return
                z = thread_scratch((O, n), x.dtype, slot=2)         # a row pair, in part
                np.matmul(w2, cols, out=z)
                self._finish_block(b, z, maxes, i)
                width = n // len(segs)
                for k, s in enumerate(segs):
                    y2[:, s] = z[:, k * width:(k + 1) * width]
            run_blocks(part, range(len(chunks)))
            saved = xpad
        elif self.route == "kept":
            # the whole patch matrix, kept for backward: runs of output rows each fill
            # their columns of it and multiply them, so one run's copy overlaps another
            # run's GEMM
            cols = workspace.empty(xp, (K, L), x.dtype)                 # (K, L)
            xpad, cols6 = _pad_batch_last(x, self.padding), cols.reshape(C, KH, KW, OH, OW, N)
            y2 = np.empty((O, L), dtype=x.dtype)
            blocks = kept_row_blocks(O, OH, OW, N, x.dtype.itemsize)
            maxes = np.empty((len(blocks), O), dtype=x.dtype) if self.observe else None

            def part(i):
                im2col_rows(xpad, KH, KW, self.stride, blocks[i][:2], cols6)
                s = chunk_columns(blocks[i], OW, N)
                np.matmul(w2, cols[:, s], out=y2[:, s])
                self._finish_block(b, y2[:, s], maxes, i)
            run_blocks(part, range(len(blocks)))
            saved = cols
        else:
            cols = workspace.empty(xp, (K, L), x.dtype)                 # (K, L)
            im2col(x, KH, KW, self.stride, self.padding, batch_last=True, out=cols)
            y2 = xp.matmul(w2, cols)                                    # (O, L)
            if b is not None:
                y2 += b[:, None]
            if self.observe:
                self.observe("max", y2.max(axis=1))
            if self.fuse_relu:
                relu_into(y2, y2)
            saved = cols
        if xp is np and maxes is not None:
            self.observe("max", maxes.max(axis=0))          # a max: any block order
        if is_grad_enabled():
            # the patch matrix, or (streamed) the padded input to rebuild its chunks from
            self.saved, self.w, self.x_shape = saved, w, x.shape
            if self.fuse_relu:
                self.y2 = y2                        # relu'(pre-activation) = (y > 0)
        elif self.route not in ("streamed", "rows"):     # the padded input / x: not ours
            workspace.give_back(saved)
        return y2.reshape(O, OH, OW, N).transpose(3, 0, 1, 2)          # (N, O, OH, OW)

    def _forward_rows(self, x, w, b):
        """The "rows" route (stride 1): per tile of the output (``_conv_rows.tiles``),
        one product per output row over the KH input rows under the kernel, the
        tile building only the part of the row array it reads (ops/_conv_rows.py
        ``span_product``), straight into its region of y2.  Returns y2 (O, L) -- with
        the bias, and the ReLU when fused --, what backward needs (x itself: dW
        rebuilds its spans from it) and the per-tile channel maxima for the observer
        (or None)."""
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = conv_output_size(H, W, KH, KW, self.stride, self.padding)
        wm = _conv_rows.kernel_matrix(w)                               # (O, KH·C·KW)
        y3 = np.empty((O, OH, OW * N), dtype=x.dtype)
        tiles = _conv_rows.tiles(OH, OW, N, KH, C * KW, x.dtype.itemsize)
        maxes = np.empty((len(tiles), O), dtype=x.dtype) if self.observe else None

        def part(t):
            z = _conv_rows.tile_region(y3, tiles[t], N)             # (O, rows, (j, n))
            _conv_rows.span_product(x, KW, self.padding, wm, tiles[t], z)
            self._finish_block(b, z, maxes, t)
        run_blocks(part, range(len(tiles)))
        return y3.reshape(O, -1), x, maxes

    def _finish_block(self, b, y2s, maxes, i):
        """Bias, the observer's maxima and the fused ReLU on one block of y2 -- (O,
        columns) or a tile's (O, rows, columns) -- while it is still in cache."""
        if b is not None:
            y2s += b.reshape((-1,) + (1,) * (y2s.ndim - 1))
        if maxes is not None:
            np.max(y2s, axis=tuple(range(1, y2s.ndim)), out=maxes[i])
        if self.fuse_relu:
            relu_into(y2s, y2s)

    def backward(self, g, gb=None):
        """dx, dW (and db) from g (N, O, OH, OW).  ``gb``: db already summed by a
        caller that had g in cache (the fused pool op), else summed here."""
        xp = array_module(g)
        if (self.route == "rows" and _conv_rows.TWO_PASS_BACKWARD and self.inputs[0].requires_grad
                and self.inputs[1].requires_grad and self._dx_by_flipped_conv(g.shape)):
            return self._backward_rows(g, gb)
        if self.fuse_relu:
            g = self._relu_backward(g)
        w, (x_in, w_in) = self.w, self.inputs[:2]
        O, C, KH, KW = w.shape
        PT, PB, PL, PR = self.padding
        g2 = g.transpose(1, 2, 3, 0).reshape(O, -1)    # (O, L); free when g is batch-last
        saved, self.saved = self.saved, None           # consumed here
        if saved is None:                              # a second backward (retain_graph)
            saved = self._rebuild(xp, x_in.data, g2.shape[1])
        gx = gw = None
        if w_in.requires_grad:
            gw = self._grad_w(xp, saved, g2)
        # a patch matrix's memory is reused below (the padded input or x is not ours)
        spare = None if self.route in ("streamed", "rows") else saved
        if x_in.requires_grad and self._dx_by_flipped_conv(g.shape):
            gx = self._dx_flipped(g)
        elif x_in.requires_grad and self.stride[1] == 1 and max(PL, PR) < KW:
            gx = self._dx_rows(g, spare)
        elif x_in.requires_grad:
            cols = spare if self.route in ("kept", "device") else None
            if cols is None:
                if spare is not None:
                    workspace.give_back(spare)
                cols = workspace.empty(xp, (C * KH * KW, g2.shape[1]), g.dtype)
            dcols = gemm(w.reshape(O, -1).T, g2, out=cols)              # (K, L)
            with blas_one_thread():
                gx = col2im(dcols, self.x_shape, KH, KW, self.stride, self.padding,
                            batch_last=True)
            spare = dcols
        if spare is not None:
            workspace.give_back(spare)
        if len(self.inputs) == 2:
            return gx, gw
        if gb is None and self._wants_bias_grad():
            gb = row_sums(g2)                                            # (O,)
        return gx, gw, gb

    def _backward_rows(self, g, gb=None):
        """dx, dW (and db) on the row route, in two passes
        (ops/_conv_rows.py ``backward``): the same arithmetic as the op-by-op
        path below -- ReLU mask, ``_grad_w``, ``_dx_flipped``, ``row_sums`` --
        bit for bit, with g read once and at most two hand-offs to the pool instead
        of four."""
        O = self.w.shape[0]
        saved, self.saved = self.saved, None           # consumed here
        if saved is None:                              # a second backward (retain_graph)
            saved = self._rebuild(np, self.inputs[0].data, None)
        nonzero = np.empty(O, dtype=bool) if self.fuse_relu and self.observe else None
        want_gb = gb is None and self._wants_bias_grad()
        gx, gw, db = _conv_rows.backward(
            saved, g, self.w, self.padding, self._dx_padding(),
            relu_y2=self.y2 if self.fuse_relu else None, nonzero=nonzero, want_db=want_gb)
        if nonzero is not None:
            self.observe("grad_nonzero", nonzero)
        return (gx, gw) if len(self.inputs) == 2 else (gx, gw, db if gb is None else gb)

    def _wants_bias_grad(self):
        return len(self.inputs) == 3 and self.inputs[2].requires_grad

    def _rebuild(self, xp, x, L):
        """What forward saved, again from the input (after a first backward used it)."""
        O, C, KH, KW = self.w.shape
        if self.streamed:
            return _pad_batch_last(x, self.padding)
        if self.route == "rows":
            return x
        return im2col(x, KH, KW, self.stride, self.padding, batch_last=True,
                      out=workspace.empty(xp, (C * KH * KW, L), x.dtype))

    def _grad_w(self, xp, saved, g2):
        """dW = (cols @ g2ᵀ)ᵀ, as (O, C, KH, KW).  (OpenBLAS is faster this way round.)

        Streamed: the patch chunks are rebuilt from the padded input (``saved``) in
        the thread's cache-sized buffer and multiplied at once; the chunks are cut
        into at most 4 fixed groups, each summing its chunks' products in order,
        and the groups are added in order -- the same sum for any thread count.
        Otherwise one product with the saved patch matrix."""
        w = self.w
        O, C, KH, KW = w.shape
        K = C * KH * KW
        if self.route == "rows":
            return _conv_rows.grad_w(saved, g2, KH, KW, self.padding)
        if not self.streamed:
            return xp.ascontiguousarray(gemm(saved, g2.T).T).reshape(w.shape)
        N = self.x_shape[0]
        OH, OW = conv_output_size(self.x_shape[2], self.x_shape[3], KH, KW, self.stride,
                                  self.padding)
        chunks = pair_chunks(K, OH, OW, N, g2.dtype.itemsize)
        groups = block_bounds(len(chunks), 4)
        sums = np.empty((len(groups), K, O), dtype=g2.dtype)

        def part(gi):
            for i in range(*groups[gi]):
                segs, n = chunk_segments(chunks[i], OW, N)
                cols = fill_chunk(saved, KH, KW, self.stride, chunks[i],
                                  thread_scratch((K, n), g2.dtype))
                if len(segs) == 1:
                    g2c = g2[:, segs[0]]
                else:                                   # the chunk's rows side by side
                    g2c = thread_scratch((O, n), g2.dtype, slot=3)
                    width = n // len(segs)
                    for k, s in enumerate(segs):
                        g2c[:, k * width:(k + 1) * width] = g2[:, s]
                if i == groups[gi][0]:
                    np.matmul(cols, g2c.T, out=sums[gi])
                else:
                    part_sum = thread_scratch((K, O), g2.dtype, slot=1)
                    np.matmul(cols, g2c.T, out=part_sum)
                    sums[gi] += part_sum
        run_blocks(part, range(len(groups)))
        total = sums[0]
        for other in sums[1:]:                       # in group order
            total += other
        return np.ascontiguousarray(total.T).reshape(w.shape)

    def _relu_backward(self, g):
        """g · (y > 0) for the fused ReLU, as a batch-last (N, O, OH, OW) view.

        y > 0 exactly where the pre-activation is > 0, so this is the ReLU's
        own backward (relu'(0) = 0), bit for bit.
        """
        xp = array_module(g)
        y2 = self.y2
        O = y2.shape[0]
        N, _, OH, OW = g.shape
        g2 = g.transpose(1, 2, 3, 0).reshape(O, -1)    # (O, L); free when g is batch-last
        out = xp.empty_like(y2)
        nonzero = np.empty(O, dtype=bool) if self.observe and xp is np else None
        if xp is np:
            def part(rows):
                s = slice(*rows)
                np.multiply(g2[s], y2[s] > 0, out=out[s])
                if nonzero is not None:       # any value != 0 (-0.0 is 0) in each channel
                    nonzero[s] = _conv_rows.channel_nonzero(out[s])
            run_blocks(part, block_bounds(O, copy_blocks(out.size)))
        else:
            xp.multiply(g2, y2 > 0, out=out)
            if self.observe:
                nonzero = (out != 0).any(axis=1)
        if self.observe:
            self.observe("grad_nonzero", nonzero)
        return out.reshape(O, OH, OW, N).transpose(3, 0, 1, 2)

    def _dx_by_flipped_conv(self, g_shape):
        """True when dx is computed as the row route's forward of g with the flipped
        kernel (``_dx_flipped``): the forward took the row route, g's padding
        KH-1-PT .. is not negative, and g's row array is thick and small enough."""
        if self.route != "rows":
            return False
        O, C, KH, KW = self.w.shape
        pads = self._dx_padding()
        return (min(pads) >= 0 and O * KW >= _conv_rows.ROWS_MIN_K
                and _conv_rows.rows_bytes(g_shape, KW, pads, self.w.dtype.itemsize)
                <= STREAM_MIN_BYTES)

    def _dx_padding(self):
        """g's padding for dx as a convolution: (KH-1-PT, KH-1-PB, KW-1-PL, KW-1-PR)."""
        O, C, KH, KW = self.w.shape
        PT, PB, PL, PR = self.padding
        return (KH - 1 - PT, KH - 1 - PB, KW - 1 - PL, KW - 1 - PR)

    def _dx_flipped(self, g):
        """dx for stride 1: the convolution of g, padded by KH-1-PT, KH-1-PB rows and
        KW-1-PL, KW-1-PR columns, with the kernel flipped in both directions and its
        channel axes swapped -- computed by the row route like the forward pass
        (ops/_conv_rows.py), each block of dx's columns building only the rows of
        g's row array it reads (``span_product``)."""
        O, C, KH, KW = self.w.shape
        N, _, H, W = self.x_shape
        pads = self._dx_padding()
        wf = _conv_rows.flipped_kernel_matrix(self.w)                  # (C, KH·O·KW)
        dx = np.empty((C, H, W * N), dtype=g.dtype)
        tiles = _conv_rows.tiles(H, W, N, KH, O * KW, g.dtype.itemsize)

        def part(t):
            _conv_rows.span_product(g, KW, pads, wf, tiles[t],
                                    _conv_rows.tile_region(dx, tiles[t], N))
        run_blocks(part, range(len(tiles)))
        return dx.reshape(C, H, W, N).transpose(3, 0, 1, 2)

    def _dx_rows(self, g, spare):
        """dx for SW = 1: a convolution along W, then col2im along H.

        dx[n, c, h, w] = sum over o, kh, kw of W[o, c, kh, kw] · g[n, o, i, w + PL - kw]
        where i·SH + kh = h + PT.  For each kernel row kh,

            T[kh, c, (i, w, n)] = sum_{o, kw'} Wr[(kh, c), (o, kw')] · gcols[(o, kw'), (i, w, n)]

        with kw' = KW-1-kw, Wr = W flipped along kw, and gcols the im2col
        of g along W only: gcols[(o, kw'), (i, w, n)] = gW[n, o, i, w + kw'],
        gW being g with KW-1-PL zero columns on the left and KW-1-PR on the
        right.  That is a GEMM, (KH·C, O·KW) @ (O·KW, OH·W·N); then row i of
        T[kh] is added to row i·SH + kh of the padded dx (KH passes, kh = 0, 1,
        .. in order).  Everything is batch-last, like the forward pass.

        On the CPU (``_dx_rows_bands``) dx is cut into bands of its columns w:
        a band's T needs only the band's columns of gcols, and its KH passes
        touch only the band's columns of dx, so the bands are independent
        parts.  On the GPU: one GEMM, gcols and T carved out of ``spare``
        (cols, no longer needed) when it is big enough.
        """
        xp = array_module(g)
        if xp is np:
            return self._dx_rows_bands(g)
        O, C, KH, KW = self.w.shape
        N, _, H, W = self.x_shape
        PT, PB, PL, PR = self.padding
        SH = self.stride[0]
        OH = g.shape[2]
        gW = _pad_batch_last(g, (0, 0, KW - 1 - PL, KW - 1 - PR))      # (O, OH, W + KW - 1, N)
        sO, sI, sJ, sN = gW.strides
        w_rows = self._flipped_kernel_rows()
        g_cols, t = _carve(xp, spare, g.dtype, (O * KW, OH * W * N), (KH * C, OH * W * N))
        # g_cols[(o, kw'), (i, w, n)] = gW[o, i, w + kw', n]
        g_cols.reshape(O, KW, OH, W, N)[...] = xp.lib.stride_tricks.as_strided(
            gW, shape=(O, KW, OH, W, N), strides=(sO, sJ, sI, sJ, sN))
        xp.matmul(w_rows, g_cols, out=t)                                # (KH·C, OH·W·N)
        per_row = t.reshape(KH, C, OH, W, N)
        dxpad = xp.empty((C, H + PT + PB, W, N), dtype=g.dtype)
        _add_kernel_rows(dxpad, per_row, SH)
        for buf in (g_cols, t):
            workspace.give_back(buf)          # ignores the views carved from spare
        return dxpad[:, PT:PT + H].transpose(3, 0, 1, 2)

    def _flipped_kernel_rows(self):
        """Wr: W flipped along kw as (KH·C, O·KW), rows (kh, c), columns (o, kw')."""
        O, C, KH, KW = self.w.shape
        xp = array_module(self.w)
        return xp.ascontiguousarray(self.w[:, :, :, ::-1].transpose(2, 1, 0, 3)).reshape(
            KH * C, O * KW)

    def _dx_rows_bands(self, g):
        """``_dx_rows`` on the CPU, per band of dx's columns (fixed by the shapes,
        an even number where W allows, for two threads to share): the band's
        gcols are the row route's span of g padded along W with a kernel one row
        high, built a few rows of g at a time in the thread's scratch, and
        ``_conv_rows.span_product`` makes the (KH·C, O·KW) @ (O·KW, band·N)
        product per row of g into the band's T; then the band's KH passes in
        order (``_add_kernel_rows``).  No (KH·C, OH·W·N) T and no padded copy of g are
        written out (seed-001's second conv: 16 MB and 8 MB)."""
        O, C, KH, KW = self.w.shape
        N, _, H, W = self.x_shape
        PT, PB, PL, PR = self.padding
        SH = self.stride[0]
        OH = g.shape[2]
        size = g.dtype.itemsize
        w_rows = self._flipped_kernel_rows()
        g_pads = (0, 0, KW - 1 - PL, KW - 1 - PR)        # gW: g padded along W only
        # bands: a band's T about DX_BAND_BYTES; an even number where W allows
        per_band = max(1, DX_BAND_BYTES // (KH * C * OH * N * size))
        count = -(-W // per_band)
        count += count % 2 if count < W else 0
        bands = _conv_rows.cut_bands(W, count, pairs=False)
        rows_at_once = max(1, DX_BAND_BYTES // (O * KW * per_band * N * size))
        dxpad = np.empty((C, H + PT + PB, W * N), dtype=g.dtype)

        def part(band):
            w0, w1 = band
            n = (w1 - w0) * N
            t = thread_scratch((KH * C, OH, n), g.dtype, slot=2)      # the band's T
            for i0 in range(0, OH, rows_at_once):            # gcols of a few rows of g:
                i1 = min(OH, i0 + rows_at_once)              # the row route with KH = 1
                _conv_rows.span_product(g, KW, g_pads, w_rows, (i0, i1, w0, w1), t[:, i0:i1])
            _add_kernel_rows(dxpad[:, :, w0 * N:w1 * N], t.reshape(KH, C, OH, n), SH)
        run_blocks(part, bands)
        return dxpad.reshape(C, H + PT + PB, W, N)[:, PT:PT + H].transpose(3, 0, 1, 2)


def _add_kernel_rows(dxpad, per_row, SH):
    """col2im along H: dxpad (C, H', ...) = sum over kh of row i of per_row[kh]
    (KH, C, OH, ...) added to row i·SH + kh, in order kh = 0, 1, .. (the same sums
    on any split of the trailing axes)."""
    OH = per_row.shape[2]
    dxpad[...] = 0
    for kh in range(per_row.shape[0]):
        dxpad[:, kh:kh + SH * (OH - 1) + 1:SH] += per_row[kh]


# --------------------------------------------------------------------------
# the wrapper: argument checks with messages a student can act on
# --------------------------------------------------------------------------
def _conv_padding(padding, H, W, KH, KW, stride):
    return _checks.conv_padding("conv2d", padding, H, W, KH, KW, stride)


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
    operands, stride, pad = conv_operands(x, weight, bias, stride, padding)
    return Conv2D(stride, pad)(*operands)


def conv_operands(x, weight, bias=None, stride=1, padding=0, op="conv2d"):
    """conv2d's argument checks: (operands, (SH, SW), (PT, PB, PL, PR)), or a
    ValueError / TypeError a student can act on.  Also used by the fused
    conv2d_relu_maxpool (ops/conv_relu_pool.py)."""
    x = as_tensor(x)
    weight = as_tensor(weight, like=x)
    if x.ndim != 4:
        hint = ""
        if x.ndim == 2:
            hint = ("; for flattened images reshape first, e.g. MNIST (N, 784) -> "
                    "x.reshape(N, 1, 28, 28)")
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
    if not _checks.is_float(weight.dtype):
        raise TypeError(f"conv2d: weight has dtype {weight.dtype}; it must be floating "
                        f"point (float32 or float64)")
    if not _checks.is_float(x.dtype):    # e.g. uint8 pixels: no gradient, the cast is exact enough
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
    return operands, stride, pad
