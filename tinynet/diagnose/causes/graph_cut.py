"""graph_cut: the layer ran in training, but its output was cut off from the loss.

``.detach()`` on its output, a new tensor made from its ``.data``, or a layer
called under ``tn.no_grad()`` inside forward: the loss is computed from it,
yet backward never reaches it, so ``.grad`` stays None and the optimizer skips
it.  Where the cut was is read from what the Recorder's forward hooks saw on
the first step (:meth:`..probes.Topology.cut_after`): the module that received
a tensor outside the graph, and whether that tensor was a graph output's very
array (``.detach()``), an exact copy of its values (``tn.tensor(h.data)``) or
the output of a module run under no_grad.  A cut between two modules made by
plain functions (``F.relu(h.detach())``) is located between those modules only:
the story says the op is not proven.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n


def layer_name(ev, name):
    """'layer 2 (ReLU)' -- the module's class beside its name."""
    L = ev.layers.get(name) if name is not None else None
    cls = type(L.module).__name__ if L is not None and L.module is not None else None
    return f"layer {name}" + (f" ({cls})" if cls else "")


def locate(ev, layer):
    """Evidence fields naming where ``layer``'s output was cut off, from the watched
    first forward: {"cut_op": "detach"|"copy"|"no_grad"|None, "cut_at", "cut_after"}
    (cut_op None: not proven which op; cut_at None: not even where)."""
    topo = getattr(ev.recorder, "topology", None)
    cut = topo.cut_after(layer) if topo is not None and hasattr(topo, "cut_after") else None
    if cut is None:
        return {"cut_op": None, "cut_at": None, "cut_after": None}
    return {"cut_op": cut["op"], "cut_at": cut["at"], "cut_after": cut["after"],
            "cut_sentence": where(ev, cut)}


def where(ev, cut):
    """Where the cut was, in words that follow "the graph was cut "."""
    at, after = layer_name(ev, cut["at"]), layer_name(ev, cut["after"])
    if cut["op"] == "detach":
        return (f"where the output of {after} was detached (.detach()) before {at}, which "
                f"received the same array outside the graph")
    if cut["op"] == "copy":
        return (f"where {at} received a new array equal to the output of {after}, outside "
                f"the graph (a copy such as tn.tensor(h.data), or an op on a detached "
                f"tensor that left the values unchanged)")
    if cut["op"] == "no_grad":
        fed = f" on the output of {after}" if cut["after"] is not None else ""
        return f"at {at}, which ran inside tn.no_grad(){fed}"
    return (f"somewhere between the output of {after} and the input of {at}, outside any "
            f"layer; not proven which op (.detach(), a tensor made from .data, or no_grad)")


def fix(layer, how, cut=None):
    cut = cut or {}
    op, at, after = cut.get("cut_op"), cut.get("cut_at"), cut.get("cut_after")
    if how == "no_grad":
        return (f"Call layer {layer} outside tn.no_grad() in forward(); no_grad is for "
                f"evaluation only.")
    if op == "detach":
        return (f"Remove the .detach() on layer {after}'s output before layer {at}, so "
                f"backward reaches layer {layer}.")
    if op == "copy":
        return (f"Pass layer {after}'s output tensor itself to layer {at}, not a new tensor "
                f"made from its .data or a detached copy (those are outside the graph).")
    if op == "no_grad":
        return (f"Call layer {at} outside tn.no_grad() in forward(), so backward reaches "
                f"layer {layer} through it; no_grad is for evaluation only.")
    path = (f"between layer {after}'s output and layer {at}'s input" if at is not None
            else f"on the path from layer {layer}'s output to the loss")
    return (f"Remove the .detach() (or the tn.no_grad() block, or the tensor made from "
            f".data) {path}, so backward reaches layer {layer}.")


def story(f):
    ev = f.evidence
    if ev.get("how") == "no_grad":
        return (f"{entries(f)} never changed: layer {f.layer} ran {n(ev['nograd_forwards'])} "
                f"times, always with gradients off (inside tn.no_grad()), so the graph was "
                f"cut there and .grad stayed None in all {n(ev['steps'])} steps")
    place = ev.get("cut_sentence") or ("after it; not proven which op (no later layer "
                                       "received a tensor cut from the graph: the cut is "
                                       "outside every layer)")
    return (f"{entries(f)} never changed: layer {f.layer} ran on all "
            f"{n(ev['samples_seen'])} samples, but no gradient ever came back to its output "
            f"(0 backward passes): the graph was cut {place}, so .grad stayed None in all "
            f"{n(ev['steps'])} steps")


CAUSE = Cause(name="graph_cut", freezes=True, plain="graph cut (detach / no_grad)",
              detect=lambda ev: attribution(ev, "graph_cut"), story=story)
