"""The report in plain words: root causes first, each with its consequences and numbers."""
from tinynet.diagnose.findings import FROZEN_CAUSES


def _n(x):
    return f"{int(x):,}"


def _units(ev):
    u = ev.get("units", 0)
    return f"{_n(u)} of {_n(ev.get('units_total', u))}"


def describe(f):
    """One finding as a paragraph (no fix line)."""
    ev, p = f.evidence, f.param
    entries = f"{_n(f.entries)} of {_n(f.total)} entries"
    if f.cause == "zero_input":
        kind = ev.get("feature_kind", "input feature")
        what = f"{_n(ev['features'])} of {_n(ev['features_total'])} {kind}s"
        grad = "im2col(x)ᵀδ" if kind == "input channel" else "xᵀδ"
        rows = "input channels" if kind == "input channel" else "input rows"
        if f.root is None and ev.get("source") == "the data":
            s = (f"{p}: {what.replace(kind + 's', rows)} ({entries}) never changed — their "
                 f"{'channel' if kind == 'input channel' else kind} was 0 in all "
                 f"{_n(ev['samples_seen'])} samples seen "
                 f"(samples with it nonzero: {ev['samples_with_feature_nonzero']}), so "
                 f"dW = {grad} is exactly 0 there.")
        else:
            because = f" because of {f.root}" if f.root else ""
            when = (f"stopped changing — their input, the output of layer {ev.get('source')}, "
                    f"was 0 in all {_n(ev['samples_seen'])} samples from step {f.since} on"
                    if f.since else
                    f"never changed — their input, the output of layer {ev.get('source')}, "
                    f"was 0 in all {_n(ev['samples_seen'])} samples")
            s = f"{p}: {entries} ({what}) {when}{because}, so dW = {grad} is exactly 0 there."
    elif f.cause == "dead_unit":
        if f.root is not None:
            how = ("exactly 0" if ev.get("preactivation_exactly_zero") else
                   "just the bias, <= 0")
            why = (f"their whole input is 0 (because of {f.root}), so the pre-activation is "
                   f"{how}")
        else:
            peak = ("" if f.since else f" (largest: {ev['max_preactivation']:.4g})")
            why = f"their pre-activation was <= 0{peak}"
        if f.since:
            s = (f"{p}: {_units(ev)} units died during training — from step "
                 f"{ev.get('died_after_step', 0) + 1} on {why} on every sample "
                 f"({_n(ev['samples_seen'])} samples from step {f.since} to the end), so the "
                 f"ReLU passed no gradient; their {_n(f.entries)} entries stopped changing "
                 f"after step {ev.get('last_change_step', '?')}.")
        else:
            s = (f"{p}: {entries} never changed — {_units(ev)} units are dead: {why} on all "
                 f"{_n(ev['samples_seen'])} samples seen, so the ReLU after them passed no "
                 f"gradient (relu'(z) = 0 for z <= 0).")
    elif f.cause == "blocked_downstream":
        when = (f"stopped changing — from step {f.since} on, in" if f.since else
                "never changed — in")
        s = (f"{p}: {entries} {when} {_n(ev['backward_passes'])} backward passes "
             f"no gradient at all reached {_units(ev)} units of layer {f.layer}'s output")
        if f.root:
            s += f", because of {f.root} after it."
        else:
            s += (", although their ReLU was open on some samples: the gradient coming back was "
                  "exactly 0 on those samples")
            if ev.get("samples_with_zero_output_gradient"):
                s += (f" (at the output, layer {ev['output_layer']}, "
                      f"{_n(ev['samples_with_zero_output_gradient'])} of "
                      f"{_n(ev['output_samples'])} samples of the recorded steps had an "
                      f"all-zero gradient: a "
                      f"saturated softmax)")
            s += "."
    elif f.cause == "zero_weights":
        if f.root is None:
            extra = ""
            if "bias_entries" in ev:
                extra = f" (and its {_n(ev['bias_entries'])} biases)"
            s = (f"{p}: all {_n(ev['weight_entries'])} weights{extra} are exactly 0, so layer "
                 f"{f.layer} outputs 0 on every sample (largest output seen: "
                 f"{ev['max_output']:g})")
            s += ("; relu'(0) = 0 sends no gradient back through it, and every layer after "
                  "it sees only zeros." if ev.get("feeds_relu") else
                  "; every layer after it sees only zeros.")
        else:
            s = f"{p}: {entries} never changed — the bias of the all-zero layer {f.layer}."
    elif f.cause == "not_in_optimizer":
        s = (f"{p}: {entries} never changed — the optimizer was not given this parameter (it "
             f"has {ev['optimizer_parameters']} of the model's {ev['model_parameters']}).")
    elif f.cause == "no_gradient":
        skipped = ev.get("optimizer_skipped")
        s = (f"{p}: {entries} never changed — .grad stayed None in all {_n(ev['steps'])} steps"
             + (f" (the optimizer skipped it {_n(skipped)} times)" if skipped is not None else "")
             + ": the loss does not depend on it.")
    elif f.cause == "symmetry":
        diff = ev["max_relative_difference"]
        same = "bit-identical" if diff == 0 else f"equal to within {diff:.1e} of the layer's scale"
        s = (f"{p}: effective width {f.entries} of {f.total} — the units of layer {f.layer} fall "
             f"into {f.entries} group(s) (largest: {ev['largest_group']} units) whose incoming "
             f"weights, bias and outgoing weights (into layer {ev['next_layer']}) are {same}; "
             f"equal units get equal gradients and stay equal. Their entries DO change, in lock "
             f"step.")
    elif f.cause == "tiny_update":
        s = (f"{p}: moves, but by little — median update ‖ΔW‖/‖W‖ = "
             f"{ev['update_ratio_median']:.1e} per step (healthy: about 1e-3 to 1e-2)")
        if ev.get("relative_change") is not None:
            s += f"; after {_n(ev['steps'])} steps the weights differ from their start by " \
                 f"{ev['relative_change']:.2%} of their norm"
        s += "."
        if ev.get("rule") == "adaptive_ceiling":
            s += (f" {ev['optimizer']} moves each entry by about lr = {ev['lr']:g} per step, and "
                  f"these weights have rms {ev['weight_rms']:.3g} (lr/rms = "
                  f"{ev['lr_over_weight_rms']:.1e}): the init is too large for the step.")
        vs = ev.get("grad_rms_vs_last_layer")
        if vs is not None and vs >= 1e-2:
            s += (f" Its gradient is not vanishing: rms {ev['grad_rms']:.2g}, {vs:.2g}x the "
                  f"last layer's.")
    elif f.cause == "vanishing_gradient":
        chain = ", ".join(f"{k} {v:.1e}" for k, v in ev.get("grad_rms_by_layer", {}).items()
                          if v is not None)
        s = (f"{p}: its gradient rms {ev['grad_rms']:.1e} is {ev['grad_rms_vs_last_layer']:.1e} "
             f"of the last layer's and shrinks layer by layer toward the input ({chain}); "
             f"update ratio {ev['update_ratio_median']:.1e} per step.")
    else:
        s = f"{p}: {f.cause}, {entries}."
    return s + " " + _permanence(f)


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
    if not f.permanent:
        if f.cause == "dead_unit" and f.root is None and f.since:
            return ("Not necessarily permanent: a sample it met before it died, seen again, "
                    "may open it" + ("" if ev.get("input") == "the data" else
                                     ", and the layers before it may still change its input")
                    + ".")
        if f.cause == "dead_unit" and f.root is None:
            return "Not necessarily permanent: the layers before it may still change its input."
        return "Not permanent."
    if f.cause == "zero_input" and f.root is None:
        return "Permanent for this data."
    if f.cause == "dead_unit" and f.root is None:
        return ("Permanent for the samples seen: its weights cannot change, and its input is "
                "the data.")
    return "Permanent."


