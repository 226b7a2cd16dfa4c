"""Numerical gradient checking: is backward() the derivative of forward()?

For a function f of tensors x_1..x_k, ``gradcheck`` compares, for every
element j of every input that requires grad,

    analytic   d(v · f)/dx_j   from backward(), and
    numeric    (v · f(x + eps e_j) - v · f(x - eps e_j)) / (2 eps)

where v is a fixed random weighting of f's outputs (one backward pass checks
every output at once).  It runs in float64, where central differences are
accurate to about eps², and stops at the first element that disagrees.
"""
import numpy as np

from tinynet import backend
from tinynet.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree.

    Attributes: ``input_index``, ``element`` (index tuple), ``analytic``,
    ``numeric``, ``relative_error``.
    """

    def __init__(self, message, input_index=None, element=None, analytic=None,
                 numeric=None, relative_error=None):
        super().__init__(message)
        self.input_index = input_index
        self.element = element
        self.analytic = analytic
        self.numeric = numeric
        self.relative_error = relative_error


def _as_float64(x):
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        return x
    return Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check ``fn``'s backward against central differences.

    fn      -- callable taking the inputs as positional Tensors, returning a
               Tensor of any shape.  It must compute in its inputs' dtype
               (convert a module first with ``model.to(dtype="float64")``).
    inputs  -- a Tensor or a sequence of Tensors; those with
               ``requires_grad=True`` are checked (copies promoted to float64).

    Returns True, or raises GradcheckError naming the input, the first
    failing element, the analytic and numeric values and the relative error.
    """
    single = isinstance(inputs, Tensor)
    xs = [_as_float64(x) for x in ([inputs] if single else list(inputs))]
    checked = [i for i, x in enumerate(xs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is "
                         "nothing to check")

    out = fn(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if not out.requires_grad:
        raise GradcheckError("gradcheck: fn's output does not depend on any input that "
                             "requires grad (its graph is empty)")
    xp = backend.array_module(out.data)
    v_host = np.random.default_rng(seed).standard_normal(out.shape)
    v = backend.to_device(v_host.astype(out.dtype), out.device)
    out.backward(v)
    analytic = []
    for x in xs:
        g = x.grad.data if x.grad is not None else xp.zeros_like(x.data)
        analytic.append(backend.to_numpy(g).astype(np.float64))
        x.grad = None

    def weighted_output():
        with no_grad():
            return float((fn(*xs).data * v).sum())

    for i in checked:
        x = xs[i]
        for element in np.ndindex(*x.shape):
            orig = float(x.data[element])
            x.data[element] = orig + eps
            f_plus = weighted_output()
            x.data[element] = orig - eps
            f_minus = weighted_output()
            x.data[element] = orig
            numeric = (f_plus - f_minus) / (2 * eps)
            a = float(analytic[i][element])
            if not abs(a - numeric) <= atol + rtol * abs(numeric):
                rel = abs(a - numeric) / max(abs(numeric), 1e-12)
                raise GradcheckError(
                    f"gradcheck failed for input {i} (shape {x.shape}) at element "
                    f"{element}: analytic {a:.8g}, numeric {numeric:.8g}, "
                    f"relative error {rel:.3g} (atol={atol}, rtol={rtol})",
                    input_index=i, element=element, analytic=a, numeric=numeric,
                    relative_error=rel)
    return True
