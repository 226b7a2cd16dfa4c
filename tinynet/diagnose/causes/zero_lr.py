"""zero_lr: the learning rate was 0 on every step.

A warm-up schedule that multiplies lr by 0, or ``opt.lr = 0`` in the loop:
the gradients are there, the update lr·(...) is exactly 0.  The recorder
reads ``optimizer.lr`` after every step.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n


def fix(kind):
    return (f"Give {kind} a learning rate above 0 on the steps you train (a warm-up should "
            f"start from a small positive value, e.g. lr * (step + 1) / warmup_steps).")


def spans(steps):
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out, start, prev = [], None, None
    for s in steps:
        if start is None:
            start = prev = s
        elif s == prev + 1:
            prev = s
        else:
            out.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = prev = s
    if start is not None:
        out.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(out)


def story(f):
    ev = f.evidence
    return (f"{entries(f)} never changed: {ev['optimizer']}'s learning rate was 0 on steps "
            f"{spans(ev['lr_zero_steps'])} ({n(len(ev['lr_zero_steps']))} of {n(ev['steps'])} "
            f"steps), so each update lr·(...) was exactly 0, whatever the gradient")


CAUSE = Cause(name="zero_lr", freezes=True, plain="learning rate 0",
              detect=lambda ev: attribution(ev, "zero_lr"), story=story)
