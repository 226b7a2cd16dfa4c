"""Module: the base class of layers and models.

A Module registers the Parameters and sub-Modules assigned to its
attributes, in assignment order, so that

    model.named_parameters()   ->  ("0.weight", p), ("0.bias", p), ("2.weight", p), ...

gives stable dotted names (a Sequential names its children "0", "1", ...).
Those names are the keys of ``state_dict()`` and what the diagnostics print.
``model(x)`` calls ``model.forward(x)``.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from tinynet import backend
from tinynet.nn.parameter import Parameter
from tinynet.tensor import RemovableHandle, Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class StateDictKeyError(KeyError):
    """load_state_dict: keys are missing or unexpected (the message lists them)."""

    def __str__(self):                    # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def _split_device_dtype(device, dtype):
    """``to("float64")`` means a dtype; ``to("cuda")`` a device."""
    if device is None or dtype is not None:
        return device, dtype
    if isinstance(device, (type, np.dtype)):
        return None, device
    try:
        return backend.normalize_device(device), None
    except backend.DeviceError as exc:
        try:
            np.dtype(device)
        except TypeError:
            raise exc from None
        return None, device


def _describe_keys(keys, limit=8):
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


class Module:
    """Base class: subclass it, call ``super().__init__()`` first, define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)

    # ---- registration ---------------------------------------------------------
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(
                    f"{type(self).__name__}: cannot assign {name!r} before "
                    f"Module.__init__() ran; call super().__init__() at the start of "
                    f"{type(self).__name__}.__init__")
        else:
            if name in params and value is not None and not isinstance(value, Parameter):
                raise TypeError(
                    f"{type(self).__name__}: cannot assign a {type(value).__name__} to the "
                    f"parameter {name!r} (a Parameter or None is expected); wrap it in "
                    f"nn.Parameter(...), or change the values in place with "
                    f"{name}.data[...] = values")
            params.pop(name, None)
            self._modules.pop(name, None)
            if isinstance(value, Parameter):
                params[name] = value
            elif isinstance(value, Module):
                self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self.__dict__.get("_parameters", {}).pop(name, None)
        self.__dict__.get("_modules", {}).pop(name, None)
        object.__delattr__(self, name)

    def add_module(self, name, module):
        """Register ``module`` under ``name`` (any string without a dot, e.g. "0")."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"add_module: the name must be a non-empty string without "
                             f"dots, got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got "
                            f"{type(module).__name__}")
        setattr(self, name, module)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter, got "
                            f"{type(param).__name__}")
        setattr(self, name, param)

    # ---- walking the tree -----------------------------------------------------
    def named_children(self):
        """(name, module) for the direct sub-modules, in registration order."""
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module ("") and every descendant, once each."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            kids = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items()
                    if m is not None]
            stack.extend(reversed(kids))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter), e.g. ("0.weight", p); a shared Parameter appears once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def num_parameters(self, trainable_only=False):
        """The number of scalar parameters (only those with requires_grad if asked)."""
        return sum(p.size for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    # ---- modes, devices, gradients -------------------------------------------
    def train(self, mode=True):
        """Training mode (Dropout active) for this module and all below it; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode (Dropout off); returns self."""
        return self.train(False)

    def to(self, device=None, dtype=None):
        """Move (and/or convert) every parameter in place; returns self.

        ``model.to("cuda")``, ``model.to("cpu")``, ``model.to(dtype="float64")``
        (or ``model.to("float64")``) for gradchecking.  The same Parameter
        objects stay registered -- only their arrays change -- so an optimizer
        created before ``.to()`` still updates them (its own state, such as
        momentum buffers, is not moved).
        """
        device, dtype = _split_device_dtype(device, dtype)
        if device is not None:
            device = backend.normalize_device(device)
            backend.xp_for(device)          # a clear DeviceError if there is no GPU
        if dtype is not None:
            dtype = np.dtype(dtype)
            if not np.issubdtype(dtype, np.floating):
                raise TypeError(f"{type(self).__name__}.to: parameters must stay float, "
                                f"got dtype {dtype}")

        def convert(a):
            if device is not None:
                a = backend.to_device(a, device)
            if dtype is not None:
                a = a.astype(dtype, copy=False)
            return a

        for p in self.parameters():
            p.data = convert(p.data)
            if p.grad is not None:
                p.grad = Tensor(convert(p.grad.data))
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def zero_grad(self):
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ---- saving and loading ----------------------------------------------------
    def state_dict(self):
        """OrderedDict: dotted parameter name -> a host numpy copy of its values."""
        return OrderedDict((name, p.numpy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` into the parameters (in place).

        strict=True: the keys must match exactly (StateDictKeyError, a
        KeyError, naming the missing and unexpected keys).  Shapes must always
        match (ValueError naming the parameter, the expected and the given
        shape).  Everything is checked before anything is copied, so a failed
        load leaves the model unchanged.  Returns (missing_keys, unexpected_keys).
        """
        where = f"{type(self).__name__}.load_state_dict"
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys (in the model, not in the state dict): "
                             f"{_describe_keys(missing)}")
            if unexpected:
                parts.append(f"unexpected keys (in the state dict, not in the model): "
                             f"{_describe_keys(unexpected)}")
            raise StateDictKeyError(
                f"{where}: " + "; ".join(parts) + f". The model's keys are "
                f"{_describe_keys(own)}; pass strict=False to load only the common keys")
        arrays = {}
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if isinstance(value, Tensor):
                value = value.data
            try:
                value = np.array(backend.to_numpy(value), copy=True)
            except (TypeError, ValueError):
                value = None
            if value is None or not (np.issubdtype(value.dtype, np.number)
                                     or value.dtype == np.bool_):
                raise TypeError(f"{where}: the value for {name!r} is not a numeric array")
            if value.shape != p.shape:
                hint = ""
                if value.shape == p.shape[::-1] and p.ndim == 2:
                    hint = (" (it looks transposed: tinynet's Dense weight is (in, out), "
                            "Keras's layout; a PyTorch Linear weight is (out, in), so load "
                            "its .T)")
                raise ValueError(f"{where}: parameter {name!r} has shape {p.shape} in the "
                                 f"model but {value.shape} in the state dict{hint}")
            arrays[name] = value
        for name, value in arrays.items():
            p = own[name]
            p.data[...] = backend.to_device(value.astype(p.dtype, copy=False), p.device)
        return IncompatibleKeys(missing, unexpected)

    # ---- calling ---------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            replaced = hook(self, args, out)
            if replaced is not None:
                out = replaced
        return out

    def register_forward_hook(self, fn):
        """Call ``fn(module, inputs, output)`` after every forward; returns a handle.

        If ``fn`` returns something other than None it replaces the output.
        """
        self._forward_hooks.append(fn)
        return RemovableHandle(self._forward_hooks, fn)

    # ---- printing --------------------------------------------------------------
    def extra_repr(self):
        """The configuration shown inside the parentheses, e.g. "784 -> 512"."""
        return ""

    def __repr__(self):
        name = type(self).__name__
        extra = self.extra_repr()
        if not self._modules:
            return f"{name}({extra})"
        lines = extra.split("\n") if extra else []
        for key, child in self._modules.items():
            lines.append(f"({key}): " + repr(child).replace("\n", "\n  "))
        return name + "(\n  " + "\n  ".join(lines) + "\n)"
