"""Inverted dropout.

Notation: x and y have the same shape (any); p is the drop probability.

    keep = (u >= p) for u ~ U[0, 1), one draw per element
    y    = x * keep / (1 - p)          dx = g * keep / (1 - p)

Scaling the kept units by 1/(1 - p) during training keeps the expected
activation unchanged, so evaluation (training=False) is just the identity.
The random draws come from ``tinynet.random.rng_for(xp)``, so
``tn.manual_seed(n)`` fixes the masks too.  A fixed ``mask`` (1 = keep,
0 = drop) replaces the draw: that is how gradcheck sees one fixed function.
"""
import math
import numbers
import sys

import numpy as np

from tinynet import backend
from tinynet.backend import array_module
from tinynet.random import rng_for
from tinynet.tensor import Function, Tensor, as_tensor


class Dropout(Function):
    """y = x * scale;  dx = g * scale, with scale = keep / (1 - p) (0 everywhere if p = 1)."""

    def __init__(self, scale):
        self.scale = scale

    def forward(self, x):
        return x * self.scale

    def backward(self, g):
        return (g * self.scale,)


def check_p(where, p):
    """Return p as a float in [0, 1], or raise an error prefixed with ``where``."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{where}: p must be a number in [0, 1] (the probability of dropping "
                        f"a unit), got {p!r}")
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{where}: p must be in [0, 1] (the probability of dropping a unit), "
                         f"got {p}")
    return p


def _fixed_mask(where, x, mask):
    """A user's keep-mask as an array of x's dtype on x's device."""
    m = mask.data if isinstance(mask, Tensor) else mask
    if not (isinstance(m, np.ndarray) or backend.is_device_array(m)):
        m = np.asarray(m)
    if tuple(m.shape) != x.shape:
        raise ValueError(f"{where}: the mask has shape {tuple(m.shape)}, expected the input's "
                         f"shape {x.shape}")
    if backend.is_device_array(m) and x.device == "cpu":
        raise backend.DeviceError(f"{where}: the mask is on cuda but the input is on cpu")
    return backend.to_device(m, x.device).astype(x.dtype)


def keep_mask(rng, shape, p):
    """keep = (u >= p) for u = rng.random(shape, dtype=float32): the same draws and
    the same mask -- on the CPU taken from the generator's raw output where that
    gives the very same numbers, twice as fast as making the floats (the two
    draws of seed-000's MLP took 6 % of its step at batch 128).

    NumPy makes a float32 draw from one 32-bit half of the bit generator's
    64-bit output, u = (half >> 8) / 2**24, low half first; so u >= p exactly
    when half >= ceil(p32 · 2**24) · 2**8, with p32 = float32(p) (what the
    comparison of a float32 array with p compares with).  That holds for PCG64
    (NumPy's default) with no half-used output held back, an even count, on a
    little-endian machine; anything else (a CuPy generator too) draws the floats."""
    size = math.prod(shape)
    if (type(rng) is not np.random.Generator or type(rng.bit_generator) is not np.random.PCG64
            or size % 2 or sys.byteorder != "little" or rng.bit_generator.state["has_uint32"]):
        return rng.random(shape, dtype=np.float32) >= p           # any array module
    bits = rng.bit_generator
    threshold = math.ceil(float(np.float32(p)) * 2**24)
    if threshold >= 2**24:                       # p32 = 1: no draw reaches it
        bits.random_raw(size // 2)
        return np.zeros(shape, dtype=bool)
    halves = bits.random_raw(size // 2).view(np.uint32)
    return (halves >= np.uint32(threshold << 8)).reshape(shape)


def dropout(x, p=0.5, training=True, mask=None):
    """Zero each element with probability p and scale the rest by 1/(1 - p).

    x        any shape, float
    p        drop probability in [0, 1]
    training False -> returns x unchanged (no mask, no scaling)
    mask     optional fixed keep-mask of x's shape (1 keep, 0 drop); replaces the draw
    """
    p = check_p("dropout", p)
    x = as_tensor(x)
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"dropout: the input must be float, got {x.dtype}")
    if not training or (p == 0.0 and mask is None):
        return x
    xp = array_module(x.data)
    if mask is not None:
        keep = _fixed_mask("dropout", x, mask)
    else:
        keep = keep_mask(rng_for(xp), x.shape, p)
    if p == 1.0:
        scale = xp.zeros(x.shape, dtype=x.dtype)
    else:
        scale = keep.astype(x.dtype)
        scale *= x.dtype.type(1.0 / (1.0 - p))
    return Dropout(scale)(x)


__all__ = ["Dropout", "dropout", "check_p", "keep_mask"]
