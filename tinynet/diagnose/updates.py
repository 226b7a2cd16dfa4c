"""Slow, not frozen: tiny updates and vanishing gradients.

Both look at weight parameters (ndim >= 2) that DID change, using the
recorder's per-step numbers: the update-to-weight ratio ‖ΔW‖/‖W‖ of the last
step at each recorded step, and the gradient RMS ‖g‖/√size.  Medians over
the recorded steps are used, so one odd step does not decide.

tiny_update -- what we measured: the median over the recorded steps of the
per-step update ratio, digits from ``tinynet.data.digits``.

  tinynet, seed-001 CNN (``experiments.first_conv_cnn``: conv5x5 1->32, conv5x5
  32->64, Dense 3136->1024, Dropout 0.25, Dense 1024->10), Adam 1e-3, batch 64,
  30 steps, every step recorded:
    normal(0, 1) init (the seed's):  5.2e-4, 4.3e-4, 3.3e-4, 3.3e-4
        (gradient rms 3.4e2, 43, 6.2, 1.1e2: large, growing toward the input)
    He init:                         1.1e-3, 5.3e-3, 6.5e-3, 5.4e-3
  tinynet, seed-000 MLP (784-512-512-10), 60 steps, batch 128:
    uniform(-0.05, 0.05) + RMSprop 1e-3 (the seed's): 2.7e-2, 3.1e-2, 2.7e-2
    He init + Adam 1e-3:                            4.0e-3, 4.0e-3, 3.9e-3
  the same networks in PyTorch, for the longer runs (batch 64 unless noted):
    seed-001 CNN, normal(0, 1), Adam 1e-3: 2.6e-4 .. 3.6e-4 over 40 steps, falling
      to 1.1e-4 .. 1.9e-4 by step 150 (batch 32 and 128)
    seed-001 CNN, He, Adam 1e-3: 1.4e-3 (conv1) .. 7.6e-3 over 40 steps; 3.6e-4 ..
      1.4e-3 by step 150 once the loss is 0.005 (converged)
    MLP 784-512-512-10, He: Adam 1e-3 3.5e-3..3.8e-3; SGD 0.1 3.5e-3..2.4e-2;
      SGD 0.01 2.9e-4..2.0e-3; SGD 0.001 3.0e-5..2.0e-4 (a too-small lr)

So the ratio alone does not separate "bad init under Adam" from "healthy but
slow SGD" (both ~3e-4), nor from a converged He network late in training.
What does separate them is Adam's bounded step: Adam (and RMSprop) move
each entry by about lr per step whatever the gradient, so the best ratio a
layer can reach is about lr / rms(W).  normal(0, 1) weights give
1e-3 / 1.0 = 1e-3 for every layer; He init gives 3.5e-3 for the 5x5 conv on
one channel (the smallest fan-in, rms 0.28) and 0.02..0.04 for the rest.
The rule (a weight is flagged if its median ratio is below TINY_RATIO and)

    (a) adaptive optimizer and lr / rms(W) < ADAPTIVE_CEILING (2e-3): the
        weights are too large for the step Adam takes -- the seed-001 case
        (1e-3 vs 3.5e-3 for the tightest He layer);
    (b) or the ratio is below ABSOLUTE_TINY (1e-4), any optimizer: an order
        of magnitude under the usual 1e-3 (SGD lr 0.001: 3e-5; healthy SGD 0.01: 3e-4);
    (c) or it is RELATIVE_FACTOR (30) times below the median of the other weight
        layers (healthy networks measured at most 7x apart).

vanishing_gradient -- the gradient RMS of a weight is below VANISH_FACTOR
(1e-3) times the last weight layer's and below the next layer's (it shrinks
toward the input), in a chain of at least three weight layers.  Healthy
networks measured: at most 30x below the last layer (the 3136->1024 Dense of
the He CNN: 7e-4 vs 1.8e-2 in PyTorch, 5.2e-4 vs 1.0e-2 in tinynet).  Seed
001's CNN is the opposite of vanishing: its first conv's gradient RMS (3.4e2
in tinynet) is larger than the last layer's (1.1e2).
A layer that is both slow and vanishing gets one finding, vanishing_gradient.
"""
import numpy as np

from tinynet.diagnose.findings import Finding

TINY_RATIO = 1e-3
ADAPTIVE_CEILING = 2e-3
ABSOLUTE_TINY = 1e-4
RELATIVE_FACTOR = 30.0
VANISH_FACTOR = 1e-3
MIN_CHAIN = 3

ADAPTIVE = ("Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam")


def optimizer_info(opt):
    """(class name or None, lr or None, adaptive: bool)."""
    if opt is None:
        return None, None, False
    kind = type(opt).__name__
    lr = getattr(opt, "lr", None)
    lr = float(lr) if isinstance(lr, (int, float)) else None
    adaptive = kind in ADAPTIVE or hasattr(opt, "betas") or hasattr(opt, "rho")
    return kind, lr, adaptive


