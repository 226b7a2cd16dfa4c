"""vanishing_gradient: the gradient shrinks layer by layer toward the input.

The gradient RMS of a weight is below 1e-3 of the last layer's and below the
next layer's, in a chain of at least three weight layers (:mod:`..updates`).
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import num, updates


def story(f):
    ev = f.evidence
    chain = ", ".join(f"{k} {v:.1e}" for k, v in ev.get("grad_rms_by_layer", {}).items()
                      if v is not None)
    return (f"learns far slower than the last layer: its gradient rms "
            f"{num(ev.get('grad_rms'), '.1e')} is {num(ev.get('grad_rms_vs_last_layer'), '.1e')}"
            f" of the last layer's and shrinks layer by layer toward the input ({chain}); "
            f"update ratio {num(ev.get('update_ratio_median'), '.1e')} per step")


CAUSE = Cause(name="vanishing_gradient", freezes=False, plain="vanishing gradient",
              detect=lambda ev: updates(ev, "vanishing_gradient"), story=story)
