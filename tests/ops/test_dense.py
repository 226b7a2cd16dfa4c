"""The fused dense op: values against numpy, gradients against central differences,
the skipped dx of a first layer, and the shape/dtype/device errors."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinynet as tn
from tinynet.ops.dense import Dense, dense

SETTINGS = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def t64(arr, device, requires_grad=True):
    return tn.tensor(arr, requires_grad=requires_grad, dtype=np.float64, device=device)


@SETTINGS
@given(n=st.integers(1, 4), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_dense_matches_numpy_and_gradchecks(n, n_in, n_out, with_bias, seed, device):
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(n, n_in)), rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
    xs = [t64(x, device), t64(w, device)] + ([t64(b, device)] if with_bias else [])
    out = dense(*xs)
    np.testing.assert_allclose(out.numpy(), x @ w + (b if with_bias else 0), rtol=1e-12)
    assert out.device == device
    assert tn.gradcheck(lambda *a: dense(*a), xs)


@SETTINGS
@given(n=st.integers(1, 4), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_input_without_grad_gradchecks_and_gets_no_dx(n, n_in, n_out, seed, device):
    rng = np.random.default_rng(seed)
    x = t64(rng.normal(size=(n, n_in)), device, requires_grad=False)
    w, b = t64(rng.normal(size=(n_in, n_out)), device), t64(rng.normal(size=n_out), device)
    assert tn.gradcheck(lambda x_, w_, b_: dense(x_, w_, b_), [x, w, b])
    fn = Dense()
    out = fn(x, w, b)
    dx, dw, db = fn.backward(tn.tensor(np.ones((n, n_out)), device=device).data)
    assert dx is None and dw.shape == (n_in, n_out) and db.shape == (n_out,)
    out.backward(tn.tensor(np.ones((n, n_out)), device=device))
    assert x.grad is None


def test_gradients_are_the_textbook_formulas():
    x = t64([[1.0, 0.0, 2.0], [3.0, 0.0, -1.0]], "cpu")
    w = t64(np.arange(6.0).reshape(3, 2), "cpu")
    b = t64([0.5, -0.5], "cpu")
    g = np.array([[1.0, 2.0], [-1.0, 0.5]])
    dense(x, w, b).backward(g)
    np.testing.assert_allclose(w.grad.numpy(), x.numpy().T @ g)
    np.testing.assert_allclose(b.grad.numpy(), g.sum(0))
    np.testing.assert_allclose(x.grad.numpy(), g @ w.numpy().T)
    assert np.all(w.grad.numpy()[1] == 0)       # input feature 1 is zero on every sample


def test_float32_stays_float32(device):
    x = tn.tensor(np.ones((2, 3), np.float32), device=device)
    w = tn.tensor(np.ones((3, 4), np.float32), requires_grad=True, device=device)
    b = tn.tensor(np.ones(4, np.float32), requires_grad=True, device=device)
    out = dense(x, w, b)
    assert out.dtype == np.float32
    out.sum().backward()
    assert w.grad.dtype == np.float32 and b.grad.dtype == np.float32


@pytest.mark.parametrize("xs,ws,bs,match", [
    ((2, 3), (4, 5), None, r"dense: expected input of shape \(N, 4\).*got \(2, 3\)"),
    ((2, 3, 1), (3, 5), None, r"dense: expected input of shape \(N, 3\)"),
    ((2, 3), (3,), None, r"dense: the weight must have shape \(IN, OUT\), got \(3,\)"),
    ((2, 3), (3, 5), (4,), r"dense: the bias must have shape \(5,\).*got \(4,\)"),
])
def test_shape_errors_name_dense(xs, ws, bs, match):
    args = [tn.tensor(np.ones(xs, np.float32)), tn.tensor(np.ones(ws, np.float32))]
    if bs:
        args.append(tn.tensor(np.ones(bs, np.float32)))
    with pytest.raises(ValueError, match=match):
        dense(*args)


def test_dtype_and_device_errors_name_dense(strict_device):
    w = tn.tensor(np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match=r"dense: the input is float64 but the weight is float32"):
        dense(tn.tensor(np.ones((1, 3))), w)
    with pytest.raises(TypeError, match=r"dense: the input is uint8.*integer data"):
        dense(tn.tensor(np.ones((1, 3), np.uint8)), w)
    with pytest.raises(tn.DeviceError,
                       match=r"dense: the input is on cuda but the weight is on cpu"):
        dense(tn.tensor(np.ones((1, 3), np.float32), device=strict_device), w)
    with pytest.raises(tn.DeviceError, match=r"dense: the bias is on cuda"):
        dense(tn.tensor(np.ones((1, 3), np.float32)), w,
              tn.tensor(np.ones(2, np.float32), device=strict_device))


@SETTINGS
@given(n=st.integers(2, 5), n_in=st.integers(2, 6), n_out=st.integers(1, 4),
       fuse_relu=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_last_input_gets_a_batch_last_dx_with_the_same_values(n, n_in, n_out, fuse_relu,
                                                                    seed):
    """An input stored batch-innermost (a flattened conv output) gets dx in that same
    order, computed as (W @ gᵀ)ᵀ: the values of g @ Wᵀ, and a gradcheck holds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in))
    w, b, g = rng.normal(size=(n_in, n_out)), rng.normal(size=n_out), rng.normal(size=(n, n_out))
    grads = {}
    for order in ("C", "F"):
        xt = tn.tensor(np.asarray(x, order=order), requires_grad=True, dtype=np.float64)
        wt, bt = t64(w, "cpu"), t64(b, "cpu")
        fn = Dense(fuse_relu=fuse_relu)
        fn(xt, wt, bt)
        grads[order] = fn.backward(g)
        assert tn.gradcheck(lambda *a: dense(*a), [xt, wt, bt])
    dx_c, dx_f = grads["C"][0], grads["F"][0]
    assert dx_c.flags.c_contiguous and dx_f.flags.f_contiguous
    np.testing.assert_allclose(dx_f, dx_c, rtol=1e-12, atol=1e-12)
    for a, b_ in zip(grads["C"][1:], grads["F"][1:]):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)
