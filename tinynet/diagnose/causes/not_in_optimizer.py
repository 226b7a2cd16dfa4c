"""not_in_optimizer: a trainable parameter (requires_grad=True) the optimizer was not given.

The optimizer updates only the parameters in its list; this one got gradients
that nobody applied.  (A parameter frozen on purpose with requires_grad=False
is ``frozen_by_user``.)
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries


def fix(param, kind):
    kind = kind or "Adam"
    return (f"Build the optimizer with every trainable parameter, e.g. opt = optim.{kind}("
            f"[p for p in model.parameters() if p.requires_grad], lr=...) (or add {param} "
            f"to the list you passed).")


def story(f):
    ev = f.evidence
    return (f"{entries(f)} never changed: the optimizer was not given this parameter (it has "
            f"{ev['optimizer_parameters']} of the model's {ev['model_parameters']}), so its "
            f"gradient was never applied")


CAUSE = Cause(name="not_in_optimizer", freezes=True, plain="not in the optimizer",
              detect=lambda ev: attribution(ev, "not_in_optimizer"), story=story)
