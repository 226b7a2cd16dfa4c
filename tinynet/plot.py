"""Pictures of why parameters stop updating.  Every function returns a matplotlib Figure.

    from tinynet import plot
    fig = plot.frozen_map(changed, zero_pixel_mask)      # first Dense layer vs always-zero pixels
    fig = plot.filter_grid(w_before, w_after)            # conv filters before / after / difference
    fig = plot.grad_norms(recorder); fig = plot.update_ratios(recorder)
    fig = plot.activation_histograms(recorder); fig = plot.effective_width(recorder)
    fig = plot.weight_rows(w_before, w_after, rows=[0])  # "print the first row" as a picture
    fig = plot.training_curves(history)
    plot.save(fig, "out/frozen.png")                     # atomic: temp file + rename

Every figure shows itself where you are, and none leaks:

- in Jupyter (the inline backend) it displays as the cell's value, once (it has a
  ``_repr_png_``); pyplot does not hold it, so drawing one per epoch does not leak;
- in a script with a window backend, after ``import matplotlib.pyplot as plt``, it is
  a pyplot figure: ``plt.show()`` and ``fig.show()`` show it, ``plt.close(fig)`` ends it;
- ``fig.show()`` also works when pyplot was never imported (it hands the figure to
  pyplot then);
- headless (the Agg backend: CI, a server, ``tinynet explain``) it is a plain Figure
  that you save with :func:`save`; pyplot is not even imported.

Arrays may be numpy arrays, tinynet Tensors or device (CuPy) arrays: they are
copied to the host once, explicitly.

What the functions read from a recorder (duck-typed; any object with these
attributes works, and so do the plain dicts):

    rec.history[param]["step" | "grad_norm" | "update_ratio"]   one value per recorded step
    rec.layer_stats[layer]["zero_frac" | "dead_units"]          one value per recorded step
    rec.activation_samples(layer) -> {step: values}             for the histograms
    rec.effective_width[layer]["step" | "width" | "units"]
    rec.params, rec.changed_mask(param), rec.zero_input_features(layer)   for frozen_map
and from a diagnose Report: ``report.frozen(param)``, ``report.params[param]["shape"]``,
``report.recorder``, and ``report.findings`` with ``.param``, ``.cause``, ``.mask`` (bool,
the parameter's shape, True = affected).  Plain dicts work too (see each function).
"""
import io
import math
import os

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from tinynet.files import atomic_write

# causes that mean "these entries did not move", read from the diagnose registry
from tinynet.diagnose.causes import FROZEN_CAUSES  # noqa: E402


class InlineFigure(Figure):
    """A Figure that Jupyter displays inline even when pyplot was never imported, and
    whose ``show()`` works everywhere (see the module docstring)."""

    def _repr_png_(self):
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()

    def show(self, warn=True):
        """Show the figure: a window in a script (handed to pyplot if it is not managed
        yet), the picture in a notebook; on a backend without a display (Agg), a warning
        that says how to save it instead."""
        if self.canvas.manager is None:
            backend = _backend_name()
            if _displays_inline(backend):
                from IPython.display import display
                display(self)
                return
            if backend in _NO_DISPLAY:
                if warn:
                    import warnings
                    warnings.warn(f"matplotlib is using the {backend!r} backend, which has "
                                  f"no display, so the figure cannot be shown; save it with "
                                  f"tinynet.plot.save(fig, 'figure.png')", UserWarning,
                                  stacklevel=2)
                return
            _adopt(self)
        super().show(warn=warn)
        import matplotlib
        if not matplotlib.is_interactive():
            import matplotlib.pyplot as plt
            plt.show()               # a script: keep the window open until it is closed


#: backends that cannot show anything; and the notebook ones, where a figure is shown
#: as the value of its cell (pyplot would show it a second time at the end of the cell)
_NO_DISPLAY = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")
_NOTEBOOK = ("inline", "ipympl", "widget", "nbagg")


def _backend_name(resolve=True):
    """The backend's name in lower case; None when none is chosen yet and ``resolve``
    is False (choosing one means importing pyplot)."""
    import matplotlib
    from matplotlib import rcsetup
    # the backend as set, without making pyplot choose one (matplotlib >= 3.6)
    name = dict.__getitem__(matplotlib.rcParams, "backend")
    if name is getattr(rcsetup, "_auto_backend_sentinel", None):
        name = None
    if name is None:
        if not resolve:
            return None
        name = matplotlib.get_backend()
    return name.lower()


def _displays_inline(backend):
    return any(k in backend for k in _NOTEBOOK)


def _pyplot_shows():
    """True in a script that imported pyplot with a window backend: hand it the figure."""
    import sys
    if "matplotlib.pyplot" not in sys.modules:
        return False
    backend = _backend_name()
    return backend not in _NO_DISPLAY and not _displays_inline(backend)


def _adopt(fig):
    """Make pyplot manage ``fig`` (a window of the current backend, a figure number)."""
    import matplotlib.pyplot as plt
    from matplotlib._pylab_helpers import Gcf
    num = max(plt.get_fignums(), default=0) + 1
    manager = plt._get_backend_mod().new_figure_manager_given_figure(num, fig)
    Gcf._set_new_active_manager(manager)
    return manager


def new_figure(figsize=(6.4, 4.8), **kwargs):
    """An :class:`InlineFigure`; a pyplot figure when a script showing windows imported
    pyplot (so that ``plt.show()`` shows it), else one that pyplot does not hold."""
    if _pyplot_shows():
        import matplotlib.pyplot as plt
        return plt.figure(figsize=figsize, FigureClass=InlineFigure, **kwargs)
    return InlineFigure(figsize=figsize, **kwargs)


def _host(a, what="array"):
    """A host numpy array for a numpy/CuPy array, a Tensor, or a list."""
    if hasattr(a, "numpy") and callable(a.numpy) and hasattr(a, "data") \
            and not isinstance(a, np.ndarray):
        return a.numpy()                                     # a tinynet Tensor
    from tinynet import backend
    if backend.is_device_array(a):
        return backend.to_numpy(a)
    if hasattr(a, "get") and callable(a.get) and hasattr(a, "shape") \
            and not isinstance(a, (np.ndarray, dict)):
        return a.get()                                       # CuPy without the backend
    try:
        return np.asarray(a)
    except Exception as exc:
        raise TypeError(f"expected {what} as an array or Tensor, got {type(a).__name__}") \
            from exc


