"""Capture one training step: run backward with every intermediate gradient kept, and read
a few numbers off each tensor of the graph (the nodes) and each backward edge.

Statistics are computed on the device; only the handful of numbers per node
are copied to the host, explicitly.  Nothing is left changed: every
``.grad`` is put back as it was when the capture ends.
"""
import contextlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from tinynet import backend
from tinynet.backend import array_module
from tinynet.diagnose.trace_rules import rule_for
from tinynet.ops.dropout import Dropout
from tinynet.ops.elementwise import ReLU
from tinynet.tensor import Tensor, graph_order


# --------------------------------------------------------------------------
# what the trace holds
# --------------------------------------------------------------------------
@dataclass
class Node:
    """One node of the step's graph: the input, a parameter, or an op's output.

    kind       "input" (the model's x), "param" (a named parameter), "leaf" (a
               tensor that requires grad but is no named parameter), "const"
               (any other tensor an op read), or "op" (an op's output)
    name       "x", "0.weight", or for an op "<layer>:<Op>" (e.g. "3:ReLU")
    op         the Function's class name for kind "op" (else None)
    layer      the module that produced it ("0", "3"; "" is the model itself;
               "loss" for ops outside the model); for a parameter, its module
    layer_type the module's class name ("Dense", "Conv2D", ...)
    inputs     indices (into Trace.nodes) of the nodes this op read, in order
    mean, std, min, max, zero_frac   the forward values (zero_frac: the
               fraction exactly 0)
    value      the value itself when the tensor holds one number
    grad_norm, grad_zero_frac, grad_max   the gradient arriving here: its
               L2 norm, the fraction exactly 0, max |g|; None when no gradient
               flows into this node (the input x needs none)
    grad_nonzero  the exact count of nonzero gradient entries
    grad_value    the gradient itself when the tensor holds one number
    derivative the op's local derivative in words
    """
    index: int
    kind: str
    name: str
    shape: tuple
    size: int
    op: Optional[str] = None
    layer: Optional[str] = None
    layer_type: Optional[str] = None
    inputs: list = field(default_factory=list)
    mean: float = 0.0
    std: float = 0.0
    min: float = 0.0
    max: float = 0.0
    zero_frac: float = 0.0
    value: Optional[float] = None
    grad_norm: Optional[float] = None
    grad_zero_frac: Optional[float] = None
    grad_max: Optional[float] = None
    grad_nonzero: Optional[int] = None
    grad_value: Optional[float] = None
    derivative: str = ""

    @property
    def grad_is_zero(self):
        """True when a gradient arrived and every entry of it is exactly 0."""
        return self.grad_nonzero == 0

    @property
    def label(self):
        """How the story names this node."""
        if self.kind == "op":
            where = "the loss" if self.layer == "loss" else (
                "the model" if self.layer == "" else f"layer '{self.layer}'")
            kind = f" ({self.layer_type})" if self.layer_type and self.layer_type != self.op else ""
            return f"the output of {self.op} in {where}{kind}"
        if self.kind == "input":
            return "the input x"
        return f"'{self.name}'"


@dataclass
class Edge:
    """The gradient one op passes back to one of its inputs.

    src is the op (index of its output node), dst the input node, arg the
    argument position.  grad_norm is None when no gradient flows along it
    (the input needs none, like the images x).
    """
    src: int
    dst: int
    arg: int
    size: int
    grad_norm: Optional[float] = None
    grad_nonzero: Optional[int] = None
    grad_value: Optional[float] = None

    @property
    def zero(self):
        """True when a gradient flows here and it is exactly 0 everywhere."""
        return self.grad_nonzero == 0



# --------------------------------------------------------------------------
# statistics (computed on the device, a few numbers copied back)
# --------------------------------------------------------------------------
def _forward_stats(a):
    """mean, std, min, max, fraction exactly zero of array ``a`` (one host copy)."""
    xp = array_module(a)
    if a.size == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    a64 = a.astype(xp.float64)
    parts = [a64.mean(), a64.std(), a64.min(), a64.max(),
             (a == 0).sum().astype(xp.float64)]
    mean, std, lo, hi, zeros = backend.to_numpy(xp.stack(parts)).tolist()
    return mean, std, lo, hi, zeros / a.size


