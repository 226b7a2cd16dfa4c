"""The gradient-flow graph of one traced step, with the exactly-zero edges marked.

    trace = tn.diagnose.trace_step(model, x, y)
    trace.to_dot()      # Graphviz DOT text, always (paste into any Graphviz viewer)
    trace.graph()       # shows itself inline in Jupyter: rendered by Graphviz when the
                        # `graphviz` package and the `dot` program are installed, else
                        # by matplotlib -- silently, no extra install needed
    trace.draw()        # a matplotlib Figure of the same graph (needs no Graphviz)

Forward runs left to right: the input, then one column per op in the order
the ops ran, each op's parameters above it.  A long network wraps like a line
of text: bands of ``MAX_COLUMNS`` ops stacked top to bottom (about 9 inches
wide, so it fits a notebook), the arrow from one band to the next routed
around the margin.  Arrows point the way the
gradient flows -- from an op back to each of its inputs -- and are labelled
with the norm of that gradient (its value, for a graph of single numbers).
An arrow whose gradient is exactly 0 is red, dashed and labelled "0"; a
grey dotted line is an input that needs no gradient (the images x).  The
op whose backward first makes the gradient exactly 0 (``trace.first_zero.op_node``,
the op the title names) has a thick red border and says which factor did it.
"""
import io
import shutil

from matplotlib.lines import Line2D

# colors: (face, edge) per node state
_OP = ("#e8eef9", "#4a6fa5")
_PARAM = ("#e6f4ea", "#2e7d32")
_PARTIAL = ("#fff3e0", "#ef6c00")
_ZERO = ("#fde2e1", "#c0392b")
_PLAIN = ("#f2f2f2", "#8a8a8a")
_RED, _DARK, _GREY = "#c0392b", "#333333", "#9a9a9a"
_edge_style_live = (_DARK, "-", 1.1)


# --------------------------------------------------------------------------
# labels shared by DOT and matplotlib
# --------------------------------------------------------------------------
def _num(v):
    return "0" if v == 0 else f"{v:.3g}"


def _node_lines(n):
    """The text lines of a node's label."""
    if n.kind == "op":
        head = [n.op] if n.layer is None else [
            "loss" if n.layer == "loss" else (f"layer {n.layer}" if n.layer else "model"), n.op]
    else:
        head = [n.name]
    if n.kind == "const" and n.size == 1 and n.value is not None and n.name == f"{n.value:g}":
        return [n.name]                       # a constant such as the 2 in x ** 2
    if n.size == 1 and n.value is not None:
        lines = head[:-1] + [f"{head[-1]} = {_num(n.value)}"]
        if n.grad_value is not None:
            lines.append(f"grad = {_num(n.grad_value)}")
        return lines
    lines = head + [str(tuple(n.shape))]
    if n.grad_norm is not None:
        lines.append(f"|g| = {_num(n.grad_norm)}")
        if n.kind != "op" and 0 < (n.grad_zero_frac or 0) and not n.grad_is_zero:
            lines.append(f"{100 * n.grad_zero_frac:.0f}% exactly 0")
    return lines


def _node_colors(n):
    if n.kind in ("input", "const") or n.grad_norm is None:
        return _PLAIN
    if n.grad_is_zero:
        return _ZERO
    if n.kind in ("param", "leaf"):
        return _PARTIAL if n.grad_zero_frac else _PARAM
    return _OP


def _edge_label(e):
    if e.grad_norm is None:
        return ""
    if e.zero:
        return "0"
    if e.grad_value is not None:
        return _num(e.grad_value)
    return _num(e.grad_norm)


def _title(trace):
    """Two lines: the step, and what became of its gradient -- read off the same node
    numbers that the boxes print, so the title cannot contradict them."""
    head = f"Gradient flow of one step (loss {trace.loss:.4g})"
    fz = trace.first_zero
    if fz is not None:
        at = fz.op if fz.layer is None else f"{fz.layer or 'model'}:{fz.op}"
        return (f"{head}: the gradient becomes 0 at {at} ({fz.factor})\n"
                f"nothing reaches {trace.nodes[fz.node].name} or what is before it")
    partial = [n for n in trace.nodes if n.kind in ("param", "leaf") and n.grad_zero_frac]
    if not partial:
        if any(n.grad_zero_frac for n in trace.nodes):
            return f"{head}\nevery entry of every parameter gets a nonzero gradient"
        return f"{head}\nno gradient entry is exactly 0"
    shown = ", ".join(f"{n.name} ({100 * n.grad_zero_frac:.0f}%)" for n in partial[:4])
    more = f" and {len(partial) - 4} more" if len(partial) > 4 else ""
    return (f"{head}: the gradient reaches every parameter, but some entries are\n"
            f"exactly 0 in {shown}{more}")


