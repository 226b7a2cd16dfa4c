"""One training step, op by op: where does the gradient become exactly zero, and why?

    trace = tn.diagnose.trace_step(model, x, y)     # loss_fn defaults to F.softmax_cross_entropy
    print(trace)              # a table (forward stats | gradient stats | local derivative)
                              # and the story: "the gradient became zero at ... because ..."
    trace.nodes               # [Node, ...] in forward order: the input, parameters, every op
    trace.first_zero          # FirstZero: where, which factor (see below), the root parameter
    trace.zero_params         # {"0.weight": ParamZeros, ...}: which entries got exactly 0, why
    trace.to_dot(), trace.draw(), trace.graph()     # the gradient-flow graph (diagnose/graph.py)

``trace_step`` runs ONE forward and backward pass (no optimizer step) with the
graph retained, keeps the gradient arriving at every intermediate tensor
(``retain_grad``), and reads statistics off each node.  It changes nothing:
parameter values are not touched and every parameter's ``.grad`` is put back
as it was.  (A model in training mode draws fresh dropout masks, so the
random state does advance.)  ``trace_loss(loss)`` does the same for any
scalar you built by hand -- the lesson-0 graphs of a few scalars.

Which factor made a gradient exactly zero.  Backward multiplies the gradient
g arriving at an op by the op's local derivative, so an exact zero has one
of a few causes, each checked exactly (no tolerance):

    "relu'(0) = 0"   a ReLU whose inputs z are all <= 0: its mask z > 0 is all
                     False (relu'(0) = 0, as in PyTorch and TensorFlow)
    "zero input"     dW = xᵀ·g (Dense; im2col(x)ᵀ·g for a conv) with x all zero
    "zero weight"    dx = g·Wᵀ with W all zero: nothing flows to the layer below
    "dropout"        every unit dropped (dx = g·keep/(1-p) with keep all 0)
    "cancellation"   none of the above: contributions summed to exactly 0

What "first zero" means.  Walking backward from the loss, the gradient is
passed from op to op along the activations; parameters are side branches
that take their gradient from the op that uses them.  ``first_zero`` is the
first activation (in that backward walk) whose arriving gradient is exactly
zero everywhere: the place where the backward signal itself dies, so that
every parameter before it is cut off.  A parameter whose own gradient is
zero while the signal flows on past it (a Dense weight after a zero layer:
zero input) does not cut anything off; it is listed in ``zero_params`` with
its factor.  Only when the signal survives all the way to the input does
``first_zero`` name the first parameter (walking backward) whose gradient is
exactly zero everywhere.

In the zero-kernel network (conv -> relu -> conv with zero kernel and zero
bias -> relu -> ...) the ReLU after the zero conv is that first place: its
inputs are all exactly 0, so relu'(0) = 0 blocks everything.  The zero
weight of the conv itself would block the gradient one op further back
(dx = g·Wᵀ = 0) -- reported in ``also`` -- and the root of both is the zero
kernel (``root``).

Statistics are computed on the device; only the handful of numbers per node
(and each parameter's zero mask) are copied to the host, explicitly.
"""
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from tinynet import backend
from tinynet.backend import array_module
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


@dataclass
class FirstZero:
    """Where the gradient first became exactly zero, and which factor did it.

    node      index of the node whose arriving gradient is exactly 0
    name      that node in words
    op_node   index of the op whose backward produced the zero (a consumer)
    op, layer that op's Function name and layer (e.g. "ReLU", "3")
    factor    "relu'(0) = 0", "zero input", "zero weight", "dropout" or
              "cancellation"
    detail    one sentence with the numbers
    root      the parameter (or "input x") whose zeros caused it, when known
    also      other factors that would have zeroed the gradient too
    cut_off   parameters before it that therefore get exactly zero gradient
    """
    node: int
    name: str
    op_node: int
    op: str
    layer: Optional[str]
    factor: str
    detail: str
    root: Optional[str] = None
    also: list = field(default_factory=list)
    cut_off: list = field(default_factory=list)