def _grad_stats(g):
    """L2 norm, exact count of nonzeros, max |g| of gradient array ``g``.

    In float64: a float32 gradient of 1e-25 squared would underflow to 0 and
    show a norm of exactly 0 for a gradient that is not zero.
    """
    xp = array_module(g)
    if g.size == 0:
        return 0.0, 0, 0.0
    g64 = g.astype(xp.float64)
    parts = [xp.sqrt((g64 * g64).sum()), (g != 0).sum().astype(xp.float64),
             xp.abs(g64).max()]
    norm, nonzero, gmax = backend.to_numpy(xp.stack(parts)).tolist()
    return norm, int(nonzero), gmax



def scalar(a):
    return float(backend.to_numpy(a.reshape(-1)[:1].astype(array_module(a).float64))[0])


# --------------------------------------------------------------------------
# which layer produced each tensor
# --------------------------------------------------------------------------
class LayerTagger:
    """Forward hooks that remember which module produced each tensor.

    Each module's hook walks back from its output to its inputs and tags the
    tensors in between that no deeper module has claimed yet: hooks of inner
    modules fire first, so the innermost module wins.
    """

    def __init__(self, model):
        self.layer_of = {}        # id(tensor) -> (layer name, tensor kept alive)
        self.types = {}           # layer name -> module class name
        self.handles = []
        named = getattr(model, "named_modules", None)
        if named is None or not hasattr(model, "register_forward_hook"):
            return
        for name, module in named():
            self.types[name] = type(module).__name__
            self.handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(module, inputs, output):
            stop = {id(t) for t in _tensors(inputs)}
            stack, visited = list(_tensors(output)), set()
            while stack:
                t = stack.pop()
                if id(t) in visited or id(t) in stop or t.creator is None:
                    continue
                visited.add(id(t))
                self.layer_of.setdefault(id(t), (name, t))
                stack.extend(t.creator.inputs or ())
            return None
        return hook

    def layer(self, t):
        hit = self.layer_of.get(id(t))
        return None if hit is None else hit[0]

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def _tensors(obj):
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def as_batch_tensor(where, a, ref, floating):
    if isinstance(a, Tensor):
        if ref is not None and a.device != ref.device:
            raise backend.DeviceError(f"{where}: the batch is on {a.device} but the model is "
                                      f"on {ref.device}; move it with .to('{ref.device}')")
        return a
    from tinynet.tensor import tensor
    device = ref.device if ref is not None else "cpu"
    dtype = None
    arr = a if backend.is_device_array(a) else np.asarray(a)
    if ref is not None and np.issubdtype(np.dtype(arr.dtype), np.floating) and floating:
        dtype = ref.dtype
    elif ref is not None and not floating and np.issubdtype(np.dtype(arr.dtype), np.floating):
        dtype = ref.dtype                    # one-hot rows take the model's float dtype
    return tensor(arr, dtype=dtype, device=device)



def read_graph(loss, tensors, names, inputs, tagger, leaves_are_params):
    """(nodes, edges, consumers) of the graph ``tensors`` (forward order) whose
    gradients are alive; consumers: {id(tensor): [(op output tensor, arg)]}."""
    index = {id(t): i for i, t in enumerate(tensors)}
    consumers = {}                            # id(tensor) -> [(op tensor, arg)]
    for t in tensors:
        if t.creator is not None:
            for arg, x in enumerate(t.creator.inputs):
                consumers.setdefault(id(x), []).append((t, arg))
    nodes, n_unnamed = [], 0
    for i, t in enumerate(tensors):
        if t.creator is not None:
            layer = tagger.layer(t) if tagger is not None else None
            if tagger is not None and layer is None:
                layer = "loss"
            ltype = tagger.types.get(layer) if tagger is not None else None
            node = Node(i, "op", f"{layer or 'model'}:{t.creator.name}" if layer is not None
                        else t.creator.name, t.shape, t.size, op=t.creator.name,
                        layer=layer, layer_type=ltype,
                        inputs=[index[id(x)] for x in t.creator.inputs],
                        derivative=_derivative_with_numbers(t.creator))
        elif id(t) in names:
            name = names[id(t)]
            layer = name.rpartition(".")[0] if "." in name else ""
            kind = "param" if (t.requires_grad or not leaves_are_params) else "const"
            ltype = tagger.types.get(layer) if tagger is not None else None
            node = Node(i, kind, name, t.shape, t.size, layer=layer if tagger else None,
                        layer_type=ltype)
        elif id(t) in inputs:
            node = Node(i, "input", inputs[id(t)], t.shape, t.size)
        else:
            kind = ("param" if leaves_are_params else "leaf") if t.requires_grad else "const"
            if kind == "const" and t.size == 1:
                name = f"{scalar(t.data):g}"          # a constant such as the 2 in x ** 2
            else:
                name, n_unnamed = f"t{n_unnamed}", n_unnamed + 1
            node = Node(i, kind, name, t.shape, t.size)
        node.mean, node.std, node.min, node.max, node.zero_frac = _forward_stats(t.data)
        if t.size == 1:
            node.value = scalar(t.data)
        g = t.grad.data if (t.requires_grad and t.grad is not None) else None
        if t is loss and g is None:
            g = array_module(t.data).ones_like(t.data)
        if g is not None:
            node.grad_norm, node.grad_nonzero, node.grad_max = _grad_stats(g)
            node.grad_zero_frac = 1.0 - node.grad_nonzero / max(t.size, 1)
            if t.size == 1:
                node.grad_value = scalar(g)
        nodes.append(node)
    edges = _edges(tensors, index, consumers)
    return nodes, edges, consumers


