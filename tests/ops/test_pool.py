"""max_pool2d: forward against a direct loop, the one-argmax gradient rule, errors.

Gradchecks use inputs with distinct values (a scaled random permutation):
at a tie the max is not differentiable and central differences would
straddle it.  Runs on numpy, the strict CuPy stand-in and real CuPy.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinynet as tn
from tinynet import backend
from tinynet.ops.pool import max_pool2d

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def pool_reference(x, kernel, stride, padding):
    """The definition, one window at a time; also the first-max gradient routing."""
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=-np.inf)
    N, C, Hp, Wp = xpad.shape
    OH, OW = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    y = np.empty((N, C, OH, OW))
    first = np.empty((N, C, OH, OW, 2), dtype=int)      # (row, col) in padded coordinates
    for i in range(OH):
        for j in range(OW):
            win = xpad[:, :, i * SH:i * SH + KH, j * SW:j * SW + KW].reshape(N, C, -1)
            k = win.argmax(axis=-1)                      # numpy: the first maximum
            y[:, :, i, j] = win.max(axis=-1)
            first[:, :, i, j] = np.stack([i * SH + k // KW, j * SW + k % KW], axis=-1)
    return y, first


def route_reference(g, first, x_shape, padding):
    N, C, H, W = x_shape
    PH, PW = padding
    dxpad = np.zeros((N, C, H + 2 * PH, W + 2 * PW))
    for idx in np.ndindex(*g.shape):
        r, c = first[idx]
        dxpad[idx[0], idx[1], r, c] += g[idx]
    return dxpad[:, :, PH:PH + H, PW:PW + W]


def as_input(arr, device, requires_grad=True):
    return tn.tensor(arr, requires_grad=requires_grad, dtype=np.float64, device=device)


def distinct(shape, seed):
    return np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1


@st.composite
def pool_cases(draw):
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.tuples(st.integers(0, KH // 2), st.integers(0, KW // 2)))
    H = draw(st.integers(max(KH - 2 * padding[0], 1), 7))
    W = draw(st.integers(max(KW - 2 * padding[1], 1), 7))
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W),
                kernel=(KH, KW), stride=stride, padding=padding,
                seed=draw(st.integers(0, 2**16)))


@SETTINGS
@given(case=pool_cases())
def test_max_pool2d_matches_reference_and_gradchecks(case, device):
    c = case
    stride = c["stride"] or c["kernel"]
    x = distinct(c["shape"], c["seed"])
    X = as_input(x, device)

    def fn(t):
        return max_pool2d(t, c["kernel"], c["stride"], c["padding"])

    y = fn(X)
    ref, first = pool_reference(x, c["kernel"], stride, c["padding"])
    np.testing.assert_array_equal(y.numpy(), ref)
    g = np.random.default_rng(c["seed"]).standard_normal(ref.shape)
    y.backward(tn.tensor(g, dtype=np.float64, device=device))
    np.testing.assert_allclose(X.grad.numpy(), route_reference(g, first, x.shape, c["padding"]),
                               rtol=1e-12, atol=1e-12)
    assert tn.gradcheck(fn, [as_input(x, device)])


@pytest.mark.parametrize("kernel,stride,padding", [
    (2, None, 0),            # non-overlapping, divisible: the common case
    (2, 2, 1),               # padding
    (3, 2, 1),               # overlapping
    (3, 1, 0),               # heavily overlapping
    ((2, 3), (3, 1), (1, 0)),  # rectangular, stride > kernel in one axis
])
def test_gradcheck_overlap_and_no_overlap(kernel, stride, padding, device):
    x = as_input(distinct((2, 3, 7, 6), 7), device)
    assert tn.gradcheck(lambda t: max_pool2d(t, kernel, stride, padding), [x])


@pytest.mark.parametrize("x_layout,g_layout", [("cnhw", "nchw"), ("cnhw", "cnhw"),
                                               ("nchw", "cnhw")])
@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2)])
def test_any_memory_layout(x_layout, g_layout, kernel, stride, device):
    """conv2d's output is channel-major in memory; pooling follows whatever
    order x and g come in, and the result must not depend on it."""
    def laid_out(a, layout):
        """A leaf tensor of logical shape (N, C, H, W) in that memory order."""
        if layout == "nchw":
            return as_input(a, device)
        data = backend.to_device(np.ascontiguousarray(a.transpose(1, 0, 2, 3)), device)
        return tn.Tensor(data.transpose(1, 0, 2, 3), requires_grad=True)

    x = distinct((3, 2, 6, 7), 5)
    ref, first = pool_reference(x, _pair(kernel), _pair(stride or kernel), (0, 0))
    g = np.random.default_rng(5).standard_normal(ref.shape)
    X = laid_out(x, x_layout)
    assert (X.data.strides[1] > X.data.strides[0]) == (x_layout == "cnhw")
    y = max_pool2d(X, kernel, stride)
    np.testing.assert_array_equal(y.numpy(), ref)
    y.backward(laid_out(g, g_layout).detach())
    np.testing.assert_allclose(X.grad.numpy(), route_reference(g, first, x.shape, (0, 0)),
                               rtol=1e-12, atol=1e-12)


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def test_tie_rule_first_maximum_in_row_major_order(device):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = [[1, 5], [5, 5]]       # window 0: three tied maxima
    x[0, 0, :2, 2:] = 7                      # window 1: all four tied
    x[0, 0, 2:, :2] = [[0, 0], [0, 9]]       # window 2: a single maximum
    x[0, 0, 2:, 2:] = [[2, 1], [2, 2]]       # window 3: ties in both rows
    X = as_input(x, device)
    y = max_pool2d(X, 2)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[5, 7], [9, 2]])
    y.backward(tn.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), dtype=np.float64,
                         device=device))
    expected = np.zeros((4, 4))
    expected[0, 1] = 1     # first 5 in row-major order
    expected[0, 2] = 2     # top-left of the tied window
    expected[3, 1] = 3
    expected[2, 2] = 4
    np.testing.assert_array_equal(X.grad.numpy()[0, 0], expected)


def test_tie_rule_with_overlapping_windows_accumulates(device):
    X = as_input(np.zeros((1, 1, 3, 3)), device)     # every window is all ties
    max_pool2d(X, 2, stride=1).sum().backward()
    # each of the four windows sends its gradient to its own top-left element
    np.testing.assert_array_equal(X.grad.numpy()[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    X = as_input(np.array([[[[0.0, 0, 0], [0, 8, 0], [0, 0, 0]]]]), device)
    max_pool2d(X, 2, stride=1).sum().backward()      # the 8 wins all four windows
    np.testing.assert_array_equal(X.grad.numpy()[0, 0], [[0, 0, 0], [0, 4, 0], [0, 0, 0]])


def test_tie_rule_agrees_with_torch(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = rng.integers(0, 3, size=(2, 3, 9, 8)).astype(np.float64)     # many ties
    for kernel, stride, padding in ((2, 2, 0), (3, 2, 1), (3, 1, 1)):
        X = as_input(x, device)
        y = max_pool2d(X, kernel, stride, padding)
        g = rng.standard_normal(y.shape)
        y.backward(tn.tensor(g, dtype=np.float64, device=device))
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.max_pool2d(tx, kernel, stride, padding)
        ty.backward(torch.tensor(g))
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
        np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_saves_small_integer_argmax_not_the_input(device):
    x = tn.tensor(distinct((2, 2, 6, 6), 1).astype(np.float32), device=device,
                  requires_grad=True)
    y = max_pool2d(x, 2)
    fn = y.creator
    assert fn.argmax.dtype == np.uint8 and fn.argmax.shape == (2, 2, 3, 3)
    assert not any(getattr(v, "shape", None) == x.shape for v in vars(fn).values()
                   if v is not fn.inputs)


def test_large_window_uses_wider_index(device):
    x = distinct((1, 2, 17, 17), 2)
    X = as_input(x, device)
    y = max_pool2d(X, 17)                             # 289 offsets > 255
    assert y.creator.argmax.dtype == np.int32
    y.sum().backward()
    grad = X.grad.numpy()
    for c in range(2):
        assert grad[0, c].sum() == 1 and grad[0, c].flat[x[0, c].argmax()] == 1


def test_float32_stays_float32_and_on_device(device):
    x = tn.tensor(distinct((2, 3, 8, 8), 3).astype(np.float32), device=device,
                  requires_grad=True)
    y = max_pool2d(x, 3, 2, 1)
    assert y.dtype == np.float32 and y.shape == (2, 3, 4, 4) and y.device == device
    y.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.device == device


def test_backward_never_leaves_the_device(strict_device):
    x = tn.tensor(distinct((2, 2, 5, 6), 4), device=strict_device, requires_grad=True)
    assert tn.gradcheck(lambda t: max_pool2d(t, (3, 2), (2, 1), 1), [x])
    y = max_pool2d(x, 2)
    y.sum().backward()
    assert backend.is_device_array(x.grad.data)


def test_output_size_floors_like_pytorch():
    x = tn.tensor(np.zeros((1, 1, 7, 5), np.float32))
    assert max_pool2d(x, 2).shape == (1, 1, 3, 2)
    assert max_pool2d(x, 3, 2, 1).shape == (1, 1, 4, 3)
    assert max_pool2d(x, (2, 1), (1, 2)).shape == (1, 1, 6, 3)


# ---------------------------------------------------------------- errors
def _t(shape, dtype=np.float32):
    return tn.tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("shape,kwargs,exc,pattern", [
    ((4, 28, 28), {}, ValueError, r"max_pool2d: input must be 4-D \(N, C, H, W\), got shape "
                                  r"\(4, 28, 28\)"),
    ((1, 1, 3, 3), dict(kernel_size=4), ValueError,
     r"max_pool2d: window 4x4 is larger than the padded input 3x3"),
    ((1, 1, 8, 8), dict(kernel_size=2, padding=2), ValueError,
     r"max_pool2d: padding must be between 0 and half the window .*got \(2, 2\)"),
    ((1, 1, 8, 8), dict(kernel_size=2, stride=0), ValueError,
     r"max_pool2d: stride must be an integer >= 1 or a pair of them, got 0"),
    ((1, 1, 8, 8), dict(kernel_size=(2, 2, 2)), ValueError,
     r"max_pool2d: kernel_size must be an integer >= 1 or a pair of them, got \(2, 2, 2\)"),
    ((1, 1, 8, 8), dict(kernel_size=2, padding=-1), ValueError,
     r"max_pool2d: padding must be an integer >= 0 or a pair of them, got -1"),
])
def test_errors(shape, kwargs, exc, pattern):
    kwargs.setdefault("kernel_size", 2)
    with pytest.raises(exc, match=pattern):
        max_pool2d(_t(shape), **kwargs)


def test_error_integer_input():
    with pytest.raises(TypeError, match=r"max_pool2d: input has dtype uint8.*astype"):
        max_pool2d(_t((1, 1, 4, 4), np.uint8), 2)