@dataclass
class ParamZeros:
    """The entries of one parameter whose gradient is exactly zero, and why.

    mask      host bool array of the parameter's shape, True = exactly 0
    reasons   {reason: entry count}; reasons are "zero input" (the input
              feature -- a Dense row, a conv tap (c, kh, kw) -- was 0 on every
              sample of the batch), "relu'(0) = 0 at the unit" (the unit's
              pre-activation was exactly 0 on every sample, so the ReLU after
              it passed nothing), "dead unit" (the pre-activation was <= 0 on
              every sample, some negative), "no gradient at the unit" (nothing
              reached the unit's output for another reason), "cancellation"
              (contributions summed to exactly 0)
    zero_inputs   Dense: row indices; conv: (c, kh, kw) taps with zero input
    silent_units  output units (Dense columns, conv filters) that got no gradient
    dead_units    the silent units whose following ReLU was off on every sample
                  (pre-activation <= 0, including exactly 0)
    """
    param: str
    shape: tuple
    total: int
    zero: int
    mask: np.ndarray = field(repr=False)
    reasons: dict = field(default_factory=dict)
    zero_inputs: list = field(default_factory=list)
    silent_units: list = field(default_factory=list)
    dead_units: list = field(default_factory=list)

    @property
    def all_zero(self):
        return self.zero == self.total


# --------------------------------------------------------------------------
# local derivatives in words
# --------------------------------------------------------------------------
DERIVATIVES = {
    "ReLU": "relu'(z) = 1 where z > 0, else 0 (relu'(0) = 0)",
    "Dense": "dW = xᵀ·g, dx = g·Wᵀ, db = Σₙ g",
    "MatMul": "da = g·bᵀ, db = aᵀ·g",
    "Conv2D": "dW = im2col(x)ᵀ·g, dx = col2im(g·W), db = Σ g over N, OH, OW",
    "MaxPool2D": "g routed to the argmax of each window, 0 elsewhere",
    "Reshape": "g reshaped back (identity)",
    "Transpose": "g transposed back (identity)",
    "Dropout": "dx = g·keep/(1 − p): 0 where the unit was dropped",
    "SoftmaxCrossEntropy": "dz = (softmax(z) − onehot(y)) / N",
    "LogSoftmax": "dx = g − softmax(x)·Σg",
    "Softmax": "dx = y·(g − Σ g·y)",
    "Add": "da = g, db = g (summed over broadcast axes)",
    "Sub": "da = g, db = −g",
    "Mul": "da = g·b, db = g·a",
    "Div": "da = g / b, db = −g·a / b²",
    "Neg": "dx = −g",
    "Pow": "dx = g·p·x^(p−1)",
    "Exp": "dx = g·exp(x)",
    "Log": "dx = g / x",
    "Sum": "g copied to every summed entry",
    "Mean": "g / n copied to every averaged entry",
    "Max": "g goes to the maximal entries",
    "GetItem": "g put back at the picked entries, 0 elsewhere",
    "Concatenate": "g split back into the pieces",
    "BroadcastTo": "g summed over the broadcast axes",
    "Cast": "g cast back to the input's dtype",
    "ToDevice": "g moved back to the input's device",
    "NLLLoss": "d(log p) = −onehot(y) / N",
}

_LINEAR_OPS = ("Dense", "MatMul", "Conv2D")      # x·W: dW = xᵀ·g, dx = g·Wᵀ
_PASS_OPS = ("Reshape", "Transpose", "MaxPool2D", "Dropout", "GetItem", "BroadcastTo",
             "Cast", "ToDevice", "Neg")          # all-zero in -> all-zero out


def describe_derivative(fn):
    """The local derivative of Function ``fn`` in words (its docstring's first line if unknown)."""
    text = DERIVATIVES.get(fn.name)
    if text is None:
        doc = (type(fn).__doc__ or "").strip().splitlines()
        text = doc[0] if doc else f"{fn.name}.backward"
    return text


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


def _all_zero(a):
    return not bool((a != 0).any())


def _scalar(a):
    return float(backend.to_numpy(a.reshape(-1)[:1].astype(array_module(a).float64))[0])


# --------------------------------------------------------------------------
# which layer produced each tensor
# --------------------------------------------------------------------------
class _LayerTagger:
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


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------
def trace_step(model, x, y, loss_fn=None):
    """Trace one forward + backward pass of ``model`` on the batch (x, y).

    model    a tinynet Module (or any callable x -> output)
    x, y     the batch: Tensors, or numpy arrays moved to the model's device
             (x in the parameters' dtype; class ids stay integers)
    loss_fn  loss_fn(output, y) -> scalar Tensor; default F.softmax_cross_entropy

    Returns a :class:`Trace`.  Nothing is modified: no optimizer step runs,
    parameter values stay, and each parameter's ``.grad`` is restored.
    """
    if loss_fn is None:
        from tinynet.nn.functional import softmax_cross_entropy as loss_fn
    named = list(model.named_parameters()) if hasattr(model, "named_parameters") else []
    ref = named[0][1] if named else None
    x_t = _as_batch_tensor("trace_step", x, ref, floating=True)
    y_t = _as_batch_tensor("trace_step", y, ref, floating=False)
    tagger = _LayerTagger(model)
    try:
        out = model(x_t)
    finally:
        tagger.remove()
    loss = loss_fn(out, y_t)
    trace = _trace(loss, names=dict((id(p), n) for n, p in named),
                   inputs={id(x_t): "x", id(y_t): "y"}, tagger=tagger, where="trace_step")
    in_graph = {n.name for n in trace.nodes}
    trace.disconnected = [n for n, p in named if n not in in_graph]
    return trace


