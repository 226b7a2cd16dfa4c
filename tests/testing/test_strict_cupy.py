"""The strict CuPy stand-in: computes like numpy, refuses host/device mixing like CuPy."""
import copy
import operator
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tinynet.testing import strict_cupy as xp

IMPLICIT = "Implicit conversion to a NumPy array is not allowed"
HOST = "host \\(numpy\\) array"


def dev(a):
    return xp.asarray(np.asarray(a))


def assert_same(d, h):
    """``d`` is a device array holding exactly numpy's answer ``h`` (values and dtype)."""
    assert isinstance(d, xp.ndarray), type(d)
    h = np.asarray(h)
    assert d.dtype == h.dtype and d.shape == h.shape
    np.testing.assert_array_equal(d.get(), h)


floats = st.sampled_from([np.float32, np.float64])
BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
          operator.mod, operator.pow, operator.lt, operator.le, operator.eq, operator.ne,
          operator.gt, operator.ge, np.maximum, np.minimum, np.arctan2]


@st.composite
def array_pair(draw):
    dtype = draw(floats)
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4))
    elements = st.floats(-50, 50, width=32)
    a, b = (draw(hnp.arrays(dtype, s, elements=elements)) for s in shapes.input_shapes)
    return a, b


# --- arithmetic matches numpy ---------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(array_pair(), st.sampled_from(BINARY))
def test_binary_ops_match_numpy(pair, op):
    a, b = pair
    with np.errstate(all="ignore"):
        assert_same(op(dev(a), dev(b)), op(a, b))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(floats, hnp.array_shapes(max_dims=3, max_side=4),
                  elements=st.floats(-20, 20, width=32)),
       st.sampled_from([np.exp, np.log1p, np.expm1, np.sqrt, np.abs, np.sign, np.tanh,
                        np.negative, np.isfinite, np.isnan]))
def test_unary_ufuncs_match_numpy_via_xp_and_via_numpy(a, ufunc):
    with np.errstate(all="ignore"):
        expected = ufunc(a)
        assert_same(getattr(xp, ufunc.__name__)(dev(a)), expected)
        assert_same(ufunc(dev(a)), expected)          # numpy ufunc dispatches to the device
    assert_same(-dev(a), -a)
    assert_same(abs(dev(a)), abs(a))


def test_matmul_operators_and_inplace_keep_identity():
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    d = dev(a)
    assert_same(d @ d.T, a @ a.T)
    assert_same(xp.tensordot(d, d, axes=([1], [1])), np.tensordot(a, a, axes=([1], [1])))
    assert_same(xp.einsum("ij,kj->ik", d, d), np.einsum("ij,kj->ik", a, a))
    same = d
    d += 1
    d *= 2.0
    d **= 2
    assert d is same and d.dtype == np.float32
    assert_same(d, ((a + 1) * 2.0) ** 2)
    out = xp.empty((2, 3), dtype=xp.float32)
    assert xp.add(d, 1, out=out) is out
    assert_same(out, ((a + 1) * 2.0) ** 2 + 1)
    q, r = divmod(dev([7, 8, 9]), 4)
    assert_same(q, [1, 2, 2])
    assert_same(r, [3, 0, 1])


def test_dtype_promotion_mirrors_numpy():
    """A Python float keeps float32, and so does a numpy float32 scalar.

    A *numpy float64 scalar* (or 0-d array) promotes a float32 array to float64
    in numpy 2 (NEP 50: numpy scalars are strongly typed); numpy 1.x casts by
    value and keeps float32.  The stand-in mirrors whichever numpy is installed;
    tinynet itself must guard against the promotion (DESIGN: no silent float64).
    """
    strong = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
    promoted = np.float64 if strong else np.float32
    d = xp.ones(3, dtype=xp.float32)
    assert (d * 0.5).dtype == np.float32
    assert (0.5 * d).dtype == np.float32
    assert (d * 2).dtype == np.float32
    assert (d * np.float32(0.5)).dtype == np.float32
    assert (d * np.float64(0.5)).dtype == promoted
    assert (np.float64(0.5) * d).dtype == promoted
    assert (np.ones(3, np.float32) * np.float64(0.5)).dtype == promoted   # same on host
    assert (d + xp.asarray(np.float64(0.5))).dtype == promoted  # 0-d arrays follow scalars
    assert xp.exp(d).dtype == np.float32
    assert (xp.arange(3) / 2).dtype == np.float64


# --- host/device mixing is refused ------------------------------------------------------

HOST_ARR = np.ones(3, dtype=np.float32)


