"""The engine: Tensor, Function and reverse-mode backward.

A Tensor wraps an array (numpy on "cpu", cupy on "cuda").  When it is the
output of a differentiable op computed while grad mode is on, it remembers the
Function that made it (``creator``); the Function remembers its input
Tensors.  ``loss.backward()`` sorts that graph topologically (iteratively, so
a 10,000-op chain does not hit Python's recursion limit), then walks it from
the loss back to the leaves, asking each Function for the gradients of its
inputs given the gradient of its output (a vector-Jacobian product) and
summing where a tensor was used more than once.  Afterwards each Function
drops its inputs and saved arrays, so the graph is freed as soon as the loss
is (pass ``retain_graph=True`` to backpropagate through it again).

Gradients are plain arrays inside the engine and become Tensors only when
they are stored in a leaf's ``.grad`` or handed to a hook.
"""
import contextlib
import functools
import numbers

import numpy as np

from tinynet import backend

_grad_enabled = True


# --------------------------------------------------------------------------
# grad mode
# --------------------------------------------------------------------------
class no_grad(contextlib.ContextDecorator):
    """Context manager / decorator: ops inside record no graph."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class enable_grad(no_grad):
    """Turn grad mode back on inside a ``no_grad`` block."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, True
        return self


def is_grad_enabled():
    return _grad_enabled


# --------------------------------------------------------------------------
# Function
# --------------------------------------------------------------------------
class Function:
    """One differentiable operation.

    Subclasses define ``forward(*arrays) -> array`` and
    ``backward(grad_out) -> tuple`` with one gradient array (or None) per
    input, saving on ``self`` whatever backward needs.  Call an instance with
    Tensors; it returns one Tensor.
    """

    inputs = None
    released = False

    def __call__(self, *inputs):
        device = inputs[0].device
        for x in inputs[1:]:
            if x.device != device:
                raise backend.DeviceError(
                    f"{self.name}: operands are on different devices ({device} and "
                    f"{x.device}); move them with .to('{device}') or .to('{x.device}')"
                )
        out = Tensor(self.forward(*[x.data for x in inputs]))
        if _grad_enabled and any(x.requires_grad for x in inputs):
            out.requires_grad = True
            out.creator = self
            self.inputs = inputs
        return out

    @property
    def name(self):
        return type(self).__name__

    def forward(self, *arrays):
        raise NotImplementedError(f"{self.name}.forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{self.name}.backward")

    def release(self):
        """Drop inputs and saved arrays once backward is done with them."""
        self.__dict__.clear()
        self.released = True

    def __repr__(self):
        return f"<{self.name}>"


# --------------------------------------------------------------------------
# Tensor
# --------------------------------------------------------------------------
class RemovableHandle:
    def __init__(self, hooks, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self):
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


class Tensor:
    """An array with an optional gradient and the op that produced it."""

    # Make numpy defer to Tensor's reflected operators (np.float64(2) * t).
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, name=None):
        self.data = data
        self.grad = None
        self.creator = None
        self.name = name
        self._hooks = []
        self._retain_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- basic properties -------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return int(self.data.size)

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self.creator is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), separator=", ", threshold=20)
        extra = f", device='{self.device}'" if self.device != "cpu" else ""
        if self.dtype != np.float32:
            extra += f", dtype={self.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def requires_grad_(self, flag=True):
        if flag and not np.issubdtype(np.dtype(self.dtype), np.floating):
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype "
                f"{self.dtype}; create it with dtype='float32' (or 'float64')"
            )
        self.requires_grad = bool(flag)
        return self

    # ---- conversions --------------------------------------------------------
    def numpy(self):
        """A host numpy copy of the data."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def to(self, device):
        """This tensor on ``device`` ("cpu" or "cuda"); differentiable."""
        device = backend.normalize_device(device)
        if device == self.device:
            return self
        return ops.to_device(self, device)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype):
        return ops.cast(self, dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    # ---- hooks ----------------------------------------------------------------
    def register_hook(self, fn):
        """Call ``fn(grad)`` with the gradient flowing into this tensor.

        ``grad`` is a Tensor; if ``fn`` returns a Tensor it replaces the
        gradient.  Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require grad, "
                               "so no gradient will ever flow into it")
        self._hooks.append(fn)
        return RemovableHandle(self._hooks, fn)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retain_grad = True
        return self

    # ---- backward -----------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is required unless self holds a single element; it is the
        gradient of some scalar with respect to self (same shape).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad and has no graph; "
                "did you create the parameters with requires_grad=True, or call it "
                "inside tn.no_grad()?"
            )
        xp = backend.array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward(): the output has shape {self.shape}, not one element; "
                    f"pass the gradient of the loss with respect to it: "
                    f"t.backward(grad) with grad of shape {self.shape}"
                )
            g = xp.ones_like(self.data)
        else:
            g = grad.data if isinstance(grad, Tensor) else grad
            if backend.device_of(g) != self.device:
                raise backend.DeviceError(
                    f"backward(): gradient is on {backend.device_of(g)}, tensor on {self.device}")
            g = xp.asarray(g, dtype=self.dtype)
            if tuple(g.shape) != self.shape:
                raise ValueError(f"backward(): gradient has shape {tuple(g.shape)}, "
                                 f"expected the output's shape {self.shape}")

        grads = {id(self): g}
        for t in reversed(graph_order(self)):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            for hook in t._hooks:
                replaced = hook(Tensor(g))
                if replaced is not None:
                    g = replaced.data if isinstance(replaced, Tensor) else replaced
            if t.creator is None or t._retain_grad:
                t.grad = Tensor(g) if t.grad is None else Tensor(t.grad.data + g)
            fn = t.creator
            if fn is None:
                continue
            if fn.released:
                raise RuntimeError(
                    f"backward(): the graph through {fn.name} was already freed by an "
                    f"earlier backward(); call backward(retain_graph=True) the first "
                    f"time if you need to backpropagate twice"
                )
            input_grads = fn.backward(g)
            for x, gx in zip(fn.inputs, input_grads):
                if gx is None or not x.requires_grad:
                    continue
                if tuple(gx.shape) != x.shape:
                    raise RuntimeError(f"internal error: {fn.name}.backward returned a "
                                       f"gradient of shape {tuple(gx.shape)} for an input "
                                       f"of shape {x.shape}")
                prev = grads.get(id(x))
                grads[id(x)] = gx if prev is None else prev + gx
            if not retain_graph:
                fn.release()

    # ---- operators (the ops live in tinynet.ops) ---------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __neg__(self): return ops.neg(self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __getitem__(self, index): return ops.getitem(self, index)

    # Comparisons give plain (non-differentiable) boolean tensors.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other): return self._compare(other, lambda a, b: a == b)
    def __ne__(self, other): return self._compare(other, lambda a, b: a != b)
    def __lt__(self, other): return self._compare(other, lambda a, b: a < b)
    def __le__(self, other): return self._compare(other, lambda a, b: a <= b)
    def __gt__(self, other): return self._compare(other, lambda a, b: a > b)
    def __ge__(self, other): return self._compare(other, lambda a, b: a >= b)
    __hash__ = object.__hash__

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is "
                             f"ambiguous; use .any() or .all()")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())

    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def relu(self): return ops.relu(self)

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return ops.reshape(self, shape)

    def flatten(self, start_dim=1):
        return ops.reshape(self, self.shape[:start_dim] + (-1,))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return ops.transpose(self, axes or None)

    @property
    def T(self):
        return ops.transpose(self, None)