def trace_loss(loss, names=None):
    """Trace the backward pass of a scalar you built by hand (lesson 0).

        a = tn.tensor(2.0, requires_grad=True); b = tn.tensor(-3.0, requires_grad=True)
        trace = trace_loss((a * b + a) ** 2, names={"a": a, "b": b})

    names  {name: Tensor} to label the leaves (others are called t0, t1, ...)
    The graph stays yours: every ``.grad`` is put back as it was, and
    loss.backward() still works afterwards.
    """
    names = {id(t): n for n, t in (names or {}).items()}
    return _trace(loss, names=names, inputs={}, tagger=None, where="trace_loss",
                  leaves_are_params=True, release=False)


def _as_batch_tensor(where, a, ref, floating):
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


def _trace(loss, names, inputs, tagger, where, leaves_are_params=False, release=True):
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
    saved = [(t, t.grad, t._retain_grad) for t in leaves + ops]
    try:
        for t in leaves + ops:
            t.grad = None                   # this step's gradient alone
        for t in ops:
            t.retain_grad()
        loss.backward(retain_graph=True)
        trace = _build(loss, tensors, names, inputs, tagger, leaves_are_params)
    finally:
        for t, g, retain in saved:
            t.grad, t._retain_grad = g, retain
        if release:                          # our own forward: free the graph now
            for t in ops:
                if not t.creator.released:
                    t.creator.release()
    return trace


# --------------------------------------------------------------------------
# building the nodes, edges and findings
# --------------------------------------------------------------------------
def _build(loss, tensors, names, inputs, tagger, leaves_are_params):
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
                name = f"{_scalar(t.data):g}"          # a constant such as the 2 in x ** 2
            else:
                name, n_unnamed = f"t{n_unnamed}", n_unnamed + 1
            node = Node(i, kind, name, t.shape, t.size)
        node.mean, node.std, node.min, node.max, node.zero_frac = _forward_stats(t.data)
        if t.size == 1:
            node.value = _scalar(t.data)
        g = t.grad.data if (t.requires_grad and t.grad is not None) else None
        if t is loss and g is None:
            g = array_module(t.data).ones_like(t.data)
        if g is not None:
            node.grad_norm, node.grad_nonzero, node.grad_max = _grad_stats(g)
            node.grad_zero_frac = 1.0 - node.grad_nonzero / max(t.size, 1)
            if t.size == 1:
                node.grad_value = _scalar(g)
        nodes.append(node)
    edges = _edges(tensors, index, consumers)
    first = _first_zero(tensors, nodes, edges, consumers, names, inputs)
    zero_params = {}
    for t, node in zip(tensors, nodes):
        if node.kind in ("param", "leaf") and node.grad_nonzero is not None \
                and node.grad_nonzero < node.size:
            zero_params[node.name] = _param_zeros(t, node, consumers, tagger)
    if first is not None:
        first.cut_off = [nodes[j].name for j in _ancestors(nodes, first.node)
                         if nodes[j].kind in ("param", "leaf") and nodes[j].grad_is_zero]
    return Trace(nodes=nodes, edges=edges, first_zero=first, zero_params=zero_params,
                 loss=_scalar(loss.data), device=loss.device,
                 batch=next((n.shape[0] for n in nodes if n.kind == "input" and n.shape),
                            None))


def _derivative_with_numbers(fn):
    text = describe_derivative(fn)
    try:
        if fn.name == "ReLU":
            mask = fn.mask
            on = int(backend.to_numpy(mask.sum()))
            text += f"; mask on for {on} of {mask.size}"
        elif fn.name == "Dropout":
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
                    edge.grad_value = _scalar(g)
            edges.append(edge)
    return edges


def _ancestors(nodes, i):
    """Indices of every node that ``nodes[i]`` was computed from."""
    out, stack = set(), list(nodes[i].inputs)
    while stack:
        j = stack.pop()
        if j not in out:
            out.add(j)
            stack.extend(nodes[j].inputs)
    return sorted(out)