# --------------------------------------------------------------------------
# frozen map: the first Dense layer as a 28x28 picture
# --------------------------------------------------------------------------
def frozen_map(changed, zero_pixel_mask=None, image_shape=(28, 28), param=None):
    """The first Dense layer's never-changed rows as an image, beside the always-zero pixels.

    changed          which entries of the first Dense weight changed during training
                     (True = moved at least once): bool (P, OUT) with P = pixels of
                     image_shape (784 for 28x28), or bool (P,) per row; a row is frozen
                     when none of its entries changed.  Or a diagnose Report (its
                     ``frozen(param)`` mask, else the masks of its frozen-type findings)
                     or a Recorder (``changed_mask(param)``); ``param`` defaults to the
                     first parameter with P rows.
    zero_pixel_mask  bool (P,) or image_shape, True = the pixel was 0 in every sample;
                     or the images themselves (N, P) / (N, 1, H, W) / (N, H, W), from
                     which the always-zero pixels are computed.  None: taken from the
                     recorder (``zero_input_features(layer)``) when there is one, else
                     only the first panel is drawn.
    image_shape      (H, W) of one image; H*W must equal the weight's rows.

    Panels: "rows that never changed: k", "pixels zero in every sample: m" and
    "where they differ: d" (empty when the zero pixels explain every frozen row).
    """
    image_shape = tuple(int(v) for v in image_shape)
    p = int(np.prod(image_shape))
    frozen, source, zero = _frozen_rows(changed, p, image_shape, param)
    if zero_pixel_mask is not None:
        zero = _zero_pixels(zero_pixel_mask, p, image_shape)
    n_panels = 1 if zero is None else 3
    fig = new_figure(figsize=(3.2 * n_panels, 4.0), layout="constrained")
    axes = [fig.add_subplot(1, n_panels, i + 1) for i in range(n_panels)]
    # one colour, one meaning: red = a frozen row, blue = an always-zero pixel (panels 1
    # and 2); the two ways they can disagree get colours of their own in panel 3
    axes[0].imshow(frozen.reshape(image_shape), cmap=ListedColormap([_BLANK, _FROZEN]),
                   vmin=0, vmax=1, interpolation="nearest")
    axes[0].set_title(f"rows that never changed: {int(frozen.sum())}\n({source})",
                      fontsize=10)
    _legend_below(axes[0], [(_FROZEN, "row never changed (frozen)")])
    if zero is not None:
        axes[1].imshow(zero.reshape(image_shape), cmap=ListedColormap([_BLANK, _ZERO_PIXEL]),
                       vmin=0, vmax=1, interpolation="nearest")
        axes[1].set_title(f"pixels zero in every sample: {int(zero.sum())}\n(the data)",
                          fontsize=10)
        _legend_below(axes[1], [(_ZERO_PIXEL, "pixel 0 in every sample")])
        # 0 = agree, 1 = frozen but the pixel is used, 2 = zero pixel but the row moved
        diff = np.zeros(p, np.int8)
        diff[frozen & ~zero] = 1
        diff[zero & ~frozen] = 2
        n_diff = int((diff != 0).sum())
        axes[2].imshow(diff.reshape(image_shape),
                       cmap=ListedColormap([_BLANK, _FROZEN_USED, _ZERO_MOVED]), vmin=0,
                       vmax=2, interpolation="nearest")
        axes[2].set_title(f"where they differ: {n_diff}\n"
                          + ("(empty: the zero pixels explain it)" if n_diff == 0
                             else "(should be empty)"), fontsize=10)
        _legend_below(axes[2], [(_FROZEN_USED, f"frozen, pixel not always 0: "
                                               f"{int((diff == 1).sum())}"),
                                (_ZERO_MOVED, f"pixel always 0, row moved: "
                                              f"{int((diff == 2).sum())}")])
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


# frozen_map's colours: each means one thing in every panel
_BLANK, _FROZEN, _ZERO_PIXEL = "#f4f4f4", "#b2182b", "#2166ac"
_FROZEN_USED, _ZERO_MOVED = "#f28e2b", "#7b3294"          # orange, purple: disagreements


def _legend_below(ax, entries):
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#888888", label=t) for c, t in entries],
              loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=8, frameon=False)


def _frozen_rows(changed, p, image_shape, param):
    """(bool (P,) frozen rows, a caption, the always-zero pixels if the source knows them)."""
    h, w = image_shape
    expect = (f"expected the first Dense layer's weight mask with {p} rows (one per pixel "
              f"of a {h}×{w} image): shape ({p}, OUT) or ({p},)")
    if hasattr(changed, "findings"):
        return _frozen_from_report(changed, p, param, expect)
    if hasattr(changed, "changed_mask") and hasattr(changed, "params"):     # a Recorder
        rec = changed
        name = param or _first_param_with_rows(
            {k: tuple(v.shape) for k, v in rec.params.items()}, p)
        if name is None:
            raise ValueError(f"frozen_map: no parameter of the recorder has {p} rows; {expect}")
        m = rec.changed_mask(name)
        return ~m.any(axis=1), f"{name} {m.shape[0]}×{m.shape[1]}", \
            _recorded_zero_inputs(rec, name, p)
    m = _host(changed, "the mask")
    if m.ndim == 2 and m.shape[0] == p:
        frozen = ~m.astype(bool).any(axis=1)
        return frozen, f"{param or 'weight'} {m.shape[0]}×{m.shape[1]}", None
    if m.ndim == 1 and m.shape[0] == p:
        return ~m.astype(bool), f"{param or 'weight'}, per row", None
    raise ValueError(f"frozen_map: {expect}; got shape {m.shape}. Pass the mask of the FIRST "
                     f"Dense layer (its rows are the pixels), or set image_shape")


def _first_param_with_rows(shapes, p):
    return next((k for k, shape in shapes.items() if len(shape) == 2 and shape[0] == p), None)


def _recorded_zero_inputs(rec, param, p):
    """The recorder's always-zero input features of ``param``'s layer, if it watched them."""
    get = getattr(rec, "zero_input_features", None)
    if rec is None or get is None:
        return None
    try:
        z = get(param.rpartition(".")[0])
    except (KeyError, AttributeError):
        return None
    return None if z is None or np.size(z) != p else np.asarray(z, bool).reshape(-1)