#: Slow is judged on steps that moved: a weight whose update (or gradient) was
#: exactly 0 on more than half of the recorded steps is stuck, not slow -- that
#: is for the freeze / dead-unit findings.
MIN_MOVING_SHARE = 0.5


def _median_of_positive(values):
    """Median of the positive finite values, if they are at least MIN_MOVING_SHARE of all."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    pos = v[np.isfinite(v) & (v > 0)]
    if not v.size or pos.size < MIN_MOVING_SHARE * v.size:
        return None
    return float(np.median(pos))


def _finite_max(values):
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else None


def _weights_in_order(ev):
    """Weight parameters (ndim >= 2) that moved, layers in forward order first."""
    names = [L.weight for L in ev.param_layers()]
    names += [n for n, p in ev.params.items() if len(p.shape) >= 2 and n not in names]
    return [n for n in names if not ev.params[n].frozen.all()]


def update_findings(ev):
    """[Finding] for tiny_update and vanishing_gradient."""
    kind, lr, adaptive = optimizer_info(ev.optimizer)
    stats = {}
    for name in _weights_in_order(ev):
        p = ev.params[name]
        h = p.history
        if not len(h.get("step", ())):
            continue
        wn = h["weight_norm"]
        ratio = _median_of_positive(np.where(wn > 0, h["update_ratio"], np.nan))
        grad = _median_of_positive(h["grad_rms"])
        rms = float(np.sqrt(np.mean(np.square(p.final, dtype=np.float64))))
        w0 = float(np.linalg.norm(p.initial.astype(np.float64)))
        rel = float(np.linalg.norm((p.final - p.initial).astype(np.float64)) / w0) if w0 else None
        stats[name] = {"ratio": ratio, "grad": grad, "rms": rms, "recorded": int(len(h["step"])),
                       "ratio_max": _finite_max(h["update_ratio"]),
                       "relative_change": rel}
    order = [n for n in stats]
    grads = [stats[n]["grad"] for n in order]
    last_grad = grads[-1] if grads else None

    vanishing = set()
    if len(order) >= MIN_CHAIN and last_grad:
        for i, name in enumerate(order[:-1]):
            g, g_next = grads[i], grads[i + 1]
            if g is not None and g_next is not None and g < VANISH_FACTOR * last_grad \
                    and g < g_next:
                vanishing.add(name)

    findings = []
    for name in order:
        s = stats[name]
        ratio = s["ratio"]
        others = [stats[o]["ratio"] for o in order if o != name and stats[o]["ratio"] is not None]
        others_med = float(np.median(others)) if others else None
        ceiling = lr / s["rms"] if lr and s["rms"] > 0 else None
        rule = None
        if ratio is not None and ratio < TINY_RATIO:
            if adaptive and ceiling is not None and ceiling < ADAPTIVE_CEILING:
                rule = "adaptive_ceiling"
            elif ratio < ABSOLUTE_TINY:
                rule = "absolute"
            elif others_med and ratio < others_med / RELATIVE_FACTOR:
                rule = "relative"
        if rule is None and name not in vanishing:
            continue
        p = ev.params[name]
        moving = ~p.frozen
        ev_ = {"update_ratio_median": ratio, "update_ratio_max": s["ratio_max"],
               "recorded_steps": s["recorded"], "steps": p.steps, "weight_rms": s["rms"],
               "relative_change": s["relative_change"], "grad_rms": s["grad"],
               "grad_rms_last_layer": last_grad,
               "grad_rms_vs_last_layer": (s["grad"] / last_grad) if s["grad"] and last_grad
               else None,
               "other_layers_update_ratio_median": others_med,
               "optimizer": kind, "lr": lr, "lr_over_weight_rms": ceiling, "rule": rule,
               # the whole chain, input side first: is the gradient really vanishing?
               "grad_rms_by_layer": {o: stats[o]["grad"] for o in order}}
        if name in vanishing:
            cause = "vanishing_gradient"
            fix = ("Keep the gradient's scale through depth: He init for ReLU layers (init."
                   "he_normal), or normalization / residual connections; with SGD a larger lr "
                   "only hides it.")
        else:
            cause = "tiny_update"
            if rule == "adaptive_ceiling":
                fix = (f"Scale the initial weights to the layer (init.he_normal for ReLU): {kind} "
                       f"moves each weight by about lr = {lr:g} per step, so weights of rms "
                       f"{s['rms']:.3g} need ~{s['rms'] / lr:,.0f} steps to move by their own "
                       f"size; or raise the learning rate.")
            else:
                fix = ("Raise the learning rate (an update-to-weight ratio around 1e-3 per step "
                       "is typical), or check this layer's initial scale.")
        findings.append(Finding(param=name, cause=cause, entries=int(moving.sum()),
                                total=int(moving.size), permanent=False, evidence=ev_,
                                mask=moving, fix=fix, layer=p.layer))
    return findings