def _first_zero(tensors, nodes, edges, consumers, names, inputs):
    """The cut (see the module docstring), or the first all-zero parameter."""
    pos = {id(t): k for k, t in enumerate(tensors)}

    def factor_for(i):
        t = tensors[i]
        uses = consumers.get(id(t), [])
        if not uses:
            return None
        explained = [(_why_zero(u, arg, names, inputs), u) for u, arg in uses]
        (factor, detail, root, also), u = explained[0]
        for (f2, d2, _, _), u2 in explained[1:]:
            also.append(f"{f2} at {u2.creator.name}: {d2}")
        j = pos[id(u)]
        return FirstZero(node=i, name=nodes[i].label, op_node=j, op=u.creator.name,
                         layer=nodes[j].layer, factor=factor, detail=detail, root=root,
                         also=also)

    for i in range(len(nodes) - 1, -1, -1):
        if nodes[i].kind == "op" and nodes[i].grad_is_zero:
            return factor_for(i)
    for i in range(len(nodes) - 1, -1, -1):
        if nodes[i].kind in ("param", "leaf") and nodes[i].grad_is_zero:
            return factor_for(i)
    return None


def _name_of(t, names, inputs):
    if id(t) in names:
        return names[id(t)]
    if id(t) in inputs:
        return "input " + inputs[id(t)]
    return None


def _layer_words(fn, names, inputs):
    """ "layer 3 (Conv2D)" from the op's weight name, or just "Conv2D"."""
    wname = _name_of(fn.inputs[1], names, inputs) if len(fn.inputs) > 1 else None
    if wname and "." in wname:
        return f"layer {wname.rpartition('.')[0]} ({fn.name})"
    return fn.name


def _zero_source(t, names, inputs):
    """(root, sentence): why every value of ``t`` is exactly 0, traced back.

    Follows the forward graph through ops that keep zeros zero (a layer with
    all-zero input and zero bias, relu(0), max-pool, reshape, ...) until it
    finds an all-zero weight (the root) or the all-zero input x; (None, None)
    when the zeros have another origin.
    """
    passed = []                                  # layers that only passed the zeros on
    for _ in range(10_000):                      # a chain, not a tree: bounded walk
        name = _name_of(t, names, inputs)
        fn = t.creator
        if fn is None:
            if name is None:
                return None, None
            root_words = ("the input x is all zero" if name.startswith("input") else
                          f"'{name}' is all zero")
            return name, _chain(root_words, passed)
        ins = fn.inputs or ()
        if fn.name in ("Dense", "Conv2D"):
            x, w = ins[0], ins[1]
            b = ins[2] if len(ins) > 2 else None
            if not (b is None or _all_zero(b.data)):
                return None, None
            if _all_zero(w.data):
                wname = _name_of(w, names, inputs) or "its weight"
                bias = "no bias" if b is None else "a zero bias"
                return wname, _chain(f"{_layer_words(fn, names, inputs)} has an all-zero "
                                     f"weight '{wname}' and {bias}", passed)
            if _all_zero(x.data):
                passed.append(_layer_words(fn, names, inputs))
                t = x
                continue
            return None, None
        if fn.name == "ReLU":
            if _all_zero(ins[0].data):
                t = ins[0]
                continue
            return None, None                    # z <= 0 but not 0: dead, no zero root
        if fn.name in _PASS_OPS or fn.name in ("Mul", "MatMul"):
            zero_in = [x for x in ins if _all_zero(x.data)]
            if not zero_in:
                return None, None
            t = zero_in[0]
            continue
        if fn.name in ("Add", "Sub") and all(_all_zero(x.data) for x in ins):
            t = ins[0]
            continue
        return None, None
    return None, None


def _chain(root_words, passed):
    if not passed:
        return root_words
    return (f"{root_words}, and the layers after it pass the 0 on (all-zero input, zero "
            f"bias): {', '.join(reversed(passed))}")