def _frozen_from_report(report, p, param, expect):
    """Frozen rows from a diagnose Report: its exact frozen mask if it has one, else the
    union of the masks of its frozen-type findings."""
    shapes = {k: tuple(v["shape"]) for k, v in getattr(report, "params", {}).items()
              if isinstance(v, dict) and "shape" in v}
    findings = list(report.findings)
    if param is None:
        param = _first_param_with_rows(shapes, p)
    if param is None:
        for f in findings:
            m = getattr(f, "mask", None)
            if m is not None and np.ndim(_host(m)) == 2 and np.shape(_host(m))[0] == p:
                param = f.param
                break
    if param is None:
        raise ValueError(f"frozen_map: the report has no parameter with {p} rows; {expect}")
    zero = _recorded_zero_inputs(getattr(report, "recorder", None), param, p)
    if hasattr(report, "frozen"):
        try:
            m = _host(report.frozen(param)).astype(bool)
        except KeyError:
            m = None
        if m is not None:
            if m.ndim != 2 or m.shape[0] != p:
                raise ValueError(f"frozen_map: {param!r} has shape {m.shape}; {expect}")
            return m.all(axis=1), f"{param} {m.shape[0]}×{m.shape[1]}", zero
    frozen_entries = None
    for f in findings:
        if f.param != param or getattr(f, "cause", None) not in FROZEN_CAUSES:
            continue
        m = getattr(f, "mask", None)
        if m is None:
            continue
        m = _host(m).astype(bool)
        if m.ndim != 2 or m.shape[0] != p:
            raise ValueError(f"frozen_map: the finding on {param!r} has a mask of shape "
                             f"{m.shape}; {expect}")
        frozen_entries = m if frozen_entries is None else frozen_entries | m
    if frozen_entries is None:
        return np.zeros(p, bool), f"{param}: no frozen finding", zero
    return frozen_entries.all(axis=1), \
        f"{param} {frozen_entries.shape[0]}×{frozen_entries.shape[1]}", zero


def _zero_pixels(a, p, image_shape):
    m = _host(a, "the zero-pixel mask")
    if m.dtype == bool and m.size == p:
        return m.reshape(-1)
    if m.dtype != bool and m.ndim >= 2 and m.size % p == 0 and m.size > p:
        x = m.reshape(-1, p)                                     # images: (N, P)
        return ~(x != 0).any(axis=0)
    if m.size == p:
        return m.reshape(-1).astype(bool)
    h, w = image_shape
    raise ValueError(f"frozen_map: expected zero_pixel_mask as a bool mask of {p} pixels "
                     f"(shape ({p},) or ({h}, {w})) or the images (N, {p}) / (N, 1, {h}, {w}); "
                     f"got shape {m.shape}")


