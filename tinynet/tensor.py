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

Changing an array in place between forward and backward would make the
gradient silently wrong, so every tensor carries a version number that
in-place changes bump; a Function notes its operands' versions at forward,
and backward refuses to use an array the Function kept once its version has
changed (see :class:`Tensor` for what can and cannot be seen).
"""
import collections
import contextlib
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

    The engine notes the version of every input and of the output at forward
    time.  If one has changed by backward time, :meth:`check_saved` looks at
    what ``forward`` stored on ``self``: if it kept that array (or a view of
    it), backward would read changed values, so it refuses.  Arrays an op
    derived (a mask, a copy) are its own and need no watching, so Add, ReLU
    or a copy-making op never raise.
    """

    inputs = None
    released = False
    _versions = ()      # per input, then the output: (version box, version, array) at forward

    def __call__(self, *inputs):
        _check_same_device(self.name, inputs)
        out = Tensor(self.forward(*[x._data for x in inputs]))
        _share_version_with_viewed_input(out, inputs)
        if _grad_enabled and any(x.requires_grad for x in inputs):
            out.requires_grad = True
            out.creator = self
            self.inputs = inputs
            self._versions = [(t._version, t._version[0], t._data) for t in inputs + (out,)]
        return out

    @property
    def name(self):
        return type(self).__name__

    def forward(self, *arrays):
        raise NotImplementedError(f"{self.name}.forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{self.name}.backward")

    def check_saved(self, out):
        """Raise unless backward may run: the graph is not freed and no array
        it saved was changed in place since forward (``out``: its output)."""
        if self.released:
            raise RuntimeError(
                f"backward(): the graph through {self.name} was already freed by an "
                f"earlier backward(); call backward(retain_graph=True) the first "
                f"time if you need to backpropagate twice")
        for position, (box, version, array) in enumerate(self._versions):
            if box[0] != version and _keeps(self, array):
                is_output = position == len(self.inputs)
                t = out if is_output else self.inputs[position]
                which = "its output" if is_output else f"input {position}"
                raise RuntimeError(
                    f"backward(): a variable needed for gradient computation has been "
                    f"modified by an inplace operation: {which} of {self.name}, "
                    f"{t.describe()} of shape {t.shape}, is at version {box[0]}; "
                    f"{self.name} saved it at version {version}.  Its gradient would be "
                    f"computed from the changed values.  Change it only after backward() "
                    f"(e.g. optimizer.step() after loss.backward()), or run the forward "
                    f"pass again after changing it")

    def release(self):
        """Drop inputs and saved arrays once backward is done with them."""
        self.__dict__.clear()
        self.released = True

    def __repr__(self):
        return f"<{self.name}>"


def _check_same_device(name, inputs):
    device = inputs[0].device
    for x in inputs[1:]:
        if x.device != device:
            raise backend.DeviceError(
                f"{name}: operands are on different devices ({device} and "
                f"{x.device}); move them with .to('{device}') or .to('{x.device}')")


def _keeps(fn, array):
    """True if ``fn.forward`` stored ``array``, or a view of its memory, on ``fn``
    (also inside a tuple, list or dict).  Asked only when a version changed."""
    for name, value in vars(fn).items():
        if name in ("inputs", "_versions"):         # the engine's bookkeeping
            continue
        if isinstance(value, dict):
            value = tuple(value.values())
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if backend.is_array(v) and backend.may_share_memory(v, array):
                return True
    return False


