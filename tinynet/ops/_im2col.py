"""The fast machinery behind conv2d: geometry, im2col / col2im, workspaces.

ops/conv.py holds the maths (Notation -> Function -> wrapper); this module
holds what makes it fast: patch matrices built by strided views in the
batch-last column order, the adjoint scatter without ``add.at``, scratch
buffers recycled between steps, and the per-block versions the op runs on
tinynet's thread pool (ops/_parallel.py).  See ops/conv.py for the notation.
"""
import math
import threading
from collections import OrderedDict

import numpy as np

from tinynet import _checks
from tinynet.backend import array_module
from tinynet.ops._parallel import run_blocks, block_bounds, copy_blocks


# --------------------------------------------------------------------------
# geometry (arguments arrive validated: see tinynet/_checks.py)
# --------------------------------------------------------------------------
def _pair(value, what, op="conv2d"):
    return _checks.pair(op, what, value)


_quad = _checks.quad


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
    return _checks.conv_padding("conv2d", "same", H, W, KH, KW, _pair(stride, "stride"))


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
    xp = array_module(x)
    xpad = xp.empty((C, H + PT + PB, W + PL + PR, N), dtype=x.dtype)

    def part(bounds):           # a block of channels: zero the border, copy the inside
        c = slice(*bounds)
        xpad[c, :PT] = 0
        xpad[c, PT + H:] = 0
        xpad[c, PT:PT + H, :PL] = 0
        xpad[c, PT:PT + H, PL + W:] = 0
        xpad[c, PT:PT + H, PL:PL + W] = xt[c]
    if xp is np:
        run_blocks(part, block_bounds(C, copy_blocks(xpad.size)))
    else:
        part((0, C))
    return xpad


def im2col_rows(xpad, KH, KW, stride, rows, cols6):
    """Fill output rows ``rows`` = (i0, i1) of the batch-last patch matrix.

    xpad (C, H', W', N) padded batch-last input; cols6 the (C, KH, KW, OH,
    OW, N) view of cols (K, L).  Element [c, kh, kw, i, j, n] =
    xpad[c, i·SH + kh, j·SW + kw, n]; only i0 <= i < i1 is written, so
    blocks of rows can be filled by different threads.
    """
    xp = array_module(xpad)
    (SH, SW), (i0, i1) = stride, rows
    C, _, _, OH, OW, N = cols6.shape
    sC, sH, sW, sN = xpad.strides
    patches = xp.lib.stride_tricks.as_strided(
        xpad[:, i0 * SH:], shape=(C, KH, KW, i1 - i0, OW, N),
        strides=(sC, sH, sW, sH * SH, sW * SW, sN))
    cols6[:, :, :, i0:i1] = patches


# --------------------------------------------------------------------------
# the patch matrix in cache-sized chunks (the CPU path of Conv2D)
# --------------------------------------------------------------------------
#: Bytes of one chunk of the patch matrix.  A chunk is filled and multiplied
#: while it sits in the core's L2 cache (2 MiB per core on the machine this
#: was tuned on, with room for the weights and the output tile): the whole
#: matrix -- 80 MB for a 5x5 conv of 32 channels on a batch of 128 at 14x14 --
#: never goes to memory and back.  Measured on that conv: the forward pass
#: 11-22 % faster than filling the whole matrix first (paired runs).
CHUNK_BYTES = 3 << 19


def chunk_columns(chunk, OW, N):
    """The slice of patch-matrix columns (order (i, j, n)) a chunk of whole rows
    (``kept_row_blocks``, or a one-row chunk) covers (one contiguous range)."""
    i0, i1, j0, j1 = chunk
    return slice((i0 * OW + j0) * N, ((i1 - 1) * OW + j1) * N)


