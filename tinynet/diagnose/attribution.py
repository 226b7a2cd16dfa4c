"""The exact attribution of frozen entries: the detection behind the freeze causes.

(The causes themselves -- name, story, fix -- are registered one module each in
:mod:`tinynet.diagnose.causes`; this is the shared pass that gives every
frozen entry exactly one of them.)

An entry is *frozen* when it is bit-identical to its initial value after
training (the recorder's changed mask).  For a Dense weight W (IN, OUT) the
gradient is dW = Aᵀ·Δ -- A (N, IN) the layer's input, Δ (N, OUT) the
gradient at its output -- and a conv weight (O, C, KH, KW) is the same after
im2col.  So entry (feature f, unit u) gets an exactly-zero gradient on every
step when

    zero_input          feature f of A was 0 on every sample seen
                        (always-black pixels; or upstream units that output 0)
    dead_unit           unit u's pre-activation was <= 0 on every sample, so the
                        ReLU after it passed no gradient (relu'(z) = 0 for z <= 0)
    blocked_downstream  unit u got no gradient although its ReLU was open: the
                        layer after it has zero weights or no gradient itself
    zero_weights        the layer's whole weight (and bias) is 0: it outputs 0,
                        blocks the gradient on both sides -- the root of the
                        zero-kernel case
    frozen_by_user      requires_grad=False: frozen on purpose
    not_in_optimizer    the optimizer never sees the parameter
    graph_cut           the layer ran, but backward never reached it (.detach(), no_grad)
    no_gradient         .grad stayed None: the loss does not depend on it
    zero_lr             the learning rate was 0 on every step it had a gradient
    below_resolution    the gradient was NOT 0, but the update rounded away (w - u == w)

Each frozen entry gets exactly one cause, checked in this order: frozen by
the user, not in the optimizer, graph cut, no gradient, zero lr, zero
weights, zero input, then (per unit) dead unit / blocked downstream, and
last, below resolution.  Consequences carry ``root`` and ``root_cause``: the
parameter and cause of the root finding that explains them (everything in
the zero-kernel network points to the zero conv's weight).

Units can also die DURING training (a big step pushes every pre-activation
below 0 -- the all-ones network after its second update): their weights
moved, then stopped.  :func:`stalled_pass` runs the same attribution on
the entries that changed early but not in the last part of training, with
the "since step t0" versions of the evidence, and keeps the dead units and
what they cause (``Finding.since`` = the first step of that window).

Frozen entries that none of these explain are counted in ``unexplained``:
the input feature and the unit's gradient were never nonzero on the same
sample, or the contributions to dW cancelled exactly (telling these two apart
would need (A²)ᵀ(Δ²) every step, as expensive as the weight gradient itself;
the report gives how rare the two factors were instead), or a nonzero
gradient whose rounding could not be checked (no optimizer state).
"""
import numpy as np

from tinynet.diagnose.findings import Finding

from tinynet.diagnose.causes import (below_resolution, blocked_downstream, dead_unit,
                                     frozen_by_user, graph_cut, no_gradient, not_in_optimizer,
                                     zero_input, zero_lr, zero_weights)


#: A unit counts as having died during training when it stayed shut for at
#: least this many steps and this share of the training, and most of its
#: entries (STALL_MIN_ENTRIES) stopped changing too -- under Adam a dead unit's
#: weights keep drifting on their momentum, and those are not frozen.
STALL_MIN_STEPS = 5
STALL_MIN_SHARE = 0.25
STALL_MIN_ENTRIES = 0.5


def frozen_pass(ev):
    """(findings, covered, unexplained) for the evidence ``ev`` (see :mod:`.evidence`).

    covered: {param: bool mask of the frozen entries given a cause}.
    unexplained: {param: {"entries": n, "grad_nonzero": m}} for frozen entries left over.
    """
    a = _Attribution(ev, {n: p.frozen for n, p in ev.params.items()}, t0=0)
    a.whole_parameters()
    for layer in ev.param_layers():
        a.layer(layer)
    a.resolve_roots()
    a.below_resolution()
    return a.findings, a.covered, a.unexplained()


