"""The gradient-flow graph: DOT text, the matplotlib drawing, inline rendering with fallback."""
import re
import shutil
import sys
import types

import numpy as np
from matplotlib.figure import Figure

import tinynet as tn
from tinynet import init, nn
from tinynet.diagnose import graph as graph_mod
from tinynet.diagnose.trace import trace_loss, trace_step


def zero_kernel_trace():
    tn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2D(1, 3, 3, padding="same"), nn.ReLU(),
        nn.Conv2D(3, 3, 3, padding="same", kernel_init=init.zeros), nn.ReLU(),
        nn.Conv2D(3, 3, 3, padding="same"), nn.Flatten(), nn.Dense(3 * 5 * 5, 2))
    rng = np.random.default_rng(0)
    return trace_step(model, rng.random((4, 1, 5, 5)).astype(np.float32),
                      np.array([0, 1, 0, 1]))


def scalar_trace():
    a = tn.tensor(2.0, requires_grad=True)
    b = tn.tensor(-3.0, requires_grad=True)
    return trace_loss((a * b + a) ** 2, names={"a": a, "b": b})


def net_221_trace():
    tn.manual_seed(3)
    net = nn.Sequential(nn.Dense(2, 2), nn.ReLU(), nn.Dense(2, 1))
    return trace_step(net, np.array([[1.0, 2.0]], np.float32), np.array([[1.0]], np.float32),
                      loss_fn=lambda out, y: ((out - y) ** 2).mean())


def test_dot_marks_zero_edges():
    trace = zero_kernel_trace()
    dot = trace.to_dot()
    assert dot.startswith("digraph gradient_flow {") and dot.rstrip().endswith("}")
    zero_edges = [e for e in trace.edges if e.zero]
    assert zero_edges                                   # conv 0..2 and the zero-input weights
    red = [line for line in dot.splitlines() if "style=dashed" in line]
    assert len(red) == len(zero_edges)
    for line in red:
        assert 'color="#c0392b"' in line and 'label="0"' in line and "dir=back" in line
    for e in zero_edges:
        assert any(line.strip().startswith(f"n{e.dst} -> n{e.src} ") for line in red)
    # nonzero edges carry their norm; the image edge needs no gradient
    live = [e for e in trace.edges if e.grad_norm is not None and not e.zero]
    assert all(f'label="{e.grad_norm:.3g}"' in dot for e in live)
    assert "style=dotted" in dot
    # the op that makes the gradient 0 (the one the title names) is marked, with the factor
    fz = trace.first_zero
    node_line = next(l for l in dot.splitlines() if l.strip().startswith(f"n{fz.op_node} ["))
    assert "penwidth=3" in node_line and "relu'(0) = 0" in node_line
    assert "subgraph cluster_2" in dot and "(4, 3, 5, 5)" in dot


def test_dot_escapes_quotes():
    assert graph_mod._q('say "hi"\\n') == '"say \\"hi\\"\\\\n"'


def test_draw_returns_a_figure_for_every_kind_of_graph():
    for trace in (zero_kernel_trace(), scalar_trace(), net_221_trace()):
        fig = trace.draw()
        assert isinstance(fig, Figure)
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert len([t for t in texts if t]) >= len(trace.nodes)
    fig = zero_kernel_trace().draw()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("gradient becomes 0 here" in t for t in texts)
    assert texts.count("0") == sum(e.zero for e in zero_kernel_trace().edges)


def test_scalar_graph_shows_values_and_gradients():
    texts = [t.get_text() for t in scalar_trace().draw().axes[0].texts]
    assert "a = 2\ngrad = 16" in texts and "b = -3\ngrad = -16" in texts
    assert "Mul = -6\ngrad = -8" in texts and "2" in texts
    assert {"24", "-8", "-16"} <= set(texts)                # the edges carry the values


def test_graph_falls_back_to_matplotlib_without_graphviz(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    g = zero_kernel_trace().graph()
    assert g.engine == "matplotlib"
    svg = g._repr_svg_()
    assert "<svg" in svg
    bundle = g._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "text/plain"} and "matplotlib" in bundle["text/plain"]
    assert g.dot.startswith("digraph")


def _fake_graphviz(monkeypatch, pipe):
    fake = types.ModuleType("graphviz")

    class Source:
        def __init__(self, dot):
            self.dot = dot

        def pipe(self, format):
            return pipe(self.dot, format)

    fake.Source = Source
    monkeypatch.setitem(sys.modules, "graphviz", fake)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot" if name == "dot" else None)


def test_graph_uses_graphviz_when_present(monkeypatch):
    seen = {}

    def pipe(dot, format):
        seen["dot"], seen["format"] = dot, format
        return b"<svg>rendered by graphviz</svg>"

    _fake_graphviz(monkeypatch, pipe)
    g = scalar_trace().graph()
    assert g.engine == "graphviz"
    assert g._repr_svg_() == "<svg>rendered by graphviz</svg>"
    assert seen == {"dot": g.dot, "format": "svg"}


