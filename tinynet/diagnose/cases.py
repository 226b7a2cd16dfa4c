"""The four experiments, run and explained: what `tinynet explain` prints and draws.

Each ``run_*`` function trains one experiment from :mod:`tinynet.experiments`
on the given data, asks :func:`tinynet.diagnose.explain` (or the Recorder)
what froze and why, and returns a :class:`CaseResult`: the story as lines of
text, the measured numbers (so tests and lessons can assert on them) and the
figures to save.  Nothing here is hard-coded: every number in the story is
measured in the run.
"""
import time
from dataclasses import dataclass, field

import numpy as np

import tinynet as tn
from tinynet import init
from tinynet.data import DataLoader
from tinynet.diagnose.explain import analyze, explain
from tinynet.diagnose.recorder import Recorder
from tinynet.experiments import EXPERIMENTS, first_conv_cnn

CASES = ("zero-pixels", "constant-init", "zero-kernel", "tiny-updates")

#: Default optimizer steps per case: enough for the phenomenon to show, small
#: enough that `tinynet explain all` finishes in well under two minutes.
DEFAULT_STEPS = {"zero-pixels": 300, "constant-init": 120, "zero-kernel": 200,
                 "tiny-updates": 40}


@dataclass
class CaseResult:
    name: str
    title: str
    lines: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)   # file stem -> matplotlib Figure
    report: object = None
    seconds: float = 0.0

    def say(self, text=""):
        self.lines.append(text)

    def __str__(self):
        return "\n".join(self.lines)


def _row(values, n=6):
    return "[" + ", ".join(f"{v:+.5f}" for v in values[:n]) + (", ...]" if len(values) > n else "]")


def _report_lines(report):
    """The report's story, root causes first."""
    return str(report).splitlines()


def _start(name, device, seed, build=None):
    """The experiment, an empty result, a freshly seeded model on ``device`` and its optimizer."""
    exp = EXPERIMENTS[name]
    tn.manual_seed(seed)
    model = (build or exp.build)().to(device)
    return exp, CaseResult(exp.name, exp.title), model, exp.optimizer(model.parameters())


def run_zero_pixels(x, y, steps, device="cpu", seed=0, progress=None):
    """Keras-style MLP: rows of the first weight fed by always-zero pixels never move."""
    exp, res, model, opt = _start("zero-pixels", device, seed)
    first = model[0].weight
    before = first.numpy()
    loader = DataLoader(x.reshape(len(x), -1), y, batch_size=exp.batch_size, seed=seed,
                        device=device)
    report = explain(model, loader, optimizer=opt, steps=steps, progress=progress)
    after = first.numpy()
    res.report = report

    changed = after != before
    frozen_rows = ~changed.any(axis=1)
    # The recorder's data-wide mask: exact over every sample the shuffled loader served.
    zero_pixels = report.recorder.zero_input_features("0")
    row0_equal = bool(np.array_equal(before[0], after[0]))
    res.numbers = {
        "steps": steps, "frozen_rows": int(frozen_rows.sum()),
        "always_zero_pixels": int(zero_pixels.sum()),
        "frozen_rows_equal_zero_pixels": bool(np.array_equal(frozen_rows, zero_pixels)),
        "row0_unchanged": row0_equal,
        "entries_changed": int(changed.sum()), "entries": int(changed.size),
        "final_loss": float(report.loss[-1]) if report.loss else None,
    }
    n = res.numbers
    res.say(f"Model: 784-512-512-10 MLP, uniform(-0.05, 0.05) init, Dropout 0.2, "
            f"RMSprop(lr=1e-3), batch {exp.batch_size}, {steps} steps "
            f"(loss {n['final_loss']:.3f} at the end).")
    res.say("First row of the first weight (pixel 0, the top-left corner), first values:")
    res.say(f"  before {_row(before[0])}")
    res.say(f"  after  {_row(after[0])}   identical: {row0_equal}")
    res.say(f"Yet the matrix as a whole moved: {n['entries_changed']:,} of {n['entries']:,} "
            f"entries changed.")
    res.say(f"Rows that never changed: {n['frozen_rows']}.  Pixels that were 0 in every "
            f"image seen: {n['always_zero_pixels']}.  Same set: "
            f"{n['frozen_rows_equal_zero_pixels']}.")
    res.say("Why: the first layer's gradient is dW = xᵀδ, so row i is Σ_samples x_i·δ. "
            "A pixel that is 0 in every image makes row i exactly 0 in every step — "
            "no optimizer can move it, and no data of this kind ever will.")
    res.say()
    res.lines += _report_lines(report)
    from tinynet import plot
    res.figures["zero_pixels_frozen_map"] = plot.frozen_map(report)
    res.figures["zero_pixels_first_rows"] = plot.weight_rows(
        before, after, rows=(0, int(np.flatnonzero(~zero_pixels)[0])), max_cols=64)
    return res


