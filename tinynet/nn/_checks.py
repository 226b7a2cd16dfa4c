"""Argument and input checks shared by the layers.

Every message starts with the layer as it prints (``Dense(784 -> 512)``), then
says what it got, what it expected, and how to fix it.
"""
import numbers

import numpy as np

from tinynet import backend, init
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


def compact(pair_value):
    """(3, 3) -> 3 for calling ops and printing; (3, 2) stays a pair."""
    if isinstance(pair_value, tuple) and pair_value[0] == pair_value[1]:
        return pair_value[0]
    return pair_value


def input_tensor(where, x):
    """x as a Tensor (numpy/cupy arrays and lists are wrapped), or a TypeError."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)) or backend.is_device_array(x):
        return as_tensor(x)
    raise TypeError(f"{where}: expected a Tensor (or an array), got {type(x).__name__}")


def match_weights(where, x, weight):
    """Raise if x's dtype or device differs from the layer's weight."""
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
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
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"{where}: expected a float input, got {x.dtype}; convert the data "
                        f"with .astype('float32')")


def is_default_init(value, default):
    return isinstance(value, init.Initializer) and value == default


def init_name(value):
    """How an initializer prints in a layer's repr."""
    if isinstance(value, init.Initializer):
        return repr(value)
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    return "array"


def layer_repr(config, layer):
    """``config`` plus whatever differs from the defaults: no bias, a non-default init."""
    s = config
    if layer.bias is None:
        s += ", bias=False"
    if not is_default_init(layer.kernel_init, init.glorot_uniform):
        s += f", kernel_init={init_name(layer.kernel_init)}"
    if layer.bias is not None and not is_default_init(layer.bias_init, init.zeros):
        s += f", bias_init={init_name(layer.bias_init)}"
    return s