@pytest.mark.parametrize("expr", [
    lambda d: d + HOST_ARR, lambda d: HOST_ARR + d, lambda d: d * HOST_ARR,
    lambda d: HOST_ARR - d, lambda d: d @ HOST_ARR, lambda d: HOST_ARR @ d,
    lambda d: d < HOST_ARR, lambda d: HOST_ARR == d, lambda d: d ** HOST_ARR,
    lambda d: divmod(d, HOST_ARR),
], ids=["add", "radd", "mul", "rsub", "matmul", "rmatmul", "lt", "req", "pow", "divmod"])
def test_operators_refuse_host_arrays(expr):
    with pytest.raises(TypeError, match=HOST):
        expr(xp.ones(3, dtype=xp.float32))


def test_inplace_operators_refuse_host_arrays():
    d = xp.ones(3)
    with pytest.raises(TypeError, match=HOST):
        d += HOST_ARR
    h = np.ones(3)
    with pytest.raises(TypeError, match=HOST):
        h += d                      # the host side is refused too: no silent download


@pytest.mark.parametrize("call", [
    lambda d: xp.exp(HOST_ARR), lambda d: xp.maximum(d, HOST_ARR), lambda d: np.maximum(d, HOST_ARR),
    lambda d: xp.where(d > 0, d, HOST_ARR), lambda d: xp.matmul(HOST_ARR, d),
    lambda d: xp.concatenate([d, HOST_ARR]), lambda d: np.concatenate([d, HOST_ARR]),
    lambda d: xp.stack((d, HOST_ARR)), lambda d: xp.sum(HOST_ARR), lambda d: xp.zeros_like(HOST_ARR),
    lambda d: xp.dot(d, HOST_ARR), lambda d: d.dot(HOST_ARR), lambda d: xp.add(d, d, out=HOST_ARR),
    lambda d: xp.add.at(HOST_ARR, [0], 1.0), lambda d: xp.add.at(d, [0], HOST_ARR[:1]),
    lambda d: xp.lib.stride_tricks.sliding_window_view(HOST_ARR, 2), lambda d: xp.ascontiguousarray(HOST_ARR),
], ids=["exp", "maximum", "np.maximum", "where", "matmul", "concatenate", "np.concatenate", "stack",
        "sum", "zeros_like", "dot", "method.dot", "out", "at-target", "at-values", "sliding", "contiguous"])
def test_functions_and_ufuncs_refuse_host_arrays(call):
    with pytest.raises(TypeError, match="Unsupported type|strict_cupy.ndarray"):
        call(xp.ones(3, dtype=xp.float32))


def test_implicit_conversion_to_numpy_is_refused():
    d = xp.ones((2, 2))
    for convert in (np.asarray, np.array, lambda a: np.ascontiguousarray(a),
                    lambda a: np.lib.stride_tricks.as_strided(a, (2,), (8,)),
                    lambda a: np.float64(a)):
        with pytest.raises(TypeError, match=IMPLICIT):
            convert(d)


def test_ufuncs_refuse_python_sequences_like_cupy():
    with pytest.raises(TypeError, match="Unsupported type <class 'list'>"):
        xp.exp([1.0, 2.0])
    with pytest.raises(TypeError, match="Unsupported type <class 'list'>"):
        xp.ones(2) + [1.0, 2.0]


def test_scalars_and_0d_host_arrays_are_accepted():
    d = xp.arange(3.0)
    assert_same(d + np.array(1.0), np.arange(3.0) + 1)
    assert_same(xp.maximum(d, 1), [1.0, 1.0, 2.0])
    assert_same(xp.clip(d, 0.5, np.float64(1.5)), [0.5, 1.0, 1.5])
    assert_same(xp.pad(d, ((1, 2),)), np.pad(np.arange(3.0), ((1, 2),)))


# --- explicit transfers ----------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)))
def test_explicit_round_trip(h):
    d = xp.asarray(h)
    assert isinstance(d, xp.ndarray) and d.dtype == h.dtype and d.shape == h.shape
    for back in (xp.asnumpy(d), d.get(), xp.to_host(d)):
        assert type(back) is np.ndarray
        np.testing.assert_array_equal(back, h)


def test_transfers_copy_and_asarray_keeps_device_arrays():
    h = np.zeros(3)
    d = xp.asarray(h)
    h[0] = 1.0
    assert d.get()[0] == 0.0                       # the device copy is independent
    back = d.get()
    back[1] = 5.0
    assert d.get()[1] == 0.0
    assert xp.asarray(d) is d and xp.asarray(d, dtype=np.float64) is d
    assert xp.asarray(d, dtype=xp.float32).dtype == np.float32
    assert xp.array(d) is not d and xp.array(d, copy=False) is d
    assert_same(xp.asarray([1, 2], dtype=xp.float32), np.array([1, 2], np.float32))
    assert_same(xp.asarray([xp.asarray(1.0), 2.0]), [1.0, 2.0])
    assert xp.to_device is xp.asarray and xp.is_device_array(d) and not xp.is_device_array(h)
    assert xp.get_array_module(h, d) is xp and xp.get_array_module(h, 1.0) is np


