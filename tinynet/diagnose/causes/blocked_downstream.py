"""blocked_downstream: the unit's ReLU was open, but no gradient came back to it.

The layer after it has zero weights, dead units, or the gradient arriving from
the loss was exactly 0 on the samples where the unit was open (a saturated
softmax).
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n, units


def fix(root=None, layer=None):
    if root is not None:
        return f"Fix {root}; once gradient flows through it, these parameters learn."
    return (f"Look at what follows layer {layer}: the gradient was exactly 0 on every sample "
            f"where these units were open -- often a saturated softmax (huge logits: scale "
            f"the initial weights down).")


def story(f):
    ev = f.evidence
    when = (f"stopped changing: from step {f.since} on, in" if f.since else
            "never changed: in")
    s = (f"{entries(f)} {when} {n(ev['backward_passes'])} backward passes no gradient at all "
         f"reached {units(ev)} units of layer {f.layer}'s output")
    if f.root:
        return s + f", because of {f.root} after it"
    s += (", although their ReLU was open on some samples: the gradient coming back was "
          "exactly 0 on those samples")
    if ev.get("samples_with_zero_output_gradient"):
        s += (f" (at the output, layer {ev['output_layer']}, "
              f"{n(ev['samples_with_zero_output_gradient'])} of {n(ev['output_samples'])} "
              f"samples of the recorded steps had an all-zero gradient: a saturated softmax)")
    return s


CAUSE = Cause(name="blocked_downstream", freezes=True, plain="no gradient from the layer after",
              detect=lambda ev: attribution(ev, "blocked_downstream"), story=story)