def _why_zero(u, arg, names, inputs):
    """(factor, detail, root, also): why op ``u`` sent an all-zero gradient to input ``arg``."""
    fn = u.creator
    ins = fn.inputs
    also = []
    if fn.name == "ReLU":
        z = ins[0].data
        xp = array_module(z)
        counts = backend.to_numpy(xp.stack([(z == 0).sum(), (z < 0).sum()])).tolist()
        n0, nneg = int(counts[0]), int(counts[1])
        n = z.size
        if n0 + nneg < n:
            return ("cancellation",
                    f"relu'(z) is 1 for {n - n0 - nneg} of {n} entries, but the gradient "
                    f"arriving there is 0", None, also)
        if n0 == n:
            detail = (f"its input z is exactly 0 in all {n} entries, so relu'(z) = 0 "
                      f"everywhere (relu'(0) = 0)")
        elif nneg == n:
            detail = (f"its input z is negative in all {n} entries (dead units), so "
                      f"relu'(z) = 0 everywhere")
        else:
            detail = (f"its input z is <= 0 everywhere ({n0} of {n} exactly 0, {nneg} "
                      f"negative), so relu'(z) = 0 everywhere (relu'(0) = 0)")
        root, why = _zero_source(ins[0], names, inputs) if n0 == n else (None, None)
        if why:
            detail += f"; z is 0 because {why}"
        producer = ins[0].creator
        if producer is not None and producer.name in _LINEAR_OPS and \
                _all_zero(producer.inputs[1].data):
            wname = _name_of(producer.inputs[1], names, inputs) or "its weight"
            also.append(f"zero weight: even if relu'(0) were 1, {producer.name}'s "
                        f"dx = g·Wᵀ would be 0 because '{wname}' is all zero")
        return "relu'(0) = 0", detail, root, also
    if fn.name in _LINEAR_OPS and len(ins) >= 2:
        x, w = ins[0], ins[1]
        if arg == 0:
            if _all_zero(w.data):
                wname = _name_of(w, names, inputs)
                label = f"'{wname}'" if wname else "the weight"
                return ("zero weight", f"{fn.name} passes back dx = g·Wᵀ, and {label} is all "
                        f"zero", wname, also)
            return ("cancellation", f"{fn.name}'s dx = g·Wᵀ summed to exactly 0 although "
                    f"W is not all zero (the units that get gradient have zero weights)",
                    None, also)
        if arg == 1:
            if _all_zero(x.data):
                root, why = _zero_source(x, names, inputs)
                detail = (f"{fn.name}'s dW = xᵀ·g and its input x is exactly 0 everywhere"
                          if fn.name != "Conv2D" else
                          "Conv2D's dW = im2col(x)ᵀ·g and its input x is exactly 0 everywhere")
                if why:
                    detail += f" (because {why})"
                return "zero input", detail, root, also
            return ("cancellation", f"{fn.name}'s dW = xᵀ·g summed to exactly 0 although x "
                    f"is not all zero", None, also)
        return ("cancellation", f"{fn.name}'s db = Σ g summed to exactly 0", None, also)
    if fn.name == "Mul" and len(ins) == 2:
        other = ins[1 - arg]
        if _all_zero(other.data):
            oname = _name_of(other, names, inputs)
            is_param = oname is not None and not oname.startswith("input")
            return ("zero weight" if is_param else "zero input",
                    f"Mul passes back g·(the other factor), and "
                    f"{repr(oname) if oname else 'the other factor'} is all zero", oname, also)
    if fn.name == "Dropout":
        scale = getattr(fn, "scale", None)
        if scale is not None and (isinstance(scale, (int, float)) and scale == 0
                                  or not isinstance(scale, (int, float)) and _all_zero(scale)):
            return "dropout", "dropout dropped every unit (keep mask all 0)", None, also
    return ("cancellation", f"{fn.name}'s backward ({describe_derivative(fn)}) gave exactly 0",
            None, also)


