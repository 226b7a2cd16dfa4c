"""The registry of causes: one small module per reason a parameter stops learning.

Each module in this package defines ``CAUSE = Cause(...)``:

    name     -- the word used everywhere (Finding.cause, report.by_cause, to_dict, plots)
    freezes  -- True: the entries named never changed at all, bit for bit
    plain    -- a few plain words for a figure legend ("input always 0")
    detect   -- evidence -> [Finding] (see :mod:`..evidence`); several causes share one
                pass (the exact attribution of frozen entries, :mod:`..attribution`,
                gives every frozen entry exactly one cause), read through ``passes``
    story    -- Finding -> the sentence the report prints, in plain words, with its numbers
    harmless -- True when nothing needs fixing (the fix then says why)

The fix sentence of each finding is made by the module too and stored on the
Finding.  ``CAUSES``, ``FROZEN_CAUSES``, the report's sentences and the plot
legends (``LEGENDS``) are all read from here; a new cause is one module here,
its name in ``ORDER`` and a planted-fault test (tests/diagnose/test_registry.py
checks that every registered cause has one).
"""
import importlib
from dataclasses import dataclass
from typing import Callable

#: The order findings of one parameter are listed in (and detection runs in).
ORDER = ("frozen_by_user", "not_in_optimizer", "graph_cut", "no_gradient", "zero_lr",
         "zero_weights", "zero_input", "dead_unit", "blocked_downstream",
         "below_resolution", "symmetry", "tiny_update", "vanishing_gradient")


@dataclass(frozen=True)
class Cause:
    name: str
    freezes: bool
    plain: str
    detect: Callable
    story: Callable
    harmless: bool = False


def _load():
    reg = {}
    for name in ORDER:
        cause = importlib.import_module(f"{__name__}.{name}").CAUSE
        if cause.name != name:
            raise RuntimeError(f"cause module {name} registers {cause.name!r}")
        reg[name] = cause
    return reg


REGISTRY = _load()
CAUSES = tuple(REGISTRY)
FROZEN_CAUSES = tuple(n for n, c in REGISTRY.items() if c.freezes)
LEGENDS = {n: c.plain for n, c in REGISTRY.items()}


__all__ = ["Cause", "REGISTRY", "CAUSES", "FROZEN_CAUSES", "LEGENDS", "ORDER"]
