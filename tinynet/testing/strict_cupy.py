"""A strict stand-in for CuPy, so that CI without a GPU still catches device bugs.

tinynet's ops are written once against an array module ``xp`` (numpy on "cpu",
cupy on "cuda").  The bugs that only show on a GPU are the host/device ones:
calling ``numpy.`` on a device array, mixing a host array into a device
computation, or relying on a numpy scalar where CuPy gives a 0-d array.  On a
machine without CuPy the test suite registers *this module* as the "cuda" array
module (``tinynet.backend.install_cuda("strict")``); it computes with numpy, but
behaves like CuPy wherever such bugs hide.

Use it exactly like cupy::

    from tinynet.testing import strict_cupy as xp
    a = xp.asarray(np.arange(6.0).reshape(2, 3))     # explicit host -> device
    b = xp.exp(a) * 2.0 + a.sum(axis=0)              # device arrays throughout
    host = xp.asnumpy(b)  # or b.get()               # explicit device -> host

What it refuses (each with a TypeError, like CuPy):

* implicit device -> host conversion: ``numpy.asarray(dev)``, ``numpy.array(dev)``,
  anything that goes through ``__array__``;
* a host ``numpy.ndarray`` (ndim >= 1) anywhere a device function, ufunc,
  operator, method, index or assigned value expects device data -- also inside
  lists such as ``xp.concatenate([dev, host])``;
* Python lists/tuples as ufunc operands (``xp.exp([1, 2])``), as CuPy does.

What it allows (as CuPy does): Python and numpy scalars and 0-d host arrays as
operands; ``numpy`` ufuncs and functions called with device arrays only (they
dispatch here through ``__array_ufunc__``/``__array_function__`` and return
device arrays); ``float()``, ``int()``, ``bool()``, ``.item()`` on size-1
arrays (a synchronising read in CuPy).  Reductions and integer indexing return
0-d device arrays, never numpy scalars.  Result dtypes are numpy 2's (NEP 50),
because the computation *is* numpy.

Every other numpy name is reached through module ``__getattr__``: functions and
ufuncs are wrapped (unwrap device arguments, refuse host arrays, wrap results),
dtypes and constants pass through, submodules (``lib.stride_tricks``,
``linalg``, ``fft``) become wrapped namespaces.  ``random.default_rng(seed)``
wraps a numpy Generator and returns device arrays.  Never imports cupy.
"""
import functools as _functools
import sys as _sys
import types as _types

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

_SCALARS = (int, float, complex, np.generic)
_IMPLICIT_MSG = ("Implicit conversion to a NumPy array is not allowed. "
                 "Please use `.get()` to construct a NumPy array explicitly.")


def _host_error(x):
    return TypeError(
        f"Unsupported type {type(x)}: host (numpy) array of shape {x.shape} and dtype "
        f"{x.dtype} passed to a device (strict_cupy) function; move it with "
        f"xp.asarray first")


# --- unwrapping arguments and wrapping results ----------------------------------------

def _wrap(a):
    """A device array around the numpy array ``a`` (no copy)."""
    obj = object.__new__(ndarray)
    obj._a = a
    return obj


def _unwrap(x):
    """Device arrays -> their numpy arrays, recursively in lists and tuples.

    Refuses host arrays of ndim >= 1; scalars and everything else pass through.
    """
    t = type(x)
    if t is ndarray:
        return x._a
    if t is list or t is tuple:
        return t([_unwrap(v) for v in x])
    if isinstance(x, np.ndarray) and x.ndim:
        raise _host_error(x)
    return x


def _wrap_result(r):
    """numpy arrays and numpy scalars -> device arrays (scalars as 0-d, like CuPy)."""
    t = type(r)
    if t is np.ndarray:
        return _wrap(r)
    if isinstance(r, np.generic):
        return _wrap(np.asarray(r))
    if t is tuple or t is list:
        return t([_wrap_result(v) for v in r])
    if isinstance(r, tuple) and hasattr(r, "_fields"):      # e.g. linalg.svd's result
        return t(*[_wrap_result(v) for v in r])
    if isinstance(r, np.ndarray):
        return _wrap(r)
    return r


