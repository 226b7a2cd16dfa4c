"""Elementwise arithmetic with broadcasting.

Notation: ``a`` and ``b`` broadcast to the output shape S; ``g`` is the
gradient arriving at the output, shape S.  Each backward sums its gradient
back to its input's own shape (``sum_to``), which is the adjoint of
broadcasting.
"""
from tinynet.backend import array_module
from tinynet.ops._operands import binary_operands, sum_to
from tinynet.tensor import Function, Tensor, as_tensor


class Add(Function):
    """y = a + b;  da = g,  db = g."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        sa, sb = self.shapes
        return sum_to(g, sa), sum_to(g, sb)


class Sub(Function):
    """y = a - b;  da = g,  db = -g."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        sa, sb = self.shapes
        return sum_to(g, sa), sum_to(-g, sb)


class Mul(Function):
    """y = a * b;  da = g * b,  db = g * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        return sum_to(g * b, a.shape), sum_to(g * a, b.shape)


class Div(Function):
    """y = a / b;  da = g / b,  db = -g * a / b**2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = g / b
        return sum_to(ga, a.shape), sum_to(-ga * a / b, b.shape)


class Neg(Function):
    """y = -x;  dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Pow(Function):
    """y = a ** b;  da = g * b * a**(b-1),  db = g * y * log(a)  (a > 0)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, g):
        a, b, y = self.a, self.b, self.y
        xp = array_module(a)
        ga = gb = None
        if self.inputs[0].requires_grad:
            ga = sum_to(g * b * a ** (b - 1), a.shape)
        if self.inputs[1].requires_grad:
            # log(a) is undefined for a <= 0; there d(a**b)/db is taken as 0.
            safe = xp.where(a > 0, a, 1)
            gb = sum_to(g * y * xp.log(safe), b.shape)
        return ga, gb


def add(a, b):
    """Elementwise a + b with broadcasting."""
    return Add()(*binary_operands("add", a, b))


def sub(a, b):
    """Elementwise a - b with broadcasting."""
    return Sub()(*binary_operands("sub", a, b))


def mul(a, b):
    """Elementwise a * b with broadcasting."""
    return Mul()(*binary_operands("mul", a, b))


def div(a, b):
    """Elementwise a / b with broadcasting."""
    return Div()(*binary_operands("div", a, b))


def neg(x):
    return Neg()(as_tensor(x))


def pow(a, b):
    """Elementwise a ** b; b may be a Python number or a Tensor."""
    return Pow()(*binary_operands("pow", a, b))
