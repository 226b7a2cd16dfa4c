"""tinynet: a small autograd engine for watching backpropagation work and fail.

    import tinynet as tn
    from tinynet import nn, optim, init
    import tinynet.nn.functional as F

Heavy parts (data, diagnose, plot, train) load on first use.
"""
import importlib

from tinynet.backend import DeviceError, cuda_available
from tinynet.checkpoint import load, save
from tinynet.gradcheck import GradcheckError, gradcheck
from tinynet.random import manual_seed
from tinynet.tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor
from tinynet.creation import arange, cat, from_numpy, ones, randn, stack, zeros
from tinynet import ops
from tinynet.ops._parallel import get_num_threads, set_num_threads

__version__ = "0.2.0"

_LAZY = ("nn", "optim", "init", "data", "diagnose", "plot", "train", "backend", "grade")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"tinynet.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tinynet' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["Tensor", "Function", "tensor", "no_grad", "enable_grad", "is_grad_enabled",
           "manual_seed", "gradcheck", "GradcheckError", "DeviceError", "cuda_available",
           "ops", "save", "load", "set_num_threads", "get_num_threads", "__version__",
           "zeros", "ones", "randn", "arange", "from_numpy", "cat", "stack"]