# --------------------------------------------------------------------------
# conv filters
# --------------------------------------------------------------------------
def filter_grid(before, after=None, scale="own", channel=0, ncols=None):
    """Conv filters as a grid of small images: before, after, and after − before.

    before, after  conv weights (O, C, KH, KW) -- tinynet's Conv2D layout -- or (O, KH, KW)
    scale          "own" (default): each panel has its own symmetric color scale around
                   0 and a colorbar, so a change 1000x smaller than the weights is still
                   visible in the difference panel.  "minmax": the article's picture --
                   each grid stretched to its own min..max and quantized to 256 grey
                   levels (uint8); the difference panel then shows what changed IN THE
                   PICTURES, which is usually nothing: that is how a moving layer looks
                   frozen.
    channel        which input channel to show when C > 1 (default 0)
    ncols          filters per grid row (default about sqrt(O))

    One image axes and one colorbar per panel: 2 axes for ``before`` alone, 6 with
    ``after``.
    """
    if scale not in ("own", "minmax"):
        raise ValueError(f"filter_grid: scale must be 'own' or 'minmax', got {scale!r}")
    b = _filters(before, "before", channel)
    a = None if after is None else _filters(after, "after", channel)
    if a is not None and a.shape != b.shape:
        raise ValueError(f"filter_grid: before has shape {_host(before).shape} but after has "
                         f"{_host(after).shape}; pass the same layer's weight twice")
    O = b.shape[0]
    ncols = ncols or int(math.ceil(math.sqrt(O)))
    panels = [("before", b)] if a is None else [("before", b), ("after", a)]
    n = len(panels) + (a is not None)
    fig = new_figure(figsize=(3.3 * n, 3.4), layout="constrained")   # <= 10 in: notebook width
    shown = []
    for i, (name, w) in enumerate(panels):
        ax = fig.add_subplot(1, n, i + 1)
        if scale == "minmax":
            img = _quantized(w)
            im = ax.imshow(_tile(img.astype(float), ncols), cmap=_grey_with_pad(), vmin=0,
                           vmax=255, interpolation="nearest")
            ax.set_title(f"{name} (min-max, 256 grey levels)\n"
                         f"values {w.min():.3g} .. {w.max():.3g}", fontsize=10)
            shown.append(img)
        else:
            m = float(np.abs(w).max()) or 1.0
            im = ax.imshow(_tile(w, ncols), cmap=_diverging_with_pad(), vmin=-m, vmax=m,
                           interpolation="nearest")
            ax.set_title(f"{name}\nmax |w| = {float(np.abs(w).max()):.3g}", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    if a is not None:
        ax = fig.add_subplot(1, n, n)
        if scale == "minmax":
            d = shown[1].astype(np.int16) - shown[0].astype(np.int16)
            k = int((d != 0).sum())
            m = float(np.abs(d).max()) or 1.0
            im = ax.imshow(_tile(d.astype(float), ncols), cmap=_diverging_with_pad(), vmin=-m,
                           vmax=m, interpolation="nearest")
            ax.set_title(f"what changed in the pictures:\n{k} of {d.size} pixels",
                         fontsize=10)
        else:
            d = a - b
            k = int((d != 0).sum())
            m = float(np.abs(d).max())
            im = ax.imshow(_tile(d, ncols), cmap=_diverging_with_pad(), vmin=-(m or 1.0),
                           vmax=m or 1.0, interpolation="nearest")
            ax.set_title(f"after − before (own scale)\nmax |Δ| = {m:.3g}; "
                         f"{k} of {d.size} changed", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _filters(w, what, channel):
    a = _host(w, f"the {what} weights").astype(float)
    if a.ndim == 4:
        if not 0 <= channel < a.shape[1]:
            raise ValueError(f"filter_grid: channel={channel} but the weights have "
                             f"{a.shape[1]} input channels")
        return a[:, channel]
    if a.ndim == 3:
        return a
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] <= 11:
        return a[None]
    raise ValueError(f"filter_grid: expected conv weights of shape (O, C, KH, KW) "
                     f"(tinynet's Conv2D layout) or (O, KH, KW), got {what} of shape "
                     f"{a.shape}; for a Dense weight use frozen_map or weight_rows")


def _tile(f, ncols):
    """(O, KH, KW) -> one image, filters in a grid separated by 1-pixel NaN gaps."""
    O, kh, kw = f.shape
    nrows = int(math.ceil(O / ncols))
    img = np.full((nrows * (kh + 1) - 1, ncols * (kw + 1) - 1), np.nan)
    for k in range(O):
        r, c = divmod(k, ncols)
        img[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = f[k]
    return img


def _quantized(w):
    """The article's picture: (w - min) / (max - min) as uint8 grey levels."""
    lo, hi = float(w.min()), float(w.max())
    if hi == lo:
        return np.zeros(w.shape, np.uint8)
    return np.round((w - lo) / (hi - lo) * 255).astype(np.uint8)


def _diverging_with_pad():
    from matplotlib import colormaps
    return colormaps["RdBu_r"].with_extremes(bad="#ffffff")


def _grey_with_pad():
    from matplotlib import colormaps
    return colormaps["gray"].with_extremes(bad="#e3d5a8")   # tan gaps: visibly not a weight


# --------------------------------------------------------------------------
# curves over steps
# --------------------------------------------------------------------------
def _history(source, where):
    h = getattr(source, "history", source)
    if not isinstance(h, dict):
        raise TypeError(f"{where}: expected a recorder (with .history) or a dict "
                        f"{{param: {{'step': [...], ...}}}}, got {type(source).__name__}")
    return h


def _per_param_curves(source, key, where, params, ylabel, title, ref=None):
    hist = _history(source, where)
    names = [p for p in (params or hist) if p in hist]
    if params is not None and len(names) != len(params):
        missing = [p for p in params if p not in hist]
        raise KeyError(f"{where}: no history for {missing}; recorded: {list(hist)}")
    fig = new_figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.set_yscale("log")
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    styles = _param_styles(names)
    for name in names:
        rec = hist[name]
        if key not in rec:
            raise KeyError(f"{where}: the history of {name!r} has no {key!r} "
                           f"(it has {sorted(rec)})")
        v = np.asarray(rec[key], dtype=float)
        steps = np.asarray(rec.get("step", np.arange(len(v))), dtype=float)
        v = np.where(np.isfinite(v), v, np.nan)    # no gradient (NaN) / weight was 0 (inf)
        zero = v == 0
        label = name
        if zero.all() and len(v):
            label += "  — exactly 0 at every step"
        elif zero.any():
            label += f"  — exactly 0 at {int(zero.sum())} of {len(v)} steps"
        color, style, marker = styles[name]
        ax.plot(steps, np.where(zero, np.nan, v), ls=style, color=color, lw=1.4,
                marker=marker, markevery=max(len(v) // 8, 1), ms=4, label=label)
        if zero.any():          # a log axis cannot show 0: mark those steps on the floor
            ax.plot(steps[zero], np.full(int(zero.sum()), 0.02), "x", color=color, ms=6,
                    transform=bottom, clip_on=False)
    if ref is not None:
        ax.axhline(ref, color="#555555", ls=(0, (1, 3)), lw=1.2,
                   label=f"{ref:g} (rule of thumb)")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    if names:                   # outside the data: it must not sit on a curve or the rule
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                  frameon=False)
    return fig


def _param_styles(names):
    """{param: (color, line style, marker)}, a different triple for every parameter.

    One colour per layer (the part of the name before the last "."), the line style
    per kind (weight solid, bias dashed, anything else dash-dot), and past ten
    layers a marker, so that two parameters never look alike.
    """
    layers = []
    for name in names:
        layer = name.rpartition(".")[0]
        if layer not in layers:
            layers.append(layer)
    dashes = {"weight": "-", "bias": "--"}
    markers = (None, "o", "s", "^", "v", "D", "P", "X")
    out, seen = {}, set()
    for name in names:
        k = layers.index(name.rpartition(".")[0])
        kind = name.rpartition(".")[2]
        style = [f"C{k % 10}", dashes.get(kind, "-."), markers[(k // 10) % len(markers)]]
        tries = 0
        while tuple(style) in seen:       # e.g. several parameters of one layer that are
            tries += 1                    # neither weight nor bias
            style[2] = markers[tries % len(markers)]
            if tries >= len(markers):
                style[1] = (0, (1 + tries, 2))
        seen.add(tuple(style))
        out[name] = tuple(style)
    return out


def grad_norms(recorder_or_history, params=None):
    """Gradient norm per parameter over the recorded steps (log y axis).

    recorder_or_history  a recorder (``rec.history``) or the dict itself:
                         {param: {"step": [...], "grad_norm": [...]}}
    params               names to show (default: all recorded)
    Steps where the norm is exactly 0 cannot sit on a log axis: they are
    marked with x on the floor of the plot and counted in the legend.
    """
    return _per_param_curves(recorder_or_history, "grad_norm", "grad_norms", params,
                             "‖gradient‖", "gradient norm per parameter")


def update_ratios(recorder_or_history, params=None, ref=1e-3):
    """Update-to-weight ratio ‖Δw‖ / ‖w‖ per parameter over steps, with a 1e-3 reference line.

    A ratio far below ``ref`` means the weights move too little to see in a
    picture (though they do move); exactly 0 is marked as in :func:`grad_norms`.
    """
    return _per_param_curves(recorder_or_history, "update_ratio", "update_ratios", params,
                             "‖Δw‖ / ‖w‖", "update-to-weight ratio per parameter", ref=ref)


def activation_histograms(recorder_or_dict, bins=40, layers=None):
    """One histogram per layer of its activation values, with the fraction exactly 0.

    recorder_or_dict  a Recorder (the last recorded sample of each layer's output,
                      ``activation_samples``, with ``layer_stats``' zero fraction and
                      dead units of that step), or {layer: values}, where values is an
                      array or a dict with "values" and optionally "zero_frac" and
                      "dead" (a count or a bool mask of units dead on every sample).
    The histogram shows the NONZERO values; the exact zeros (a ReLU's "off")
    are counted in the title instead of drowning the rest in one tall bar.
    """
    entries = _activation_entries(recorder_or_dict, layers)
    names = list(entries)
    n = max(len(names), 1)
    ncols = min(n, 3)
    nrows = int(math.ceil(n / ncols))
    fig = new_figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        entry = entries[name]
        zero_frac, dead, total = entry.get("zero_frac"), entry.get("dead"), None
        values = entry.get("values")
        if values is not None:
            v = _host(values, "activations").reshape(-1).astype(float)
            nz = v[v != 0]
            if zero_frac is None and v.size:
                zero_frac, total = 1.0 - nz.size / v.size, v.size
            if nz.size:
                ax.hist(nz, bins=bins, color="#4a6fa5", alpha=0.85)
            else:
                ax.text(0.5, 0.5, "every value is exactly 0", ha="center", va="center",
                        transform=ax.transAxes, color="#c0392b")
        if zero_frac:
            ax.axvline(0, color="#c0392b", lw=1.2)
        title = f"layer {name}"
        if entry.get("step") is not None:
            title += f" (step {entry['step']})"
        if zero_frac is not None:
            title += f": exactly 0 in {100 * float(zero_frac):.1f}%"
            if total:
                title += f"\n({int(round(float(zero_frac) * total))} of {total} values)"
        if dead is not None:
            d = int(np.sum(dead)) if np.ndim(dead) else int(dead)
            title += f"; dead units: {d}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("nonzero activation values", fontsize=8)
        ax.set_ylabel("count", fontsize=8)
        ax.tick_params(labelsize=7)
    return fig


def _last(v):
    """The last recorded value of a per-step series (or the value itself)."""
    if v is None:
        return None
    a = np.asarray(v)
    return a.reshape(-1)[-1].item() if a.ndim and a.size else (a.item() if a.size else None)


def _activation_entries(src, layers):
    """{layer: {"values", "zero_frac", "dead", "step"}} from a Recorder or a dict."""
    if hasattr(src, "activation_samples") and hasattr(src, "layer_stats"):
        stats = src.layer_stats
        out = {}
        for name in (layers or list(stats)):
            samples = src.activation_samples(name)
            st = stats.get(name, {})
            step = max(samples) if samples else None
            same_step = step is not None and "step" in st and len(st["step"]) and \
                int(np.asarray(st["step"])[-1]) == step
            out[name] = {"values": samples.get(step) if samples else None, "step": step,
                         "zero_frac": _last(st.get("zero_frac")) if same_step else None,
                         "dead": _last(st.get("dead_units"))}
        return out
    stats = getattr(src, "layer_stats", src)
    if not isinstance(stats, dict):
        raise TypeError(f"activation_histograms: expected a Recorder or {{layer: values}}, "
                        f"got {type(src).__name__}")
    out = {}
    for name in (layers or list(stats)):
        e = stats[name]
        if isinstance(e, dict):
            out[name] = {"values": e.get("values", e.get("sample")),
                         "zero_frac": _last(e.get("zero_frac")),
                         "dead": e.get("dead", _last(e.get("dead_units"))),
                         "step": e.get("at_step")}
        else:
            out[name] = {"values": e}
    return out


def effective_width(recorder_or_dict, layers=None):
    """Effective width (the number of distinct units) per layer over steps.

    recorder_or_dict  a recorder (``rec.effective_width``) or {layer: entry} with entry
                      {"step": [...], "width": [...], "units": n} ("units" optional),
                      a list of widths, or a (steps, widths) pair.
    A layer initialized with constant weights stays at 1: all its units are copies.
    """
    data = getattr(recorder_or_dict, "effective_width", recorder_or_dict)
    if not isinstance(data, dict):
        raise TypeError(f"effective_width: expected a recorder or {{layer: widths}}, got "
                        f"{type(recorder_or_dict).__name__}")
    names = [k for k in (layers or data) if k in data]
    # one panel per layer: two layers stuck at 1 unit would hide each other on one axes
    ncols = min(max(len(names), 1), 3)
    nrows = int(math.ceil(max(len(names), 1) / ncols))
    fig = new_figure(figsize=(3.4 * ncols if ncols > 1 else 6.0, 3.2 * nrows),
                     layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        steps, widths, total = _width_entry(data[name], name)
        color = f"C{i % 10}"
        end = int(widths[-1]) if len(widths) else "?"
        ax.plot(steps, widths, "-o", color=color, ms=3, lw=1.5, label="distinct units")
        top = float(np.max(widths)) if len(widths) else 1.0
        if total:
            ax.axhline(total, color="#555555", ls=":", lw=1.2, label=f"layer size: {total}")
            top = max(top, total)
        ax.set_ylim(0, max(top, 1) * 1.1)
        ax.set_xlabel("step")
        ax.set_ylabel("distinct units")
        ax.set_title(f"layer {name}: {end}" + (f" of {total}" if total else "")
                     + " units at the end", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="center right")
    fig.suptitle("effective width: how many units are really different", fontsize=11)
    return fig


def _width_entry(entry, name):
    if isinstance(entry, dict):
        widths = np.asarray(entry.get("width", entry.get("widths", [])), float)
        steps = np.asarray(entry.get("step", np.arange(len(widths))), float)
        return steps, widths, entry.get("total", entry.get("units"))
    if isinstance(entry, tuple) and len(entry) == 2:
        return np.asarray(entry[0], float), np.asarray(entry[1], float), None
    widths = np.asarray(entry, float)
    if widths.ndim != 1:
        raise ValueError(f"effective_width: layer {name!r}: expected a list of widths, got "
                         f"shape {widths.shape}")
    return np.arange(len(widths), dtype=float), widths, None


# --------------------------------------------------------------------------
# single rows, training curves
# --------------------------------------------------------------------------
def weight_rows(before, after, rows=(0,), max_cols=None):
    """"Print the first row before and after", as a picture.

    before, after  the same 2-D weight at two times, e.g. a Dense weight (IN, OUT)
    rows           which rows (row i of the first Dense weight = pixel i)
    max_cols       show only the first max_cols entries of each row
    Per row: the values before and after (top), and after − before on its own
    scale (bottom) with the count of entries that changed at all.
    """
    b = _host(before, "before").astype(float)
    a = _host(after, "after").astype(float)
    if b.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"weight_rows: expected two 2-D weights of the same shape (IN, OUT), "
                         f"got {b.shape} and {a.shape}")
    rows = [int(r) for r in np.atleast_1d(rows)]
    for r in rows:
        if not -b.shape[0] <= r < b.shape[0]:
            raise IndexError(f"weight_rows: row {r} is out of range for a weight with "
                             f"{b.shape[0]} rows")
    fig = new_figure(figsize=(8.0, 2.9 * len(rows)), layout="constrained")
    cols = slice(None, max_cols)
    for i, r in enumerate(rows):
        vb, va = b[r, cols], a[r, cols]
        d = va - vb
        k = int((d != 0).sum())
        x = np.arange(vb.size)
        top = fig.add_subplot(2 * len(rows), 1, 2 * i + 1)
        top.plot(x, vb, "o", ms=3, color="#888888", label="before")
        top.plot(x, va, ".", ms=3, color="#c0392b", label="after")
        top.set_title(f"row {r}: " + ("identical before and after (0 entries changed)"
                                      if k == 0 else f"{k} of {d.size} entries changed"),
                      fontsize=10)
        top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                   frameon=False)
        top.set_ylabel("value", fontsize=8)
        top.tick_params(labelsize=7)
        bot = fig.add_subplot(2 * len(rows), 1, 2 * i + 2)
        bot.bar(x, d, width=1.0, color="#4a6fa5")
        m = float(np.abs(d).max())
        bot.set_ylim(-(m or 1.0) * 1.1, (m or 1.0) * 1.1)
        bot.set_ylabel("after − before", fontsize=8)
        bot.set_xlabel(f"column (entry of row {r})", fontsize=8)
        if k == 0:
            bot.text(0.5, 0.5, "no entry changed: the difference is exactly 0 everywhere",
                     ha="center", va="center", transform=bot.transAxes, color="#c0392b")
        bot.set_title(f"difference (own scale): max |Δ| = {m:.3g}", fontsize=9)
        bot.tick_params(labelsize=7)
    return fig


def training_curves(history, chance=None, log_loss=None):
    """Loss and accuracy over training from a fit() History or a dict of lists.

    A History (``history.batch`` / ``history.epoch``) gives per-step and per-epoch
    curves; a dict {"loss": [...], "acc": [...], "val_loss": [...], ...} (or one
    with "step"/"epoch" for the x axis) is plotted as given.

    chance    the number of classes C: draws the loss of a uniform guess, ln C (ln 10 =
              2.303 for digits), and the accuracy of one, 1/C -- the plateau a network
              that learned nothing sits on
    log_loss  a log loss axis; None (default): log when the positive losses span more
              than a factor of 100, so that a blow-up to 3e8 does not flatten the rest
              of the curve into the floor
    """
    series = {}
    if hasattr(history, "batch") and hasattr(history, "epoch"):
        ends = list(getattr(history, "epoch_end_steps", []))
        for key, v in history.batch.items():
            if v:
                series[f"train {key} (per step)"] = (np.arange(1, len(v) + 1), v, key)
        for key, v in history.epoch.items():
            if v:
                x = ends[:len(v)] if len(ends) >= len(v) else np.arange(1, len(v) + 1)
                series[f"{key} (per epoch)"] = (x, v, key)
    elif isinstance(history, dict):
        x = history.get("step", history.get("epoch"))
        for key, v in history.items():
            if key in ("step", "epoch"):
                continue
            v = list(v)
            series[key] = (np.asarray(x if x is not None else np.arange(1, len(v) + 1)), v, key)
    else:
        raise TypeError(f"training_curves: expected a History from fit() or a dict of lists, "
                        f"got {type(history).__name__}")
    losses = [np.asarray(v, float) for _, v, key in series.values() if "acc" not in key]
    values = np.concatenate(losses) if losses else np.zeros(0)
    positive = values[np.isfinite(values) & (values > 0)]
    spread = positive.size > 0 and positive.max() > 100 * positive.min()
    if log_loss is None:
        log_loss = spread
    # after a blow-up, a third panel: the steps after the last spike on a linear axis,
    # where the plateau (ln 10 for a network that learned nothing) can be read
    tail_from = _after_last_spike(series) if spread else None
    n = 3 if tail_from is not None else 2
    fig = new_figure(figsize=(10.0, 3.8), layout="constrained")
    axes = {"loss": fig.add_subplot(1, n, 1)}
    if n == 3:
        axes["tail"] = fig.add_subplot(1, n, 2)
    axes["acc"] = fig.add_subplot(1, n, n)
    for label, (x, v, key) in series.items():
        targets = [axes["acc"]] if "acc" in key else [axes["loss"]] + (
            [axes["tail"]] if n == 3 else [])
        per_step = "per step" in label
        for ax in targets:
            ax.plot(x, v, "-" if per_step else "o-", lw=0.8 if per_step else 1.5,
                    alpha=0.6 if per_step else 1.0, ms=4, label=label)
    if log_loss:
        axes["loss"].set_yscale("log")
    if n == 3:
        _zoom_to_tail(axes["tail"], series, tail_from, chance)
    if chance:
        for ax in [axes["loss"]] + ([axes["tail"]] if n == 3 else []):
            ax.axhline(math.log(chance), color="#555555", ls="--", lw=1.1,
                       label=f"ln {chance} = {math.log(chance):.3f} (uniform guess)")
        axes["acc"].axhline(1 / chance, color="#555555", ls="--", lw=1.1,
                            label=f"1/{chance} = {1 / chance:.3g} (chance)")
    axes["loss"].set_title("loss" + (" (log axis)" if log_loss else ""), fontsize=11)
    if n == 3:
        axes["tail"].set_title(f"loss from step {tail_from:g} on (linear axis)", fontsize=11)
        axes["tail"].set_ylabel("loss")
    axes["acc"].set_title("accuracy", fontsize=11)
    axes["loss"].set_ylabel("loss")
    axes["acc"].set_ylabel("accuracy")
    for ax in axes.values():
        ax.set_xlabel("step" if hasattr(history, "batch") else
                      ("epoch" if isinstance(history, dict) and "epoch" in history else "step"))
        ax.grid(True, alpha=0.3)
        if ax.lines and ax is not axes.get("tail"):
            ax.legend(fontsize=8)
    return fig


def _after_last_spike(series):
    """The first x after the last loss value above 10x the median loss; None when the
    curve never comes back down (nothing to zoom on)."""
    xs, vs = [], []
    for x, v, key in series.values():
        if "acc" not in key:
            xs.append(np.asarray(x, float))
            vs.append(np.asarray(v, float))
    x, v = np.concatenate(xs), np.concatenate(vs)
    finite = np.isfinite(v)
    if finite.sum() < 2:
        return None
    high = ~finite | (v > 10 * np.median(np.abs(v[finite])))
    if not high.any():
        return None
    after = np.unique(x[~high & (x > x[high].max())])
    return float(after[0]) if after.size >= 2 else None      # a tail of one x: nothing to zoom


def _zoom_to_tail(ax, series, start, chance):
    """Limit ``ax`` to x >= start and to the loss values there (and the ln C line)."""
    vals = [np.asarray(v, float)[np.asarray(x, float) >= start]
            for x, v, key in series.values() if "acc" not in key]
    v = np.concatenate(vals)
    v = v[np.isfinite(v)]
    lo, hi = float(v.min()), float(v.max())
    if chance:
        lo, hi = min(lo, math.log(chance)), max(hi, math.log(chance))
    pad = (hi - lo) * 0.15 or abs(hi) * 1e-3 or 1e-3
    ax.set_ylim(lo - pad, hi + pad)
    xmax = max(float(np.max(np.asarray(x, float))) for x, _, _ in series.values())
    ax.set_xlim(start, xmax + (xmax - start) * 0.02)
    ax.ticklabel_format(axis="y", useOffset=False)


# --------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------
def save(fig, path, dpi=110):
    """Write ``fig`` to ``path`` (PNG unless the suffix says otherwise), atomically.

    The picture is written to a temporary file in the same folder and renamed
    over ``path`` only when complete (``os.replace``): a crash or a failed
    render leaves the old file intact and no temporary file behind.
    Missing folders are created.  Returns the path.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_write(path) as f:
        fig.savefig(f, format=ext, dpi=dpi, bbox_inches="tight")
    return path


__all__ = ["frozen_map", "filter_grid", "grad_norms", "update_ratios", "activation_histograms",
           "effective_width", "weight_rows", "training_curves", "save", "new_figure",
           "InlineFigure", "FROZEN_CAUSES"]


# --------------------------------------------------------------------------
# figures the lessons draw: comparisons of several runs (lessons 03, 05, 06),
# and the hand-drawn small network of lesson 00

from matplotlib.patches import Circle  # noqa: E402  (appended section; the top imports are shared)


def width_per_layer(runs, layers=None):
    """Effective width over steps: one panel per layer, one line per run.

    runs    {label: recorder} or {label: {layer: {"step": [...], "width": [...], "units": n}}}
    layers  which layers to draw (default: every layer of the first run)
    The y axis is logarithmic so that a width of 1 and a full width of hundreds are both
    visible; the dotted line is the layer's real size.  Two runs that both sit at width 1
    draw on top of each other, so each run gets its own marker.
    """
    runs = {label: getattr(r, "effective_width", r) for label, r in runs.items()}
    if not runs or not all(isinstance(r, dict) for r in runs.values()):
        raise TypeError("width_per_layer: expected {label: recorder or {layer: widths}}")
    first = next(iter(runs.values()))
    layers = [k for k in (layers or first) if any(k in r for r in runs.values())]
    if not layers:
        raise ValueError("width_per_layer: the runs recorded no effective width (the "
                         "recorder measures it for Dense layers followed by a Dense layer)")
    fig = new_figure(figsize=(4.6 * len(layers), 3.6), layout="constrained")
    markers = "os^vD<>"
    for j, layer in enumerate(layers):
        ax = fig.add_subplot(1, len(layers), j + 1)
        total = None
        for i, (label, data) in enumerate(runs.items()):
            if layer not in data:
                continue
            steps, widths, n = _width_entry(data[layer], layer)
            total = n or total
            # Runs at the same width overlap: staggered markers and dashes keep each visible.
            every = max(1, len(steps) // 6)
            ax.plot(steps, widths, ("-", "--", ":", "-.")[i % 4],
                    marker=markers[i % len(markers)], ms=6 - i % 3,
                    markevery=(min(i * max(1, every // 3), max(len(steps) - 1, 0)), every),
                    color=f"C{i % 10}", lw=1.8, label=f"{label}: {int(widths[-1]) if len(widths) else '?'}")
        if total:
            ax.axhline(total, color="0.3", ls=":", lw=1)
            ax.text(0.02, total * 1.15, f"layer size {total}", va="bottom", ha="left",
                    fontsize=8, color="0.3", transform=blended_transform_factory(
                        ax.transAxes, ax.transData))
        ax.set_yscale("log")
        ax.set_ylim(0.7, (total or 1) * 3)
        ax.set_xlabel("step")
        ax.set_ylabel("distinct units (log scale)")
        ax.set_title(f"layer {layer}" + (f" ({total} units)" if total else ""), fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, title="width at the end", title_fontsize=8, loc="center right")
    return fig


def spread_over_seeds(values, xlabel="test accuracy", title=None, ref=None, ref_label=None):
    """One row per setting, one dot per seed, a bar at the mean.

    values  {label: [one number per seed]}
    ref     an optional vertical reference line (for example 0.1 = guessing), with ref_label
    For comparing settings whose single runs are noisy: a reader sees the spread at once.
    """
    if not values:
        raise ValueError("spread_over_seeds: no settings to draw")
    labels = list(values)
    fig = new_figure(figsize=(7.5, 0.45 * len(labels) + 1.4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for i, label in enumerate(labels):
        v = np.asarray(_host(values[label], f"values[{label!r}]"), float).ravel()
        y = len(labels) - 1 - i
        ax.plot(v, np.full(v.size, y), "o", color=f"C{i % 10}", alpha=0.7, ms=6,
                label="one seed" if i == 0 else None)
        if v.size:
            ax.plot([v.mean()] * 2, [y - 0.3, y + 0.3], "-", color="k", lw=2,
                    label="mean" if i == 0 else None)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels[::-1])
    ax.set_ylim(-0.7, len(labels) - 0.3)
    if ref is not None:
        ax.axvline(ref, color="#c0392b", ls=":", lw=1, label=ref_label)
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def step_losses(losses, ref=None, ref_label=None, title=None, logy=True):
    """The loss of every step on a log axis (a spike and a plateau both readable).

    losses  {label: [loss per step]} or one list
    ref     a horizontal reference (for example ln 10, guessing among ten classes)
    Non-finite losses (a run that diverged) end the line; a red x marks where.
    """
    if not isinstance(losses, dict):
        losses = {"loss": losses}
    fig = new_figure(figsize=(8.5, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, values) in enumerate(losses.items()):
        v = np.asarray(_host(values, f"losses[{label!r}]"), float).ravel()
        steps = np.arange(1, v.size + 1)
        bad = ~np.isfinite(v)
        end = int(np.argmax(bad)) if bad.any() else v.size
        ax.plot(steps[:end], v[:end], "-", color=f"C{i % 10}", lw=1.2, label=label)
        if bad.any():
            y = v[:end][-1] if end else 1.0
            ax.plot([steps[end]], [y], "x", color="#c0392b", ms=10, mew=2,
                    label=f"{label}: loss not finite at step {end + 1}")
    if ref is not None:
        ax.axhline(ref, color="#c0392b", ls=":", lw=1, label=ref_label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss of the batch" + (" (log scale)" if logy else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # never over the data
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def dead_units_over_steps(runs, layer=None, title=None):
    """How many units of a layer are dead (zero on every sample of the step) over steps.

    runs   {label: recorder} (reads ``rec.layer_stats[layer]["step" | "dead_units"]``) or
           {label: (steps, counts)}
    layer  the layer name (default: the first layer the first recorder has stats for)
    title  what "dead" was measured on, when the counts are not a recorder's
    """
    if not runs:
        raise ValueError("dead_units_over_steps: no runs to draw")
    fig = new_figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, src) in enumerate(runs.items()):
        if isinstance(src, tuple):
            steps, counts = (np.asarray(a, float) for a in src)
        else:
            stats = src.layer_stats
            name = layer if layer is not None else next(
                k for k, v in stats.items() if "dead_units" in v)
            if name not in stats:
                raise KeyError(f"dead_units_over_steps: run {label!r} has no layer {name!r}; "
                               f"it has {sorted(stats)}")
            counts = np.asarray(stats[name]["dead_units"], float)
            steps = np.asarray(stats[name].get("step", np.arange(1, counts.size + 1)), float)
        ax.plot(steps, counts, "-", marker="os^vD"[i % 5], ms=3,
                markevery=max(1, len(steps) // 10), color=f"C{i % 10}", lw=1.5,
                label=f"{label}: {int(counts[-1]) if counts.size else '?'} at the end")
    ax.set_xlabel("step")
    ax.set_ylabel("dead units")
    ax.set_title(title or ("units never > 0 on any sample recorded so far"
                           + (f" (layer {layer})" if layer is not None else "")), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


__all__ += ["width_per_layer", "spread_over_seeds", "step_losses", "dead_units_over_steps"]


def network_gradients(z, h, grads, title=None):
    """A small Dense network n_in -> n_hidden -> 1 drawn as a graph, every edge labelled with
    its weight's gradient; exact zeros in red dashes, units with z <= 0 (dead) in red.

    z, h    the hidden pre-activations and activations of ONE sample, shape (n_hidden,) or
            (1, n_hidden)
    grads   {"W1": (n_in, n_hidden), "b1": (n_hidden,), "W2": (n_hidden, 1), "b2": (1,)}
    For lesson-sized networks (up to about 4 inputs and 4 hidden units); labels get crowded
    beyond that.
    """
    gW1 = np.asarray(_host(grads["W1"], "grads['W1']"), float)
    gb1 = np.ravel(_host(grads["b1"], "grads['b1']")).astype(float)
    gW2 = np.ravel(_host(grads["W2"], "grads['W2']")).astype(float)
    gb2 = np.ravel(_host(grads["b2"], "grads['b2']")).astype(float)
    z = np.ravel(_host(z, "z")).astype(float)
    h = np.ravel(_host(h, "h")).astype(float)
    if gW1.ndim != 2 or gW1.shape[1] != z.size or gW2.size != z.size or gb1.size != z.size:
        raise ValueError(f"network_gradients: expected W1 (n_in, n_hidden), b1 and W2 with "
                         f"n_hidden entries and z of n_hidden values; got W1 {gW1.shape}, "
                         f"b1 {gb1.shape}, W2 {gW2.shape}, z {z.shape}")
    n_in, n_hid = gW1.shape
    sub = "₀₁₂₃₄₅₆₇₈₉"
    top = 2.0 * max(n_in, n_hid, 2) / 2
    ys = lambda n: np.linspace(top, 0, n) if n > 1 else np.array([top / 2])
    pos = {f"x{sub[i]}": (0.0, y) for i, y in enumerate(ys(n_in))}
    pos.update({f"h{sub[j]}": (2.2, y) for j, y in enumerate(ys(n_hid))})
    pos["ŷ"] = (4.4, top / 2)
    red, ink, r = "#c0392b", "#333333", 0.22
    fig = new_figure(figsize=(9, 2.3 + 1.15 * max(n_in, n_hid)))
    ax = fig.add_subplot(1, 1, 1)

    def edge(p, q, g, where):
        (x0, y0), (x1, y1) = pos[p], pos[q]
        d = np.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / d, (y1 - y0) / d
        zero = g == 0
        ax.plot([x0 + r * ux, x1 - r * ux], [y0 + r * uy, y1 - r * uy], color=red if zero else ink,
                ls="--" if zero else "-", lw=2 if zero else 1.3, zorder=1)
        ax.text(x0 + (x1 - x0) * where, y0 + (y1 - y0) * where, f"{g:g}", ha="center",
                va="center", fontsize=11, color=red if zero else ink,
                fontweight="bold" if zero else "normal", zorder=3,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none"))

    for i in range(n_in):
        for j in range(n_hid):              # crossing edges get their label near the input
            edge(f"x{sub[i]}", f"h{sub[j]}", gW1[i, j], where=0.5 if i == j else 0.25)
    for j in range(n_hid):
        edge(f"h{sub[j]}", "ŷ", gW2[j], where=0.5)
    for name, (px, py) in pos.items():
        dead = name[0] == "h" and z[sub.index(name[1])] <= 0
        ax.add_patch(Circle((px, py), r, fc="#fde2e1" if dead else "#e8eef9",
                            ec=red if dead else "#4a6fa5", lw=2.2 if dead else 1.2, zorder=2))
        ax.text(px, py, name, ha="center", va="center", fontsize=13, zorder=3)
    for j in range(n_hid):
        px, py = pos[f"h{sub[j]}"]
        below = py < top / 2 or (n_hid == 1)
        ax.text(px, py + (-0.3 if below else 0.3),
                f"z = {z[j]:g},  h = {h[j]:g}\nbias grad {gb1[j]:g}", ha="center",
                va="top" if below else "bottom", fontsize=9.5, color=red if z[j] <= 0 else ink)
    ax.text(4.4, top / 2 + 0.3, f"bias grad {gb2[0]:g}", ha="center", va="bottom", fontsize=9.5)
    ax.text(1.1, top + 0.75, "W₁ (numbers: dL/dw)", ha="center", fontsize=10, color="#4a6fa5")
    ax.text(3.3, top + 0.75, "W₂", ha="center", fontsize=10, color="#4a6fa5")
    ax.set_xlim(-0.5, 4.9)
    ax.set_ylim(-0.9, top + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    return fig


__all__ += ["network_gradients"]
