"""Render a traced step as text: the table of nodes and the story of where the gradient
became zero.  (The picture is :mod:`tinynet.diagnose.graph`.)"""
import textwrap


def _fmt(v, width=9):
    if v is None:
        return "—".rjust(width)
    if v == 0:
        return "0".rjust(width)
    return f"{v:.3g}".rjust(width)


def _pct(v, width=6):
    return "—".rjust(width) if v is None else f"{100 * v:.1f}%".rjust(width)


def _table(trace):
    head = (f"{'#':>3}  {'node':<22} {'shape':<16}│{'mean':>9} {'std':>9} {'min':>9} "
            f"{'max':>9} {'zero':>6} │{'|g|':>9} {'zero':>6} {'max|g|':>9} │ local derivative")
    lines = [f"{'':44}│{'forward values':^47}│{'gradient arriving':^27}│", head,
             "─" * len(head)]
    fz = trace.first_zero
    for n in trace.nodes:
        name = n.name if n.kind != "input" else f"{n.name} (input)"
        if len(name) > 22:
            name = name[:21] + "…"
        shape = str(tuple(n.shape))
        mark = ""
        if fz is not None and n.index == fz.node:
            mark = "  ◀ gradient becomes 0 here"
        deriv = n.derivative if n.kind == "op" else (
            "(no gradient needed)" if n.grad_norm is None else
            _param_note(trace.zero_params.get(n.name)) if n.kind in ("param", "leaf") else "")
        gzero = _pct(n.grad_zero_frac)
        lines.append(
            f"{n.index:>3}  {name:<22} {shape:<16}│{_fmt(n.mean)} {_fmt(n.std)} "
            f"{_fmt(n.min)} {_fmt(n.max)} {_pct(n.zero_frac)} │{_fmt(n.grad_norm)} {gzero} "
            f"{_fmt(n.grad_max)} │ {deriv}{mark}")
    return lines


def _where(layer):
    if layer is None:
        return "the graph"
    if layer == "loss":
        return "the loss"
    return "the model itself" if layer == "" else f"layer '{layer}'"


def _param_note(pz):
    if pz is None:
        return "(parameter: every entry got gradient)"
    main = max(pz.reasons, key=pz.reasons.get) if pz.reasons else "exactly 0"
    return f"(parameter: {pz.zero} of {pz.total} entries get 0 — {main})"


def _wrap(text, indent="  "):
    # keep "relu'(0) = 0" and "dx = g·Wᵀ" on one line: non-breaking spaces around "="
    text = text.replace(" = ", "\u00a0=\u00a0")
    return textwrap.fill(text, width=110, subsequent_indent=indent,
                         break_long_words=False).replace("\u00a0", " ")


def story(trace):
    fz = trace.first_zero
    batch = f", batch of {trace.batch}" if trace.batch else ""
    out = [f"One training step, traced op by op (loss {trace.loss:.6g}{batch}, "
           f"device {trace.device}).",
           "Forward runs top to bottom; the gradient arrives bottom to top. "
           "'zero' = the fraction of entries exactly 0.", ""]
    out += _table(trace)
    out.append("")
    out.append("Walking backward from the loss:")
    ops = [n for n in reversed(trace.nodes) if n.kind == "op"]
    for n in ops:
        if n.grad_norm is None:
            continue
        state = "exactly 0 everywhere" if n.grad_is_zero else (
            f"|g| = {n.grad_norm:.3g}" + (f", {100 * n.grad_zero_frac:.1f}% of it exactly 0"
                                          if n.grad_zero_frac else ""))
        out.append(f"  {n.name:<24} gradient arriving: {state}")
        if fz is not None and n.index == fz.node:
            out.append(f"  {'':<24} ▲ it became 0 here: {fz.op} "
                       f"({_where(fz.layer)}) "
                       f"sent back nothing — {fz.factor}")
    out.append("")
    if trace.zero_params:
        out.append("Parameters with exactly-zero gradient entries:")
        for name, pz in trace.zero_params.items():
            reasons = "; ".join(f"{k}: {v}" for k, v in pz.reasons.items())
            out.append(f"  {name} {tuple(pz.shape)}: {pz.zero} of {pz.total} entries exactly 0"
                       f" ({reasons})")
            if pz.zero_inputs and not pz.all_zero:
                shown = ", ".join(str(v) for v in pz.zero_inputs[:12])
                more = f", … ({len(pz.zero_inputs)} in all)" if len(pz.zero_inputs) > 12 else ""
                what = "rows" if len(pz.shape) == 2 else "taps (c, kh, kw)"
                out.append(f"      {what} whose input was 0 on every sample of this batch: "
                           f"{shown}{more}")
            if pz.dead_units and not pz.all_zero:
                shown = ", ".join(str(v) for v in pz.dead_units[:12])
                out.append(f"      units whose ReLU was off on every sample: {shown}"
                           + (f", … ({len(pz.dead_units)} in all)"
                              if len(pz.dead_units) > 12 else ""))
        out.append("")
    else:
        out.append("Every parameter got a nonzero gradient in every entry.")
        out.append("")
    if trace.disconnected:
        out.append(_wrap(f"Not connected to the loss at all (no gradient, .grad stays None): "
                         f"{', '.join(trace.disconnected)}."))
        out.append("")
    if fz is None:
        out.append("The gradient never became exactly zero: it reached every parameter "
                   "in the graph.")
        return out
    node = trace.nodes[fz.node]
    where = _where(fz.layer)
    out.append(_wrap(f"The gradient became zero at {node.label} (node {node.index}, shape "
                     f"{tuple(node.shape)}), because {fz.factor} ({fz.cause}): {fz.op} in {where}: "
                     f"{fz.detail}."))
    if fz.root:
        out.append(f"The root: {fz.root!r}.")
    for a in fz.also:
        out.append(_wrap(f"Also: {a}."))
    if fz.cut_off:
        out.append(_wrap(f"Everything before it gets exactly zero gradient and cannot learn: "
                         f"{', '.join(fz.cut_off)}."))
    return out


__all__ = ["story"]
