"""Initializers: where the first weights come from.

    nn.Dense(784, 512, kernel_init=init.he_uniform, bias_init=init.constant(0.1))

An initializer is a callable ``init_fn(shape, dtype=np.float32, fan_in=None,
fan_out=None) -> numpy array``.  It draws from ``tinynet.random.host_rng()``,
so ``tn.manual_seed(n)`` makes the initial weights repeat bit for bit; layers
copy the result to their device.  Parametrized initializers are factories
(``constant(0.5)``, ``uniform(-0.1, 0.1)``); the others are used bare
(``init.zeros``, ``init.glorot_uniform``).  ``uniform`` and ``normal`` may be
passed bare too and then use their defaults.  A layer also accepts a numpy
array (the same initial weights every run); it is copied and shape-checked.

Notation: fan_in is the number of inputs that feed one output unit, fan_out
the number of outputs that one input feeds.  The weight layouts differ, so
layers pass the fans explicitly (see :func:`compute_fans`):

    Dense weight  (IN, OUT)          fan_in = IN,          fan_out = OUT
    Conv2D weight (O, C, KH, KW)     fan_in = C * KH * KW, fan_out = O * KH * KW

The schemes (the defaults are Keras's):

    zeros, ones, constant(v)   every entry the same -- the symmetry lesson
    uniform(low, high)         U(low, high); default (-0.05, 0.05), Keras RandomUniform
    normal(mean, std)          N(mean, std^2); default std 1, as tf.random.normal
    glorot_uniform             U(-L, L), L = sqrt(6 / (fan_in + fan_out))
    glorot_normal              std sqrt(2 / (fan_in + fan_out))
    he_uniform                 U(-L, L), L = sqrt(6 / fan_in)
    he_normal                  std sqrt(2 / fan_in)

The ``*_normal`` schemes do what Keras does: draw from a normal truncated at
two standard deviations, with the scale divided by 0.87962566103423978 (the
standard deviation of a unit normal truncated to [-2, 2]) so that the
*resulting* standard deviation is the one in the table.
"""
import inspect

import numpy as np

from tinynet import backend
from tinynet.random import host_rng
from tinynet.tensor import Tensor

# The std of a standard normal truncated to [-2, 2] (Keras uses the same constant).
_TRUNCATED_STD = 0.87962566103423978


# --------------------------------------------------------------------------
# fans
# --------------------------------------------------------------------------
def compute_fans(shape, layout=None):
    """(fan_in, fan_out) of a weight of ``shape``.

    layout -- "dense": (IN, OUT), Keras's Dense kernel (tinynet's nn.Dense);
              "conv":  (O, C, KH, KW, ...), channels first (tinynet's nn.Conv2D);
              "bias":  (OUT,) -- fan_in = fan_out = OUT;
              None:    guessed from the number of dimensions (1 -> bias,
                       2 -> dense, 3 or more -> conv).
    """
    shape = tuple(int(n) for n in shape)
    if layout is None:
        layout = {0: "bias", 1: "bias", 2: "dense"}.get(len(shape), "conv")
    if layout == "bias":
        n = int(np.prod(shape)) if shape else 1
        return n, n
    if layout == "dense":
        if len(shape) != 2:
            raise ValueError(f"compute_fans: a dense weight has shape (IN, OUT), got {shape}")
        return shape[0], shape[1]
    if layout == "conv":
        if len(shape) < 3:
            raise ValueError(f"compute_fans: a conv weight has shape (O, C, KH, KW), got {shape}")
        receptive = int(np.prod(shape[2:]))
        return shape[1] * receptive, shape[0] * receptive
    raise ValueError(f"compute_fans: unknown layout {layout!r}; expected 'dense', 'conv', "
                     f"'bias' or None")


def _fans(shape, fan_in, fan_out):
    if fan_in is None or fan_out is None:
        fi, fo = compute_fans(shape)
        fan_in = fi if fan_in is None else fan_in
        fan_out = fo if fan_out is None else fan_out
    return fan_in, fan_out


# --------------------------------------------------------------------------
# the initializer type
# --------------------------------------------------------------------------
class Initializer:
    """A named initializer: ``init(shape, dtype, fan_in, fan_out) -> numpy array``.

    ``draw(shape, fan_in, fan_out)`` returns float64 values; ``__call__`` casts
    them to ``dtype``.  The repr (``glorot_uniform``, ``constant(0.5)``) is what
    layers and diagnostics print.
    """

    def __init__(self, name, draw):
        self.name = name
        self._draw = draw

    def __call__(self, shape=None, dtype=np.float32, fan_in=None, fan_out=None):
        if shape is None:
            # `init.glorot_uniform()` (the Keras habit GlorotUniform()) means the
            # initializer itself.
            return self
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
        fan_in, fan_out = _fans(shape, fan_in, fan_out)
        values = self._draw(shape, fan_in, fan_out)
        return np.asarray(values, dtype=np.float64).astype(dtype, copy=False)

    def __repr__(self):
        return self.name

    def __eq__(self, other):
        return isinstance(other, Initializer) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