def _call(func, args, kwargs):
    """Call a numpy callable on unwrapped arguments and wrap what it returns."""
    if kwargs:
        res = func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        out = kwargs.get("out")
        if type(out) is ndarray and res is out._a:
            return out                                       # keep `out`'s identity
    else:
        res = func(*_unwrap(args))
    return _wrap_result(res)


def _operand(x):
    """One ufunc operand: raw array, scalar, or NotImplemented for unknown types."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, _SCALARS):
        return x
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return x
        raise _host_error(x)
    if isinstance(x, (list, tuple)):
        raise TypeError(f"Unsupported type {type(x)}: strict_cupy ufuncs, like CuPy's, "
                        f"do not take Python sequences; use xp.asarray first")
    return NotImplemented


def _apply_ufunc(ufunc, method, inputs, kwargs, from_numpy):
    """Shared by ``xp.<ufunc>(...)`` and ``ndarray.__array_ufunc__``."""
    raw = []
    for i, x in enumerate(inputs):
        r = _unwrap(x) if (method == "at" and i == 1) else _operand(x)   # at's index
        if r is NotImplemented:
            if from_numpy:
                return NotImplemented
            raise TypeError(f"Unsupported type {type(x)}")
        raw.append(r)
    out = kwargs.get("out")
    outs = None
    if out is not None or "where" in kwargs:
        kwargs = dict(kwargs)
        if out is not None:
            outs = out if type(out) is tuple else (out,)
            for o in outs:
                if o is not None and type(o) is not ndarray:
                    raise TypeError(f"output array must be a strict_cupy.ndarray, "
                                    f"got {type(o)}")
            kwargs["out"] = tuple(None if o is None else o._a for o in outs)
        if "where" in kwargs and not isinstance(kwargs["where"], bool):
            kwargs["where"] = _operand(kwargs["where"])
    res = getattr(ufunc, method)(*raw, **kwargs)
    if outs is not None:
        return outs[0] if len(outs) == 1 else outs
    return _wrap_result(res)


# --- the device array -----------------------------------------------------------------

class ndarray(NDArrayOperatorsMixin):
    """A "device" array: a numpy array that refuses to mix with host arrays.

    ``ndarray(shape, dtype=float)`` makes an uninitialised array, as in CuPy.
    """
    __slots__ = ("_a",)
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._a = np.empty(shape, dtype=dtype, order=order)

    # conversions: implicit ones refused, explicit ones allowed
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT_MSG)

    def get(self, stream=None, order="C", out=None, blocking=True):
        """An independent host numpy copy (into ``out`` if given)."""
        if out is None:
            return np.array(self._a, order=order, copy=True)
        np.copyto(out, self._a)
        return out

    def set(self, arr, stream=None):
        """Copy the host array ``arr`` (same shape) into this device array."""
        if not isinstance(arr, np.ndarray) or arr.shape != self.shape:
            raise ValueError(f"set() needs a numpy array of shape {self.shape}")
        np.copyto(self._a, arr)

    def item(self, *args):
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __index__(self):
        return self._a.__index__()

    # numpy protocols: dispatch when only device arrays (and scalars) take part
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _apply_ufunc(ufunc, method, inputs, kwargs, from_numpy=True)

    def __array_function__(self, func, types, args, kwargs):
        for t in types:
            if not (t is ndarray or issubclass(t, np.ndarray)):
                return NotImplemented
        return _call(func, args, kwargs)

    # attributes
    shape = property(lambda self: self._a.shape, doc="tuple of ints")

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(self._a.mT))
    real = property(lambda self: _wrap(self._a.real))
    imag = property(lambda self: _wrap(self._a.imag))
    device = property(lambda self: _DEVICE)

    @property
    def base(self):
        """The device array this one views, or None (a fresh wrapper: no identity)."""
        b = self._a.base
        while b is not None and not isinstance(b, np.ndarray):
            b = getattr(b, "base", None)     # e.g. as_strided's interface holder
        return None if b is None else _wrap(b)

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and self._a.dtype == np.dtype(dtype):
            return self
        return _wrap(self._a.astype(dtype, order=order, copy=copy))

    # indexing: views where numpy gives views, 0-d device arrays where it gives scalars
    def __getitem__(self, key):
        key = _unwrap(key)
        r = self._a[key]
        if type(r) is np.ndarray:
            return _wrap(r)
        key = key + (Ellipsis,) if type(key) is tuple else (key, Ellipsis)
        return _wrap(self._a[key])           # a 0-d *view*, as CuPy returns

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        a = self._a
        return (_wrap(a[i, ...]) for i in range(a.shape[0]))

    def __contains__(self, value):
        return bool((self == value).any())

    def __copy__(self):
        return _wrap(self._a.copy())

    def __deepcopy__(self, memo):
        return _wrap(self._a.copy())

    def __reduce__(self):
        return (asarray, (self._a.copy(),))

    def __repr__(self):
        return "strict_cupy." + np.array_repr(self._a)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)


def _make_method(name):
    np_method = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        if kwargs:
            return _call(np_method, (self,) + args, kwargs)
        return _wrap_result(np_method(self._a, *_unwrap(args)))
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Device version of numpy.ndarray.{name}."
    return method


# cupy.ndarray's numpy-style methods (cupy has no tobytes, ctypes, data-as-buffer, ...)
for _name in ("all any argmax argmin argpartition argsort choose clip compress conj "
              "conjugate copy cumprod cumsum diagonal dot fill flatten max mean min "
              "nonzero partition prod ptp put ravel repeat reshape round sort squeeze "
              "std sum swapaxes take trace transpose var view").split():
    if hasattr(np.ndarray, _name):
        setattr(ndarray, _name, _make_method(_name))


class _Device:
    """Enough of ``cupy.cuda.Device`` to print and compare."""
    id = 0

    def __repr__(self):
        return "<CUDA Device 0 (strict_cupy stand-in)>"


_DEVICE = _Device()


# --- ufuncs, functions and namespaces ---------------------------------------------------

class _Ufunc:
    """A numpy ufunc that only takes device arrays and scalars (``xp.add.at`` too)."""
    def __init__(self, ufunc):
        self._ufunc, self.__name__, self.__doc__ = ufunc, ufunc.__name__, ufunc.__doc__

    def __call__(self, *args, **kwargs):
        return _apply_ufunc(self._ufunc, "__call__", args, kwargs, from_numpy=False)

    def reduce(self, array, axis=0, dtype=None, out=None, **kwargs):
        return _apply_ufunc(self._ufunc, "reduce", (array,),
                            dict(kwargs, axis=axis, dtype=dtype, out=out), from_numpy=False)

    def accumulate(self, array, axis=0, dtype=None, out=None):
        return _apply_ufunc(self._ufunc, "accumulate", (array,),
                            dict(axis=axis, dtype=dtype, out=out), from_numpy=False)

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        return _call(self._ufunc.reduceat, (array, indices),
                     dict(axis=axis, dtype=dtype, out=out))

    def outer(self, a, b, **kwargs):
        return _apply_ufunc(self._ufunc, "outer", (a, b), kwargs, from_numpy=False)

    def at(self, a, indices, b=None):
        if type(a) is not ndarray:
            raise TypeError(f"{self.__name__}.at needs a strict_cupy.ndarray, got {type(a)}")
        args = (a, indices) if b is None else (a, indices, b)
        return _apply_ufunc(self._ufunc, "at", args, {}, from_numpy=False)

    def __getattr__(self, name):              # nin, nout, identity, types, ...
        return getattr(self._ufunc, name)

    def __repr__(self):
        return f"<strict_cupy ufunc {self.__name__!r}>"


def _wrap_function(func):
    @_functools.wraps(func)
    def device_function(*args, **kwargs):
        return _call(func, args, kwargs)
    return device_function


def _delegate(obj):
    """What a numpy attribute becomes here."""
    if isinstance(obj, np.ufunc):
        return _Ufunc(obj)
    if isinstance(obj, _types.ModuleType):
        return _Namespace(obj)
    if callable(obj) and not isinstance(obj, type):
        return _wrap_function(obj)
    return obj                            # dtypes, classes, constants, newaxis


class _Namespace:
    """A numpy submodule seen through strict_cupy (e.g. ``xp.lib.stride_tricks``)."""

    def __init__(self, module, **overrides):
        self._module = module
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        value = _delegate(getattr(self._module, name))
        setattr(self, name, value)        # cache: the next lookup skips __getattr__
        return value

    def __repr__(self):
        return f"<strict_cupy namespace over {self._module.__name__}>"


class _Generator:
    """A numpy random Generator (or RandomState) whose draws land on the device."""

    def __init__(self, np_generator):
        self._gen = np_generator

    def __getattr__(self, name):
        attr = getattr(self._gen, name)
        if name.startswith("_") or not callable(attr):
            return attr
        return _functools.wraps(attr)(lambda *args, **kwargs: _call(attr, args, kwargs))

    def __repr__(self):
        return f"strict_cupy.random.Generator({self._gen!r})"


def _default_rng(seed=None):
    """Like ``cupy.random.default_rng``: a seeded generator of device arrays."""
    if isinstance(seed, ndarray):
        seed = seed.get()
    return _Generator(np.random.default_rng(seed))


def _random_state(seed=None):
    return _Generator(np.random.RandomState(seed))


random = _Namespace(np.random, default_rng=_default_rng, Generator=_Generator,
                    RandomState=_random_state)


# --- explicit transfers and the module-level API -----------------------------------------

def asarray(a, dtype=None, order=None, blocking=False):
    """Host -> device (always a copy); a device array of that dtype comes back as is."""
    if type(a) is ndarray:
        if dtype is None or a._a.dtype == np.dtype(dtype):
            return a
        return _wrap(a._a.astype(dtype))
    if type(a) is list or type(a) is tuple:
        a = _unwrap_lenient(a)
    return _wrap(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    """Like ``cupy.array``: host or device input, a new device array unless copy=False."""
    if type(obj) is ndarray:
        if not copy and ndmin <= obj.ndim:
            return asarray(obj, dtype)
        return _wrap(np.array(obj._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
    if type(obj) is list or type(obj) is tuple:
        obj = _unwrap_lenient(obj)
    return _wrap(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


asanyarray = asarray


def _unwrap_lenient(x):
    """Like _unwrap, but host arrays are fine (asarray is the explicit transfer)."""
    t = type(x)
    if t is ndarray:
        return x._a
    if t is list or t is tuple:
        return t([_unwrap_lenient(v) for v in x])
    return x


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """Device -> host (an independent copy); host input comes back via numpy.asarray."""
    if type(a) is ndarray:
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    """This module if any argument is a device array, else numpy (as in CuPy)."""
    for a in args:
        if type(a) is ndarray:
            return _sys.modules[__name__]
    return np


def is_device_array(a):
    return isinstance(a, ndarray)


to_device = asarray
to_host = asnumpy


def __getattr__(name):
    """Every other numpy name: functions/ufuncs wrapped, dtypes and constants as is."""
    if name.startswith("_"):              # never leak numpy's __path__ and friends
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        obj = getattr(np, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r} "
                             f"(numpy has none either)") from None
    value = _delegate(obj)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | {n for n in dir(np) if not n.startswith("_")})