def run_constant_init(x, y, steps, device="cpu", seed=0, progress=None, x_val=None, y_val=None):
    """All-ones MLP: every hidden unit stays identical, loss sits at ln 10."""
    from tinynet.train import fit
    import tinynet.nn.functional as F

    exp, res, model, opt = _start("constant-init", device, seed)
    xs = x.reshape(len(x), -1)
    steps_per_epoch = max(1, len(xs) // exp.batch_size)
    epochs = max(2, -(-steps // steps_per_epoch))
    loader = DataLoader(xs, y, batch_size=exp.batch_size, seed=seed, device=device,
                        drop_last=True)
    rec = Recorder(model, opt, every=max(1, steps // 40))
    val, val_note = _held_out(xs, x_val, y_val)
    from tinynet.ops import loss as loss_ops
    previous = loss_ops.get_on_nonfinite()
    loss_ops.set_on_nonfinite("warn")      # the first epoch's loss is huge; keep going as the original did
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = fit(model, F.softmax_cross_entropy, opt, loader, epochs=epochs,
                          val_data=val, callbacks=[rec], progress=progress,
                          max_steps=steps)
    finally:
        loss_ops.set_on_nonfinite(previous)
        rec.finalize()
        rec.detach()
    report = analyze(rec, loss=history.batch["loss"])
    res.report = report
    widths = {name: int(v["width"][-1]) for name, v in rec.effective_width.items()
              if len(v["width"])}
    sym = {f.param: (f.entries, f.total) for f in report.by_cause("symmetry")}
    ep = history.epoch
    res.numbers = {
        "steps": steps, "epoch_loss": [float(v) for v in ep["loss"]],
        "epoch_acc": [float(v) for v in ep["acc"]],
        "val_acc": [float(v) for v in ep.get("val_acc", [])],
        "symmetry": sym, "effective_width": widths,
    }
    full, rest = divmod(steps, steps_per_epoch)
    span = (f"{full} epoch{'s' if full != 1 else ''} of {steps_per_epoch} "
            f"step{'s' if steps_per_epoch != 1 else ''}")
    if rest:
        span += f" and {rest} step{'s' if rest != 1 else ''} of epoch {full + 1}"
    res.say(f"Model: 784-256-30-10 MLP, every weight 1, biases 0, SGD(lr=0.5), batch "
            f"{exp.batch_size}, {steps} steps ({span}).")
    if val_note:
        res.say(val_note)
    for i, loss in enumerate(ep["loss"]):
        va = f", held-out acc {ep['val_acc'][i]:.3f}" if ep.get("val_acc") else ""
        part = f" ({rest} of {steps_per_epoch} steps)" if rest and i == full else ""
        res.say(f"  epoch {i + 1}{part}: loss {loss:,.4f}, train acc {ep['acc'][i]:.3f}{va}")
    res.say(f"ln 10 = {np.log(10):.4f}: a loss there means the network predicts all ten "
            f"classes with equal probability.")
    for param, (k, total) in sym.items():
        res.say(f"{param}: {total} units behave as {k} (identical incoming and outgoing "
                f"weights, so identical gradients and identical updates).")
    res.say("Why: with equal weights every hidden unit computes the same value, receives "
            "the same gradient and applies the same update, so they stay equal forever: "
            "the layer acts as one unit.  Random initialization breaks the tie.")
    dead = [f for f in report.by_cause("dead_unit") if f.root is None]
    if dead:
        res.numbers["dead_units"] = {f.param: (f.entries, f.total) for f in dead}
    all_dead = sorted({f.layer or f.param for f in dead
                       if f.param.endswith("bias") and f.entries == f.total})
    if all_dead:
        res.say(f"Here every unit of layer {', '.join(all_dead)} also died: the large early "
                f"updates left its pre-activation <= 0 on every sample, so the output no longer "
                f"depends on the image and all the network can still learn is the class "
                f"frequencies: that is why the loss sits at ln 10 and the accuracy at one "
                f"class's share.")
    res.say()
    res.lines += _report_lines(report)
    from tinynet import plot
    res.figures["constant_init_curves"] = plot.training_curves(history, chance=10)
    if rec.effective_width:
        res.figures["constant_init_effective_width"] = plot.effective_width(rec)
    return res


def _held_out(x_train, x_val, y_val):
    """(val_data or None, note): the validation images that are NOT training images.

    "Held-out" accuracy on images the model trained on would be a false claim (the
    MNIST test split stands in for both when the training split is absent): images
    byte-identical to a training image are dropped, and the note says how many."""
    if x_val is None:
        return None, ""
    xv = np.ascontiguousarray(x_val.reshape(len(x_val), -1))
    seen = {row.tobytes() for row in np.ascontiguousarray(x_train)}
    keep = np.array([row.tobytes() not in seen for row in xv], dtype=bool)
    if not keep.any():
        return None, (f"No held-out accuracy: all {len(xv):,} validation images are also "
                      f"training images.")
    note = "" if keep.all() else (f"Held-out accuracy on the {int(keep.sum()):,} validation "
                                  f"images that are not training images ({int((~keep).sum()):,} "
                                  f"of {len(xv):,} were, and are left out).")
    return (xv[keep], np.asarray(y_val)[keep]), note


def run_zero_kernel(x, y, steps, device="cpu", seed=0, progress=None):
    """Four-conv CNN with a zero middle kernel: only the last bias moves."""
    exp, res, model, opt = _start("zero-kernel", device, seed)
    xb, yb = x[:exp.batch_size].reshape(-1, 1, 28, 28), y[:exp.batch_size]
    before = {n: p.numpy() for n, p in model.named_parameters()}
    trace = tn.diagnose.trace_step(model, xb, yb)
    report = explain(model, (xb, yb), optimizer=opt, steps=steps, progress=progress)
    res.report = report
    moved = [n for n, p in model.named_parameters() if not np.array_equal(p.numpy(), before[n])]
    with tn.no_grad():
        logits = model(tn.tensor(xb, device=device))
    acc = float((logits.numpy().argmax(1) == yb).mean())
    majority = float(np.bincount(yb, minlength=10).max() / len(yb))
    res.numbers = {"steps": steps, "moved": moved, "train_acc": acc,
                   "majority_share": majority,
                   "first_zero": str(getattr(trace.first_zero, "op", None))}
    res.say(f"Model: conv3x3 1->32, pool, conv3x3 32->32 with ZERO kernel and bias, two more "
            f"conv3x3 32->32, Dense 6272->128->10; SGD(lr=1e-4); one fixed batch of "
            f"{len(yb)} images, {steps} steps.")
    res.say(f"Parameters that moved: {', '.join(moved) or 'none'} "
            f"(of {len(before)}).")
    res.say(f"Train accuracy on the batch: {acc:.2f}; share of its most frequent class: "
            f"{majority:.2f} — the network can only learn the class frequencies, through "
            f"the last bias.")
    res.say("One step, op by op (tn.diagnose.trace_step):")
    story = str(trace).splitlines()
    res.lines += ["  " + line for line in story[-12:]]
    res.say("Why: the zero conv outputs 0 everywhere, so every layer after it sees a zero "
            "input (dW = xᵀδ = 0) and, with zero biases, outputs 0 too; ReLU'(0) = 0 and the "
            "zero kernel itself stop the gradient on its way back, so nothing before it "
            "learns.  Only the last bias, whose gradient is softmax − onehot, moves.")
    res.say()
    res.lines += _report_lines(report)
    from tinynet import plot
    res.figures["zero_kernel_gradient_flow"] = trace.draw()
    conv0 = model[0].weight.numpy()
    res.figures["zero_kernel_first_conv_filters"] = plot.filter_grid(before["0.weight"], conv0)
    return res


def run_tiny_updates(x, y, steps, device="cpu", seed=0, progress=None):
    """normal(0, 1) CNN under Adam: the first conv moves, but too little to see."""
    xs = x.reshape(-1, 1, 28, 28)
    ratios = {}
    reports = {}
    filters = {}
    he_cnn = lambda: first_conv_cnn(kernel_init=init.he_normal, bias_init=init.zeros)  # noqa: E731
    for label, build in (("normal(0, 1)", None), ("he_normal", he_cnn)):
        exp, run_res, model, opt = _start("tiny-updates", device, seed, build)
        if label == "normal(0, 1)":
            res = run_res
        w0 = model[0].weight.numpy()
        loader = DataLoader(xs, y, batch_size=exp.batch_size, seed=seed, device=device)
        report = explain(model, loader, optimizer=opt, steps=steps, progress=progress,
                         every=4)
        w1 = model[0].weight.numpy()
        reports[label] = report
        filters[label] = (w0, w1)
        ratios[label] = float(np.linalg.norm(w1 - w0) / np.linalg.norm(w0))
        hist = report.recorder.history if report.recorder is not None else {}
        if "0.weight" in hist:
            res.numbers.setdefault("median_update_ratio", {})[label] = float(
                np.median(hist["0.weight"]["update_ratio"]))
    res.report = reports["normal(0, 1)"]
    tiny = [f.param for f in res.report.by_cause("tiny_update")]
    vanishing = [f.param for f in res.report.by_cause("vanishing_gradient")]
    w0, w1 = filters["normal(0, 1)"]

    def grey(w):                      # the article's picture: min..max -> 256 grey levels
        return np.round((w - w.min()) / (w.max() - w.min()) * 255).astype(np.int64)
    levels = np.abs(grey(w1) - grey(w0))
    res.numbers.update({"steps": steps, "relative_change": ratios, "tiny_update": tiny,
                        "vanishing_gradient": vanishing,
                        "entries_changed": int((w0 != w1).sum()), "entries": int(w0.size),
                        "grey_levels_changed_max": int(levels.max()),
                        "grey_pixels_changed": int((levels > 0).sum())})
    res.say(f"Model: conv5x5 1->32, pool, conv5x5 32->64, pool, Dense 3136->1024->10 with "
            f"every weight and bias from normal(0, 1); Adam(lr=1e-3), batch "
            f"{exp.batch_size}, {steps} steps.")
    res.say(f"First conv: {res.numbers['entries_changed']} of {w0.size} weights changed — it "
            f"is NOT frozen; ‖ΔW‖/‖W‖ after {steps} steps = "
            f"{ratios['normal(0, 1)']:.2e}.")
    med = res.numbers.get("median_update_ratio", {})
    if med:
        res.say("Median per-step update-to-weight ratio of the first conv: " + ", ".join(
            f"{k}: {v:.1e}" for k, v in med.items()) + " (about 1e-3 is the usual healthy "
            "value).")
    res.say(f"With he_normal instead, ‖ΔW‖/‖W‖ = {ratios['he_normal']:.2e}: "
            f"{ratios['he_normal'] / max(ratios['normal(0, 1)'], 1e-30):.0f}× larger.")
    res.say("Why it looks frozen: Adam moves each weight by at most about lr = 1e-3 per step, "
            "while normal(0, 1) weights are about 1 in size; the filter picture, stretched to "
            f"its min and max, changes by at most {int(levels.max())} of 256 grey levels "
            f"(in {int((levels > 0).sum())} of {levels.size} pixels).  Vanishing gradients "
            f"({'found' if vanishing else 'not found'} here) cannot explain it: Adam's step "
            "does not depend on the gradient's scale.  A scaled init (He/Glorot) fixes it.")
    res.say()
    res.lines += _report_lines(res.report)
    from tinynet import plot
    res.figures["tiny_updates_filters_minmax"] = plot.filter_grid(w0, w1, scale="minmax")
    res.figures["tiny_updates_filters_own_scale"] = plot.filter_grid(w0, w1)
    if res.report.recorder is not None:
        res.figures["tiny_updates_update_ratios"] = plot.update_ratios(res.report.recorder)
    return res


RUNNERS = {"zero-pixels": run_zero_pixels, "constant-init": run_constant_init,
           "zero-kernel": run_zero_kernel, "tiny-updates": run_tiny_updates}


def run_case(name, x, y, steps=None, device="cpu", seed=0, progress=None, **extra):
    """Run one case by name; returns its CaseResult (with ``seconds`` measured)."""
    if name not in RUNNERS:
        raise ValueError(f"unknown case {name!r}; choose one of {', '.join(CASES)} or 'all'")
    start = time.perf_counter()
    steps = DEFAULT_STEPS[name] if steps is None else steps
    res = RUNNERS[name](x, y, steps, device=device, seed=seed, progress=progress, **extra)
    res.seconds = time.perf_counter() - start
    return res