def _heading(report):
    total = sum(p["entries"] for p in report.params.values())
    frozen_params = [n for n, p in report.params.items() if p["frozen"] == p["entries"]]
    partly = [n for n, p in report.params.items() if 0 < p["frozen"] < p["entries"]]
    lines = [f"tinynet explain: {_n(report.steps)} steps"
             + (f" of {report.optimizer}" if report.optimizer else "")
             + f", {_n(report.samples_seen)} training samples seen."]
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
                why = ("the gradient was nonzero at some recorded step, so the update was "
                       "smaller than the float resolution of the weight")
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
    return "\n".join(lines)


def render_markdown(report):
    lines = ["### tinynet explain", ""] + [l for l in _heading(report)] + [""]
    roots = report.roots()
    if not report.findings:
        lines.append("No findings: nothing is frozen by a structural cause, no layer has "
                     "collapsed to identical units, none is stuck or slow.")
    for f in roots:
        lines.append(f"- **{f.param}** — `{f.cause}`: {describe(f)}  \n  *Fix:* {f.fix}")
        for c in report.consequences(f):
            if c is not f:
                lines.append(f"  - **{c.param}** — `{c.cause}`: {describe(c)}")
    for name, u in report.unexplained.items():
        lines.append(f"- **{name}**: {_n(u['entries'])} frozen entries without a structural cause")
    for note in report.notes:
        lines.append(f"\n*Note:* {note}")
    return "\n".join(lines)
