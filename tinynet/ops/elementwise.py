"""Elementwise functions of one tensor: exp, log, relu.

Notation: x and y have the same shape; g is the gradient at y.
"""
from tinynet.backend import array_module
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
        self.mask = x > 0
        return array_module(x).maximum(x, 0)

    def backward(self, g):
        return (g * self.mask,)


def exp(x):
    return Exp()(as_tensor(x))


def log(x):
    return Log()(as_tensor(x))


def relu(x):
    return ReLU()(as_tensor(x))
