"""Elementwise functions of one tensor: exp, log, relu.

Notation: x and y have the same shape; g is the gradient at y.
"""
import numpy as np

from tinynet.backend import array_module
from tinynet.ops._parallel import run_blocks, split_along
from tinynet.ops._ufuncs import relu_into
from tinynet.tensor import Function, as_tensor


class Exp(Function):
    """y = exp(x);  dx = g * y."""

    def forward(self, x):
        self.y = array_module(x).exp(x)
        return self.y

    def backward(self, g):
        return (g * self.y,)


class Log(Function):
    """y = log(x);  dx = g / x."""

    def forward(self, x):
        self.x = x
        return array_module(x).log(x)

    def backward(self, g):
        return (g / self.x,)


class ReLU(Function):
    """y = max(x, 0);  dx = g where x > 0, else 0.

    relu'(0) is taken as 0 (as TensorFlow and PyTorch do): a unit whose
    pre-activation is exactly 0 passes no gradient.  That is why a zero
    kernel with a zero bias blocks learning on both sides of it.
    """

    def forward(self, x):
        xp = array_module(x)
        if xp is not np:
            self.mask = x > 0
            return xp.maximum(x, 0)
        # the same two ufuncs, cut into blocks for tinynet's thread pool; both
        # outputs keep x's memory order (a conv output is batch-last)
        self.mask, y = np.empty_like(x, dtype=bool), np.empty_like(x)

        def part(s):
            np.greater(x[s], 0, out=self.mask[s])
            relu_into(x[s], y[s])
        run_blocks(part, split_along(x))
        return y

    def backward(self, g):
        if array_module(g) is not np:
            return (g * self.mask,)
        # dx in x's memory order (the mask's), whatever g's: after Flatten's
        # backward g is batch-first while a conv output is batch-last, and the
        # conv backward before us reads dx for free only in its own order
        mask = self.mask
        dx = np.empty_like(mask, dtype=g.dtype)

        def part(s):
            np.multiply(g[s], mask[s], out=dx[s])
        run_blocks(part, split_along(mask))
        return (dx,)


def exp(x):
    return Exp()(as_tensor(x))


def log(x):
    return Log()(as_tensor(x))


def relu(x):
    return ReLU()(as_tensor(x))