def _factory(fn):
    """Mark a function that *makes* an initializer (see :func:`resolve`)."""
    fn._makes_initializer = True
    return fn


# --------------------------------------------------------------------------
# constant schemes
# --------------------------------------------------------------------------
zeros = Initializer("zeros", lambda shape, fi, fo: np.zeros(shape))
ones = Initializer("ones", lambda shape, fi, fo: np.ones(shape))


@_factory
def constant(value):
    """Every entry equal to ``value``."""
    value = float(value)
    return Initializer(f"constant({value!r})", lambda shape, fi, fo: np.full(shape, value))


# --------------------------------------------------------------------------
# random schemes with fixed scale
# --------------------------------------------------------------------------
@_factory
def uniform(low=-0.05, high=0.05):
    """U(low, high).  The default range is Keras's RandomUniform."""
    low, high = float(low), float(high)
    if not low < high:
        raise ValueError(f"init.uniform: needs low < high, got low={low}, high={high}")
    return Initializer(f"uniform(low={low!r}, high={high!r})",
                       lambda shape, fi, fo: host_rng().uniform(low, high, shape))


@_factory
def normal(mean=0.0, std=1.0):
    """N(mean, std^2), not truncated.  Default std 1 (tf.random.normal's)."""
    mean, std = float(mean), float(std)
    if std < 0:
        raise ValueError(f"init.normal: std must be >= 0, got {std}")
    return Initializer(f"normal(mean={mean!r}, std={std!r})",
                       lambda shape, fi, fo: host_rng().normal(mean, std, shape))


def truncated_normal(shape, std):
    """N(0, std^2) restricted to [-2 std, 2 std]: out-of-range draws are redrawn."""
    rng = host_rng()
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2.0
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2.0
    return values * std


# --------------------------------------------------------------------------
# variance-scaling schemes (the scale follows the fans)
# --------------------------------------------------------------------------
def _glorot_uniform(shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return host_rng().uniform(-limit, limit, shape)


def _glorot_normal(shape, fan_in, fan_out):
    return truncated_normal(shape, np.sqrt(2.0 / (fan_in + fan_out)) / _TRUNCATED_STD)


def _he_uniform(shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / fan_in)
    return host_rng().uniform(-limit, limit, shape)


def _he_normal(shape, fan_in, fan_out):
    return truncated_normal(shape, np.sqrt(2.0 / fan_in) / _TRUNCATED_STD)


glorot_uniform = Initializer("glorot_uniform", _glorot_uniform)
glorot_normal = Initializer("glorot_normal", _glorot_normal)
he_uniform = Initializer("he_uniform", _he_uniform)
he_normal = Initializer("he_normal", _he_normal)

# Keras's other names for the same schemes.
xavier_uniform, xavier_normal = glorot_uniform, glorot_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal


# --------------------------------------------------------------------------
# used by the layers
# --------------------------------------------------------------------------
def resolve(init, what="init"):
    """Turn what a user passed as ``kernel_init=``/``bias_init=`` into something callable.

    Accepts an Initializer, a factory with defaults passed bare
    (``init.uniform``), any callable ``fn(shape, ...)``, or an array (kept as
    a copy).  ``what`` names the argument in error messages.
    """
    if getattr(init, "_makes_initializer", False):
        try:
            return init()
        except TypeError:
            raise TypeError(f"{what}=init.{init.__name__} needs arguments, e.g. "
                            f"init.{init.__name__}(0.1)") from None
    if callable(init):
        return init
    if isinstance(init, Tensor):
        init = init.data
    if isinstance(init, (np.ndarray, list, tuple)) or backend.is_device_array(init):
        try:
            return np.array(backend.to_numpy(init), copy=True)
        except ValueError:
            raise TypeError(f"{what}: the initial values are not a rectangular array") from None
    raise TypeError(
        f"{what} must be an initializer from tinynet.init (for example init.glorot_uniform "
        f"or init.constant(0.1)), a callable fn(shape, dtype, fan_in, fan_out) returning "
        f"an array, or an array of the right shape; got {init!r}")


def _call_custom(fn, shape, dtype, fan_in, fan_out):
    """Call a user's initializer with only the keyword arguments it accepts."""
    kwargs = {"dtype": dtype, "fan_in": fan_in, "fan_out": fan_out}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):       # builtins without a signature
        return fn(shape)
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(shape, **kwargs)