def _param_zeros(t, node, consumers, tagger):
    """Which entries of parameter ``t`` got exactly zero gradient, and why."""
    g = t.grad.data
    mask = backend.to_numpy(g == 0)
    pz = ParamZeros(node.name, t.shape, t.size, int(mask.sum()), mask)
    uses = consumers.get(id(t), [])
    if len(uses) != 1:
        pz.reasons = {"exactly 0 (used by several ops)" if uses else "exactly 0": pz.zero}
        return pz
    u, arg = uses[0]
    fn = u.creator
    gout = u.grad.data if u.grad is not None else None
    xp = array_module(g)
    zero_in = silent = None                       # host bool arrays
    if gout is None:
        pz.reasons = {"no gradient at the unit": pz.zero}
        return pz
    if fn.name in ("Dense", "MatMul") and arg == 1 and t.ndim == 2 and fn.inputs[0].ndim == 2:
        x = fn.inputs[0].data                                      # (N, IN)
        zero_in = backend.to_numpy((x != 0).sum(axis=0) == 0)      # (IN,)
        silent = backend.to_numpy((gout != 0).sum(axis=0) == 0)    # (OUT,)
        structural = zero_in[:, None] | silent[None, :]
        in_mask = np.broadcast_to(zero_in[:, None], t.shape)
        pz.zero_inputs = np.flatnonzero(zero_in).tolist()
    elif fn.name == "Conv2D" and arg == 1:
        from tinynet.ops.conv import im2col
        x = fn.inputs[0].data
        O, C, KH, KW = t.shape
        cols = im2col(x, KH, KW, fn.stride, fn.padding)            # (C·KH·KW, L)
        zero_in = backend.to_numpy((cols != 0).sum(axis=1) == 0).reshape(C, KH, KW)
        del cols
        silent = backend.to_numpy((gout != 0).sum(axis=(0, 2, 3)) == 0)   # (O,)
        structural = zero_in[None] | silent[:, None, None, None]
        in_mask = np.broadcast_to(zero_in[None], t.shape)
        pz.zero_inputs = [tuple(int(v) for v in c) for c in np.argwhere(zero_in)]
    elif fn.name in ("Dense", "Conv2D") and arg == 2:
        axes = (0,) if gout.ndim == 2 else (0, 2, 3)
        silent = backend.to_numpy((gout != 0).sum(axis=axes) == 0)
        structural, in_mask = silent, np.zeros(t.shape, bool)
    elif fn.name in ("Add", "Sub") and t.ndim >= 1:
        from tinynet.ops._operands import sum_to
        counts = sum_to((gout != 0).astype(xp.float32), t.shape)
        silent = backend.to_numpy(counts == 0).reshape(-1)
        structural, in_mask = silent.reshape(t.shape), np.zeros(t.shape, bool)
    else:
        pz.reasons = {"exactly 0": pz.zero}
        return pz
    pz.silent_units = np.flatnonzero(silent).tolist()
    off, flat = _relu_off_units(u, consumers)
    unit_axis = 1 if fn.name in ("Dense", "MatMul") and arg == 1 else 0

    def per_unit(v):
        return _expand_units(None if v is None else v & silent, t.shape, unit_axis)

    silent_mask = per_unit(silent) & ~in_mask
    flat_mask = silent_mask & per_unit(flat)
    dead_mask = silent_mask & per_unit(off) & ~flat_mask
    if off is not None:
        pz.dead_units = [j for j in pz.silent_units if off[j]]
    reasons = {
        "zero input": int((mask & in_mask).sum()),
        "relu'(0) = 0 at the unit": int((mask & flat_mask).sum()),
        "dead unit": int((mask & dead_mask).sum()),
        "no gradient at the unit": int((mask & silent_mask & ~flat_mask & ~dead_mask).sum()),
        "cancellation": int((mask & ~structural).sum()),
    }
    pz.reasons = {k: v for k, v in reasons.items() if v}
    return pz


def _expand_units(per_unit, shape, axis):
    """A per-unit bool vector broadcast over a parameter of ``shape`` along ``axis``."""
    if per_unit is None:
        return np.zeros(shape, bool)
    if len(shape) == 1:
        return per_unit.reshape(shape)
    view = [1] * len(shape)
    view[axis] = -1
    return np.broadcast_to(per_unit.reshape(view), shape)


def _relu_off_units(u, consumers):
    """Per unit (column / channel) of op ``u``'s output, when a ReLU follows it:
    (off, flat) -- off: z <= 0 on every sample (the ReLU passes nothing);
    flat: z exactly 0 on every sample (relu'(0) = 0, e.g. after a zero kernel).
    (None, None) when no ReLU follows."""
    uses = consumers.get(id(u), [])
    if len(uses) != 1 or uses[0][0].creator.name != "ReLU":
        return None, None
    z = u.data
    axes = (0,) if z.ndim == 2 else (0,) + tuple(range(2, z.ndim))
    off = backend.to_numpy((z > 0).sum(axis=axes) == 0).reshape(-1)
    flat = backend.to_numpy((z != 0).sum(axis=axes) == 0).reshape(-1)
    return off, flat


