"""tinynet.plot: every function returns a Figure with the expected panels and counts."""
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

import tinynet as tn
from tinynet import plot


def titles(fig):
    """The titles of the panels (colorbar axes have none and are skipped)."""
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def border_mask(width=2):
    """28x28 True on a border of ``width`` pixels: 2 -> 28*28 - 24*24 = 208 pixels."""
    m = np.ones((28, 28), bool)
    m[width:-width, width:-width] = False
    return m


# --------------------------------------------------------------------------
# frozen_map
# --------------------------------------------------------------------------
def planted(rng, n_zero=116, out=16):
    zero = np.zeros(784, bool)
    zero[rng.choice(784, n_zero, replace=False)] = True
    changed = rng.random((784, out)) < 0.7
    changed[zero] = False
    changed[~zero, 0] = True                          # every other row moved at least once
    return changed, zero


def test_frozen_map_three_panels_with_counts(rng):
    changed, zero = planted(rng)
    fig = plot.frozen_map(changed, zero)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    t = titles(fig)
    assert t[0].startswith("rows that never changed: 116")
    assert t[1].startswith("pixels zero in every sample: 116")
    assert t[2].startswith("where they differ: 0")
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (28, 28) and int(np.asarray(img).sum()) == 116


def test_frozen_map_counts_differences(rng):
    changed, zero = planted(rng)
    changed[np.flatnonzero(zero)[:3]] = True          # 3 zero pixels whose rows moved anyway
    fig = plot.frozen_map(changed, zero.reshape(28, 28))
    assert titles(fig)[2].startswith("where they differ: 3")


def test_frozen_map_zero_pixels_from_the_images(rng):
    x = rng.random((20, 1, 28, 28)).astype(np.float32) * ~border_mask()
    changed = np.ones((784, 8), bool)
    changed[border_mask().reshape(-1)] = False
    fig = plot.frozen_map(changed, x)
    assert titles(fig)[1].startswith("pixels zero in every sample: 208")
    assert titles(fig)[0].startswith("rows that never changed: 208")


def test_frozen_map_one_panel_and_per_row_mask(rng):
    rows_changed = ~border_mask().reshape(-1)
    fig = plot.frozen_map(rows_changed)
    assert len(fig.axes) == 1 and titles(fig)[0].startswith("rows that never changed: 208")


def test_frozen_map_from_a_report(rng):
    mask = np.zeros((784, 10), bool)
    mask[:5] = True                                   # 5 frozen rows (all entries)
    mask[10, :3] = True                               # a partly frozen row is not frozen
    report = SimpleNamespace(findings=[
        SimpleNamespace(param="2.weight", cause="symmetry", mask=None, root=None),
        SimpleNamespace(param="0.weight", cause="zero_input", mask=mask, root=None)])
    fig = plot.frozen_map(report)
    assert titles(fig)[0].startswith("rows that never changed: 5") and "0.weight" in titles(fig)[0]


def test_frozen_map_wrong_shape_says_what_it_expected():
    with pytest.raises(ValueError, match=r"784 rows .*got shape \(100, 10\)"):
        plot.frozen_map(np.ones((100, 10), bool))
    with pytest.raises(ValueError, match="zero_pixel_mask"):
        plot.frozen_map(np.ones((784, 10), bool), np.ones(100, bool))


# --------------------------------------------------------------------------
# filter_grid
# --------------------------------------------------------------------------
def test_filter_grid_own_scales_show_a_tiny_change(rng):
    before = rng.normal(size=(32, 1, 5, 5))
    after = before + 1e-6 * rng.normal(size=before.shape)
    fig = plot.filter_grid(before, after)
    assert len(fig.axes) == 6                          # 3 images + 3 colorbars
    t = titles(fig)
    assert t[0].startswith("before") and t[1].startswith("after")
    assert "800 of 800 changed" in t[2]
    images = [ax.images[0] for ax in fig.axes if ax.images]
    lo, hi = images[2].get_clim()                      # the difference has its own scale
    assert hi < 1e-5 and lo == -hi
    assert images[0].get_clim()[1] > 1