# --------------------------------------------------------------------------
# DOT
# --------------------------------------------------------------------------
def _q(text):
    """A DOT double-quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(trace):
    """Graphviz DOT text of ``trace``'s gradient flow.

    Nodes: ops (boxes), parameters (ellipses), inputs (grey); each with its
    shape and gradient norm.  Edges run in the backward direction (op ->
    input, drawn with ``dir=back`` so the layout still follows the forward
    order) and carry the gradient norm; exactly-zero edges are red, dashed
    and labelled "0".  Ops and parameters of one layer share a cluster.

    Up to ``MAX_COLUMNS`` ops the forward order reads left to right; a longer
    network runs top to bottom instead, so its width is that of one op with
    its parameters, whatever the depth (a 20-layer left-to-right chain would
    be far wider than a notebook).
    """
    fz = trace.first_zero
    n_ops = sum(1 for n in trace.nodes if n.kind == "op")
    out = ["digraph gradient_flow {",
           f"  rankdir={'LR' if n_ops <= MAX_COLUMNS else 'TB'};",
           f"  label={_q(_title(trace))}; labelloc=t; fontsize=12;",
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];']
    clusters = {}
    for n in trace.nodes:
        key = n.layer if n.kind in ("op", "param", "leaf") and n.layer not in (None, "") else None
        clusters.setdefault(key, []).append(n)
    for key, members in clusters.items():
        indent = "  "
        if key is not None:
            ltype = next((m.layer_type for m in members if m.layer_type), None)
            title = "loss" if key == "loss" else f"layer {key}" + (f" ({ltype})" if ltype else "")
            out.append(f"  subgraph cluster_{_safe(key)} {{")
            out.append(f'    label={_q(title)}; style="rounded,dashed"; color="#bbbbbb";')
            indent = "    "
        for n in members:
            out.append(indent + _dot_node(n, fz))
        if key is not None:
            out.append("  }")
    for e in trace.edges:
        attrs = ["dir=back"]
        label = _edge_label(e)
        if e.grad_norm is None:
            attrs += [f"color={_q(_GREY)}", "style=dotted", 'tooltip="no gradient needed"']
        elif e.zero:
            attrs += [f"color={_q(_RED)}", f"fontcolor={_q(_RED)}", "style=dashed",
                      "penwidth=2", f"label={_q(label)}"]
        else:
            attrs += [f"color={_q(_DARK)}", f"label={_q(label)}"]
        # forward direction in the layout: input -> op; the arrowhead (dir=back) sits at
        # the input, which is where the gradient goes
        out.append(f"  n{e.dst} -> n{e.src} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _safe(key):
    return "".join(c if c.isalnum() else "_" for c in str(key))


def _dot_node(n, fz):
    face, edge = _node_colors(n)
    shape = {"op": "box", "input": "parallelogram", "const": "plaintext"}.get(n.kind, "ellipse")
    first = fz is not None and n.index == fz.op_node
    attrs = [f"label={_q(chr(10).join(_node_lines(n)))}", f"shape={shape}",
             'style="rounded,filled"' if shape == "box" else "style=filled",
             f"fillcolor={_q(face)}", f"color={_q(_RED if first else edge)}"]
    if first:
        attrs += ["penwidth=3", f"xlabel={_q('gradient becomes 0 here: ' + fz.factor)}"]
    return f"n{n.index} [{', '.join(attrs)}];"


# --------------------------------------------------------------------------
# inline rendering (Jupyter)
# --------------------------------------------------------------------------
def graphviz_available():
    """True when the ``graphviz`` Python package and the ``dot`` program are both present."""
    if shutil.which("dot") is None:
        return False
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return True


class GradientGraph:
    """The gradient-flow graph, displayed inline by Jupyter.

    ``dot`` is the DOT text; ``engine`` says what renders it: "graphviz"
    when available, else "matplotlib" (``figure()`` is that Figure).  If
    Graphviz is installed but fails, it falls back to matplotlib silently.
    """

    def __init__(self, trace):
        self.trace = trace
        self.dot = to_dot(trace)
        self.engine = "graphviz" if graphviz_available() else "matplotlib"
        self._svg = None

    def figure(self):
        return draw(self.trace)

    def svg(self):
        """The picture as SVG text."""
        if self._svg is None:
            if self.engine == "graphviz":
                try:
                    import graphviz
                    data = graphviz.Source(self.dot).pipe(format="svg")
                    self._svg = data.decode("utf-8") if isinstance(data, bytes) else data
                except Exception:            # a broken install must not break the lesson
                    self.engine = "matplotlib"
            if self._svg is None:
                buf = io.StringIO()
                self.figure().savefig(buf, format="svg", bbox_inches="tight")
                self._svg = buf.getvalue()
        return self._svg

    def _repr_svg_(self):
        return self.svg()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"image/svg+xml": self.svg(), "text/plain": repr(self)}

    def __repr__(self):
        return (f"<GradientGraph: {len(self.trace.nodes)} nodes, {len(self.trace.edges)} "
                f"edges, {sum(e.zero for e in self.trace.edges)} exactly zero; "
                f"rendered by {self.engine}>")


def graph(trace):
    """A :class:`GradientGraph` for ``trace`` (inline in Jupyter)."""
    return GradientGraph(trace)


# --------------------------------------------------------------------------
# matplotlib drawing (no Graphviz)
# --------------------------------------------------------------------------
# Coordinates are inches: 1 data unit = 1 inch on both axes, so distances and
# arc curvature computed here are what ends up on the page.
_CX, _CY = 2.2, 1.3           # between op columns / rows of parameters
_PAIR = 0.6                   # half the distance between two parameters side by side
_RAD = -0.2                   # curvature of arrows that skip columns (negative: below the row)
#: op columns per band: a long network is stacked in bands, read like lines of text,
#: so that the picture stays about 9 inches wide -- 100 % of a notebook's width
MAX_COLUMNS = 4


def _layout(trace, max_columns=MAX_COLUMNS):
    """({node index: (x, y)}, columns per band, [y of each band's op row], band per node).

    Ops sit on the row of their band in forward order (the input x first), bands of
    ``max_columns`` stacked top to bottom; every other leaf sits above the first op
    that reads it (two per row, side by side)."""
    nodes = trace.nodes
    first_use = {}
    for n in nodes:
        if n.kind == "op":
            for j in n.inputs:
                first_use.setdefault(j, n.index)
    # the model's x in column 0; other inputs (the targets y) above the op that reads them
    inputs = [n for n in nodes if n.kind == "input" and n.name == "x"] or \
        [n for n in nodes if n.kind == "input"][:1]
    column = {n.index: 0 for n in inputs}
    col = 1 if inputs else 0
    for n in nodes:
        if n.kind == "op":
            column[n.index] = col
            col += 1
    ncols = max(min(col, max_columns), 1)
    leaves = {}
    for n in nodes:
        if n.index not in column:
            leaves.setdefault(column.get(first_use.get(n.index), 0), []).append(n.index)
    nbands = (max(col, 1) + ncols - 1) // ncols
    rows = [0] * nbands                         # rows of leaves above each band
    for c, members in leaves.items():
        rows[c // ncols] = max(rows[c // ncols], (len(members) + 1) // 2)
    below = 0.95 if trace.first_zero is not None else 0.55     # the "▲" note / arcs
    band_y, y = [], 0.0
    for b in range(nbands):
        if b:
            y -= below + 0.35 + rows[b] * _CY + 0.65
        band_y.append(y)
    pos, band = {}, {}
    for i, c in column.items():
        band[i] = c // ncols
        pos[i] = ((c % ncols) * _CX, band_y[band[i]])
    for c, members in leaves.items():
        for k, i in enumerate(members):
            row, slot = divmod(k, 2)
            in_row = min(2, len(members) - 2 * row)
            dx = 0.0 if in_row == 1 else (-_PAIR if slot == 0 else _PAIR)
            band[i] = c // ncols
            pos[i] = ((c % ncols) * _CX + dx, band_y[band[i]] + (row + 1) * _CY)
    return pos, ncols, band_y, rows, below, band


def _skips(pos, e):
    """An arrow between two ops of one band that are not neighbours: arc below the row."""
    (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
    return y1 == y2 and abs(x1 - x2) > _CX * 1.01


def _boundary(box, toward):
    """The point where the ray from the box's center toward ``toward`` leaves the box."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    dx, dy = toward[0] - cx, toward[1] - cy
    if dx == 0 and dy == 0:
        return cx, cy
    t = min((x1 - x0) / 2 / abs(dx) if dx else float("inf"),
            (y1 - y0) / 2 / abs(dy) if dy else float("inf"))
    return cx + t * dx, cy + t * dy


def _text_boxes(fig, ax, texts, pad):
    """{index: (x0, y0, x1, y1)} of each node's box in data units, measured by rendering.

    With a renderer of its own: ``FigureCanvasAgg(fig)`` would replace the canvas that
    pyplot gave the figure, and ``plt.show()`` would then have nothing to show.
    """
    from matplotlib.backends.backend_agg import RendererAgg
    w, h = fig.get_size_inches()
    renderer = RendererAgg(int(w * fig.dpi), int(h * fig.dpi), fig.dpi)
    inv = ax.transData.inverted()
    boxes = {}
    for i, t in texts.items():
        bb = t.get_window_extent(renderer)
        (x0, y0), (x1, y1) = inv.transform([[bb.x0, bb.y0], [bb.x1, bb.y1]])
        boxes[i] = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    return boxes


def _edge_style(e):
    """(color, line style, width): grey dotted = no gradient needed, red dashed = exactly 0."""
    if e.grad_norm is None:
        return _GREY, ":", 1.0
    if e.zero:
        return _RED, "--", 1.8
    return _DARK, "-", 1.1


def _edge_text(ax, x, y, e, label):
    ax.text(x, y, label, ha="center", va="center", fontsize=7.5, zorder=5,
            color=_RED if e.zero else _DARK, fontweight="bold" if e.zero else "normal",
            bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.85))


def _between_bands(ax, e, src, dst, lane, x_left, x_right):
    """An arrow from an op at the start of a band back to an op of the band above, routed
    like a line break: out to the left margin, up to the lane between the bands, across,
    and down the right margin into the op -- never through other boxes."""
    color, ls, lw = _edge_style(e)
    ys, yd = (src[1] + src[3]) / 2, (dst[1] + dst[3]) / 2
    pts = [(src[0], ys), (x_left, ys), (x_left, lane), (x_right, lane), (x_right, yd)]
    ax.plot(*zip(*pts), color=color, ls=ls, lw=lw, zorder=2, solid_capstyle="butt")
    ax.annotate("", xy=(dst[2], yd), xytext=(x_right, yd), zorder=2,
                arrowprops=dict(arrowstyle="-|>", color=color, ls=ls, lw=lw, shrinkA=0,
                                shrinkB=1, mutation_scale=11))
    label = _edge_label(e)
    if label:
        _edge_text(ax, (x_left + x_right) / 2, lane, e, label)


def draw(trace, title=True):
    """A matplotlib Figure of the gradient-flow graph (one column per op, in forward order).

    Parameters sit above the op that uses them; arrows point the way the
    gradient flows and carry its norm (its value for single numbers); red
    dashed arrows carry exactly 0; grey dotted lines need no gradient.
    """
    from tinynet.plot import new_figure
    pos, ncols, band_y, rows, below, band = _layout(trace)
    depth = max([0.5 * abs(_RAD) * abs(pos[e.src][0] - pos[e.dst][0]) for e in trace.edges
                 if _skips(pos, e)], default=0.0)
    lo = band_y[-1] - max(below, depth + 0.55)
    hi = rows[0] * _CY + 0.65
    left, right = -_CX / 2, (ncols - 1) * _CX + _CX / 2
    if len(band_y) > 1:                         # lanes for the arrows between bands
        left, right = left - 0.3, right + 0.3
    if right - left < 5.5:                      # room for the legend under tiny graphs
        extra = (5.5 - (right - left)) / 2
        left, right = left - extra, right + extra
    top_in, bottom_in = (0.75 if title else 0.1), 0.45       # title / legend margins
    width, height = right - left, hi - lo
    total = height + top_in + bottom_in
    fig = new_figure(figsize=(width, total))   # 1 data unit = 1 inch on both axes
    ax = fig.add_axes([0, bottom_in / total, 1, height / total])
    ax.set_xlim(left, right)
    ax.set_ylim(lo, hi)
    ax.set_axis_off()

    fz = trace.first_zero
    texts = {}
    fontsize, pad = 8, 0.3
    for n in trace.nodes:
        face, edge = _node_colors(n)
        lw = 1.0
        if fz is not None and n.index == fz.op_node:
            edge, lw = _RED, 2.6
        style = f"round,pad={pad}" if n.kind == "op" else f"round,pad={pad},rounding_size=0.7"
        x, y = pos[n.index]
        texts[n.index] = ax.text(
            x, y, "\n".join(_node_lines(n)), ha="center", va="center", fontsize=fontsize,
            zorder=3, bbox=dict(boxstyle=style, fc=face, ec=edge, lw=lw))
    boxes = _text_boxes(fig, ax, texts, pad * fontsize / 72)
    if fz is not None:
        x0, y0, x1, y1 = boxes[fz.op_node]
        ax.text((x0 + x1) / 2, y0 - 0.12, f"▲ gradient becomes 0 here\n{fz.factor}",
                ha="center", va="top", fontsize=8, color=_RED, fontweight="bold", zorder=4)

    for e in trace.edges:
        src, dst = boxes[e.src], boxes[e.dst]
        skip = _skips(pos, e)
        if band[e.src] != band[e.dst]:
            _between_bands(ax, e, src, dst, band_y[band[e.dst]] - below - 0.3,
                           left + 0.15, right - 0.15)
            continue
        if skip:                  # leave and enter through the bottom, arc below the row
            a = ((src[0] + src[2]) / 2, src[1])
            b = ((dst[0] + dst[2]) / 2, dst[1])
            rad = _RAD
        else:
            a = _boundary(src, pos[e.dst])
            b = _boundary(dst, pos[e.src])
            rad = 0.0
        color, ls, lw = _edge_style(e)
        ax.annotate("", xy=b, xytext=a, zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color=color, ls=ls, lw=lw,
                                    shrinkA=1, shrinkB=1, mutation_scale=11,
                                    connectionstyle=f"arc3,rad={rad}"))
        label = _edge_label(e)
        if label:
            # midpoint of the quadratic Bezier that arc3 draws from a to b
            mx = (a[0] + b[0]) / 2 + 0.5 * rad * (b[1] - a[1])
            my = (a[1] + b[1]) / 2 - 0.5 * rad * (b[0] - a[0])
            if abs(a[1] - b[1]) < 1e-6 and not skip:
                my += 0.13                     # above a horizontal arrow, not on it
            _edge_text(ax, mx, my, e, label)

    if title:
        fig.suptitle(_title(trace), fontsize=10, y=1 - 0.12 / total, va="top")
    fig.legend(handles=_legend(trace), loc="lower center", ncol=4, fontsize=8,
               frameon=False)
    return fig


def _legend(trace):
    """Legend entries for what this picture draws, and nothing else."""
    from matplotlib.patches import Patch
    kinds = {_edge_style(e) for e in trace.edges}
    handles = []
    if _edge_style_live in kinds:
        handles.append(Line2D([], [], color=_DARK, lw=1.1, label="gradient flowing back "
                              "(its norm)" if any(e.grad_value is None for e in trace.edges
                                                   if e.grad_norm is not None)
                              else "gradient flowing back (its value)"))
    if (_RED, "--", 1.8) in kinds:
        handles.append(Line2D([], [], color=_RED, lw=1.8, ls="--", label="exactly 0"))
    if (_GREY, ":", 1.0) in kinds:
        handles.append(Line2D([], [], color=_GREY, lw=1.0, ls=":", label="no gradient needed"))
    if any(_node_colors(n) is _PARTIAL for n in trace.nodes):
        handles.append(Patch(fc=_PARTIAL[0], ec=_PARTIAL[1], label="some entries exactly 0"))
    return handles


__all__ = ["to_dot", "graph", "draw", "GradientGraph", "graphviz_available"]
