"""Helpers shared by the ops: turning operands into Tensors, undoing broadcasting."""
import numpy as np

from tinynet import _checks
from tinynet.tensor import Tensor, as_tensor


def binary_operands(op_name, a, b, broadcast=True):
    """Two Tensors with one dtype that broadcast together, or a clear error.

    A Python or numpy scalar takes the other operand's dtype; an integer or
    boolean operand is cast to the float operand's dtype; two different float
    dtypes are refused, because tinynet never promotes float32 to float64
    behind the user's back.
    """
    if not isinstance(a, Tensor):
        a = as_tensor(a, like=b)
    elif not isinstance(b, Tensor):
        b = as_tensor(b, like=a)
    if a.dtype != b.dtype:
        fa, fb = _checks.is_float(a.dtype), _checks.is_float(b.dtype)
        if fa and fb:
            raise TypeError(
                f"{op_name}: operands have dtypes {a.dtype} and {b.dtype}; tinynet does "
                f"not promote silently: convert one with .astype('{a.dtype}') or "
                f".astype('{b.dtype}')"
            )
        if fa:
            b = Tensor(b.data.astype(a.dtype))
        elif fb:
            a = Tensor(a.data.astype(b.dtype))
    if broadcast:
        check_broadcast(op_name, a.shape, b.shape)
    return a, b


def check_broadcast(op_name, shape_a, shape_b):
    """Raise a ValueError naming ``op_name`` if the shapes do not broadcast."""
    try:
        np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        raise ValueError(
            f"{op_name}: shapes {tuple(shape_a)} and {tuple(shape_b)} do not broadcast; "
            f"expected equal sizes or 1 in each trailing dimension"
        ) from None


def sum_to(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of broadcasting to grad's shape."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
