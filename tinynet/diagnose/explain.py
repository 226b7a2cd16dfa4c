"""explain: train with a Recorder, then name the cause of everything that did not learn.

    report = tn.diagnose.explain(model, loader, loss_fn=F.softmax_cross_entropy,
                                 optimizer=opt, steps=200)
    print(report)

    # or analyze a training run you recorded yourself (no training here):
    rec = tn.diagnose.Recorder(model, opt)
    fit(model, loss_fn, opt, loader, callbacks=[rec])
    report = tn.diagnose.explain(model, recorder=rec, steps=0)

The analysis (:func:`analyze`) reads the recorder's evidence back once and
runs three independent checks: exact freezes with their causes
(:mod:`.causes`), symmetric units (:mod:`.symmetry`), and slow layers
(:mod:`.updates`).
"""
import numbers

import numpy as np

from tinynet.diagnose.evidence import collect
from tinynet.diagnose.findings import CAUSES, Report
from tinynet.diagnose.recorder import Recorder
from tinynet.diagnose.updates import optimizer_info

DEFAULT_STEPS = 100
MAX_RECORDED = 50          # explain's default `every` keeps about this many recorded steps


def explain(model, data=None, loss_fn=None, optimizer=None, steps=None, recorder=None,
            every=None, progress=None, device=None):
    """Train ``model`` IN PLACE for ``steps`` steps while recording, and explain what froze.

    data      -- a DataLoader, any iterable of (x, y) batches (numpy arrays or Tensors),
                 or a single (x, y) pair of arrays (one fixed batch); cycled when it
                 has fewer than ``steps`` batches
    loss_fn   -- default ``F.softmax_cross_entropy``
    optimizer -- the optimizer to train with (required when training)
    steps     -- optimizer steps to train (default 100; 0 with a ``recorder`` that
                 already recorded training: analyze only)
    recorder  -- a Recorder to use (and keep); default: a fresh one, detached afterwards
    every     -- the fresh recorder's recording interval (default: steps // 50, at least 1)
    progress  -- progress bar (None: only on a terminal), as in ``fit``
    Returns a :class:`~tinynet.diagnose.findings.Report`.
    """
    if loss_fn is None:
        from tinynet.nn import functional as F
        loss_fn = F.softmax_cross_entropy
    if recorder is not None:
        if recorder.model is not model:
            raise ValueError("explain: the recorder was made for a different model")
        if optimizer is None:
            optimizer = recorder.optimizer
        elif recorder.optimizer is None:
            recorder.optimizer = optimizer
    if steps is None:
        steps = 0 if recorder is not None and recorder.steps else DEFAULT_STEPS
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"explain: steps must be an integer >= 0, got {steps!r}")
    if steps == 0:
        if recorder is None or recorder.steps == 0:
            raise ValueError("explain: nothing to analyze -- pass data, an optimizer and "
                             "steps > 0 to train, or a recorder that recorded training")
        # data given with a recorder: scanned (not trained on) to prove data-wide zeros
        return analyze(recorder, data=None if data is None else data_coverage(data, 0))
    if data is None:
        raise ValueError("explain: data is needed to train (an iterable of (x, y) batches)")
    if optimizer is None:
        raise ValueError("explain: an optimizer is needed to train, e.g. "
                         "optimizer=optim.Adam(model.parameters(), lr=1e-3)")

    from tinynet.train import fit

    # a fresh recorder compares the parameters after EVERY step (mask_every=1), so
    # "never changed" is exact: an entry that moves and comes back to the very same
    # bits between two recorded steps (a weight below float resolution can) is seen
    rec = recorder if recorder is not None else Recorder(
        model, optimizer, every=every if every is not None else max(1, steps // MAX_RECORDED),
        mask_every=1)
    was_attached = rec.attached
    rec.attach()
    steps_cb = _StepCallback(rec)
    notes = []
    cycle = _cycle(data)
    try:
        fit(model, loss_fn, optimizer, cycle, epochs=1, callbacks=[steps_cb],
            progress=progress, device=device, max_steps=steps)
    except FloatingPointError as exc:
        notes.append(f"training stopped after {steps_cb.steps} of {steps} steps: {exc}")
    finally:
        rec.finalize()
        if not was_attached:
            rec.detach()
    return analyze(rec, loss=steps_cb.losses, notes=notes,
                   data=data_coverage(cycle.data, steps_cb.steps, cycle))


def data_coverage(data, steps, cycle=None):
    """What is known of the whole data set, for claims about every sample of it.

    {"samples": M or None, "all_seen": every sample went through training,
     "arrays": the inputs to scan (None: cannot be read again, e.g. a generator)}.
    A DataLoader is scanned through its arrays, a list of batches batch by batch, a
    one-shot iterator only when explain went through all of it."""
    if _is_array_pair(data):
        return {"samples": len(data[0]), "all_seen": steps >= 1, "arrays": [data[0]]}
    x = getattr(data, "x", None)
    if x is not None and hasattr(data, "batch_size"):            # a DataLoader
        n = len(x)
        full = steps >= len(data) and not getattr(data, "drop_last", False)
        return {"samples": n, "all_seen": bool(full), "arrays": [x]}
    if cycle is not None and cycle._one_shot:
        done = cycle.passes > 0
        arrays = [b[0] for b in cycle._cache] if done else None
        return {"samples": sum(len(a) for a in arrays) if done else None, "all_seen": done,
                "arrays": arrays}
    try:
        arrays = [b[0] for b in data]
    except (TypeError, IndexError, KeyError):
        return {"samples": None, "all_seen": False, "arrays": None}
    n = sum(len(a) for a in arrays)
    return {"samples": n, "all_seen": steps >= len(arrays), "arrays": arrays}


def analyze(recorder, loss=None, notes=None, data=None):
    """The Report for what ``recorder`` recorded (no training).  ``data``: see
    :func:`data_coverage` (None: nothing is known beyond the samples seen)."""
    from tinynet.diagnose.causes import REGISTRY
    if getattr(recorder, "data_passes", 0) and not (data or {}).get("all_seen"):
        # trained through fit with this recorder as a callback: a complete epoch saw
        # every sample the data yields
        data = dict(data or {"samples": None, "arrays": None})
        data["all_seen"] = True
        data["passes"] = recorder.data_passes
    ev = collect(recorder, data=data)
    notes = list(notes or [])
    if recorder.mask_every > 1 and ev.steps > 1:
        notes.append(f"the parameters were compared every {recorder.mask_every} steps: an "
                     f"entry that moved and came back to the very same bits between two "
                     f"comparisons counts as never changed here (Recorder(..., "
                     f"mask_every=1) compares after every step).")
    if 0 < len(ev.lr_zero_steps) < ev.steps:
        from tinynet.diagnose.causes.zero_lr import spans
        notes.append(f"the optimizer's learning rate was 0 on steps {spans(ev.lr_zero_steps)} "
                     f"of {ev.steps}: nothing moved on those steps.")
    findings = []
    for cause in REGISTRY.values():
        findings += cause.detect(ev)
    unexplained = ev.cache["attribution"][2]
    findings = _ordered(findings, ev)
    params = {}
    for name, p in ev.params.items():
        frozen = int(p.frozen.sum())
        params[name] = {"shape": list(p.shape), "layer": p.layer, "entries": p.size,
                        "frozen": frozen, "moved": frozen < p.size}
    kind, lr, _ = optimizer_info(ev.optimizer)
    opt = None if kind is None else (f"{kind}(lr={lr:g})" if lr is not None else kind)
    return Report(findings, params, steps=ev.steps, samples_seen=ev.samples_seen, optimizer=opt,
                  data_samples=(ev.data or {}).get("samples"),
                  loss=loss, unexplained=unexplained, notes=notes, recorder=recorder,
                  frozen_masks={n: p.frozen for n, p in ev.params.items()})


def _ordered(findings, ev):
    """Roots first (forward order, then cause), then consequences in the same order."""
    layer_pos = {name: i for i, name in enumerate(ev.layers)}
    param_pos = {name: i for i, name in enumerate(ev.params)}

    def key(f):
        return (f.root is not None, f.since, layer_pos.get(f.layer, len(layer_pos)),
                param_pos.get(f.param, len(param_pos)), CAUSES.index(f.cause))
    return sorted(findings, key=key)


class _StepCallback:
    """The fit callback explain uses: one recorder step per batch, and the losses."""

    def __init__(self, rec):
        self.rec, self.losses, self.steps = rec, [], 0

    def on_batch_end(self, state):
        self.rec.step(x=state.x)
        self.steps += 1
        self.losses.append(float(state.loss))


class _cycle:
    """Re-iterable, endless view of ``data``: a loader is re-iterated (a new epoch, a new
    shuffle); a one-shot iterator is cached on its first pass; an (x, y) pair of arrays
    is one fixed batch."""

    def __init__(self, data):
        if _is_array_pair(data):
            data = [tuple(data)]
        self.data = data
        self._cache = None if iter(data) is not data else []
        self._one_shot = self._cache is not None
        self.passes = 0              # complete passes over the data

    def __iter__(self):
        first = True
        self.passes = 0
        while True:
            n = 0
            if self._one_shot and not first:
                source = self._cache
            else:
                source = self.data
            for batch in source:
                if self._one_shot and first:
                    self._cache.append(batch)
                n += 1
                yield batch
            if n == 0:
                raise ValueError("explain: data yielded no batches")
            first = False
            self.passes += 1


def _is_array_pair(data):
    from tinynet import backend
    from tinynet.tensor import Tensor
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        return False
    return all(isinstance(a, (np.ndarray, Tensor)) or backend.is_device_array(a) for a in data)
