"""The report in plain words: root causes first, each with its consequences and numbers.

Each finding's sentence comes from its cause's module (:mod:`.causes`): what
happened, in plain words and with the numbers, then the cause's name in
brackets, then whether it is permanent.
"""
from tinynet.diagnose.causes import FROZEN_CAUSES, REGISTRY


def _n(x):
    return f"{int(x):,}"


def describe(f):
    """One finding as a paragraph (no fix line)."""
    return f"{f.param}: {_body(f)} [{f.cause}]. {_permanence(f)}"


def _body(f):
    cause = REGISTRY.get(f.cause)
    return cause.story(f) if cause is not None else f"{f.cause}, {f.entries} entries"


#: Printed once under every report that uses these words.
HOW_TO_READ = (
    "How to read this: a ROOT cause is a problem in its own right; \"because of X\" marks "
    "a consequence that goes away once the root X is fixed. \"Permanent\" means proven "
    "that more training cannot change it (for a property of the data: checked on every "
    "sample of the data set); \"from step s on\" / \"since\" describes entries that moved "
    "at first and stopped at step s. The word in [brackets] is the cause's name, as in "
    "report.by_cause(...).")


def _permanence(f):
    ev = f.evidence
    if f.cause == "symmetry":
        if f.permanent:
            return (f"Permanent under {ev.get('optimizer') or 'this optimizer'}: elementwise "
                    f"updates (SGD, RMSprop, Adam) keep equal units equal; only a Dropout "
                    f"between the layers would break the tie.")
        return ("Not permanent: the Dropout between the layers drops different units and "
                "breaks the tie.")
    if f.cause in ("tiny_update", "vanishing_gradient"):
        return "Not permanent: the entries move, just slowly."
    if f.cause == "below_resolution":
        return ("Not permanent: a larger gradient or learning rate on a later step would move "
                "them.")
    if f.cause == "frozen_by_user":
        return "Permanent until you set requires_grad back to True."
    if f.cause == "zero_lr":
        return "Not permanent: the first step with lr > 0 moves them."
    if not f.permanent:
        if f.cause == "zero_input" and f.root is None and ev.get("source") == "the data":
            return (f"Not proven permanent: it is zero in the {_n(ev['samples_seen'])} "
                    f"samples seen, which is not the whole data set.")
        if f.cause == "dead_unit" and f.root is None and f.since:
            return ("Not necessarily permanent: a sample it met before it died, seen again, "
                    "may open it" + ("" if ev.get("input") == "the data" else
                                     ", and the layers before it may still change its input")
                    + ".")
        if f.cause == "dead_unit" and f.root is None:
            if ev.get("input") == "the data":
                return ("Not proven permanent: it was shut on the samples seen, not on every "
                        "sample of the data set.")
            return "Not necessarily permanent: the layers before it may still change its input."
        return "Not proven permanent."
    if f.cause == "zero_input" and f.root is None:
        return "Permanent for this data set."
    if f.cause == "dead_unit" and f.root is None:
        return (f"Permanent for this data set: every one of its {_n(ev['data_samples'])} "
                f"samples went through these never-changed weights and left the units shut."
                if ev.get("data_samples") else
                "Permanent for this data set: every sample went through these never-changed "
                "weights and left the units shut.")
    return "Permanent."


def _heading(report):
    total = sum(p["entries"] for p in report.params.values())
    frozen_params = [n for n, p in report.params.items() if p["frozen"] == p["entries"]]
    partly = [n for n, p in report.params.items() if 0 < p["frozen"] < p["entries"]]
    lines = [f"tinynet explain: {_n(report.steps)} steps"
             + (f" of {report.optimizer}" if report.optimizer else "")
             + f", {_n(report.samples_seen)} training samples seen"
             + (f" (the data set has {_n(report.data_samples)})."
                if getattr(report, "data_samples", None) else ".")]
    if report.loss:
        lines.append(f"Loss: {report.loss[0]:.4g} at the first step, {report.loss[-1]:.4g} "
                     f"at the last.")
    lines.append(f"{len(report.params)} parameters ({_n(total)} entries): "
                 f"{len(frozen_params)} never changed a single entry, {len(partly)} partly "
                 f"frozen, {len(report.params) - len(frozen_params) - len(partly)} moved "
                 f"everywhere.")
    return lines


