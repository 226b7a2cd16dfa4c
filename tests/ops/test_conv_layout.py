"""The batch-last memory order Conv2D and MaxPool2D work in (a speed choice).

Conv2D builds its im2col matrix with the columns ordered (i, j, n) -- the
batch innermost -- so its output is (C, H, W, N) in memory, and MaxPool2D
and ReLU keep whatever order they are given.  These tests pin down that the
results never depend on the memory order, that im2col/col2im in that order
are still each other's adjoint, and that a conv -> relu -> pool -> conv
chain stays batch-last (no transposing copies between layers).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import backend
from tinynet.ops.conv import col2im, conv2d, im2col
from tinynet.ops.pool import max_pool2d


def batch_last(a):
    """a (N, C, H, W) as a view of a C-contiguous (C, H, W, N) array."""
    return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def is_batch_last(a):
    return a.transpose(1, 2, 3, 0).flags.c_contiguous


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(3, 7), W=st.integers(3, 7),
       KH=st.integers(1, 3), KW=st.integers(1, 3), SH=st.integers(1, 3), SW=st.integers(1, 3),
       pad=st.tuples(*[st.integers(0, 2)] * 4), seed=st.integers(0, 2**16),
       x_batch_last=st.booleans())
def test_batch_last_im2col_is_the_column_permutation_and_col2im_its_adjoint(
        N, C, H, W, KH, KW, SH, SW, pad, seed, x_batch_last):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    if x_batch_last:
        x = batch_last(x)
    ref = im2col(x, KH, KW, (SH, SW), pad)                        # columns (n, i, j)
    cols = im2col(x, KH, KW, (SH, SW), pad, batch_last=True)      # columns (i, j, n)
    K = ref.shape[0]
    OH_OW = ref.shape[1] // N
    np.testing.assert_array_equal(cols, ref.reshape(K, N, OH_OW).transpose(0, 2, 1)
                                  .reshape(K, -1))
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, KH, KW, (SH, SW), pad, batch_last=True)
    assert back.shape == x.shape
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-10)


def test_im2col_out_must_fit():
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="im2col: out must be"):
        im2col(x, 3, 3, 1, 0, out=np.empty((9, 3), np.float32), batch_last=True)


@pytest.mark.parametrize("x_layout", ["nchw", "batch_last"])
@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, 1), ((1, 2), (0, 1))])
def test_conv2d_result_does_not_depend_on_memory_order(x_layout, stride, padding, device):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 7, 6))
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4)
    g = rng.standard_normal(conv2d(tn.tensor(x), tn.tensor(w), stride=stride,
                                   padding=padding).shape)
    results = []
    for layout in ("nchw", x_layout):
        data = x if layout == "nchw" else batch_last(x)
        X = tn.Tensor(backend.to_device(np.ascontiguousarray(data), device)
                      if layout == "nchw" else
                      backend.to_device(np.ascontiguousarray(data.transpose(1, 2, 3, 0)),
                                        device).transpose(3, 0, 1, 2), requires_grad=True)
        W = tn.tensor(w, device=device, requires_grad=True)
        B = tn.tensor(b, device=device, requires_grad=True)
        y = conv2d(X, W, B, stride=stride, padding=padding)
        y.backward(tn.tensor(g, device=device))
        results.append([y.numpy(), X.grad.numpy(), W.grad.numpy(), B.grad.numpy()])
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


def test_conv_relu_pool_chain_stays_batch_last():
    """No layer of the seeds' CNNs hands the next a transposed copy."""
    rng = np.random.default_rng(0)
    x = tn.tensor(rng.standard_normal((4, 1, 12, 12)).astype(np.float32))
    w1 = tn.tensor(rng.standard_normal((3, 1, 5, 5)).astype(np.float32), requires_grad=True)
    w2 = tn.tensor(rng.standard_normal((5, 3, 3, 3)).astype(np.float32), requires_grad=True)
    h1 = conv2d(x, w1, padding="same")
    r1 = h1.relu()
    p1 = max_pool2d(r1, 2)
    h2 = conv2d(p1, w2, padding="same")
    for t in (h1, r1, p1, h2):
        assert is_batch_last(t.data), t.data.strides
    for t in (r1, p1):
        t.retain_grad()
    loss = (h2.reshape(4, -1) ** 2).sum()          # Flatten: its gradient comes back NCHW
    loss.backward()
    grads = {"r1": r1.grad.data, "p1": p1.grad.data}
    # pooling puts the gradient back into x's (batch-last) order for the ReLU and conv
    assert is_batch_last(grads["r1"])
    assert np.isfinite(w1.grad.numpy()).all() and np.isfinite(w2.grad.numpy()).all()


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), (3, 1, 0),
                                                   (2, (1, 2), (1, 0))])
def test_max_pool_any_memory_order_same_result(kernel, stride, padding, device):
    rng = np.random.default_rng(1)
    x = rng.permutation(4 * 3 * 7 * 6).reshape(4, 3, 7, 6).astype(np.float64)
    ys, gxs = [], []
    for layout in ("nchw", "batch_last"):
        data = backend.to_device(np.ascontiguousarray(
            x if layout == "nchw" else x.transpose(1, 2, 3, 0)), device)
        X = tn.Tensor(data if layout == "nchw" else data.transpose(3, 0, 1, 2),
                      requires_grad=True)
        y = max_pool2d(X, kernel, stride, padding)
        if layout == "batch_last" and device == "cpu":
            assert is_batch_last(y.data)
        g = np.arange(np.prod(y.shape), dtype=np.float64).reshape(y.shape)
        y.backward(tn.tensor(g, device=device))
        ys.append(y.numpy())
        gxs.append(X.grad.numpy())
    np.testing.assert_array_equal(ys[0], ys[1])
    np.testing.assert_array_equal(gxs[0], gxs[1])