# Conv2D and the fused Conv2D -> ReLU -> MaxPool2D(2) cut the output pixels the SAME
# way -- into runs of whole row pairs, or into row pairs cut into column ranges of even
# width -- so both make the very same matrix products for every output pixel, and
# therefore the same bits on any BLAS (a BLAS may sum a product of other shapes in
# another order).  A pooling window never straddles two chunks.
def pair_chunks(K, OH, OW, N, itemsize):
    """Fixed [(i0, i1, j0, j1)] for the STREAMED route: chunks of about CHUNK_BYTES of
    patch columns (K rows), aligned to 2x2 windows (i0, j0 even; i1 - i0 and
    j1 - j0 even except at the last row / column).  Shapes only."""
    pixels = max(1, CHUNK_BYTES // (K * N * itemsize))
    if pixels >= 2 * OW:                                  # runs of whole row pairs
        rows = max(2, min(pixels // OW, -(-OH // 4)) // 2 * 2)
        return [(i, min(i + rows, OH), 0, OW) for i in range(0, OH, rows)]
    width = max(2, pixels // 4 * 2)                       # a row pair, even columns
    return [(i, min(i + 2, OH), j, min(j + width, OW))
            for i in range(0, OH, 2) for j in range(0, OW, width)]


def kept_row_blocks(O, OH, OW, N, itemsize):
    """Fixed [(i0, i1, 0, OW)] runs of whole row pairs for the KEPT route (and the
    runs the fused pool op pools the row route's output in):
    each run's output (O rows) at most about CHUNK_BYTES, the row pairs dealt out as
    evenly as possible over a multiple of four runs (so that 2 or 4 threads finish
    together: 14 pairs -> 4, 4, 3, 3 rather than 3, 3, 3, 3, 2).  Shapes only."""
    pairs = -(-OH // 2)
    per_run = max(1, CHUNK_BYTES // (2 * O * OW * N * itemsize))      # pairs in a run, at most
    runs = min(pairs, -(-max(4, -(-pairs // per_run)) // 4) * 4)
    q, r = divmod(pairs, runs)          # the r longer runs first: the pool takes them first
    starts = [p * q + min(p, r) for p in range(runs + 1)]
    return [(2 * starts[p], min(2 * starts[p + 1], OH), 0, OW) for p in range(runs)]


def chunk_segments(chunk, OW, N):
    """The column slices (order (i, j, n)) a chunk covers: one when it holds whole rows
    or a single row, else one per row; and their total width."""
    i0, i1, j0, j1 = chunk
    if (j0, j1) == (0, OW) or i1 - i0 == 1:
        s = chunk_columns(chunk, OW, N)
        return [s], s.stop - s.start
    segs = [slice((i * OW + j0) * N, (i * OW + j1) * N) for i in range(i0, i1)]
    return segs, (i1 - i0) * (j1 - j0) * N


def fill_chunk(xpad, KH, KW, stride, chunk, out):
    """The chunk's columns of the patch matrix, into ``out`` (K, columns), C-contiguous.

    xpad (C, H', W', N) is the padded batch-last input; element
    [(c, kh, kw), (i, j, n)] = xpad[c, i·SH + kh, j·SW + kw, n] as in ``im2col``."""
    xp = array_module(xpad)
    (SH, SW), (i0, i1, j0, j1) = stride, chunk
    C, _, _, N = xpad.shape
    sC, sH, sW, sN = xpad.strides
    patches = xp.lib.stride_tricks.as_strided(
        xpad[:, i0 * SH:, j0 * SW:], shape=(C, KH, KW, i1 - i0, j1 - j0, N),
        strides=(sC, sH, sW, sH * SH, sW * SW, sN))
    out.reshape(C, KH, KW, i1 - i0, j1 - j0, N)[...] = patches
    return out


_local = threading.local()


def thread_scratch(shape, dtype, slot=0):
    """A C-contiguous scratch array of ``shape`` owned by the calling thread (kept for
    its next call: a pool thread reuses its chunk buffers across ops and steps).
    ``slot`` tells apart the arrays one call needs at the same time."""
    size = math.prod(shape)              # (np.prod of a tuple costs microseconds: this
    try:                                 # runs dozens of times per step)
        bufs = _local.bufs
    except AttributeError:
        bufs = _local.bufs = {}
    key = (slot, dtype if isinstance(dtype, np.dtype) else np.dtype(dtype))
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


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


