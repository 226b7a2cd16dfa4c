"""Making tensors the way a PyTorch user types it.

    tn.zeros(2, 3)   tn.ones((2, 3))   tn.randn(4, 5)   tn.arange(10)
    tn.from_numpy(a)   tn.cat([a, b], dim=1)   tn.stack([a, b])

Each is a thin spelling of something tinynet already has -- an array module's
``zeros``/``ones``/``arange`` wrapped in a Tensor, the seeded generator of
:mod:`tinynet.random`, and the differentiable ``ops.concatenate`` and
``ops.reshape`` -- so there is nothing new to learn or to test twice.

Defaults follow PyTorch: float32 for zeros/ones/randn, int64 for an ``arange``
of integers and float32 otherwise, ``device="cpu"``, ``requires_grad=False``.
Sizes are given as separate ints or as one tuple/list.
"""
import numbers

import numpy as np

from tinynet import backend, ops, random
from tinynet.tensor import Tensor, as_tensor

__all__ = ["zeros", "ones", "randn", "arange", "from_numpy", "cat", "stack"]


def _size(where, size):
    """(2, 3), ((2, 3),) or ([2, 3],) -> (2, 3), checked."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0
               for n in size):
        raise TypeError(f"{where}: sizes must be non-negative ints, given as "
                        f"{where}(2, 3) or {where}((2, 3)); got {size!r}")
    return tuple(int(n) for n in size)


def _filled(where, fill, size, dtype, device, requires_grad):
    shape = _size(where, size)
    xp = backend.xp_for(backend.normalize_device(device))
    data = getattr(xp, fill)(shape, dtype=np.dtype(dtype or np.float32))
    return Tensor(data, requires_grad=requires_grad)


def zeros(*size, dtype=None, device="cpu", requires_grad=False):
    """A tensor of zeros of shape ``size`` (float32 unless ``dtype``)."""
    return _filled("zeros", "zeros", size, dtype, device, requires_grad)


def ones(*size, dtype=None, device="cpu", requires_grad=False):
    """A tensor of ones of shape ``size`` (float32 unless ``dtype``)."""
    return _filled("ones", "ones", size, dtype, device, requires_grad)


def randn(*size, dtype=None, device="cpu", requires_grad=False):
    """Standard normal samples of shape ``size`` from tinynet's seeded generator.

    Drawn on the host (``tn.manual_seed`` fixes them) and then moved, so a
    seed gives the same numbers on "cpu" and "cuda".
    """
    shape = _size("randn", size)
    dtype = np.dtype(dtype or np.float32)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"randn: dtype must be float32 or float64, got {dtype}")
    data = random.host_rng().standard_normal(shape, dtype=dtype)
    return Tensor(backend.to_device(data, device), requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad=False):
    """``start, start + step, ...`` below ``end`` (``arange(n)``: 0 .. n-1).

    int64 when start, end and step are all ints, float32 otherwise (as in
    PyTorch); float values are computed in float64, then rounded once.
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    if dtype is None:
        dtype = np.int64 if integral else np.float32
    values = np.arange(start, end, step, dtype=np.int64 if integral else np.float64)
    data = backend.to_device(values.astype(dtype), device)
    return Tensor(data, requires_grad=requires_grad)


def from_numpy(array):
    """A Tensor sharing ``array``'s memory and dtype (no copy), like torch.from_numpy.

    Writing into ``array`` afterwards changes the tensor too -- and tinynet
    cannot see such a write (see Tensor's note on in-place changes).
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}; "
                        f"use tn.tensor(...) for lists, numbers and device arrays")
    return Tensor(array)


def cat(tensors, dim=0):
    """Join tensors along an existing dimension ``dim``: ``ops.concatenate``."""
    return ops.concatenate(tensors, axis=dim)


def stack(tensors, dim=0):
    """Join same-shaped tensors along a NEW dimension ``dim``.

    Shapes: k tensors of shape S -> S with k inserted at ``dim``.  Each gets
    a length-1 axis at ``dim`` (a reshape) and the results are concatenated,
    so the gradient is ops.concatenate's, sliced and reshaped back.
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shape = tensors[0].shape
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {shape}; "
                             f"stack needs equal shapes (cat joins along an existing dim)")
    ndim = len(shape) + 1
    if not -ndim <= dim < ndim:
        raise IndexError(f"stack: dim {dim} is out of range for a result with {ndim} "
                         f"dimensions (expected {-ndim} .. {ndim - 1})")
    dim %= ndim
    new_shape = shape[:dim] + (1,) + shape[dim:]
    return ops.concatenate([t.reshape(new_shape) for t in tensors], axis=dim)
