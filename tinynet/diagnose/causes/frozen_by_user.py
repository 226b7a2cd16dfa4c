"""frozen_by_user: the parameter was frozen on purpose (``requires_grad_(False)``).

No gradient is computed for it and no optimizer may hold it (tinynet's
optimizers refuse it), so it never changes -- as intended when fine-tuning.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries


def fix(param, kind):
    kind = kind or "Adam"
    return (f"Nothing to fix if you froze it on purpose. To train it: "
            f"call .requires_grad_(True) on {param}, then build the "
            f"optimizer again with it: opt = optim.{kind}([p for p in model.parameters() "
            f"if p.requires_grad], lr=...).")


def story(f):
    return (f"{entries(f)} never changed: the parameter was frozen on purpose "
            f"(requires_grad=False), so no gradient is computed for it")


CAUSE = Cause(name="frozen_by_user", freezes=True, plain="frozen on purpose",
              detect=lambda ev: attribution(ev, "frozen_by_user"), story=story, harmless=True)