def _derivative_with_numbers(fn):
    text = rule_for(fn).derivative
    try:
        if type(fn) is ReLU:
            mask = fn.mask
            on = int(backend.to_numpy(mask.sum()))
            text += f"; mask on for {on} of {mask.size}"
        elif type(fn) is Dropout:
            scale = fn.scale
            if not isinstance(scale, (int, float)):
                kept = int(backend.to_numpy((scale != 0).sum()))
                text += f"; kept {kept} of {scale.size}"
    except AttributeError:
        pass
    return text


def _edges(tensors, index, consumers):
    edges, recomputed = [], {}
    for t in tensors:
        fn = t.creator
        if fn is None:
            continue
        for arg, x in enumerate(fn.inputs):
            edge = Edge(index[id(t)], index[id(x)], arg, x.size)
            g = None
            if x.requires_grad and t.grad is not None:
                if len(consumers.get(id(x), ())) == 1:
                    g = x.grad.data if x.grad is not None else None
                else:                          # shared input: this edge's share only
                    if id(fn) not in recomputed:
                        recomputed[id(fn)] = fn.backward(t.grad.data)
                    g = recomputed[id(fn)][arg]
            if g is not None:
                edge.grad_norm, edge.grad_nonzero, _ = _grad_stats(g)
                if x.size == 1:
                    edge.grad_value = scalar(g)
            edges.append(edge)
    return edges




@contextlib.contextmanager
def kept_backward(loss, where, release=True):
    """Run ``loss.backward`` keeping the gradient of every tensor of the graph; yield the
    tensors in forward order.  On exit every ``.grad`` is put back as it was, and (for a
    forward of our own, ``release``) the graph is freed."""
    if not isinstance(loss, Tensor):
        raise TypeError(f"{where}: the loss must be a Tensor, got {type(loss).__name__}")
    if loss.size != 1:
        raise ValueError(f"{where}: the loss must be a single number, got shape {loss.shape}; "
                         f"reduce it with .mean() or .sum()")
    if not loss.requires_grad:
        raise RuntimeError(f"{where}: the loss does not require grad, so there is no backward "
                           f"pass to trace (are all parameters frozen, or was it computed "
                           f"inside tn.no_grad()?)")
    tensors = graph_order(loss, grad_only=False)
    leaves = [t for t in tensors if t.creator is None and t.requires_grad]
    ops = [t for t in tensors if t.creator is not None]
    saved = [(t, t.grad, t.retains_grad) for t in leaves + ops]
    try:
        for t in leaves + ops:
            t.grad = None                   # this step's gradient alone
        for t in ops:
            t.retain_grad()
        loss.backward(retain_graph=True)
        yield tensors
    finally:
        for t, g, retain in saved:
            t.grad, t.retains_grad = g, retain
        if release:                          # our own forward: free the graph now
            for t in ops:
                if not t.creator.released:
                    t.creator.release()
