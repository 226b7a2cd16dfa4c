"""log-softmax and softmax along an axis, computed stably.

Notation: x and y have the same shape; the normalization runs over ``axis``
(C classes).  log_softmax(x) = x - max - log(sum(exp(x - max))): subtracting
the max first keeps exp from overflowing.
"""
from tinynet.backend import array_module
from tinynet.tensor import Function, as_tensor


class LogSoftmax(Function):
    """y = x - logsumexp(x);  dx = g - softmax(x) * sum(g)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        self.y = y
        return y

    def backward(self, g):
        xp = array_module(g)
        return (g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True),)


class Softmax(Function):
    """y = exp(x) / sum(exp(x));  dx = y * (g - sum(g * y))."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, g):
        y = self.y
        return (y * (g - (g * y).sum(axis=self.axis, keepdims=True)),)


def log_softmax(x, axis=-1):
    return LogSoftmax(axis)(as_tensor(x))


def softmax(x, axis=-1):
    return Softmax(axis)(as_tensor(x))