def render(report, width=100):
    import textwrap

    def para(text, indent):
        return textwrap.fill(text, width=width, initial_indent=indent,
                             subsequent_indent=indent + "   ")

    lines = _heading(report)
    roots = [f for f in report.findings if f.root is None and f.cause in FROZEN_CAUSES]
    other_roots = [f for f in report.findings if f.root is None and f.cause not in FROZEN_CAUSES]
    if not report.findings:
        lines += ["", "No findings: nothing is frozen by a structural cause, no layer has "
                      "collapsed to identical units, none is stuck or slow."]
    if roots:
        lines += ["", "ROOT CAUSES of frozen entries"]
        for i, f in enumerate(roots, 1):
            lines.append(para(f"{i}. {describe(f)}", "  "))
            lines.append(para(f"Fix: {f.fix}", "     "))
            cons = [c for c in report.consequences(f) if c is not f]
            if cons:
                lines.append(f"     Because of {f.param}:")
                for c in cons:
                    lines.append(para(f"- {describe(c)}", "       "))
    if other_roots:
        lines += ["", "MOVING, BUT NOT LEARNING WELL"]
        for f in other_roots:
            lines.append(para(f"- {describe(f)}", "  "))
            lines.append(para(f"Fix: {f.fix}", "    "))
            for c in report.consequences(f):
                lines.append(para(f"- {describe(c)}", "      "))
    orphans = [f for f in report.findings if f.root is not None and
               not any(f in report.consequences(r) for r in report.roots())]
    for f in orphans:
        lines.append(para(f"- {describe(f)}", "  "))
    if report.unexplained:
        lines += ["", "FROZEN WITHOUT A STRUCTURAL CAUSE"]
        for name, u in report.unexplained.items():
            if u["grad_nonzero"]:
                why = (f"the gradient of {_n(u['grad_nonzero'])} of them was nonzero at some "
                       f"recorded step; "
                       + ("their update at the last step was exactly 0 or did register, so "
                          "whether an earlier update rounded away was not checked"
                          if u.get("last_update_known") else
                          "whether the update rounded away could not be checked (the last "
                          "step's update cannot be recomputed for this optimizer)"))
            elif "median_feature_count" in u:
                why = (f"no structural cause: their input feature was nonzero in a median "
                       f"{u['median_feature_count']:,.0f} and their unit got a gradient in a "
                       f"median {u['median_unit_grad_count']:,.0f} of "
                       f"{_n(u.get('samples_counted', u['samples_seen']))} samples of the "
                       f"recorded steps ({_n(u['samples_seen'])} seen in all), and the two "
                       f"never met on one sample "
                       f"(dW sums x·δ over samples) -- or the contributions cancelled exactly")
            else:
                why = "the contributions to dW cancelled exactly or never met on one sample"
            lines.append(para(f"- {name}: {_n(u['entries'])} of {_n(u['total'])} entries never "
                              f"changed; {why}.", "  "))
    moved = report.moved
    if moved:
        lines += ["", "Moved with nothing to report: " + ", ".join(moved)]
    for note in report.notes:
        lines += ["", "Note: " + note]
    if report.findings:
        lines += ["", para(HOW_TO_READ, "")]
    return "\n".join(lines)


def render_markdown(report):
    lines = ["### tinynet explain", ""] + [l for l in _heading(report)] + [""]
    roots = report.roots()
    if not report.findings:
        lines.append("No findings: nothing is frozen by a structural cause, no layer has "
                     "collapsed to identical units, none is stuck or slow.")
    for f in roots:
        lines.append(f"- **{f.param}**: {_body(f)} (`{f.cause}`). {_permanence(f)}  \n"
                     f"  *Fix:* {f.fix}")
        for c in report.consequences(f):
            if c is not f:
                lines.append(f"  - **{c.param}**: {_body(c)} (`{c.cause}`). {_permanence(c)}")
    for name, u in report.unexplained.items():
        lines.append(f"- **{name}**: {_n(u['entries'])} frozen entries without a structural cause")
    for note in report.notes:
        lines.append(f"\n*Note:* {note}")
    return "\n".join(lines)