def make_array(init, shape, dtype=np.float32, fan_in=None, fan_out=None, what="weight"):
    """A fresh host array of ``shape`` and ``dtype`` made by ``init``.

    ``what`` names the parameter in errors ("Dense(784 -> 512).weight").
    """
    shape = tuple(int(n) for n in shape)
    init = resolve(init, what)
    if isinstance(init, Initializer):
        values = init(shape, dtype=dtype, fan_in=fan_in, fan_out=fan_out)
        source = repr(init)
    elif callable(init):
        values = _call_custom(init, shape, dtype, fan_in, fan_out)
        source = f"the initializer {getattr(init, '__name__', repr(init))}"
    else:
        values = init
        source = "the initial array"
    if isinstance(values, Tensor):
        values = values.data
    try:
        values = np.array(backend.to_numpy(values), copy=True)
    except (TypeError, ValueError):
        values = None
    if values is None or values.dtype == object:
        raise TypeError(f"{what}: {source} did not give a numeric array; expected a "
                        f"numpy array of shape {shape}")
    if values.shape != shape:
        raise ValueError(f"{what}: {source} has shape {values.shape}, expected {shape}")
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
            or values.dtype == np.bool_):
        raise TypeError(f"{what}: {source} has dtype {values.dtype}, expected numbers")
    return values.astype(dtype, copy=False)


# --------------------------------------------------------------------------
# PyTorch-style in-place initializers: init.kaiming_normal_(layer.weight)
# --------------------------------------------------------------------------
# They overwrite an existing Tensor's values (under no_grad, keeping its
# device and dtype) with a draw from the initializers above, and return it.
# The formulas and defaults are PyTorch's (kaiming_* draw from a plain,
# untruncated normal/uniform with gain sqrt(2) for ReLU; uniform_ is U(0, 1)).
# The fans are tinynet's: a 2-D weight is Dense's (IN, OUT) -- the transpose
# of a torch Linear's (OUT, IN) -- so fan_in = shape[0]; a 4-D weight is
# Conv2D's (O, C, KH, KW) as in torch.  Pass layout= to override the guess.

def calculate_gain(nonlinearity, param=None):
    """The recommended scale for a nonlinearity, as torch.nn.init.calculate_gain."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return float(np.sqrt(2.0))
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return float(np.sqrt(2.0 / (1 + slope ** 2)))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fill_(tensor, initializer, layout=None, where="init"):
    """Overwrite ``tensor``'s values with ``initializer``'s draw; returns ``tensor``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{where}: expected a tinynet Tensor or Parameter (e.g. "
                        f"layer.weight), got {type(tensor).__name__}")
    fan_in, fan_out = compute_fans(tensor.shape, layout)
    values = initializer(tensor.shape, dtype=tensor.dtype, fan_in=fan_in, fan_out=fan_out)
    from tinynet.tensor import no_grad
    with no_grad():
        tensor.data[...] = backend.to_device(values, tensor.device)
    return tensor


def _fan(tensor, mode, layout, where):
    fan_in, fan_out = compute_fans(tensor.shape, layout)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{where}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def zeros_(tensor):
    return _fill_(tensor, zeros, where="zeros_")


def ones_(tensor):
    return _fill_(tensor, ones, where="ones_")


def constant_(tensor, val):
    return _fill_(tensor, constant(val), where="constant_")


def uniform_(tensor, a=0.0, b=1.0):
    """U(a, b); PyTorch's default range (0, 1), not init.uniform's Keras default."""
    return _fill_(tensor, uniform(a, b), where="uniform_")


def normal_(tensor, mean=0.0, std=1.0):
    return _fill_(tensor, normal(mean, std), where="normal_")


def xavier_uniform_(tensor, gain=1.0, layout=None):
    """U(-L, L), L = gain * sqrt(6 / (fan_in + fan_out)); gain 1 is glorot_uniform."""
    fan_in, fan_out = compute_fans(tensor.shape, layout)
    limit = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return _fill_(tensor, uniform(-limit, limit), layout, "xavier_uniform_")


def xavier_normal_(tensor, gain=1.0, layout=None):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)), untruncated as in PyTorch."""
    fan_in, fan_out = compute_fans(tensor.shape, layout)
    std = gain * np.sqrt(2.0 / (fan_in + fan_out))
    return _fill_(tensor, normal(0.0, std), layout, "xavier_normal_")


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", layout=None):
    """U(-L, L), L = gain * sqrt(3 / fan); with the defaults (a=0) L = sqrt(6 / fan_in),
    the he_uniform limit."""
    fan = _fan(tensor, mode, layout, "kaiming_uniform_")
    limit = calculate_gain(nonlinearity, a) * np.sqrt(3.0 / fan)
    return _fill_(tensor, uniform(-limit, limit), layout, "kaiming_uniform_")


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", layout=None):
    """N(0, std^2), std = gain / sqrt(fan); untruncated (he_normal is truncated at 2 std,
    with the same resulting std sqrt(2 / fan_in))."""
    fan = _fan(tensor, mode, layout, "kaiming_normal_")
    std = calculate_gain(nonlinearity, a) / np.sqrt(fan)
    return _fill_(tensor, normal(0.0, std), layout, "kaiming_normal_")


__all__ = ["Initializer", "compute_fans", "zeros", "ones", "constant", "uniform", "normal",
           "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "truncated_normal",
           "make_array", "resolve", "calculate_gain", "zeros_", "ones_", "constant_",
           "uniform_", "normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_"]