def graph_order(root, grad_only=True):
    """Tensors of ``root``'s graph, each op's inputs (left to right) before the op.

    With ``grad_only`` (what backward needs) only tensors that require grad
    are visited; without it every input is, constants included.  Inputs are
    visited in argument order, so for a Sequential this is the order the
    layers ran in.  Iterative, so a 10,000-op chain needs no recursion.
    """
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        fn = t.creator
        if fn is not None and fn.inputs is not None:
            for x in reversed(fn.inputs):
                if (x.requires_grad or not grad_only) and id(x) not in seen:
                    stack.append((x, False))
    return order


# --------------------------------------------------------------------------
# construction
# --------------------------------------------------------------------------
_PY_DEFAULTS = {bool: np.bool_, int: np.int64, float: np.float32}


def _default_dtype(data):
    """float32 for Python floats and lists of them; arrays keep their dtype."""
    if isinstance(data, bool):
        return np.bool_
    if isinstance(data, numbers.Integral) and not isinstance(data, np.generic):
        return np.int64
    if isinstance(data, numbers.Real) and not isinstance(data, np.generic):
        return np.float32
    if isinstance(data, (list, tuple)):
        arr = np.asarray(data)
        if np.issubdtype(arr.dtype, np.floating):
            return np.float32
        return arr.dtype
    return None


def tensor(data, requires_grad=False, dtype=None, device="cpu"):
    """Make a Tensor from a list, scalar, numpy/cupy array or Tensor.

    Python floats and lists become float32; numpy and cupy arrays keep their
    dtype unless ``dtype`` is given.  The data is copied.
    """
    if isinstance(data, Tensor):
        data = data.data
    device = backend.normalize_device(device)
    if dtype is None:
        dtype = _default_dtype(data)
    if backend.is_device_array(data) and device == "cpu":
        data = backend.to_numpy(data)
    xp = backend.xp_for(device)
    if device == "cuda" and not backend.is_device_array(data):
        data = np.asarray(data, dtype=dtype)
    arr = xp.array(data, dtype=dtype, copy=True)
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(x, like=None):
    """Return ``x`` as a Tensor (no copy); scalars take ``like``'s dtype/device."""
    if isinstance(x, Tensor):
        return x
    if like is not None and (isinstance(x, numbers.Number) or
                             (isinstance(x, np.generic)) or
                             (isinstance(x, np.ndarray) and x.ndim == 0)):
        # A Python or numpy scalar takes the tensor's dtype: a float64 scalar
        # times a float32 tensor stays float32 (no silent promotion).
        dtype = like.dtype if np.issubdtype(np.dtype(like.dtype), np.floating) or \
            isinstance(x, numbers.Integral) else None
        xp = backend.array_module(like.data)
        return Tensor(xp.asarray(x, dtype=dtype))
    if isinstance(x, (list, tuple, numbers.Number)):
        return tensor(x, device=like.device if like is not None else "cpu")
    return Tensor(x)


from tinynet import ops  # noqa: E402  (ops need Tensor and Function defined above)
