"""symmetry: units (Dense) or channels (Conv2D) that are identical and stay identical.

Equal incoming weights, bias and outgoing weights give equal outputs, equal
gradients and equal updates: the layer acts as fewer units than it has (its
*effective width*, :func:`tinynet.diagnose.effective_width`).  The entries DO
change, in lock step.  Detection and the tolerance: :mod:`..symmetry`.
"""
from tinynet.diagnose.causes import Cause


def fix():
    return ("Initialize the weights randomly (any random init breaks the tie; init.he_normal "
            "for ReLU); a constant is only safe for biases.")


def story(f):
    ev = f.evidence
    diff = ev["max_relative_difference"]
    same = "bit-identical" if diff == 0 else f"equal to within {diff:.1e} of the layer's scale"
    what = "channels" if ev.get("kind") == "conv" else "units"
    return (f"layer {f.layer} works as if it had {f.entries} {what[:-1]}(s), not {f.total} "
            f"(effective width {f.entries} of {f.total}): its {what} fall into {f.entries} "
            f"group(s) (largest: {ev['largest_group']} {what}) whose incoming weights, bias "
            f"and outgoing weights (into layer {ev['next_layer']}) are {same}; equal {what} "
            f"get equal gradients and stay equal. Their entries DO change, in lock step")


def _detect(ev):
    from tinynet.diagnose.symmetry import symmetry_findings
    return symmetry_findings(ev)


CAUSE = Cause(name="symmetry", freezes=False, plain="identical units",
              detect=_detect, story=story)
