"""Sequential: layers applied one after another."""
from collections import OrderedDict

from tinynet.nn.module import Module


def _check_layer(layer, position):
    if isinstance(layer, Module):
        return layer
    if isinstance(layer, type) and issubclass(layer, Module):
        raise TypeError(f"Sequential: item {position} is the class {layer.__name__}, not a "
                        f"layer; write {layer.__name__}(...) with parentheses")
    if callable(layer):
        name = getattr(layer, "__name__", type(layer).__name__)
        raise TypeError(f"Sequential: item {position} is the function {name}, not a layer; "
                        f"use a layer object such as nn.ReLU() or nn.Flatten()")
    raise TypeError(f"Sequential: item {position} must be a layer (an nn.Module), got "
                    f"{type(layer).__name__}")


class Sequential(Module):
    """``Sequential(nn.Flatten(), nn.Dense(784, 10))``: output of each layer feeds the next.

    Children are named "0", "1", ... (or by the keys of an OrderedDict passed
    as the only argument), so parameters are "0.weight", "1.bias", ...
    Supports indexing (``model[0]``, ``model[-1]``, slices give a new
    Sequential), ``len``, iteration and ``append``.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            for i, (name, layer) in enumerate(layers[0].items()):
                self.add_module(name, _check_layer(layer, i))
        else:
            for layer in layers:
                self.append(layer)

    def append(self, layer):
        """Add ``layer`` at the end (named by its position); returns self."""
        position = len(self._modules)
        self.add_module(str(position), _check_layer(layer, position))
        return self

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        try:
            return layers[index]
        except IndexError:
            raise IndexError(f"Sequential: index {index} is out of range for "
                             f"{len(layers)} layers") from None
        except TypeError:
            raise TypeError(f"Sequential: indices must be integers or slices, got "
                            f"{type(index).__name__}") from None

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        items = list(self._modules.items())
        i = 0
        while i < len(items):
            name, layer = items[i]
            try:
                nxt = items[i + 1][1] if i + 1 < len(items) else None
                if _fusable(layer, nxt):
                    pool = items[i + 2][1] if i + 2 < len(items) else None
                    if _pool_fusable(layer, pool):
                        y = _run_fused(layer, nxt, x, pool)       # Conv2D + ReLU + pool
                        if y is not None:
                            x = y
                            i += 3
                            continue
                    x = _run_fused(layer, nxt, x)         # Conv2D / Dense + ReLU, one node
                    i += 2
                    continue
                x = layer(x)
            except Exception as exc:
                if hasattr(exc, "add_note"):       # Python >= 3.11
                    exc.add_note(f"(raised in layer ({name}) of the Sequential)")
                raise
            i += 1
        return x


#: set to False to run every layer on its own (the fused path gives the same bits)
FUSE = True


def _fusable(layer, nxt):
    """A Conv2D or Dense directly followed by a ReLU may run as one op -- the
    ReLU applied to each block of the output while it is in cache -- but
    only where nothing can observe the pre-activation between them: plain
    nn.Conv2D / nn.Dense and nn.ReLU (not subclasses) whose forward hooks, if any, all
    take the fused op's reports instead of the tensors (see _run_fused).  A
    plain hook function -- trace_step's, a user's -- always sees every layer."""
    from tinynet.nn.activation import ReLU
    from tinynet.nn.conv import Conv2D
    from tinynet.nn.dense import Dense
    return (FUSE and type(layer) in (Conv2D, Dense) and type(nxt) is ReLU
            and _hooks_allow_fusion(layer) and _hooks_allow_fusion(nxt))


def _hooks_allow_fusion(module):
    """True if every forward hook of ``module`` observes a fused pair now: it has a
    method ``observes_fused()`` that returns True (the diagnose Recorder's layer
    probes between their recorded steps)."""
    return all(getattr(hook, "observes_fused", _never)() for hook in module._forward_hooks)


def _never():
    return False


def _pool_fusable(layer, pool):
    """A plain nn.MaxPool2D with 2x2 windows, stride 2 and no padding right after a
    fusable Conv2D + ReLU may join them (ops/conv_relu_pool.py), on the same terms."""
    from tinynet.nn.conv import Conv2D
    from tinynet.nn.pool import MaxPool2D
    return (FUSE and type(layer) is Conv2D and type(pool) is MaxPool2D
            and pool.kernel_size == (2, 2)
            and pool.stride == (2, 2) and pool.padding == (0, 0)
            and _hooks_allow_fusion(pool))


def _run_fused(layer, relu, x, pool=None):
    """relu(layer(x)) -- or, with ``pool``, max_pool2d(relu(conv(x)), 2) -- as one op,
    for hooks that observe it (``_hooks_allow_fusion``): the conv's hooks give the
    op a callback for its per-channel reports of the pre-activation
    (``fused_observer()``: its largest value, where its gradient was nonzero) and
    get ``fused_forward(module, inputs, output)`` afterwards, the ReLU's and the
    pool's hooks get ``fused_forward(module, None, output)``; nothing else differs.
    With ``pool``, None when the shapes do not allow it (nothing has run then)."""
    observers = [h.fused_observer() for h in layer._forward_hooks]
    observers = [o for o in observers if o is not None]
    if not observers:
        observe = None
    elif len(observers) == 1:
        observe = observers[0]
    else:
        def observe(event, values):
            for o in observers:
                o(event, values)
    if pool is not None:
        out = layer._forward_relu_pool(x, observe=observe)
        if out is None:
            return None
    else:
        out = layer._forward(x, fuse_relu=True, observe=observe)
    for hook in list(layer._forward_hooks):
        hook.fused_forward(layer, (x,), out)
    for module in (relu, pool):
        for hook in list(module._forward_hooks) if module is not None else ():
            hook.fused_forward(module, None, out)
    return out
