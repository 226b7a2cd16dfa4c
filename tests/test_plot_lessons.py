"""The comparison figures the lessons draw (tinynet.plot, appended helpers).

Each test checks what is drawn against the data passed in: one panel per layer,
one line per run, the reference lines, the log axes, where a diverged run ends.
"""
import numpy as np
import pytest

from tinynet import plot


def _width_runs():
    steps = np.arange(1, 201, 5)
    tied = {"0": {"step": steps, "width": np.ones(40), "units": 256},
            "2": {"step": steps, "width": np.ones(40), "units": 30}}
    full = {"0": {"step": steps, "width": np.full(40, 256), "units": 256},
            "2": {"step": steps, "width": np.full(40, 30), "units": 30}}
    return {"constant": tied, "He": full}


def test_width_per_layer_one_panel_per_layer_log_axis_and_layer_size():
    fig = plot.width_per_layer(_width_runs())
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax, size in zip(axes, (256, 30)):
        assert ax.get_yscale() == "log"
        ys = [line.get_ydata() for line in ax.get_lines()]
        assert any(np.all(np.asarray(y) == 1) for y in ys)           # the tied run is visible
        assert any(np.all(np.asarray(y) == size) for y in ys)        # the full run and the size line
        assert ax.get_ylim()[0] < 1 < size < ax.get_ylim()[1]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["constant: 1", f"He: {size}"]


def test_width_per_layer_reads_a_recorder_and_rejects_empty():
    class Rec:
        effective_width = _width_runs()["He"]
    assert len(plot.width_per_layer({"r": Rec()}).get_axes()) == 2
    with pytest.raises(ValueError, match="no effective width"):
        plot.width_per_layer({"r": {}})
    with pytest.raises(TypeError):
        plot.width_per_layer({"r": [1, 2]})


def test_spread_over_seeds_one_dot_per_seed_and_the_mean():
    values = {"a": [0.1, 0.2, 0.3], "b": [0.7, 0.9]}
    ax = plot.spread_over_seeds(values, ref=0.1, ref_label="guessing").get_axes()[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(len(d.get_xdata()) for d in dots) == [2, 3]
    means = [line for line in ax.get_lines() if line.get_color() == "k"]
    assert sorted(round(m.get_xdata()[0], 6) for m in means) == [0.2, 0.8]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a"]     # first on top
    with pytest.raises(ValueError):
        plot.spread_over_seeds({})


def test_step_losses_marks_the_first_non_finite_step():
    losses = {"ok": [2.0, 1.0, 0.5], "diverged": [2.0, 50.0, 1e6, np.nan, np.nan]}
    ax = plot.step_losses(losses, ref=np.log(10), ref_label="ln 10").get_axes()[0]
    assert ax.get_yscale() == "log"
    by_label = {line.get_label(): line for line in ax.get_lines()}
    assert list(by_label["diverged"].get_ydata()) == [2.0, 50.0, 1e6]   # the line stops there
    cross = by_label["diverged: loss not finite at step 4"]
    assert list(cross.get_xdata()) == [4]
    assert np.isclose(by_label["ln 10"].get_ydata()[0], np.log(10))
    assert len(plot.step_losses([3.0, 2.0]).get_axes()[0].get_lines()) == 1


def test_dead_units_over_steps_from_a_recorder_and_from_pairs():
    class Rec:
        layer_stats = {"1": {"step": np.array([1, 2, 3]), "dead_units": np.array([0, 4, 9]),
                             "zero_frac": np.zeros(3)}}
    ax = plot.dead_units_over_steps({"lr 1": Rec(), "pairs": ([1, 2], [3, 3])}).get_axes()[0]
    lines = ax.get_lines()
    assert list(lines[0].get_ydata()) == [0, 4, 9] and lines[0].get_label() == "lr 1: 9 at the end"
    assert list(lines[1].get_xdata()) == [1, 2]
    with pytest.raises(KeyError, match="no layer"):
        plot.dead_units_over_steps({"x": Rec()}, layer="7")


def test_network_gradients_marks_exact_zeros_and_dead_units():
    grads = {"W1": np.array([[0.5, 0.0], [-1.0, 0.0]]), "b1": np.array([0.25, 0.0]),
             "W2": np.array([[2.0], [0.0]]), "b2": np.array([1.0])}
    z, h = np.array([[1.5, -1.0]]), np.array([[1.5, 0.0]])
    ax = plot.network_gradients(z, h, grads, title="t").get_axes()[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    solid = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert len(dashed) == 3 and len(solid) == 3          # 4 + 2 edges; W1[:, 1] and W2[1] are 0
    assert all(line.get_color() == "#c0392b" for line in dashed)
    circles = ax.patches
    assert len(circles) == 5
    dead = [c for c in circles if c.get_edgecolor()[:3] != circles[0].get_edgecolor()[:3]]
    assert len(dead) == 1                                 # h1 has z <= 0
    labels = {t.get_text() for t in ax.texts}
    assert "z = -1,  h = 0\nbias grad 0" in labels and "bias grad 1" in labels
    with pytest.raises(ValueError, match="n_hidden"):
        plot.network_gradients(np.zeros(3), np.zeros(3), grads)
