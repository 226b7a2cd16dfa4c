"""Validation shared by the ops and the layers: one home for every check and its message.

Every message starts with where the problem is -- the op (``conv2d``) or the
layer as it prints (``Dense(784 -> 512)``) -- then says what it got, what it
expected, and how to fix it.  Layers run these checks once, with their own
``where`` and hint, and then call the op's Function directly, so no check
runs twice.
"""
import numbers

import numpy as np

from tinynet import backend
from tinynet.tensor import Tensor, as_tensor


def positive_int(where, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


def pair(where, name, value, minimum=1):
    """An int or a pair of ints (each >= minimum) as a tuple (h, w)."""
    items = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              or v < minimum for v in items):
        raise ValueError(f"{where}: {name} must be an integer >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return int(items[0]), int(items[1])


def padding_arg(where, value):
    """"same", "valid", or a pair of non-negative ints."""
    if isinstance(value, str):
        if value.lower() in ("same", "valid"):
            return value.lower()
        raise ValueError(f"{where}: padding must be an integer, a pair, 'same' or 'valid', "
                         f"got {value!r}")
    return pair(where, "padding", value, minimum=0)


def input_tensor(where, x):
    """x as a Tensor (numpy/cupy arrays and lists are wrapped), or a TypeError."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)) or backend.is_device_array(x):
        return as_tensor(x)
    raise TypeError(f"{where}: expected a Tensor (or an array), got {type(x).__name__}")


def match_weights(where, x, weight):
    """Raise if x's dtype or device differs from the layer's weight."""
    if not is_float(x.dtype):
        scale = " (and scale pixels to [0, 1], e.g. x / 255)" \
            if np.dtype(x.dtype) == np.uint8 else ""
        raise TypeError(f"{where}: got {x.dtype} input but its weights are {weight.dtype}; "
                        f"convert the data with .astype('{weight.dtype}'){scale}")
    if x.dtype != weight.dtype:
        raise TypeError(f"{where}: got {x.dtype} input but its weights are {weight.dtype}; "
                        f"convert the data with .astype('{weight.dtype}') (or the model "
                        f"with model.to(dtype='{x.dtype}'))")
    if x.device != weight.device:
        raise backend.DeviceError(
            f"{where}: the input is on {x.device} but the weights are on {weight.device}; "
            f"move the data with x.to('{weight.device}') (or the model with "
            f"model.to('{x.device}'))")


def float_input(where, x):
    if not is_float(x.dtype):
        raise TypeError(f"{where}: expected a float input, got {x.dtype}; convert the data "
                        f"with .astype('float32')")


def is_float(dtype):
    """True for float16/32/64 dtypes (numpy or CuPy dtype objects, or names)."""
    return np.issubdtype(np.dtype(dtype), np.floating)


def quad(pad):
    """Padding as int, (PH, PW) or (PT, PB, PL, PR) -> (PT, PB, PL, PR)."""
    if isinstance(pad, numbers.Integral):
        return (int(pad),) * 4
    pad = tuple(int(p) for p in pad)
    return (pad[0], pad[0], pad[1], pad[1]) if len(pad) == 2 else pad


def conv_padding(where, padding, H, W, KH, KW, stride):
    """conv2d's padding argument -> (PT, PB, PL, PR) for an H x W input.

    int, (PH, PW), (PT, PB, PL, PR), "valid" (none) or "same" (TensorFlow's:
    output size ceil(H / SH); an odd total puts the extra row/column at the
    bottom/right).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            pads = []
            for size, k, s in ((H, KH, stride[0]), (W, KW, stride[1])):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise ValueError(f"{where}: padding must be an int, a pair (PH, PW), 'same' or "
                         f"'valid', got {padding!r}")
    ok = isinstance(padding, numbers.Integral) and not isinstance(padding, bool) or (
        isinstance(padding, (tuple, list)) and len(padding) in (2, 4)
        and all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding))
    if not ok:
        raise ValueError(f"{where}: padding must be an int, a pair (PH, PW), "
                         f"(top, bottom, left, right), 'same' or 'valid', got {padding!r}")
    pad = quad(padding)
    if min(pad) < 0:
        raise ValueError(f"{where}: padding must not be negative, got {padding!r}")
    return pad