def _share_version_with_viewed_input(out, inputs):
    """A view (reshape, transpose, slice) changes with its input: one counter for both."""
    if getattr(out._data, "base", None) is None:
        return
    for x in inputs:
        if backend.may_share_memory(out._data, x._data):
            out._version = x._version
            return


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
    """An array with an optional gradient and the op that produced it.

    ``data`` is the array (numpy on "cpu", cupy on "cuda"); ``grad`` the
    gradient after backward (leaves, and tensors that ``retain_grad()``);
    ``creator`` the Function that made it (None for a leaf).

    In-place changes and backward.  ``version`` counts the in-place changes
    tinynet can see.  An op that keeps an array for backward (Mul keeps both
    factors, Exp its output, Dense its input and weight) notes its version,
    and ``backward()`` raises a RuntimeError naming the op and the tensor's
    shape if it changed in between.  Seen (they bump ``version``):

    * ``t.data += 1``, ``t.data *= 0.5``, ... (any augmented assignment to ``.data``);
    * ``t.mark_modified()``, which tinynet's own in-place writers call
      (call it yourself after writing into ``t.data[...]``);
    * the same through a view of the array made by a tinynet op or ``detach()``.

    NOT seen -- numpy arrays cannot tell anyone they changed:

    * item or slice assignment through the array: ``t.data[0] = 5``,
      ``t.data[...] = values``, ``np.add(t.data, 1, out=t.data)``;
    * writes into a numpy array that a Tensor wraps without a copy
      (``Tensor(arr)``, ``tn.from_numpy(arr)``) through ``arr`` itself.

    Assigning a NEW array (``t.data = other``) is not an in-place change: the
    op still holds the old array, so its gradient stays right.  The new array
    must have the tensor's shape (and a float dtype if it requires grad), or
    the assignment raises naming the tensor and both shapes; its device may
    differ (``Module.to`` moves parameters that way).
    """

    # Make numpy defer to Tensor's reflected operators (np.float64(2) * t).
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, name=None):
        self._data = data
        self._version = [0]     # a box shared with views of the same memory
        self.grad = None
        self.creator = None
        self.name = name
        self._hooks = []
        self.retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- the array and its version ------------------------------------------
    @property
    def data(self):
        """The raw numpy or cupy array (no copy)."""
        return self._data

    @data.setter
    def data(self, value):
        if value is self._data:         # `t.data += 1`: the array changed in place
            self._version[0] += 1
            return
        self._data = self._checked_replacement(value)
        # The old array, and any graph that saved it, is untouched: a new counter.
        self._version = [self._version[0] + 1]

    @property
    def version(self):
        """How many in-place changes tinynet has seen to this tensor's memory."""
        return self._version[0]

    def mark_modified(self):
        """Record that ``data`` was changed in place (e.g. ``t.data[...] = v``).

        Graphs that saved this tensor then refuse to backpropagate through it.
        """
        self._version[0] += 1
        return self

    def describe(self):
        """How messages name this tensor: "tensor" or "tensor 'x'" (Parameters say "parameter")."""
        kind = getattr(type(self), "kind", "tensor")
        return f"{kind} {self.name!r}" if self.name else kind

    def _checked_replacement(self, value):
        """``value`` as an array that may become this tensor's data, or a clear error."""
        if isinstance(value, Tensor):
            value = value.data
        elif isinstance(value, np.generic):
            value = np.asarray(value)
        if not backend.is_array(value):
            raise TypeError(
                f"{self.describe()}.data: expected a numpy or cupy array, got "
                f"{type(value).__name__}; wrap it: np.asarray(value, dtype={self.dtype})")
        if tuple(value.shape) != self.shape:
            hint = ""
            if self.ndim == 2 and tuple(value.shape) == self.shape[::-1]:
                hint = " (it looks transposed; pass its .T)"
            raise ValueError(
                f"{self.describe()}.data: got an array of shape {tuple(value.shape)}, but "
                f"this {getattr(type(self), 'kind', 'tensor')} has shape {self.shape}"
                f"{hint}; assign an array of shape {self.shape}, or make a new "
                f"{type(self).__name__} to change the shape")
        if self.requires_grad and not np.issubdtype(np.dtype(value.dtype), np.floating):
            raise TypeError(
                f"{self.describe()}.data: got dtype {value.dtype}, but a tensor that "
                f"requires grad must be float (it is {self.dtype}); convert with "
                f".astype({str(self.dtype)!r})")
        return value

    # ---- basic properties -------------------------------------------------
    @property
    def shape(self):
        return tuple(self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def size(self):
        return int(self._data.size)

    @property
    def device(self):
        return backend.device_of(self._data)

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
        """The same data (no copy), cut from the graph; it shares the version counter."""
        out = Tensor(self.data)
        out._version = self._version
        return out

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
        """Keep ``.grad`` on this non-leaf tensor after backward (sets ``retains_grad``)."""
        self.retains_grad = True
        return self

    @property
    def _retain_grad(self):
        # The old private name, kept so that code written against it still works.
        return self.retains_grad

    @_retain_grad.setter
    def _retain_grad(self, flag):
        self.retains_grad = flag

    # ---- backward -----------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is required unless self holds a single element; it is the
        gradient of some scalar with respect to self (same shape).  The graph
        is freed as it goes unless ``retain_graph=True``.
        """
        grads = {id(self): self._seed_grad(grad)}   # tensor id -> gradient flowing into it
        for t in reversed(graph_order(self)):       # each tensor after all tensors made from it
            g = grads.pop(id(t), None)
            if g is None:
                continue                            # no gradient reaches t
            g = t._receive_grad(g)                  # hooks; .grad for leaves and retains_grad
            fn = t.creator
            if fn is None:
                continue                            # a leaf: nothing further back
            fn.check_saved(t)                       # not freed, nothing it kept changed in place
            for x, gx in zip(fn.inputs, fn.backward(g)):
                if gx is not None and x.requires_grad:
                    _check_grad_shape(fn, x, gx)
                    grads[id(x)] = grads[id(x)] + gx if id(x) in grads else gx
            if not retain_graph:
                fn.release()

    def _seed_grad(self, grad):
        """The gradient backward starts from: ones for one element, else ``grad`` checked."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad and has no graph; "
                "did you create the parameters with requires_grad=True, or call it "
                "inside tn.no_grad()?")
        xp = backend.array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward(): the output has shape {self.shape}, not one element; "
                    f"pass the gradient of the loss with respect to it: "
                    f"t.backward(grad) with grad of shape {self.shape}")
            return xp.ones_like(self.data)
        g = grad.data if isinstance(grad, Tensor) else grad
        if backend.device_of(g) != self.device:
            raise backend.DeviceError(
                f"backward(): gradient is on {backend.device_of(g)}, tensor on {self.device}")
        g = xp.asarray(g, dtype=self.dtype)
        if tuple(g.shape) != self.shape:
            raise ValueError(f"backward(): gradient has shape {tuple(g.shape)}, "
                             f"expected the output's shape {self.shape}")
        return g

    def _receive_grad(self, g):
        """Hand ``g`` (this tensor's whole gradient) to the hooks, which may replace
        it, and add it to ``.grad`` on a leaf or a tensor that retains grad."""
        for hook in self._hooks:
            replaced = hook(Tensor(g))
            if replaced is not None:
                g = replaced.data if isinstance(replaced, Tensor) else replaced
        if self.creator is None or self.retains_grad:
            self.grad = Tensor(g) if self.grad is None else Tensor(self.grad.data + g)
        return g

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

    # Reductions take numpy's (axis, keepdims) or PyTorch's (dim=, keepdim=).
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args("sum", axis, keepdims, dim, keepdim)
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args("mean", axis, keepdims, dim, keepdim)
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The maximum over ``axis`` (numpy style: the values only).

        With ``dim=`` it answers as ``torch.max(x, dim)`` does: a pair
        ``(values, indices)``, indices being the first maximum (argmax).  The
        gradient of ``values`` is split among tied maxima (torch sends it to
        ``indices`` alone); the two agree whenever the maximum is unique.
        """
        if dim is None:
            axis, keepdims = _axis_args("max", axis, keepdims, None, keepdim)
            return ops.max(self, axis, keepdims)
        if axis is not None:
            raise TypeError("max: give axis (numpy) or dim (PyTorch), not both")
        if not isinstance(dim, numbers.Integral):
            raise TypeError(f"max(dim=...): dim must be one int, got {dim!r}; for several "
                            f"axes use max(axis=(...)), which returns the values only")
        keep = bool(keepdim)
        indices = self.data.argmax(axis=dim)
        if keep:
            indices = backend.array_module(indices).expand_dims(indices, dim)
        return MaxResult(ops.max(self, dim, keep), Tensor(indices))
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def relu(self): return ops.relu(self)

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return ops.reshape(self, shape)

    def view(self, *shape):
        """PyTorch's name for :meth:`reshape` (any layout works; no copy when possible)."""
        return self.reshape(*shape)

    def flatten(self, start_dim=1):
        return ops.reshape(self, self.shape[:start_dim] + (-1,))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return ops.transpose(self, axes or None)

    @property
    def T(self):
        return ops.transpose(self, None)


MaxResult = collections.namedtuple("MaxResult", "values indices")


def _axis_args(where, axis, keepdims, dim, keepdim):
    """numpy's (axis, keepdims) from either spelling; both at once is an error."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{where}: give axis (numpy) or dim (PyTorch), not both")
        axis = tuple(dim) if isinstance(dim, list) else dim
    if keepdim is not None:
        keepdims = keepdim
    return axis, bool(keepdims)


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


def _check_grad_shape(fn, x, gx):
    if tuple(gx.shape) != x.shape:
        raise RuntimeError(f"internal error: {fn.name}.backward returned a gradient of "
                           f"shape {tuple(gx.shape)} for an input of shape {x.shape}")


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