# --- reductions, scalars and 0-d arrays --------------------------------------------------

def test_reductions_and_integer_indexing_return_0d_device_arrays():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = dev(a)
    for r in (d.sum(), d.mean(), d.max(), xp.sum(d), np.sum(d), d.argmax(), d[1, 2], d[0][1],
              xp.linalg.norm(d), xp.isnan(d).any()):
        assert isinstance(r, xp.ndarray) and r.ndim == 0, repr(r)
    assert float(d.sum()) == 15.0 and int(d.argmax()) == 5 and bool(d.max() == 5)
    assert d.sum().item() == 15.0 and d.sum().dtype == np.float32
    assert d[d.argmax() // 3, 0].item() == 3.0            # 0-d device arrays index
    assert list(range(xp.asarray(3))) == [0, 1, 2]
    with pytest.raises(ValueError):
        bool(d)                                         # ambiguous, as in numpy and CuPy
    assert f"{d.sum():.1f}" == "15.0"


def test_integer_index_gives_a_view_like_cupy():
    d = xp.zeros(3)
    elem = d[1]
    elem[...] = 7.0
    assert d.get().tolist() == [0.0, 7.0, 0.0]


# --- indexing ------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.data())
def test_basic_indexing_matches_numpy(data):
    h = data.draw(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                             elements=st.floats(-5, 5, width=32)))
    idx = data.draw(hnp.basic_indices(h.shape, allow_newaxis=True))
    d = dev(h)
    assert_same(d[idx], np.asarray(h[idx]))
    d[idx] = -1.0
    h = h.copy()
    h[idx] = -1.0
    assert_same(d, h)


def test_fancy_indexing_and_setitem():
    h = np.arange(12.0).reshape(3, 4)
    d = dev(h)
    assert_same(d[dev([2, 0])], h[[2, 0]])
    assert_same(d[[2, 0]], h[[2, 0]])                    # Python lists are fine
    assert_same(d[d > 5], h[h > 5])
    assert_same(d[..., None, 1], h[..., None, 1])
    assert_same(d[dev([0, 1]), dev([3, 2])], h[[0, 1], [3, 2]])
    d[d > 9] = 0.0
    d[0] = dev([1.0, 2.0, 3.0, 4.0])
    d[1, [0, 1]] = [9.0, 9.0]
    h[h > 9] = 0.0
    h[0] = [1.0, 2.0, 3.0, 4.0]
    h[1, [0, 1]] = 9.0
    assert_same(d, h)


@pytest.mark.parametrize("key", [np.array([0, 1]), np.array([True, False, True]),
                                 (slice(None), np.array([0])), [np.array([0])]],
                         ids=["int", "bool", "tuple", "list"])
def test_indexing_with_host_arrays_is_refused(key):
    d = xp.arange(3)
    with pytest.raises(TypeError, match=HOST):
        d[key]
    with pytest.raises(TypeError, match=HOST):
        d[key] = 0


def test_setitem_with_host_values_is_refused():
    d = xp.zeros((2, 3))
    with pytest.raises(TypeError, match=HOST):
        d[0] = np.ones(3)
    with pytest.raises(TypeError, match=HOST):
        d[...] = [np.ones(3), np.ones(3)]
    d[0] = np.float64(2.0)                                # scalars are fine
    d[1] = np.array(3.0)
    assert d.get().tolist() == [[2.0] * 3, [3.0] * 3]


# --- functions that return views or tuples, scatter-add --------------------------------

def test_stride_tricks_give_device_views():
    h = np.arange(10.0, dtype=np.float32)
    d = dev(h)
    s = xp.lib.stride_tricks.as_strided(d, shape=(4, 3), strides=(8, 4))
    assert_same(s, np.lib.stride_tricks.as_strided(h, shape=(4, 3), strides=(8, 4)))
    w = xp.lib.stride_tricks.sliding_window_view(d.reshape(2, 5), (2, 2))
    assert_same(w, np.lib.stride_tricks.sliding_window_view(h.reshape(2, 5), (2, 2)))
    assert_same(np.lib.stride_tricks.sliding_window_view(d, 3), np.lib.stride_tricks.sliding_window_view(h, 3))
    d[2] = 100.0                                          # views share the device memory
    assert s[1, 0].item() == 100.0 and w[0, 2, 0, 0].item() == 100.0
    assert d.base is None and s.base is not None