def test_filter_grid_minmax_reproduces_the_article(rng):
    before = rng.normal(size=(32, 1, 5, 5)).astype(np.float32)
    after = before + np.float32(1e-6)
    fig = plot.filter_grid(before, after, scale="minmax")
    t = titles(fig)
    assert "256 grey levels" in t[0]
    assert "what changed in the pictures:\n0 of 800 pixels" in t[2]   # looks frozen


def test_filter_grid_before_only_and_channels(rng):
    fig = plot.filter_grid(rng.normal(size=(6, 3, 3, 3)), channel=2)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="channel=5"):
        plot.filter_grid(rng.normal(size=(6, 3, 3, 3)), channel=5)


def test_filter_grid_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(O, C, KH, KW\).*\(784, 512\)"):
        plot.filter_grid(np.zeros((784, 512)))
    with pytest.raises(ValueError, match="same layer"):
        plot.filter_grid(np.zeros((4, 1, 3, 3)), np.zeros((4, 1, 5, 5)))
    with pytest.raises(ValueError, match="scale"):
        plot.filter_grid(np.zeros((4, 1, 3, 3)), scale="auto")


def test_filter_grid_accepts_tensors(rng):
    w = tn.tensor(rng.normal(size=(4, 1, 3, 3)).astype(np.float32))
    assert len(plot.filter_grid(w, w).axes) == 6


# --------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------
def history():
    steps = [0, 5, 10, 15]
    return {"0.weight": {"step": steps, "grad_norm": [0.0] * 4, "update_ratio": [0.0] * 4},
            "0.bias": {"step": steps, "grad_norm": [1.0, 0.0, 0.5, 0.2],
                       "update_ratio": [1e-2, 0.0, 5e-3, 2e-3]},
            "2.weight": {"step": steps, "grad_norm": [0.3, 0.2, 0.1, 0.05],
                         "update_ratio": [1e-6, 1e-6, 2e-6, 1e-6]}}


def test_grad_norms(rng):
    fig = plot.grad_norms(SimpleNamespace(history=history()))
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["0.weight  — exactly 0 at every step",
                      "0.bias  — exactly 0 at 1 of 4 steps", "2.weight"]
    fig = plot.grad_norms(history(), params=["2.weight"])
    assert len(fig.axes[0].get_legend().get_texts()) == 1
    with pytest.raises(KeyError, match="nope"):
        plot.grad_norms(history(), params=["nope"])


def test_update_ratios_reference_line():
    fig = plot.update_ratios(history())
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "update-to-weight" in ax.get_title()
    refs = [l for l in ax.lines if list(l.get_ydata()) == [1e-3, 1e-3]]
    assert len(refs) == 1 and "rule of thumb" in refs[0].get_label()


def test_activation_histograms(rng):
    acts = {"1": np.maximum(rng.normal(size=1000), 0), "3": np.zeros(50),
            "5": {"values": rng.normal(size=10), "dead": np.array([True, False, True])}}
    fig = plot.activation_histograms(SimpleNamespace(layer_stats=acts))
    assert len(fig.axes) == 3
    t = titles(fig)
    zero = int((acts["1"] == 0).sum())
    assert t[0] == f"layer 1: exactly 0 in {100 * zero / 1000:.1f}%\n({zero} of 1000 values)"
    assert t[1].startswith("layer 3: exactly 0 in 100.0%")
    assert t[2].endswith("dead units: 2")


def test_effective_width():
    data = {"1": {"step": [0, 10, 20], "width": [1, 1, 1], "total": 256},
            "3": [30, 30, 29]}
    fig = plot.effective_width(SimpleNamespace(effective_width=data))
    assert len(fig.axes) == 2                  # one panel per layer: lines at 1 never overlap
    assert titles(fig) == ["layer 1: 1 of 256 units at the end", "layer 3: 29 units at the end"]
    labels = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert labels == [["distinct units", "layer size: 256"], ["distinct units"]]
    assert all(ax.get_ylabel() == "distinct units" and ax.get_xlabel() == "step"
               for ax in fig.axes)


