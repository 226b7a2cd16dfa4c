"""dead_unit: units whose ReLU never opened, so no gradient reaches their weights.

relu'(z) = 0 for z <= 0: a unit whose pre-activation is <= 0 on every sample
passes no gradient back, so its incoming weights and bias get an exactly-zero
gradient.  Dead from the first step (``since`` = 0: the entries never changed)
and died at step k (``since`` > 0: they moved, then stopped -- too large a
learning rate) are separate findings with separate unit lists.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n, units


def fix(root=None):
    if root is not None:
        return f"Fix {root}; these units only output 0 because their whole input is 0."
    return ("Revive the units: a smaller negative bias (or a zero bias with He init), a lower "
            "learning rate, or an activation with a nonzero slope below 0.")


def story(f):
    ev = f.evidence
    if f.root is not None:
        how = "exactly 0" if ev.get("preactivation_exactly_zero") else "just the bias, <= 0"
        why = f"their whole input is 0 (because of {f.root}), so the pre-activation is {how}"
    else:
        peak = "" if f.since else f" (largest: {ev['max_preactivation']:.4g})"
        why = f"their pre-activation was <= 0{peak}"
    if f.since:
        first, last = ev.get("died_after_steps", [0, 0])
        when = (f"after step {last}" if first == last else
                f"between steps {first} and {last}")
        return (f"{units(ev)} units stopped working during training: each was last open "
                f"{when}, and from step {f.since} to the end {why} on every sample "
                f"({n(ev['samples_seen'])} samples), so the ReLU passed no gradient; "
                f"{entries(f)} stopped changing after step "
                f"{ev.get('last_change_step', '?')}")
    return (f"{entries(f)} never changed: {units(ev)} units are dead (never switched on): "
            f"{why} on all {n(ev['samples_seen'])} samples seen, so the ReLU after them passed "
            f"no gradient (relu'(z) = 0 for z <= 0)")


CAUSE = Cause(name="dead_unit", freezes=True, plain="dead ReLU unit",
              detect=lambda ev: attribution(ev, "dead_unit"), story=story)
