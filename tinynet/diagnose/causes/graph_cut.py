"""graph_cut: the layer ran in training, but its output was cut off from the loss.

``.detach()`` on its output, or the layer called under ``tn.no_grad()`` inside
forward: the loss is computed from it, yet backward never reaches it, so
``.grad`` stays None and the optimizer skips it.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n


def fix(layer, how):
    if how == "no_grad":
        return (f"Call layer {layer} outside tn.no_grad() in forward(); no_grad is for "
                f"evaluation only.")
    return (f"Remove the .detach() (or the tn.no_grad() block) on the path from layer "
            f"{layer}'s output to the loss, so backward reaches it.")


def story(f):
    ev = f.evidence
    if ev.get("how") == "no_grad":
        return (f"{entries(f)} never changed: layer {f.layer} ran {n(ev['nograd_forwards'])} "
                f"times, always with gradients off (inside tn.no_grad()), so the graph was "
                f"cut there and .grad stayed None in all {n(ev['steps'])} steps")
    return (f"{entries(f)} never changed: layer {f.layer} ran on all "
            f"{n(ev['samples_seen'])} samples, but no gradient ever came back to its output "
            f"(0 backward passes): the graph was cut after it (.detach() or no_grad), so "
            f".grad stayed None in all {n(ev['steps'])} steps")


CAUSE = Cause(name="graph_cut", freezes=True, plain="graph cut (detach / no_grad)",
              detect=lambda ev: attribution(ev, "graph_cut"), story=story)