# --------------------------------------------------------------------------
# the Trace
# --------------------------------------------------------------------------
@dataclass
class Trace:
    """The record of one traced step; ``print(trace)`` tells its story.

    nodes        [Node] in forward order (input, parameters, op outputs)
    edges        [Edge] backward edges: op -> each of its inputs
    first_zero   FirstZero or None
    zero_params  {param name: ParamZeros} for parameters with any exactly-zero entry
    loss         the loss value; device "cpu"/"cuda"; batch the batch size
    disconnected parameters of the model that the loss does not depend on at all
                 (their .grad stays None: not connected to the loss)
    """
    nodes: list
    edges: list
    first_zero: Optional[FirstZero]
    zero_params: dict
    loss: float
    device: str = "cpu"
    batch: Optional[int] = None
    disconnected: list = field(default_factory=list)

    # ---- lookups ----------------------------------------------------------
    @property
    def ops(self):
        """The op nodes, in forward order."""
        return [n for n in self.nodes if n.kind == "op"]

    @property
    def params(self):
        """{name: Node} for the parameters (and named leaves)."""
        return {n.name: n for n in self.nodes if n.kind in ("param", "leaf")}

    def node(self, name):
        """The node called ``name`` ("0.weight", "3:ReLU", "x")."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}; the nodes are "
                       f"{[n.name for n in self.nodes]}")

    # ---- pictures (tinynet.diagnose.graph) --------------------------------
    def to_dot(self):
        """Graphviz DOT text of the gradient flow (zero edges red, dashed, marked 0)."""
        from tinynet.diagnose.graph import to_dot
        return to_dot(self)

    def graph(self):
        """An object that renders inline in Jupyter (Graphviz if installed, else matplotlib)."""
        from tinynet.diagnose.graph import graph
        return graph(self)

    def draw(self, **kwargs):
        """A matplotlib Figure of the gradient-flow graph (needs no Graphviz)."""
        from tinynet.diagnose.graph import draw
        return draw(self, **kwargs)

    # ---- export -----------------------------------------------------------
    def to_dict(self):
        """Plain Python data (lists, numbers, strings): JSON-serializable."""
        zero_params = {}
        for name, pz in self.zero_params.items():
            d = asdict(pz)
            d.pop("mask")
            d["shape"] = list(pz.shape)
            d["zero_inputs"] = [list(v) if isinstance(v, tuple) else v for v in pz.zero_inputs]
            zero_params[name] = d
        nodes = []
        for n in self.nodes:
            d = asdict(n)
            d["shape"] = list(n.shape)
            d["grad_is_zero"] = n.grad_is_zero
            nodes.append(d)
        return {
            "loss": self.loss, "device": self.device, "batch": self.batch,
            "nodes": nodes,
            "edges": [dict(asdict(e), zero=e.zero) for e in self.edges],
            "first_zero": asdict(self.first_zero) if self.first_zero else None,
            "zero_params": zero_params, "disconnected": list(self.disconnected),
        }

    # ---- the story --------------------------------------------------------
    def __repr__(self):
        fz = (f"first zero at {self.nodes[self.first_zero.node].name} "
              f"({self.first_zero.factor})" if self.first_zero else "no zero gradient")
        return (f"<Trace: {len(self.ops)} ops, {len(self.params)} parameters, "
                f"loss {self.loss:.4g}, {fz}>")

    def __str__(self):
        return "\n".join(_story(self))


def _fmt(v, width=9):
    if v is None:
        return "—".rjust(width)
    if v == 0:
        return "0".rjust(width)
    return f"{v:.3g}".rjust(width)


def _pct(v, width=6):
    return "—".rjust(width) if v is None else f"{100 * v:.1f}%".rjust(width)


def _table(trace):
    head = (f"{'#':>3}  {'node':<22} {'shape':<16}│{'mean':>9} {'std':>9} {'min':>9} "
            f"{'max':>9} {'zero':>6} │{'|g|':>9} {'zero':>6} {'max|g|':>9} │ local derivative")
    lines = [f"{'':44}│{'forward values':^47}│{'gradient arriving':^27}│", head,
             "─" * len(head)]
    fz = trace.first_zero
    for n in trace.nodes:
        name = n.name if n.kind != "input" else f"{n.name} (input)"
        if len(name) > 22:
            name = name[:21] + "…"
        shape = str(tuple(n.shape))
        mark = ""
        if fz is not None and n.index == fz.node:
            mark = "  ◀ gradient becomes 0 here"
        deriv = n.derivative if n.kind == "op" else (
            "(no gradient needed)" if n.grad_norm is None else
            _param_note(trace.zero_params.get(n.name)) if n.kind in ("param", "leaf") else "")
        gzero = _pct(n.grad_zero_frac)
        lines.append(
            f"{n.index:>3}  {name:<22} {shape:<16}│{_fmt(n.mean)} {_fmt(n.std)} "
            f"{_fmt(n.min)} {_fmt(n.max)} {_pct(n.zero_frac)} │{_fmt(n.grad_norm)} {gzero} "
            f"{_fmt(n.grad_max)} │ {deriv}{mark}")
    return lines


def _where(layer):
    if layer is None:
        return "the graph"
    if layer == "loss":
        return "the loss"
    return "the model itself" if layer == "" else f"layer '{layer}'"


def _param_note(pz):
    if pz is None:
        return "(parameter: every entry got gradient)"
    main = max(pz.reasons, key=pz.reasons.get) if pz.reasons else "exactly 0"
    return f"(parameter: {pz.zero} of {pz.total} entries get 0 — {main})"


def _wrap(text, indent="  "):
    # keep "relu'(0) = 0" and "dx = g·Wᵀ" on one line: non-breaking spaces around "="
    text = text.replace(" = ", "\u00a0=\u00a0")
    return textwrap.fill(text, width=110, subsequent_indent=indent,
                         break_long_words=False).replace("\u00a0", " ")


def _story(trace):
    fz = trace.first_zero
    batch = f", batch of {trace.batch}" if trace.batch else ""
    out = [f"One training step, traced op by op (loss {trace.loss:.6g}{batch}, "
           f"device {trace.device}).",
           "Forward runs top to bottom; the gradient arrives bottom to top. "
           "'zero' = the fraction of entries exactly 0.", ""]
    out += _table(trace)
    out.append("")
    out.append("Walking backward from the loss:")
    ops = [n for n in reversed(trace.nodes) if n.kind == "op"]
    for n in ops:
        if n.grad_norm is None:
            continue
        state = "exactly 0 everywhere" if n.grad_is_zero else (
            f"|g| = {n.grad_norm:.3g}" + (f", {100 * n.grad_zero_frac:.1f}% of it exactly 0"
                                          if n.grad_zero_frac else ""))
        out.append(f"  {n.name:<24} gradient arriving: {state}")
        if fz is not None and n.index == fz.node:
            out.append(f"  {'':<24} ▲ it became 0 here: {fz.op} "
                       f"({_where(fz.layer)}) "
                       f"sent back nothing — {fz.factor}")
    out.append("")
    if trace.zero_params:
        out.append("Parameters with exactly-zero gradient entries:")
        for name, pz in trace.zero_params.items():
            reasons = "; ".join(f"{k}: {v}" for k, v in pz.reasons.items())
            out.append(f"  {name} {tuple(pz.shape)}: {pz.zero} of {pz.total} entries exactly 0"
                       f" ({reasons})")
            if pz.zero_inputs and not pz.all_zero:
                shown = ", ".join(str(v) for v in pz.zero_inputs[:12])
                more = f", … ({len(pz.zero_inputs)} in all)" if len(pz.zero_inputs) > 12 else ""
                what = "rows" if len(pz.shape) == 2 else "taps (c, kh, kw)"
                out.append(f"      {what} whose input was 0 on every sample of this batch: "
                           f"{shown}{more}")
            if pz.dead_units and not pz.all_zero:
                shown = ", ".join(str(v) for v in pz.dead_units[:12])
                out.append(f"      units whose ReLU was off on every sample: {shown}"
                           + (f", … ({len(pz.dead_units)} in all)"
                              if len(pz.dead_units) > 12 else ""))
        out.append("")
    else:
        out.append("Every parameter got a nonzero gradient in every entry.")
        out.append("")
    if trace.disconnected:
        out.append(_wrap(f"Not connected to the loss at all (no gradient, .grad stays None): "
                         f"{', '.join(trace.disconnected)}."))
        out.append("")
    if fz is None:
        out.append("The gradient never became exactly zero: it reached every parameter "
                   "in the graph.")
        return out
    node = trace.nodes[fz.node]
    where = _where(fz.layer)
    out.append(_wrap(f"The gradient became zero at {node.label} (node {node.index}, shape "
                     f"{tuple(node.shape)}), because {fz.factor}: {fz.op} in {where}: "
                     f"{fz.detail}."))
    if fz.root:
        out.append(f"The root: {fz.root!r}.")
    for a in fz.also:
        out.append(_wrap(f"Also: {a}."))
    if fz.cut_off:
        out.append(_wrap(f"Everything before it gets exactly zero gradient and cannot learn: "
                         f"{', '.join(fz.cut_off)}."))
    return out


__all__ = ["trace_step", "trace_loss", "Trace", "Node", "Edge", "FirstZero", "ParamZeros",
           "describe_derivative", "DERIVATIVES"]
