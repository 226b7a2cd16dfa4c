"""The fully connected layer as one fused op: y = x @ W + b.

Notation: N samples, IN input features, OUT output units.

    x (N, IN)   W (IN, OUT)   b (OUT,)   ->   y (N, OUT);   g: the gradient at y

W keeps Keras's (IN, OUT) layout, so row i of W holds the weights leaving
input feature i (pixel i of a flattened image).  Backward:

    dx = g @ Wᵀ       (N, IN)    skipped when x needs no gradient (the first layer)
    dW = xᵀ @ g       (IN, OUT)  -- entry (i, j) is sum over samples of x[:, i] * g[:, j],
                                    zero whenever input feature i is zero on every sample
    db = g.sum(0)     (OUT,)

One graph node instead of matmul + add: fewer temporaries and Python calls
per step, which is what the MLP benchmark against PyTorch measures.
"""
from tinynet import _checks
from tinynet.backend import DeviceError, array_module
from tinynet.ops._parallel import gemm, gemms
from tinynet.ops._ufuncs import relu_into
from tinynet.tensor import Function, as_tensor


class Dense(Function):
    """y = x @ W (+ b), with dx, dW, db as in the module docstring.

    ``fuse_relu``: y = relu(x @ W + b) as one node -- nn.Sequential runs a
    Dense followed by a ReLU so where nothing observes the pre-activation (or
    only the diagnose Recorder between its recorded steps, through
    ``observe`` as for Conv2D: the per-unit maximum of the pre-activation in
    forward, where its gradient is nonzero in backward).  The ReLU is applied
    in place on the fresh output and its backward is g · (y > 0): the same
    bits as the ReLU op, without its separate passes over memory.
    """

    def __init__(self, fuse_relu=False, observe=None):
        self.fuse_relu = fuse_relu
        self.observe = observe if fuse_relu else None

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        y = gemm(x, w)                     # x @ w, split over fixed blocks (ops/_parallel.py)
        if b is not None:
            y += b                         # y is fresh: add in place, no temporary
        if self.fuse_relu:
            if self.observe:
                self.observe("max", y.max(axis=0))
            relu_into(y, y)
            self.y = y                     # relu'(pre-activation) = (y > 0)
        return y

    def backward(self, g):
        if self.fuse_relu:
            xp = array_module(g)
            g = xp.multiply(g, self.y > 0)             # the ReLU op's own backward
            if self.observe:
                self.observe("grad_nonzero", (g != 0).any(axis=0))
        x_in, w_in = self.inputs[0], self.inputs[1]
        # x batch-last (a conv stack's output, flattened): dx = (W @ gᵀ)ᵀ comes out in
        # that same order, so the conv below gets its gradient without a transposing
        # copy; else dx = g @ Wᵀ.  dW = xᵀ @ g.  Both products in one hand-off to the pool.
        batch_last = _batch_last(self.x)
        want_dx, want_dw = x_in.requires_grad, w_in.requires_grad
        dx_product = (self.w, g.T, None) if batch_last else (g, self.w.T, None)
        results = iter(gemms([dx_product] * want_dx + [(self.x.T, g, None)] * want_dw))
        dx = next(results) if want_dx else None
        dx = dx.T if dx is not None and batch_last else dx
        dw = next(results) if want_dw else None
        if len(self.inputs) == 3:
            db = g.sum(axis=0) if self.inputs[2].requires_grad else None
            return dx, dw, db
        return dx, dw


def _batch_last(x):
    """True for an (N, IN) array stored with the batch innermost (Fortran order)."""
    return x.flags.f_contiguous and not x.flags.c_contiguous


def check_dense_operands(where, x, w, b=None):
    """Raise an error prefixed with ``where`` unless x (N, IN), W (IN, OUT), b (OUT,) fit.

    Checks shapes, dtypes (one float dtype, no silent promotion) and devices.
    """
    if w.ndim != 2:
        raise ValueError(f"{where}: the weight must have shape (IN, OUT), got {w.shape}")
    n_in, n_out = w.shape
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"{where}: expected input of shape (N, {n_in}) to match the weight "
                         f"of shape {w.shape}, got {x.shape}")
    if b is not None and b.shape != (n_out,):
        raise ValueError(f"{where}: the bias must have shape ({n_out},) for a weight of "
                         f"shape {w.shape}, got {b.shape}")
    for name, t in (("input", x), ("bias", b)):
        if t is None:
            continue
        if t.device != w.device:
            raise DeviceError(f"{where}: the {name} is on {t.device} but the weight is on "
                              f"{w.device}; move it with .to('{w.device}')")
        if t.dtype != w.dtype:
            hint = ("; integer data must be converted (and scaled) first"
                    if not _checks.is_float(t.dtype) else "")
            raise TypeError(f"{where}: the {name} is {t.dtype} but the weight is {w.dtype}; "
                            f"convert it with .astype('{w.dtype}'){hint}")
    if not _checks.is_float(w.dtype):
        raise TypeError(f"{where}: the weight must be float32 or float64, got {w.dtype}")


def dense(x, weight, bias=None):
    """y = x @ weight + bias.  Shapes: x (N, IN), weight (IN, OUT), bias (OUT,) -> (N, OUT)."""
    x = as_tensor(x)
    weight = as_tensor(weight)
    if bias is not None:
        bias = as_tensor(bias)
    check_dense_operands("dense", x, weight, bias)
    if bias is None:
        return Dense()(x, weight)
    return Dense()(x, weight, bias)


__all__ = ["Dense", "dense", "check_dense_operands"]
