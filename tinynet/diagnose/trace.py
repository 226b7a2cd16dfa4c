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

How it is split, one job per module:

    trace_capture   run backward keeping every gradient; the nodes and edges, their numbers
    trace_rules     the rule table: per op class, its derivative and why it can send back 0;
                    the cause names (the report's vocabulary, in one place)
    trace_zero      the first zero, its cause and root; each parameter's zero entries
    trace_render    the table and the story (``str(trace)``); graph.py draws the picture

The causes are named as in the report ("dead_unit", "zero_input", "zero_weights",
"blocked_downstream"), plus three that only one step shows: "dropped" (dropout
dropped every unit), "cancellation" (nonzero contributions summed to exactly 0)
and "unexplained" (an op tinynet has no rule for).  ``factor`` says which factor
of the chain rule was 0 ("relu'(0) = 0", "x = 0", "W = 0", ...).

In the zero-kernel network (conv -> relu -> conv with zero kernel and zero
bias -> relu -> ...) the ReLU after the zero conv is the first zero (see trace_zero): its
inputs are all exactly 0, so relu'(0) = 0 blocks everything.  The zero
weight of the conv itself would block the gradient one op further back
(dx = g·Wᵀ = 0) -- reported in ``also`` -- and the root of both is the zero
kernel (``root``).
"""
from dataclasses import asdict, dataclass, field
from typing import Optional

from tinynet.diagnose.trace_capture import (Edge, LayerTagger, Node, as_batch_tensor,
                                            kept_backward, read_graph, scalar)
from tinynet.diagnose.trace_render import story
from tinynet.diagnose.trace_rules import CAUSE, DERIVATIVES, describe_derivative
from tinynet.diagnose.trace_zero import (FirstZero, ParamZeros, ZeroContext, ancestors,
                                         first_zero, param_zeros)


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
    x_t = as_batch_tensor("trace_step", x, ref, floating=True)
    y_t = as_batch_tensor("trace_step", y, ref, floating=False)
    tagger = LayerTagger(model)
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


def _trace(loss, names, inputs, tagger, where, leaves_are_params=False, release=True):
    with kept_backward(loss, where, release) as tensors:
        nodes, edges, consumers = read_graph(loss, tensors, names, inputs, tagger,
                                             leaves_are_params)
        first = first_zero(tensors, nodes, consumers, ZeroContext(names, inputs))
        zero_params = {node.name: param_zeros(t, node.name, consumers)
                       for t, node in zip(tensors, nodes)
                       if node.kind in ("param", "leaf") and node.grad_nonzero is not None
                       and node.grad_nonzero < node.size}
        value = scalar(loss.data)
    if first is not None:
        first.cut_off = [nodes[j].name for j in ancestors(nodes, first.node)
                         if nodes[j].kind in ("param", "leaf") and nodes[j].grad_is_zero]
    return Trace(nodes=nodes, edges=edges, first_zero=first, zero_params=zero_params,
                 loss=value, device=loss.device,
                 batch=next((n.shape[0] for n in nodes if n.kind == "input" and n.shape),
                            None))


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
        return "\n".join(story(self))


__all__ = ["trace_step", "trace_loss", "Trace", "Node", "Edge", "FirstZero", "ParamZeros",
           "describe_derivative", "DERIVATIVES", "CAUSE"]