def test_add_at_scatters_with_repeats():
    target = xp.zeros(4, dtype=xp.float32)
    xp.add.at(target, dev([0, 0, 3, 1]), dev(np.array([1, 2, 3, 4], np.float32)))
    assert_same(target, np.array([3, 4, 0, 3], np.float32))
    np.add.at(target, (dev([2]),), 5.0)                  # numpy's own ufunc.at dispatches
    assert_same(target, np.array([3, 4, 5, 3], np.float32))
    grid = xp.zeros((2, 3))
    xp.add.at(grid, (dev([0, 0]), [1, 1]), 1.0)
    assert grid.get()[0, 1] == 2.0
    assert_same(xp.add.reduce(dev([1, 2, 3])), np.int64(6))
    assert_same(xp.multiply.outer(dev([1, 2]), dev([3, 4])), [[3, 4], [6, 8]])
    assert xp.add.nin == 2 and xp.add.identity == 0


def test_functions_returning_tuples_and_none():
    rows, cols = xp.unravel_index(dev([5, 7]), (3, 4))
    assert_same(rows, [1, 1])
    assert_same(cols, [1, 3])
    idx = xp.argmax(xp.arange(12).reshape(3, 4), axis=1)[:, None]
    assert_same(xp.take_along_axis(xp.arange(12).reshape(3, 4), idx, axis=1), [[3], [7], [11]])
    m = xp.zeros((3, 4))
    assert xp.put_along_axis(m, idx, 1.0, axis=1) is None
    assert m.sum().item() == 3.0
    parts = xp.split(xp.arange(6), 3)
    assert type(parts) is list and all(isinstance(p, xp.ndarray) for p in parts)
    assert xp.shape(xp.zeros((2, 5))) == (2, 5)


# --- random ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_generator_is_reproducible_and_on_device(dtype):
    draws = []
    for _ in range(2):
        g = xp.random.default_rng(1234)
        draws.append([g.random((2, 3), dtype=dtype), g.standard_normal(5, dtype=dtype),
                      g.integers(0, 10, size=(4,)), g.uniform(-1.0, 1.0, size=3),
                      g.permutation(6)])
    for first, second in zip(*draws):
        assert isinstance(first, xp.ndarray)
        np.testing.assert_array_equal(first.get(), second.get())
    r, n, i, u, p = draws[0]
    assert r.dtype == dtype and n.dtype == dtype and r.shape == (2, 3)
    assert i.dtype == np.int64 and 0 <= int(i.min()) and int(i.max()) < 10
    assert sorted(p.tolist()) == list(range(6))
    assert np.array_equal(r.get(), np.random.default_rng(1234).random((2, 3), dtype=dtype))
    assert not np.array_equal(xp.random.default_rng(1).random(4).get(),
                              xp.random.default_rng(2).random(4).get())


# --- the device array object and the namespace ------------------------------------------

def test_array_object_protocol():
    d = xp.arange(6.0).reshape(2, 3)
    assert "strict_cupy" in repr(d)
    assert len(d) == 2 and all(isinstance(row, xp.ndarray) for row in d)
    assert [float(x) for x in d[0]] == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError):
        hash(d)
    with pytest.raises(TypeError, match="0-d"):
        iter(xp.asarray(1.0))
    assert d.T.shape == (3, 2) and d.strides == (24, 8) and d.itemsize == 8 and d.nbytes == 48
    assert d.flags.c_contiguous and d.size == 6 and d.ndim == 2
    assert_same(d.astype(xp.float32), np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert d.astype(np.float64, copy=False) is d
    for clone in (copy.copy(d), copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert isinstance(clone, xp.ndarray) and clone is not d
        assert_same(clone, d.get())
    assert 4.0 in d and 9.0 not in d
    for name in ("reshape", "transpose", "swapaxes", "squeeze", "ravel", "copy", "std", "var",
                 "min", "argmin", "clip", "cumsum", "view", "fill", "any", "all"):
        assert hasattr(d, name)
    assert not hasattr(d, "tobytes") and not hasattr(d, "__array_interface__")


def test_namespace_delegation():
    assert xp.float32 is np.float32 and xp.int64 is np.int64 and xp.bool_ is np.bool_
    assert xp.newaxis is None and xp.pi == np.pi and xp.inf == np.inf
    assert_same(xp.zeros((2, 2), dtype=xp.float32), np.zeros((2, 2), np.float32))
    assert_same(xp.full((2,), 3.0), [3.0, 3.0])
    assert_same(xp.broadcast_to(xp.arange(3), (2, 3)), np.broadcast_to(np.arange(3), (2, 3)))
    with pytest.raises(AttributeError):
        xp.no_such_function
    with pytest.raises(AttributeError):
        xp.__path__                                # never looks like numpy's package
    assert "exp" in dir(xp) and "asnumpy" in dir(xp)


def test_importing_does_not_import_cupy():
    code = ("import sys, tinynet.testing.strict_cupy as x; x.exp(x.ones(2)); "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
