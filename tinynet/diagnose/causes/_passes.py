"""Detection shared by several causes, run once per analysis and cached on the evidence."""


def attribution(ev, name):
    """Findings of cause ``name`` from the exact attribution of frozen entries (both the
    never-changed pass and the died-during-training pass)."""
    from tinynet.diagnose import attribution as a
    if "attribution" not in ev.cache:
        ev.cache["attribution"] = a.frozen_pass(ev)
        ev.cache["stalled"] = a.stalled_pass(ev)
    found = ev.cache["attribution"][0] + ev.cache["stalled"]
    return [f for f in found if f.cause == name]


def updates(ev, name):
    from tinynet.diagnose.updates import update_findings
    if "updates" not in ev.cache:
        ev.cache["updates"] = update_findings(ev)
    return [f for f in ev.cache["updates"] if f.cause == name]


def n(x):
    return f"{int(x):,}"


def units(ev):
    u = ev.get("units", 0)
    return f"{n(u)} of {n(ev.get('units_total', u))}"


def entries(f):
    return f"{n(f.entries)} of {n(f.total)} entries"


def num(x, spec=".2g"):
    """A number for the story; '?' when it was not measured (None)."""
    return "?" if x is None else format(x, spec)
