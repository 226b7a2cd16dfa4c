"""The readable twins (ops/simple.py) against the fast ops, on random shapes.

Both the values and the gradients must agree (float64, to rounding), and
each twin passes gradcheck on its own, on numpy and through the strict CuPy
stand-in.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynet as tn
import tinynet.nn.functional as F

SETTINGS = settings(max_examples=10, deadline=None)


def _t(arr, device):
    return tn.tensor(arr, requires_grad=True, dtype=np.float64, device=device)


def _values_and_grads(fn, arrays, device, seed):
    xs = [_t(a, device) for a in arrays]
    out = fn(*xs)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(tn.tensor(g, dtype=np.float64, device=device))
    return out.numpy(), [x.grad.numpy() for x in xs]


def _agree(fast, simple, arrays, device, seed):
    (yf, gf), (ys, gs) = (_values_and_grads(f, arrays, device, seed) for f in (fast, simple))
    np.testing.assert_allclose(ys, yf, rtol=1e-10, atol=1e-12)
    for a, b in zip(gs, gf):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


conv_cases = st.tuples(
    st.integers(1, 2), st.integers(1, 3), st.integers(1, 3),          # N, C, O
    st.integers(3, 7), st.integers(3, 7), st.integers(1, 3), st.integers(1, 3),   # H W KH KW
    st.integers(1, 2), st.integers(1, 2),                             # SH SW
    st.sampled_from([0, 1, (1, 0), (0, 1, 2, 0), "same", "valid"]), st.booleans(),
    st.integers(0, 2**16))


@SETTINGS
@given(case=conv_cases)
def test_conv2d_simple_equals_conv2d(case, device):
    N, C, O, H, W, KH, KW, SH, SW, padding, with_bias, seed = case
    if padding == "same":
        SH = SW = 1
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C, KH, KW))]
    if with_bias:
        arrays.append(rng.standard_normal(O))
    kw = dict(stride=(SH, SW), padding=padding)
    _agree(lambda *a: F.conv2d(*a, **kw), lambda *a: F.conv2d_simple(*a, **kw),
           arrays, device, seed)


@SETTINGS
@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(2, 7), W=st.integers(2, 7),
       K=st.sampled_from([1, 2, 3, (2, 3)]), S=st.sampled_from([None, 1, 2, (1, 2)]),
       ties=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool2d_simple_equals_max_pool2d(N, C, H, W, K, S, ties, seed, device):
    kh, kw = (K, K) if isinstance(K, int) else K
    if kh > H or kw > W:
        return
    rng = np.random.default_rng(seed)
    # with ties (values from a handful of integers) the first-maximum rule decides
    x = rng.integers(0, 3, (N, C, H, W)).astype(float) if ties else \
        rng.standard_normal((N, C, H, W))
    _agree(lambda a: F.max_pool2d(a, K, S), lambda a: F.max_pool2d_simple(a, K, S),
           [x], device, seed)


@SETTINGS
@given(N=st.integers(1, 5), K=st.integers(2, 6), soft=st.booleans(), seed=st.integers(0, 2**16))
def test_softmax_cross_entropy_simple_equals_the_fused_loss(N, K, soft, seed, device):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, K)) * 3
    if soft:
        t = rng.random((N, K))
        labels = t / t.sum(axis=1, keepdims=True)
    else:
        labels = rng.integers(0, K, N)
    lab = tn.tensor(labels, device=device)
    _agree(lambda a: F.softmax_cross_entropy(a, lab),
           lambda a: F.softmax_cross_entropy_simple(a, lab), [z], device, seed)


def test_twins_gradcheck(device):
    rng = np.random.default_rng(0)
    x = _t(rng.standard_normal((2, 2, 5, 6)), device)
    w = _t(rng.standard_normal((3, 2, 3, 2)), device)
    b = _t(rng.standard_normal(3), device)
    assert tn.gradcheck(lambda x, w, b: F.conv2d_simple(x, w, b, stride=(2, 1), padding=1),
                        [x, w, b])
    assert tn.gradcheck(lambda x: F.max_pool2d_simple(x, 2, 1), [x])
    z = _t(rng.standard_normal((4, 5)), device)
    assert tn.gradcheck(lambda z: F.softmax_cross_entropy_simple(z, [0, 4, 2, 2]), [z])


def test_max_pool2d_simple_sends_a_tied_window_gradient_to_its_first_maximum():
    x = tn.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    F.max_pool2d_simple(x, 2).sum().backward()
    assert x.grad.numpy().tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]
