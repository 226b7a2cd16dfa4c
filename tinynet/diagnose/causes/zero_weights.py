"""zero_weights: an all-zero layer outputs 0 and blocks the gradient on both sides.

The root of the zero-kernel case: W = 0 and b = 0 give an output of exactly 0,
relu'(0) = 0 sends nothing back, and dW = Aᵀ·Δ with Δ = 0 keeps W at 0.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n


def fix(param):
    return (f"Initialize {param} randomly (init.he_normal or init.glorot_uniform); a zero bias "
            f"is fine, an all-zero kernel before a ReLU never recovers.")


def story(f):
    ev = f.evidence
    if f.root is not None:
        return f"{entries(f)} never changed: the bias of the all-zero layer {f.layer}"
    extra = f" (and its {n(ev['bias_entries'])} biases)" if "bias_entries" in ev else ""
    # the finding's own count first unless the sentence already is it: "all N weights"
    # of a weight finding that holds every entry (a bias told alone -- its weight went
    # to another cause, e.g. left out of the optimizer -- or a part of a weight)
    whole_weight = f.param == ev.get("weight", f.param) and f.entries == f.total
    lead = "" if whole_weight else f"{entries(f)} never changed: "
    s = (f"{lead}all {n(ev['weight_entries'])} weights{extra} are exactly 0, so layer "
         f"{f.layer} outputs 0 on every sample (largest output seen: {ev['max_output']:g})")
    return s + ("; relu'(0) = 0 sends no gradient back through it, and every layer after it "
                "sees only zeros" if ev.get("feeds_relu") else
                "; every layer after it sees only zeros")


CAUSE = Cause(name="zero_weights", freezes=True, plain="all-zero layer",
              detect=lambda ev: attribution(ev, "zero_weights"), story=story)
