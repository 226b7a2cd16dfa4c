"""Why parameters stop updating: record training, name the causes, trace one step.

    import tinynet as tn
    report = tn.diagnose.explain(model, loader, optimizer=opt, steps=200)
    print(report)                               # root causes first, with the numbers
    report.findings, report.frozen("0.weight"), report.roots(), report.to_dict()

    rec = tn.diagnose.Recorder(model, opt, every=10)   # or record your own training
    fit(model, loss_fn, opt, loader, callbacks=[rec])
    rec.history["0.weight"]["update_ratio"], rec.changed_mask("0.weight")

    tn.diagnose.trace_step(model, x, y)         # one step, op by op

    tn.diagnose.effective_width(layer, next_layer)   # distinct units of a Dense / Conv2D

Modules: recorder (Recorder) and probes (its layer hooks); evidence (reading
the recorder back); causes/ (the registry: one module per cause, with its
story and fix); attribution (the exact pass that gives every frozen entry
one cause), symmetry (identical units), updates (tiny updates, vanishing
gradients); findings (Finding, Report) and story (the text); explain
(explain, analyze); trace (trace_step).
"""
import importlib

from tinynet.diagnose.explain import analyze, explain
from tinynet.diagnose.findings import CAUSES, FROZEN_CAUSES, Finding, Report
from tinynet.diagnose.recorder import Recorder
from tinynet.diagnose.symmetry import effective_width

_LAZY = {"trace_step": "tinynet.diagnose.trace", "trace_loss": "tinynet.diagnose.trace"}


def __getattr__(name):
    # trace.py is imported on first use: it is larger and pulls in the graph drawing.
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tinynet.diagnose' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["Recorder", "explain", "analyze", "Report", "Finding", "CAUSES", "FROZEN_CAUSES",
           "effective_width", "trace_step"]