def test_graph_falls_back_when_graphviz_fails(monkeypatch):
    def pipe(dot, format):
        raise RuntimeError("dot crashed")

    _fake_graphviz(monkeypatch, pipe)
    g = scalar_trace().graph()
    assert "<svg" in g._repr_svg_() and g.engine == "matplotlib"


def test_repr_counts_zero_edges():
    g = graph_mod.GradientGraph(zero_kernel_trace())
    n = sum(e.zero for e in g.trace.edges)
    assert re.search(rf"{n} exactly zero", repr(g))


# --------------------------------------------------------------------------
# readable at notebook width; the title says what the boxes say
# --------------------------------------------------------------------------
def _png_size(fig):
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")        # the default dpi, as Jupyter
    from PIL import Image
    return Image.open(io.BytesIO(buf.getvalue())).size


def test_a_deep_network_wraps_to_notebook_width():
    """The seed-004 zero-kernel CNN (14 ops) used to be a 3,800-pixel-wide strip; it is
    stacked in bands now, at most 1,000 pixels wide at the default dpi."""
    from tinynet.experiments import zero_kernel_cnn
    tn.manual_seed(0)
    rng = np.random.default_rng(0)
    trace = trace_step(zero_kernel_cnn(), rng.random((2, 1, 28, 28)).astype(np.float32),
                       np.array([3, 7]))
    assert len(trace.ops) >= 12
    fig = trace.draw()
    width, height = _png_size(fig)
    assert width <= 1000 and height > width // 2, (width, height)
    bands = sorted({round(y, 6) for n in trace.nodes if n.kind == "op"
                    for y in [graph_mod._layout(trace)[0][n.index][1]]})
    assert len(bands) >= 3                                        # really stacked
    # every zero edge is still drawn and labelled 0, across the bands too
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("0") == sum(e.zero for e in trace.edges)


def test_title_agrees_with_the_boxes_when_some_entries_are_zero():
    """Lesson 00's 2-2-1 net: no edge is all zero, but unit 1 is dead, so half of the
    first weight's gradient entries are exactly 0 -- the title must say so, as the boxes do."""
    x = np.array([[1.0, 2.0]], np.float32)
    model = nn.Sequential(
        nn.Dense(2, 2, kernel_init=np.array([[0.5, -1.0], [0.25, 0.5]]),
                 bias_init=np.array([0.0, -0.5])), nn.ReLU(),
        nn.Dense(2, 1, kernel_init=np.array([[1.5], [-2.0]]), bias_init=np.array([0.25])))
    trace = trace_step(model, x, np.array([[1.0]], np.float32),
                       loss_fn=lambda out, y: ((out - y) ** 2).mean())
    assert trace.first_zero is None
    fig = trace.draw()
    title = fig._suptitle.get_text()
    boxes = [t.get_text() for t in fig.axes[0].texts]
    assert "no gradient entry is exactly 0" not in title
    for name in ("0.weight", "0.bias", "2.weight"):
        assert f"{name} (50%)" in title
        assert any(b.startswith(name) and "50% exactly 0" in b for b in boxes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "some entries exactly 0" in labels and "exactly 0" not in labels   # no zero edge


def test_title_when_nothing_is_zero():
    fig = scalar_trace().draw()
    assert "no gradient entry is exactly 0" in fig._suptitle.get_text()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["gradient flowing back (its value)", "no gradient needed"]


def _deep_trace(depth):
    tn.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Dense(3, 3), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Dense(3, 2))
    rng = np.random.default_rng(0)
    return trace_step(net, rng.random((4, 3)).astype(np.float32), np.array([0, 1, 1, 0]))


def test_dot_of_a_long_network_runs_top_to_bottom():
    """A deep network's DOT lays out top to bottom (width of one layer, not of the
    depth); a short one still reads left to right.  Same nodes and edges either way."""
    short, deep = scalar_trace(), _deep_trace(6)
    n_ops = lambda t: sum(n.kind == "op" for n in t.nodes)  # noqa: E731
    assert n_ops(short) <= graph_mod.MAX_COLUMNS < n_ops(deep)
    assert "rankdir=LR;" in short.to_dot() and "rankdir=TB" not in short.to_dot()
    dot = deep.to_dot()
    assert "rankdir=TB;" in dot and "rankdir=LR" not in dot
    edges = [l for l in dot.splitlines() if re.match(r"\s*n\d+ -> n\d+ \[", l)]
    assert len(edges) == len(deep.edges)
    nodes = {int(m) for m in re.findall(r"^\s*n(\d+) \[", dot, flags=re.M)}
    assert nodes == {n.index for n in deep.nodes}
    # every edge points from an input to the op that read it: forward order is
    # top to bottom in the TB layout
    for e in deep.edges:
        assert f"n{e.dst} -> n{e.src} [" in dot