def test_weight_rows(rng):
    before = rng.normal(size=(784, 32))
    after = before.copy()
    after[1:] += 1e-4
    fig = plot.weight_rows(before, after, rows=[0, 1])
    assert len(fig.axes) == 4
    t = titles(fig)
    assert t[0] == "row 0: identical before and after (0 entries changed)"
    assert t[2] == "row 1: 32 of 32 entries changed"
    with pytest.raises(IndexError, match="row 900"):
        plot.weight_rows(before, after, rows=[900])
    with pytest.raises(ValueError, match="same shape"):
        plot.weight_rows(before, after[:10])


def test_training_curves():
    from tinynet.train import History
    h = History()
    h.batch["loss"] += [2.3, 1.5, 1.0, 0.7]
    h.batch["acc"] += [0.1, 0.4, 0.6, 0.8]
    h.epoch["loss"] += [1.9, 0.85]
    h.epoch["acc"] += [0.25, 0.7]
    h.epoch_end_steps += [2, 4]
    fig = plot.training_curves(h)
    assert len(fig.axes) == 2 and titles(fig) == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2
    fig = plot.training_curves({"epoch": [1, 2], "loss": [1.0, 0.5], "val_acc": [0.5, 0.7]})
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[1].lines) == 1
    with pytest.raises(TypeError, match="History"):
        plot.training_curves([1, 2, 3])


# --------------------------------------------------------------------------
# saving, and no pyplot
# --------------------------------------------------------------------------
def test_save_writes_png_atomically(tmp_path):
    fig = plot.weight_rows(np.zeros((2, 3)), np.ones((2, 3)))
    path = plot.save(fig, tmp_path / "sub" / "rows.png")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "sub") == ["rows.png"]


def test_failed_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old picture")
    fig = plot.weight_rows(np.zeros((2, 3)), np.ones((2, 3)))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plot.save(fig, target)
    assert target.read_bytes() == b"old picture"
    assert os.listdir(tmp_path) == ["fig.png"]


def test_figures_render_inline_without_pyplot(rng):
    fig = plot.filter_grid(rng.normal(size=(4, 1, 3, 3)))
    assert fig._repr_png_()[:4] == b"\x89PNG"
    code = ("import numpy as np, sys; from tinynet import plot; "
            "from tinynet.diagnose import graph; "
            "plot.save(plot.frozen_map(np.ones(784, bool)), sys.argv[1]); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'")
    out = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache")
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, "-c", code, os.path.join(out, "nopyplot.png")],
                   check=True, env=dict(os.environ, MPLBACKEND="Agg"))


# --------------------------------------------------------------------------
# showing: scripts (plt.show / fig.show), notebooks, and no leak under Agg
# --------------------------------------------------------------------------
RECORDING_BACKEND = '''
"""A window backend that records what it shows instead of opening windows."""
from matplotlib.backend_bases import FigureManagerBase, _Backend
from matplotlib.backends.backend_agg import FigureCanvasAgg


class FigureManagerRecording(FigureManagerBase):
    def show(self):
        fig = self.canvas.figure
        title = fig._suptitle.get_text().splitlines()[0] if fig._suptitle else fig.axes[0].get_title()
        print("SHOWN:", type(fig).__name__, title, flush=True)


class FigureCanvasRecording(FigureCanvasAgg):
    manager_class = FigureManagerRecording


@_Backend.export
class _BackendRecording(_Backend):
    FigureCanvas = FigureCanvasRecording
    FigureManager = FigureManagerRecording

    @staticmethod
    def mainloop():
        pass
'''

SCRIPT = '''
import sys
import numpy as np
import tinynet as tn
from tinynet import nn, plot
{imports}
tn.manual_seed(0)
model = nn.Sequential(nn.Dense(3, 2))
trace = tn.diagnose.trace_step(model, np.ones((2, 3), np.float32), np.array([0, 1]))
fig = trace.draw()
{show}
'''


