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
from tinynet.ops._parallel import block_bounds, run_blocks

#: The smallest sum C·KW for which the row route is used (see the module docstring).
ROWS_MIN_K = 32


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


def fill_rows(x, KW, padding, out):
    """rows[(c, kw), (h, j, n)] = xpad[c, h, j + kw, n] into ``out`` (C·KW, H'·OW·N).

    x (N, C, H, W), best batch-last in memory (a conv output is); xpad is x
    padded by ``padding`` = (PT, PB, PL, PR), never built: each kernel column
    kw copies the block of x it sees and zeroes the rest.  Blocks of channels
    are filled on the pool."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = padding
    OW = W + PL + PR - KW + 1
    xt = x.transpose(1, 2, 3, 0)                                   # (C, H, W, N)
    out5 = out.reshape(C, KW, H + PT + PB, OW, N)

    def part(chans):
        c = slice(*chans)
        out5[c, :, :PT] = 0
        out5[c, :, PT + H:] = 0
        for kw in range(KW):
            # output column j reads input column j + kw - PL
            j0 = min(OW, max(0, PL - kw))
            j1 = max(j0, min(OW, W + PL - kw))
            inside = out5[c, kw, PT:PT + H]                        # (c, H, OW, N)
            inside[:, :, :j0] = 0
            inside[:, :, j1:] = 0
            if j1 > j0:
                inside[:, :, j0:j1] = xt[c, :, j0 + kw - PL:j1 + kw - PL]
    run_blocks(part, block_bounds(C, max(1, min(4, out.size >> 15))))
    return out


def kernel_rows(w):
    """W as KH matrices W_kh (O, C·KW), one C-contiguous (KH, O, C·KW) array."""
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w.transpose(2, 0, 1, 3)).reshape(KH, O, C * KW)


def flipped_kernel_rows(w):
    """The kernel_rows of dx's convolution: W flipped in both directions with its
    channel axes swapped, (KH, C, O·KW)."""
    O, C, KH, KW = w.shape
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 1, 0, 3)).reshape(KH, C, O * KW)


def block_product(rows, wk, cols, row_len, out):
    """out = sum_kh wk[kh] @ rows[:, cols shifted by kh·row_len], summed in kh order.

    ``cols`` a slice of output columns; ``out`` (O, its width), any row stride."""
    a, b = cols.start, cols.stop
    np.matmul(wk[0], rows[:, a:b], out=out)
    if len(wk) > 1:
        t = thread_scratch(out.shape, out.dtype, slot=4)
        for kh in range(1, len(wk)):
            np.matmul(wk[kh], rows[:, a + kh * row_len:b + kh * row_len], out=t)
            out += t
    return out


def grad_w(rows, g2, KH, KW, row_len):
    """dW (O, C, KH, KW) from the row-patch matrix (C·KW, H'·OW·N) and g2 (O, L).

    For each kh, (C·KW, L) @ (L, O) with g2 copied once to a C-contiguous
    (L, O) (OpenBLAS multiplies that layout 20 % faster than a transposed
    view).  Parts: every (kh, half of the L columns) -- fixed -- and the two
    halves' products added in order, the same sum for any thread count."""
    O, L = g2.shape
    CK = rows.shape[0]
    g2t = np.empty((L, O), dtype=g2.dtype)

    def transpose_part(cols):
        s = slice(*cols)
        g2t[s] = g2[:, s].T
    run_blocks(transpose_part, block_bounds(L, max(1, min(4, g2.size >> 15))))
    halves = block_bounds(L, 2)
    partial = np.empty((KH, len(halves), CK, O), dtype=g2.dtype)

    def part(p):
        kh, h = p
        a, b = halves[h]
        np.matmul(rows[:, kh * row_len + a:kh * row_len + b], g2t[a:b], out=partial[kh, h])
    run_blocks(part, [(kh, h) for kh in range(KH) for h in range(len(halves))])
    out = partial[:, 0]
    for h in range(1, len(halves)):
        out += partial[:, h]
    return np.ascontiguousarray(out.reshape(KH, CK // KW, KW, O).transpose(3, 1, 0, 2))


__all__ = ["ROWS_MIN_K", "applies", "rows_shape", "rows_bytes", "fill_rows", "kernel_rows",
           "flipped_kernel_rows", "block_product", "grad_w"]
