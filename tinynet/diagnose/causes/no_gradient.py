"""no_gradient: the loss does not use the parameter at all (.grad stays None)."""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n


def fix(param):
    return f"The loss does not depend on {param}: use it in forward(), or delete it."


def story(f):
    ev = f.evidence
    skipped = ev.get("optimizer_skipped")
    return (f"{entries(f)} never changed: .grad stayed None in all {n(ev['steps'])} steps"
            + (f" (the optimizer skipped it {n(skipped)} times)" if skipped is not None else "")
            + ": the loss does not depend on it")


CAUSE = Cause(name="no_gradient", freezes=True, plain="not used by the loss",
              detect=lambda ev: attribution(ev, "no_gradient"), story=story)
