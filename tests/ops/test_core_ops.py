"""Every core op against a numpy reference and against numerical derivatives.

Shapes come from hypothesis; each op runs on numpy, through the strict CuPy
stand-in and (when present) real CuPy, in float64 so central differences
are accurate.  Factories in the style of MyGrad's tests: one table row per
op names the tinynet call, the numpy reference and the domain it needs.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet import ops

SETTINGS = settings(max_examples=12, deadline=None)


def as_input(arr, device, requires_grad=True):
    return tn.tensor(arr, requires_grad=requires_grad, dtype=np.float64, device=device)


def values(shape, seed, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def check_against_reference(fn, ref, arrays, device, **kw):
    xs = [as_input(a, device) for a in arrays]
    out = fn(*xs)
    np.testing.assert_allclose(out.numpy(), ref(*arrays), rtol=1e-10, atol=1e-12)
    assert tn.gradcheck(fn, xs, **kw)


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    max_side=4)

BINARY = {
    "add": (lambda a, b: a + b, np.add, None),
    "sub": (lambda a, b: a - b, np.subtract, None),
    "mul": (lambda a, b: a * b, np.multiply, None),
    "div": (lambda a, b: a / b, np.divide, "positive_b"),
    "pow": (lambda a, b: a ** b, np.power, "positive_a"),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shapes=broadcast_pairs, seed=st.integers(0, 2**16))
def test_binary_op_broadcasts_and_gradchecks(name, shapes, seed, device):
    fn, ref, domain = BINARY[name]
    sa, sb = shapes.input_shapes
    a, b = values(sa, seed), values(sb, seed + 1)
    if domain == "positive_b":
        b = np.abs(b) + 0.5
    if domain == "positive_a":
        a = np.abs(a) + 0.5
    check_against_reference(fn, ref, [a, b], device)


UNARY = {
    "neg": (lambda x: -x, np.negative, None),
    "exp": (ops.exp, np.exp, None),
    "log": (ops.log, np.log, "positive"),
    "relu": (ops.relu, lambda x: np.maximum(x, 0), "away_from_kink"),
    "pow_scalar": (lambda x: x ** 3, lambda x: x ** 3, None),
    "rpow_scalar": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, None),
    "scalar_div": (lambda x: 1.5 / x, lambda x: 1.5 / x, "positive"),
    "reshape": (lambda x: x.reshape(-1), lambda x: x.reshape(-1), None),
    "transpose": (lambda x: x.T, lambda x: x.T, None),
    "log_softmax": (lambda x: ops.log_softmax(x, axis=-1),
                    lambda x: x - x.max(-1, keepdims=True)
                    - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)),
                    "min1d"),
    "softmax": (lambda x: ops.softmax(x, axis=-1),
                lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True), "min1d"),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_unary_op_gradchecks(name, shape, seed, device):
    fn, ref, domain = UNARY[name]
    if domain == "min1d" and len(shape) == 0:
        shape = (3,)
    x = values(shape, seed)
    if domain == "positive":
        x = np.abs(x) + 0.5
    if domain == "away_from_kink":
        x = np.where(np.abs(x) < 0.1, 0.5, x)  # central differences need no kink within eps
    check_against_reference(fn, ref, [x], device)


@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.sampled_from([tuple(range(len(shape)))])))
    return shape, axis


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@SETTINGS
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**16))
def test_reduction_gradchecks(name, case, keepdims, seed, device):
    shape, axis = case
    # distinct values: max is not differentiable at ties
    x = np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) * 0.1
    fn = lambda t: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    ref = lambda a: getattr(a, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    check_against_reference(fn, ref, [x], device)


def test_max_splits_gradient_between_ties(device):
    x = as_input(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), device)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [1, 0, 0]])


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)),
                                   ((4,), (4,)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_gradchecks(sa, sb, device):
    check_against_reference(lambda a, b: a @ b, np.matmul,
                            [values(sa, 1), values(sb, 2)], device)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5),
       seed=st.integers(0, 2**16), data=st.data())
def test_getitem_basic_slicing(shape, seed, data, device):
    index = data.draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True))
    check_against_reference(lambda x: x[index], lambda a: a[index], [values(shape, seed)], device)


@SETTINGS
@given(n=st.integers(1, 5), k=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_getitem_integer_arrays_with_repeats(n, k, seed, device):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=k)          # repeats are likely
    a = values((n, 3), seed)
    check_against_reference(lambda x: x[idx], lambda arr: arr[idx], [a], device)
    # repeated rows receive the sum of their gradients
    x = as_input(a, device)
    x[idx].sum().backward()
    counts = np.bincount(idx, minlength=n)[:, None] * np.ones((1, 3))
    np.testing.assert_array_equal(x.grad.numpy(), counts)


def test_getitem_pairs_of_integer_arrays(device):
    a = values((4, 5), 3)
    rows, cols = np.array([0, 2, 2, 3]), np.array([1, 1, 1, 4])
    check_against_reference(lambda x: x[rows, cols], lambda arr: arr[rows, cols], [a], device)


@SETTINGS
@given(parts=st.lists(st.integers(1, 3), min_size=1, max_size=4),
       axis=st.integers(0, 1), seed=st.integers(0, 2**16))
def test_concatenate_gradchecks(parts, axis, seed, device):
    arrays = [values((p, 3) if axis == 0 else (3, p), seed + i) for i, p in enumerate(parts)]
    check_against_reference(lambda *xs: ops.concatenate(xs, axis=axis),
                            lambda *arrs: np.concatenate(arrs, axis=axis), arrays, device)


def test_broadcast_to_and_cast_gradcheck(device):
    check_against_reference(lambda x: ops.broadcast_to(x, (4, 2, 3)),
                            lambda a: np.broadcast_to(a, (4, 2, 3)), [values((2, 1), 0)], device)
    x = as_input(values((2, 3), 1), device)
    y = x.astype("float32")
    assert y.dtype == np.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


@pytest.mark.parametrize("axes", [(1, 0, 2), (2, 0, 1), (-1, 0, 1)])
def test_transpose_with_axes_gradchecks(axes, device):
    check_against_reference(lambda x: x.transpose(*axes), lambda a: a.transpose(axes),
                            [values((2, 3, 4), 5)], device)
