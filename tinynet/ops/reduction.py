"""Reductions: sum, mean, max over an axis (or all axes), with keepdims.

Notation: x has shape S; y has S with the reduced axes removed (or kept as
1 with keepdims); g has y's shape.  Backward first restores the reduced axes
as size 1 so that g broadcasts back over x.
"""
from tinynet.backend import array_module
from tinynet.tensor import Function, as_tensor


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < (ndim or 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _expand_grad(g, in_shape, axes, keepdims):
    """g reshaped so that it broadcasts against the input shape."""
    if keepdims:
        return g
    shape = [1 if i in axes else n for i, n in enumerate(in_shape)]
    return g.reshape(shape)


class Sum(Function):
    """y = x.sum(axis);  dx = g broadcast back to S."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axes(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        xp = array_module(g)
        g = _expand_grad(g, self.in_shape, self.axes, self.keepdims)
        return (xp.broadcast_to(g, self.in_shape).copy(),)


class Mean(Sum):
    """y = x.mean(axis);  dx = g / (number of reduced elements)."""

    def forward(self, x):
        y = super().forward(x)
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return y / x.dtype.type(self.count) if self.count else y

    def backward(self, g):
        (gx,) = super().backward(g)
        return (gx / gx.dtype.type(self.count),)


class Max(Function):
    """y = x.max(axis);  dx = g shared equally among the elements equal to the max.

    Ties split the gradient evenly (like torch.amax), so the gradient is the
    same whichever tied element a BLAS or a GPU reduction happened to pick.
    """

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x = x
        self.axes = _normalize_axes(self.axis, x.ndim)
        self.y = x.max(axis=self.axes, keepdims=True)
        return self.y if self.keepdims else self.y.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, g):
        g = _expand_grad(g, self.x.shape, self.axes, self.keepdims)
        mask = self.x == self.y
        count = mask.sum(axis=self.axes, keepdims=True).astype(g.dtype)
        return (mask * (g / count),)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (int, tuple or None for all)."""
    return Sum(axis, keepdims)(as_tensor(x))


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (int, tuple or None for all)."""
    return Mean(axis, keepdims)(as_tensor(x))


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``; the gradient is split among ties."""
    return Max(axis, keepdims)(as_tensor(x))
