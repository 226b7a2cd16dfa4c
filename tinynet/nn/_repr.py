"""How layers print: ``Conv2D(1 -> 32, kernel_size=5, padding='same')``."""
from tinynet import init


def compact(pair_value):
    """(3, 3) -> 3 for calling ops and printing; (3, 2) stays a pair."""
    if isinstance(pair_value, tuple) and pair_value[0] == pair_value[1]:
        return pair_value[0]
    return pair_value


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