def run_script(tmp_path, imports, show, backend="module://recording_backend"):
    (tmp_path / "recording_backend.py").write_text(RECORDING_BACKEND)
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(imports=imports, show=show))
    root = os.path.join(os.path.dirname(__file__), "..")
    env = dict(os.environ, MPLBACKEND=backend,
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.path.abspath(root)]))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_plt_show_in_a_script_shows_trace_draw(tmp_path):
    """README: ``tn.diagnose.trace_step(...).draw()`` then ``plt.show()`` shows the graph:
    the figure is managed by pyplot (a canvas manager, a figure number)."""
    out = run_script(tmp_path, "import matplotlib.pyplot as plt",
                     "assert fig.canvas.manager is not None and plt.fignum_exists(fig.number)\n"
                     "plt.show()")
    assert "SHOWN: InlineFigure Gradient flow of one step" in out


def test_fig_show_in_a_script_without_pyplot(tmp_path):
    out = run_script(tmp_path, "", "assert 'matplotlib.pyplot' not in sys.modules\n"
                                   "assert fig.canvas.manager is None\nfig.show()")
    assert "SHOWN: InlineFigure Gradient flow of one step" in out


def test_every_plot_function_is_shown_by_plt_show(tmp_path):
    out = run_script(tmp_path, "import matplotlib.pyplot as plt",
                     "plot.weight_rows(np.zeros((2, 3)), np.ones((2, 3)))\n"
                     "plot.effective_width({'1': [3, 2, 1]})\n"
                     "print('open:', len(plt.get_fignums()))\nplt.show()")
    assert "open: 3" in out and out.count("SHOWN:") == 3


def test_under_agg_figures_are_not_held_by_pyplot():
    """Headless (CI, the CLI): no figure joins pyplot's global list, so none leaks; and
    fig.show() says how to save instead of failing."""
    import matplotlib
    import matplotlib.pyplot as plt
    if matplotlib.get_backend().lower() != "agg":
        pytest.skip(f"this test is about the Agg backend; this run uses {matplotlib.get_backend()}")
    before = plt.get_fignums()
    figs = [plot.weight_rows(np.zeros((2, 3)), np.ones((2, 3))) for _ in range(25)]
    assert plt.get_fignums() == before and all(f.canvas.manager is None for f in figs)
    with pytest.warns(UserWarning, match="tinynet.plot.save"):
        figs[0].show()


def test_in_a_notebook_the_figure_is_shown_once_as_the_cell_value(tmp_path):
    """Under Jupyter's inline backend pyplot must not hold the figure (it would show it a
    second time when the cell ends, and keep it alive); the cell's value shows it."""
    out = run_script(tmp_path, "import matplotlib.pyplot as plt",
                     "assert fig.canvas.manager is None and plt.get_fignums() == []\n"
                     "assert fig._repr_png_()[:4] == b'\\x89PNG'\nprint('inline ok')",
                     backend="module://matplotlib_inline.backend_inline")
    assert "inline ok" in out


# --------------------------------------------------------------------------
# figures a student reads at a glance
# --------------------------------------------------------------------------
def _rgb(c):
    from matplotlib.colors import to_rgb
    return tuple(round(v, 4) for v in to_rgb(c))


def _panel_colors(ax):
    """{value shown: colour} of the panel's image (its ListedColormap)."""
    im = ax.images[0]
    cmap = im.get_cmap()
    return [_rgb(cmap(i)) for i in range(cmap.N)]


