"""Readable twins of the fast ops: the same results, written to be read.

Each twin is a few lines of ordinary Tensor operations (slicing, ``@``,
``sum``, ``exp``), so autograd derives its backward by itself; there is no
workspace, no memory-order trick and no thread pool.  They are slow -- use
them to learn, to check, and in homework -- and the tests hold the fast ops
to them on random shapes.

Notation
--------
N        batch size                 C   input channels      O  output channels
H, W     input height and width     KH, KW  kernel (window) height and width
SH, SW   stride                     OH, OW  output height and width
x (N, C, H, W) images in NCHW; a conv weight is (O, C, KH, KW), its bias (O,).
"""
from tinynet import _checks, ops
from tinynet.backend import array_module
from tinynet.tensor import Tensor, as_tensor

__all__ = ["conv2d_simple", "max_pool2d_simple", "conv2d_relu_maxpool_simple",
           "softmax_cross_entropy_simple"]


def _zeros_like_rows(x, axis, n):
    """A constant zero Tensor shaped like x but with ``n`` entries along ``axis``."""
    shape = list(x.shape)
    shape[axis] = n
    return Tensor(array_module(x.data).zeros(shape, dtype=x.dtype))


def _pad2d(x, top, bottom, left, right):
    """x (N, C, H, W) with zero rows above/below and zero columns left/right."""
    parts = [p for p in (_zeros_like_rows(x, 2, top) if top else None, x,
                         _zeros_like_rows(x, 2, bottom) if bottom else None) if p is not None]
    x = ops.concatenate(parts, axis=2) if len(parts) > 1 else x
    parts = [p for p in (_zeros_like_rows(x, 3, left) if left else None, x,
                         _zeros_like_rows(x, 3, right) if right else None) if p is not None]
    return ops.concatenate(parts, axis=3) if len(parts) > 1 else x


def conv2d_simple(x, weight, bias=None, stride=1, padding=0):
    """Convolution (cross-correlation) as a loop over the KH·KW kernel positions.

    x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> y (N, O, OH, OW);
    stride and padding as in ``conv2d`` (int, pair, (top, bottom, left, right),
    "same" or "valid").  At kernel position (kh, kw) every output pixel sees
    the input pixel xpad[n, :, i·SH + kh, j·SW + kw]; those pixels form one
    strided slice (N, C, OH, OW), and multiplying its C channels by
    weight[:, :, kh, kw] (O, C) is one matrix product.  y is the sum over
    positions:

        y[n, o, i, j] = b[o] + sum_{kh, kw} sum_c xpad[n, c, i·SH+kh, j·SW+kw] · W[o, c, kh, kw]
    """
    x, weight = as_tensor(x), as_tensor(weight)
    N, C, H, W = x.shape
    O, _, KH, KW = weight.shape
    SH, SW = _checks.pair("conv2d_simple", "stride", stride)
    top, bottom, left, right = _checks.conv_padding("conv2d_simple", padding, H, W, KH, KW,
                                                    (SH, SW))
    xpad = _pad2d(x, top, bottom, left, right)
    OH = (H + top + bottom - KH) // SH + 1
    OW = (W + left + right - KW) // SW + 1
    y = None
    for kh in range(KH):
        for kw in range(KW):
            seen = xpad[:, :, kh:kh + SH * (OH - 1) + 1:SH, kw:kw + SW * (OW - 1) + 1:SW]
            # (N, OH, OW, C) @ (C, O) -> (N, OH, OW, O)
            term = ops.transpose(seen, (0, 2, 3, 1)) @ ops.transpose(weight[:, :, kh, kw])
            y = term if y is None else y + term
    y = ops.transpose(y, (0, 3, 1, 2))                                   # (N, O, OH, OW)
    if bias is not None:
        y = y + ops.reshape(as_tensor(bias), (1, O, 1, 1))
    return y


def max_pool2d_simple(x, kernel_size, stride=None):
    """Max pooling as a loop over the KH·KW window positions (no padding).

    x (N, C, H, W) -> y (N, C, OH, OW), OH = (H - KH) // SH + 1; stride
    defaults to the window.  y starts as every window's first element and
    is replaced where a later element is STRICTLY greater, so, as in
    ``max_pool2d``, the gradient of a window goes to its first maximum in
    row-major order.  ``better`` is a constant 0/1 mask; the blend
    y·(1 - better) + w·better is exact and routes the gradient.
    """
    x = as_tensor(x)
    KH, KW = _checks.pair("max_pool2d_simple", "kernel_size", kernel_size)
    SH, SW = (KH, KW) if stride is None else _checks.pair("max_pool2d_simple", "stride", stride)
    N, C, H, W = x.shape
    OH, OW = (H - KH) // SH + 1, (W - KW) // SW + 1
    y = None
    for kh in range(KH):
        for kw in range(KW):
            w = x[:, :, kh:kh + SH * (OH - 1) + 1:SH, kw:kw + SW * (OW - 1) + 1:SW]
            if y is None:
                y = w
                continue
            better = Tensor((w.data > y.data).astype(x.dtype))          # constant mask
            y = y * (1 - better) + w * better
    return y


def conv2d_relu_maxpool_simple(x, weight, bias=None, stride=1, padding=0):
    """The fused op of ops/conv_relu_pool.py, written as what it replaces:

        y = max_pool2d(relu(conv2d(x, weight, bias)), 2)     (N, O, OH/2, OW/2)

    x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None; stride and padding
    as in ``conv2d``.  relu(z) is z times the constant 0/1 mask (z > 0), so its
    gradient is g where z > 0 and 0 elsewhere (relu'(0) = 0).
    """
    z = conv2d_simple(x, weight, bias, stride, padding)
    opened = Tensor((z.data > 0).astype(z.dtype))                     # constant mask
    return max_pool2d_simple(z * opened, 2)


def softmax_cross_entropy_simple(logits, labels):
    """The mean over the batch of -log softmax(logits)[label], step by step.

    logits (N, K); labels (N,) class ids, or (N, K) rows of probabilities
    (one-hot or soft).  Returns a scalar Tensor.

        m       = max_k z[n, k]                  (a constant: only for stability)
        log p   = (z - m) - log(sum_k exp(z - m))
        loss    = -(1/N) sum_n sum_k t[n, k] · log p[n, k]      t: one-hot rows of the labels
    """
    z = as_tensor(logits)
    N, K = z.shape
    xp = array_module(z.data)
    t = labels.data if isinstance(labels, Tensor) else xp.asarray(labels)
    if t.ndim == 1:                                  # class ids -> one-hot rows
        t = xp.eye(K, dtype=z.dtype)[t]
    t = Tensor(t.astype(z.dtype))
    shifted = z - Tensor(z.data.max(axis=1, keepdims=True))
    log_p = shifted - ops.log(ops.exp(shifted).sum(axis=1, keepdims=True))
    return -(t * log_p).sum() / N
