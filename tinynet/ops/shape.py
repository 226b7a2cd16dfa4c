"""Ops that move elements around without arithmetic.

reshape, transpose, getitem (basic slicing and integer-array indexing),
concatenate, broadcast_to, cast (dtype) and to_device.  Their backward
passes put each gradient element back where its forward element came from.
"""
import numpy as np

from tinynet import backend
from tinynet.backend import array_module
from tinynet.ops._operands import sum_to
from tinynet.tensor import Function, Tensor, as_tensor


class Reshape(Function):
    """y = x.reshape(shape);  dx = g.reshape(x.shape)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {self.shape}") from None

    def backward(self, g):
        return (g.reshape(self.in_shape),)


class Transpose(Function):
    """y = x.transpose(axes);  dx = g.transpose(inverse of axes)."""

    def __init__(self, axes):
        self.axes = None if axes is None else tuple(axes)

    def forward(self, x):
        if self.axes is not None and sorted(a % x.ndim for a in self.axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of the "
                             f"{x.ndim} axes of a tensor of shape {x.shape}")
        return x.transpose(self.axes)

    def backward(self, g):
        if self.axes is None:
            return (g.transpose(),)
        inverse = tuple(int(i) for i in np.argsort([a % g.ndim for a in self.axes]))
        return (g.transpose(inverse),)


def _device_index(index, xp):
    """Move Tensor / list index parts to the array module of the data."""
    def one(i):
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, (list, np.ndarray)) and xp is not np:
            i = xp.asarray(i)
        return i
    if isinstance(index, tuple):
        return tuple(one(i) for i in index)
    return one(index)


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis)))
               for i in parts)


class GetItem(Function):
    """y = x[index];  dx = zeros like x with g added at the indexed places.

    Integer-array indices may repeat an element; those gradients are summed
    (scatter-add), so ``x[[0, 0]]`` sends 2·g back to x[0].
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        try:
            return x[self.index]
        except IndexError as exc:
            raise IndexError(f"getitem: index {self.index!r} is invalid for a tensor of "
                             f"shape {x.shape}: {exc}") from None

    def backward(self, g):
        xp = array_module(g)
        gx = xp.zeros(self.in_shape, dtype=g.dtype)
        if _is_basic(self.index):
            gx[self.index] = g            # a view: no element is hit twice
        else:
            xp.add.at(gx, self.index, g)  # integer arrays may repeat elements
        return (gx,)


class Concatenate(Function):
    """y = concatenate(xs, axis);  dx_i = the slice of g that x_i filled."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        xp = array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, g):
        xp = array_module(g)
        cuts = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(xp.split(g, cuts, axis=self.axis))


class BroadcastTo(Function):
    """y = broadcast_to(x, shape);  dx = g summed back to x.shape."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        return array_module(x).broadcast_to(x, self.shape).copy()

    def backward(self, g):
        return (sum_to(g, self.in_shape),)


class Cast(Function):
    """y = x.astype(dtype);  dx = g.astype(x.dtype)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, g):
        return (g.astype(self.in_dtype),)


class ToDevice(Function):
    """y = x on another device;  dx = g moved back.  The only host<->device copy."""

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, g):
        return (backend.to_device(g, self.in_device),)


def reshape(x, shape):
    """Shapes: x (any) -> ``shape`` with the same number of elements (-1 allowed)."""
    return Reshape(shape)(as_tensor(x))


def transpose(x, axes=None):
    """Permute axes (reverse them when ``axes`` is None)."""
    return Transpose(axes)(as_tensor(x))


def getitem(x, index):
    """x[index] for ints, slices, None, Ellipsis and integer or boolean arrays."""
    x = as_tensor(x)
    return GetItem(_device_index(index, array_module(x.data)))(x)


def concatenate(tensors, axis=0):
    """Join tensors along ``axis``; all other dimensions must agree."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    ref = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != ref.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape))
                                     if k != axis % ref.ndim):
            raise ValueError(f"concatenate: tensor {i} has shape {t.shape}, which does not "
                             f"match tensor 0's shape {ref.shape} outside axis {axis}")
        if t.dtype != ref.dtype:
            raise TypeError(f"concatenate: tensor {i} has dtype {t.dtype}, tensor 0 has "
                            f"{ref.dtype}; convert one with .astype(...)")
    return Concatenate(axis)(*tensors)


def broadcast_to(x, shape):
    x = as_tensor(x)
    try:
        np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        raise ValueError(f"broadcast_to: shape {x.shape} cannot be broadcast to "
                         f"{tuple(shape)}") from None
    return BroadcastTo(shape)(x)


def cast(x, dtype):
    return Cast(dtype)(as_tensor(x))


def to_device(x, device):
    return ToDevice(backend.normalize_device(device))(as_tensor(x))