def test_frozen_map_one_colour_one_meaning(rng):
    """Red means 'frozen row' and blue 'always-zero pixel' wherever they appear; the two
    disagreements get other colours, and every legend describes its own panel's colours."""
    changed, zero = planted(rng)
    changed[np.flatnonzero(zero)[:2]] = True            # zero pixel, row moved: 2
    changed[np.flatnonzero(~zero)[:5]] = False          # frozen, pixel used: 5
    fig = plot.frozen_map(changed, zero)
    frozen_col, zero_col = _panel_colors(fig.axes[0])[1], _panel_colors(fig.axes[1])[1]
    diff_cols = _panel_colors(fig.axes[2])[1:]
    assert frozen_col != zero_col and not set(diff_cols) & {frozen_col, zero_col}
    legends = []
    for ax in fig.axes:
        leg = ax.get_legend()
        legends.append({t.get_text(): _rgb(p.get_facecolor())
                        for t, p in zip(leg.get_texts(), leg.get_patches())})
    assert legends[0] == {"row never changed (frozen)": frozen_col}
    assert legends[1] == {"pixel 0 in every sample": zero_col}
    assert legends[2] == {"frozen, pixel not always 0: 5": diff_cols[0],
                          "pixel always 0, row moved: 2": diff_cols[1]}
    # the picture holds exactly those counts in those colours
    diff = np.asarray(fig.axes[2].images[0].get_array())
    assert (diff == 1).sum() == 5 and (diff == 2).sum() == 2


def blow_up_history():
    """The constant-init run's shape: a spike to 3e8, then a plateau at ln 10."""
    from tinynet.train import History
    h = History()
    plateau = list(np.log(10) + 1e-5 * np.arange(40))
    h.batch["loss"] += [2.30, 2.1, 3e8, 4e5, 50.0] + plateau
    h.batch["acc"] += [0.1] * 45
    return h


def test_training_curves_keep_the_plateau_readable_after_a_blow_up():
    fig = plot.training_curves(blow_up_history(), chance=10)
    loss_ax, tail_ax, acc_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and tail_ax.get_yscale() == "linear"
    lo, hi = tail_ax.get_ylim()
    assert lo < np.log(10) < hi and hi - lo < 0.01        # the plateau fills the panel
    assert tail_ax.get_xlim()[0] == 6                     # from the step after the spike
    lines = [l for l in loss_ax.lines if list(l.get_ydata()) == [np.log(10)] * 2]
    assert len(lines) == 1 and lines[0].get_label().startswith("ln 10 = 2.303")
    assert [l.get_ydata()[0] for l in acc_ax.lines if l.get_label().startswith("1/10")] == [0.1]
    for ax in fig.axes:
        assert ax.get_xlabel() == "step" and ax.get_ylabel() in ("loss", "accuracy")
    # without a spike: linear, two panels, no reference line unless asked
    from tinynet.train import History
    h = History()
    h.batch["loss"] += [2.3, 1.5, 1.0]
    fig = plot.training_curves(h)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "linear"
    assert all(not l.get_label().startswith("ln") for l in fig.axes[0].lines)
    assert plot.training_curves(h, log_loss=True).axes[0].get_yscale() == "log"
    # a spike at the very end leaves no tail to zoom on: two panels, no warning
    h = History()
    h.batch["loss"] += [2.3, 2.2, 3e8]
    h.epoch["loss"] += [1e8]
    h.epoch_end_steps += [3]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot.training_curves(h)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"


def test_update_ratios_every_parameter_looks_different_and_the_legend_is_outside():
    steps = np.arange(5)
    names = [f"{k}.{kind}" for k in range(12) for kind in ("weight", "bias")] + ["odd.a",
                                                                                  "odd.b"]
    hist = {n: {"step": steps, "update_ratio": np.full(5, 1e-3 * (i + 1))}
            for i, n in enumerate(names)}
    fig = plot.update_ratios(hist)
    ax = fig.axes[0]
    curves = [l for l in ax.lines if l.get_label() in names]
    looks = {(_rgb(l.get_color()), str(l.get_linestyle()), str(l.get_marker()))
             for l in curves}
    assert len(curves) == len(names) == len(looks)
    # the legend sits right of the axes, off the data and off the 1e-3 rule
    from matplotlib.backends.backend_agg import RendererAgg
    w, h = fig.get_size_inches()
    r = RendererAgg(int(w * fig.dpi), int(h * fig.dpi), fig.dpi)
    fig.draw(r)
    assert ax.get_legend().get_window_extent(r).x0 >= ax.get_window_extent(r).x1