def stalled_pass(ev):
    """[Finding] for units that died during training and what stopped because of them.

    The window is the last ``max(STALL_MIN_STEPS, STALL_MIN_SHARE * steps)`` steps:
    entries that changed before it and not in it, explained with evidence
    restricted to it (a unit > 0 on no sample of the window, ...).
    """
    window = max(STALL_MIN_STEPS, int(np.ceil(STALL_MIN_SHARE * ev.steps)))
    t0 = ev.steps - window
    if t0 < 1:
        return []
    stalled = {n: (p.last_change > 0) & (p.last_change <= t0) for n, p in ev.params.items()}
    if not any(m.any() for m in stalled.values()):
        return []
    a = _Attribution(ev, stalled, t0=t0)
    for layer in ev.param_layers():
        if not a.is_zero_layer(layer):
            a.layer(layer)
    a.resolve_roots()
    keep = [f for f in a.findings if f.cause == "dead_unit" and f.root is None]
    keep += [f for f in a.findings if f.root is not None and f.root_cause == "dead_unit"]
    for f in keep:
        f.since = t0 + 1
    return keep


class _Attribution:
    """Assign causes to the entries in ``targets`` ({param: bool mask}), using the
    evidence over the steps after ``t0`` (0: all of training)."""

    def __init__(self, ev, targets, t0=0):
        self.ev, self.targets, self.t0 = ev, targets, t0
        self.findings = []
        self.covered = {n: np.zeros(p.shape, dtype=bool) for n, p in ev.params.items()}

    def add(self, finding, mask):
        self.findings.append(finding)
        self.covered[finding.param] |= mask

    def remaining(self, name):
        return self.targets[name] & ~self.covered[name]

    # ---- whole parameters: frozen by the user, never given, cut off, lr 0 ---
    def whole_parameters(self):
        from tinynet.diagnose.updates import optimizer_info
        kind = optimizer_info(self.ev.optimizer)[0]
        lr_zero = set(self.ev.lr_zero_steps)
        for name, p in self.ev.params.items():
            frozen = self.remaining(name)
            if not frozen.any():
                continue
            common = dict(param=name, entries=int(frozen.sum()), total=p.size, permanent=True,
                          mask=frozen, layer=p.layer)
            if not p.requires_grad:
                self.add(Finding(cause="frozen_by_user", fix=frozen_by_user.fix(name, kind),
                                 evidence={"requires_grad": False,
                                           "in_optimizer": p.in_optimizer}, **common), frozen)
            elif p.in_optimizer is False:
                opt = self.ev.optimizer
                self.add(Finding(cause="not_in_optimizer", fix=not_in_optimizer.fix(name, kind),
                                 evidence={
                                     "in_optimizer": False, "requires_grad": p.requires_grad,
                                     "optimizer_parameters": len(getattr(opt, "params", [])),
                                     "model_parameters": len(self.ev.params)}, **common), frozen)
            elif p.steps > 0 and p.grad_missing == p.steps:
                ev = {"steps": p.steps, "steps_without_gradient": p.grad_missing}
                if p.opt_skipped is not None:
                    ev["optimizer_skipped"] = p.opt_skipped
                L = self.ev.layers.get(p.layer) if p.layer is not None else None
                how = None
                if L is not None and L.samples and not L.grad_seen and \
                        L.kind in ("dense", "conv"):
                    how = "detach"             # ran with gradients on; nothing came back
                    ev.update(samples_seen=L.samples, backward_passes=0)
                    ev.update(graph_cut.locate(self.ev, p.layer))
                elif L is not None and not L.samples and L.nograd_forwards:
                    how = "no_grad"            # ran, but only with gradients off
                    ev["nograd_forwards"] = L.nograd_forwards
                if how is not None:
                    ev["how"] = how
                    self.add(Finding(cause="graph_cut", fix=graph_cut.fix(p.layer, how, ev),
                                     evidence=ev, **common), frozen)
                else:
                    self.add(Finding(cause="no_gradient", fix=no_gradient.fix(name),
                                     evidence=ev, **common), frozen)
            elif lr_zero and p.steps > 0 and self.t0 == 0 and len(lr_zero) >= p.steps:
                # the lr was 0 on every step: whatever the gradient, every update was 0
                steps = sorted(lr_zero)
                self.add(Finding(cause="zero_lr", fix=zero_lr.fix(kind), evidence={
                    "optimizer": kind, "lr_zero_steps": steps, "steps": p.steps,
                    "steps_without_gradient": p.grad_missing}, **common), frozen)

    def below_resolution(self):
        """Frozen entries left over whose last update was nonzero but rounded away."""
        from tinynet.diagnose.updates import optimizer_info
        kind = optimizer_info(self.ev.optimizer)[0]
        for name, p in self.ev.params.items():
            rem = self.remaining(name)
            if not rem.any() or p.last_update is None:
                continue
            u, w = p.last_update, p.final
            lost = rem & (u != 0) & ((w - u) == w)
            if not lost.any():
                continue
            spacing = np.spacing(np.abs(w[lost]))
            um = np.abs(u[lost])
            scattered = below_resolution.is_scattered(int(lost.sum()), p.size,
                                                      int(p.frozen.sum()))
            self.add(Finding(param=name, cause="below_resolution", entries=int(lost.sum()),
                             total=p.size, permanent=False, mask=lost, layer=p.layer,
                             fix=below_resolution.fix(scattered), evidence={
                                 "scattered": scattered,
                                 "optimizer": kind, "update_max": float(um.max()),
                                 "spacing_min": float(spacing.min()),
                                 "update_over_spacing_max": float((um / spacing).max()),
                                 "dtype": str(w.dtype), "checked_at_step": p.steps}), lost)

    # ---- Dense / Conv2D layers ------------------------------------------------
    def is_zero_layer(self, L):
        """The layer's weight (and bias) are all 0 and stayed 0: it outputs exactly 0."""
        w = self.ev.params[L.weight]
        if w.initial.any() or not w.frozen.all():
            return False
        if L.bias is not None:
            b = self.ev.params[L.bias]
            if b.initial.any() or not b.frozen.all():
                return False
        elif getattr(L.module, "bias", None) is not None:
            return False           # a bias we do not record: cannot say the output is 0
        return True

    def layer(self, L):
        W = self.ev.params[L.weight]
        if self.is_zero_layer(L):
            self.zero_layer(L)
            return
        rem = self.remaining(L.weight)
        zf = L.zero_features(self.t0)
        if zf is not None and zf.any() and rem.any():
            self.zero_input(L, W, rem, zf)
        ng = L.no_grad(self.t0)
        for name in (L.weight, L.bias):
            if name is None:
                continue
            rem = self.remaining(name)
            if rem.any() and ng is not None and ng.any():
                self.no_gradient_at_output(L, name, rem, ng)

    def zero_layer(self, L):
        W = self.ev.params[L.weight]
        out_max = 0.0
        if L.unit_max is not None:
            out_max = float(L.unit_max.max())
        ev = {"weight": L.weight, "weight_entries": W.size,
              "nonzero_weights": int(np.count_nonzero(W.final)),
              "samples_seen": L.samples, "max_output": out_max,
              "feeds_relu": L.feeds_relu}
        if L.bias is not None:
            B = self.ev.params[L.bias]
            ev["bias_entries"] = B.size
            ev["nonzero_biases"] = int(np.count_nonzero(B.final))
        if L.grad_seen:
            ev["backward_passes"] = L.grad_seen
            ev["units_with_gradient"] = int(L.grad_nonzero.sum())
        fix = zero_weights.fix(L.weight)
        for name, root in ((L.weight, None), (L.bias, (L.weight, "zero_weights"))):
            if name is None:
                continue
            rem = self.remaining(name)
            if rem.any():
                self.add(Finding(param=name, cause="zero_weights", entries=int(rem.sum()),
                                 total=self.ev.params[name].size, permanent=True,
                                 evidence=dict(ev), mask=rem, fix=fix, layer=L.name,
                                 **_root_fields(root)), rem)

    def zero_input(self, L, W, rem, zf):
        feats = np.flatnonzero(zf)
        by_root = {}
        for f in feats:
            by_root.setdefault(self.root_of_input(L, int(f)), []).append(int(f))
        axis = L.feature_axis
        for root, fs in by_root.items():
            fs = np.asarray(fs, dtype=np.int64)
            sel = _along(np.isin(np.arange(zf.size), fs), axis, W.shape)
            mask = rem & sel
            if not mask.any() or self.too_few_stalled(mask, sel, W):
                continue
            # name exactly the features that have entries in the mask
            other = tuple(a for a in range(len(W.shape)) if a != axis)
            fs = fs[mask.any(axis=other)[fs]]
            sel = _along(np.isin(np.arange(zf.size), fs), axis, W.shape)
            mask = rem & sel
            ev = {"samples_seen": L.samples_since(self.t0),
                  "samples_with_feature_nonzero":
                      0 if self.t0 else int(L.feature_count[fs].max()),
                  "features": int(fs.size), "features_total": int(zf.size),
                  "feature_kind": self.feature_kind(L),
                  "source": "the data" if L.upstream is None else L.upstream}
            from_data = root is None and L.upstream is None
            proven = False
            if from_data:
                # permanent only if zero in EVERY sample of the data set, not just those seen
                data = self.ev.data or {}
                whole = (data.get("zero_features") or {}).get(L.name)
                proven = bool(data.get("all_seen")) or (whole is not None and
                                                        bool(whole[fs].all()))
                ev["data_samples"] = data.get("samples")
                ev["zero_in_whole_data"] = proven
                if data.get("passes"):
                    ev["data_passes"] = data["passes"]
                if whole is not None and not proven:
                    ev["nonzero_elsewhere"] = int((~whole[fs]).sum())
                fix = zero_input.fix(True, proven=proven)
            elif root is None:
                fix = zero_input.fix(False, source=L.upstream)
            else:
                fix = zero_input.fix(False, root=root[0])
            self.add(Finding(param=L.weight, cause="zero_input", entries=int(mask.sum()),
                             total=W.size, permanent=from_data and proven, evidence=ev,
                             mask=mask,
                             indices=fs, layer=L.name, fix=fix,
                             index_kind="input channel" if L.kind == "conv" else "input feature",
                             **_root_fields(root)), mask)

    def no_gradient_at_output(self, L, name, rem, ng):
        P = self.ev.params[name]
        axis = L.unit_axis if name == L.weight else 0
        dead = L.dead(self.t0)
        groups = {}
        for u in np.flatnonzero(ng):
            u = int(u)
            if dead is not None and dead[u]:
                key = ("dead_unit", self.root_of_dead(L, u))
            else:
                key = ("blocked_downstream", self.root_of_blocked(L, frozenset()))
            groups.setdefault(key, []).append(u)
        for (cause, root), units in groups.items():
            units = np.asarray(units, dtype=np.int64)
            sel = _along(np.isin(np.arange(ng.size), units), axis, P.shape)
            mask = rem & sel
            if not mask.any():
                continue
            # the units named are exactly those with entries in the mask: one list for
            # .indices, evidence["units"], the story and the mask
            other = tuple(a for a in range(len(P.shape)) if a != axis)
            per_unit = mask.sum(axis=other) if other else mask.astype(np.int64)
            keep = per_unit[units] > 0
            if self.t0:
                keep &= self.stalled_units(L, units)
            units = units[keep]
            if not units.size:
                continue
            sel = _along(np.isin(np.arange(ng.size), units), axis, P.shape)
            mask = rem & sel
            ev = {"samples_seen": L.samples_since(self.t0), "units": int(units.size),
                  "units_total": int(ng.size),
                  "backward_passes": sum(1 for s, _ in L.batches if s > self.t0)
                  if self.t0 else L.grad_seen,
                  "units_with_gradient": 0}
            if self.t0:
                ev["since_step"] = self.t0 + 1
            if cause == "dead_unit":
                if self.t0:
                    # the last step each unit was open: first and last of them (and the
                    # last alone, the key lessons read)
                    ev["died_after_steps"] = [int(L.last_open[units].min()),
                                              int(L.last_open[units].max())]
                    ev["died_after_step"] = ev["died_after_steps"][1]
                    ev["last_change_step"] = int(P.last_change[mask].max())
                else:
                    ev["max_preactivation"] = float(L.unit_max[units].max())
                ev["preactivation_exactly_zero"] = bool(L.exact_zero(self.t0)[units].all())
                zf = L.zero_features(self.t0)
                ev["input_all_zero"] = bool(zf is not None and zf.all())
                if root is None:
                    # Never changed + input is the data: every sample seen leaves it shut,
                    # and its weights cannot change, so those samples never open it again.
                    # A unit that died DURING training was tested on the earlier samples
                    # with other weights: one of them may open it again -- not permanent.
                    # proven only when EVERY sample of the data set went through it (with
                    # these same, never-changed weights) and found it shut
                    all_seen = bool((self.ev.data or {}).get("all_seen"))
                    fix = dead_unit.fix()
                    permanent = L.upstream is None and not self.t0 and all_seen
                    ev["data_samples"] = (self.ev.data or {}).get("samples")
                    ev["all_data_seen"] = all_seen
                    ev["input"] = "the data" if L.upstream is None else L.upstream
                else:
                    fix, permanent = dead_unit.fix(root[0]), True
            else:
                down = [d for d, _ in L.downstream]
                ev["downstream"] = down
                if root is not None:
                    fix = blocked_downstream.fix(root=root[0])
                else:
                    fix = blocked_downstream.fix(layer=L.name)
                    out = self.ev.output_layer()
                    if out is not None and out.grad_seen:
                        ev["output_layer"] = out.name
                        ev["samples_with_zero_output_gradient"] = out.grad_zero_samples
                        # counted on the recorded steps only: out of their samples
                        ev["output_samples"] = out.counted_samples
                permanent = root is not None
            self.add(Finding(param=name, cause=cause, entries=int(mask.sum()), total=P.size,
                             permanent=permanent, evidence=ev, mask=mask, indices=units,
                             layer=L.name, index_kind="channel" if L.kind == "conv" else "unit",
                             fix=fix, **_root_fields(root)), mask)

    def stalled_units(self, L, units):
        """(len(units),) bool, in the stalled pass -- the same answer for the layer's weight
        and bias, so both findings name the same units: units that did open at some step
        (dead from the start is the since = 0 finding), at least STALL_MIN_ENTRIES of
        whose moved weight entries stopped (a dead unit's weights can drift on Adam's
        momentum), and whose bias, if recorded, stopped too."""
        ok = L.last_open[units] > 0 if L.last_open is not None else \
            np.ones(units.size, dtype=bool)
        W = self.ev.params[L.weight]
        ua = L.unit_axis
        other = tuple(a for a in range(len(W.shape)) if a != ua)
        moved = (W.last_change > 0).sum(axis=other)
        stopped = self.targets[L.weight].sum(axis=other)
        ok &= stopped[units] >= STALL_MIN_ENTRIES * moved[units]
        if L.bias is not None:
            b = self.ev.params[L.bias]
            ok &= (b.last_change.reshape(-1)[units] <= self.t0)
        return ok

    def too_few_stalled(self, mask, sel, P):
        """In the stalled pass: fewer than STALL_MIN_ENTRIES of the selected entries that
        ever moved have stopped (a dead unit's weights still drifting on momentum)."""
        if not self.t0:
            return False
        moved = (sel & (P.last_change > 0)).sum()
        return mask.sum() < STALL_MIN_ENTRIES * moved

    def feature_kind(self, L):
        if L.kind == "conv":
            return "input channel"
        if L.upstream is None and "flatten" in L.upstream_path:
            return "pixel"
        return "input feature"

    # ---- following a consequence back to its root ----------------------------
    # Each returns (parameter, cause) of the root finding, or None when the
    # finding is itself a root (the data, a genuinely dead unit).
    def root_of_input(self, L, f, depth=0):
        """Why feature ``f`` of L's input is always 0 (``f`` None: the whole input)."""
        if L.upstream is None or depth > 50:
            return None
        P = self.ev.layers.get(L.upstream)
        if P is None or P.kind not in ("dense", "conv") or not P.weight:
            return None
        if self.is_zero_layer(P):
            return (P.weight, "zero_weights")
        u = None if f is None else _feature_to_unit(L, P, f)
        if f is not None and u is None:
            return None
        units = slice(None) if u is None else u
        dead, zf = P.dead(self.t0), P.zero_features(self.t0)
        if dead is not None and np.all(dead[units]):
            return self.root_of_dead(P, 0 if u is None else u, depth + 1) or \
                (P.weight, "dead_unit")
        if zf is not None and zf.all():
            # P's whole input is 0, so its output is just its bias: the reason is upstream
            return self.root_of_input(P, None, depth + 1)
        return None

    def root_of_dead(self, L, u, depth=0):
        """None for a genuinely dead unit; the upstream root when the layer's whole input
        is 0 (then its pre-activation is just its bias, decided by nothing it can learn
        from)."""
        zf = L.zero_features(self.t0)
        if zf is not None and zf.all() and L.upstream is not None:
            return self.root_of_input(L, None, depth + 1)
        return None

    def root_of_blocked(self, L, seen):
        """Why no gradient reaches L's output: the first layer after it that stops it."""
        if L.name in seen:
            return None
        seen = seen | {L.name}
        for name, _ in L.downstream:
            M = self.ev.layers.get(name)
            if M is None or M.kind not in ("dense", "conv") or not M.weight:
                continue
            if self.is_zero_layer(M):
                return (M.weight, "zero_weights")
            ng = M.no_grad(self.t0)
            if ng is not None and ng.all():
                dead = M.dead(self.t0)
                if dead is not None and dead.all():
                    return self.root_of_dead(M, 0) or (M.weight, "dead_unit")
                return self.root_of_blocked(M, seen) or (M.weight, "blocked_downstream")
        return None

    def resolve_roots(self):
        """Point every consequence at an existing root finding; inherit its permanence.

        A root named by (parameter, cause) may have no finding of its own -- e.g. a
        dead layer whose weight columns were all explained as zero_input, so only
        its bias carries the dead_unit finding: the layer's other parameter is used,
        and failing that the consequence becomes a root itself.
        """
        roots = {}
        for f in self.findings:
            if f.root is None:
                roots.setdefault((f.param, f.cause), f)
        for f in self.findings:
            if f.root is None:
                continue
            key = (f.root, f.root_cause)
            if key not in roots:
                L = self.ev.layer_of(f.root)
                alt = [(n, f.root_cause) for n in ((L.weight, L.bias) if L else ())
                       if (n, f.root_cause) in roots]
                if not alt:
                    f.root = f.root_cause = None
                    continue
                key = alt[0]
                f.root = key[0]
            f.permanent = roots[key].permanent

    def unexplained(self):
        out = {}
        for name, p in self.ev.params.items():
            rem = self.targets[name] & ~self.covered[name]
            n = int(rem.sum())
            if n:
                # grad_nonzero: entries whose gradient was nonzero at some recorded step
                # (their rounding could not be checked); the others' gradient was exactly
                # 0 at every recorded step -- never a float-resolution matter
                out[name] = {"entries": n, "total": p.size,
                             "grad_nonzero": int((rem & p.grad_nonzero).sum()),
                             "last_update_known": p.last_update is not None}
                L = self.ev.layer_of(name)
                if L is not None and name == L.weight and L.feature_count is not None \
                        and L.grad_count is not None:
                    # How rare were the two factors of these entries?  dW[f, u] sums
                    # x[n, f] * delta[n, u] over samples n: rare features and units that
                    # rarely get a gradient may simply never meet on one sample.
                    fa, ua = L.feature_axis, L.unit_axis
                    other = tuple(a for a in range(rem.ndim) if a not in (fa, ua))
                    pairs = rem.any(axis=other) if other else rem
                    if fa > ua:
                        pairs = pairs.T                          # (F, U)
                    fi, ui = np.nonzero(pairs)
                    out[name]["median_feature_count"] = float(np.median(L.feature_count[fi]))
                    out[name]["median_unit_grad_count"] = float(np.median(L.grad_count[ui]))
                    out[name]["samples_seen"] = L.samples
                    # the two counts are gathered on the recorded steps only, over:
                    out[name]["samples_counted"] = L.counted_samples
        return out


def _root_fields(root):
    return {"root": None, "root_cause": None} if root is None else \
        {"root": root[0], "root_cause": root[1]}


def _along(vec, axis, shape):
    """Broadcast a 1-D bool ``vec`` along ``axis`` of ``shape``."""
    view = [1] * len(shape)
    view[axis] = vec.size
    return np.broadcast_to(vec.reshape(view), shape)


def _feature_to_unit(L, P, f):
    """Which unit of P feeds feature f of L (through ReLU / pool / flatten); None if unknown."""
    F = L.feature_count.size if L.feature_count is not None else None
    U = P.unit_max.size if P.unit_max is not None else None
    if F is None or U is None:
        return None
    if F == U:
        return f
    if "flatten" in L.upstream_path and F % U == 0:
        return f // (F // U)
    return None
