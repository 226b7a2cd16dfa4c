"""Recorder: what every parameter and every layer did during training.

    rec = Recorder(model, optimizer, every=10)
    fit(model, loss_fn, optimizer, loader, callbacks=[rec])     # as a fit callback
    # or by hand:
    rec.attach()
    for x, y in loader:
        loss = loss_fn(model(x), y); optimizer.zero_grad(); loss.backward(); optimizer.step()
        rec.step()
    rec.detach()

    rec.changed_mask("0.weight")          # (IN, OUT) bool: entries that ever changed
    rec.history["0.weight"]["update_ratio"]   # one value per recorded step
    rec.layer_stats["1"]["zero_frac"]    # fraction of exact zeros in layer 1's output
    rec.effective_width["0"]["width"]     # distinct hidden units of Dense layer 0, over steps

Per parameter (name from ``model.named_parameters()``):

* ``initial[name]`` -- a device copy of the values at ``attach()``.
* the *changed mask* -- an entry has changed if it differed, bit for bit,
  between two checks; a check compares the parameter with a device copy made
  at the previous check, right before every recorded step (and at the end).
  The step of each entry's last change is kept too (``last_change(name)``:
  "stopped at step 3").  EXACT on purpose: "frozen" means bit-identical to
  the initial value.  A tolerance would call an entry that moved by 1e-9
  frozen, and would mix the exact, structural freezes (a gradient that is
  exactly 0 on every step: always-zero inputs, dead units, zero kernels) with
  the merely slow ones, which are a different finding (``tiny_update``).  An
  entry that moved and came back to the very same bits between two checks
  would be missed -- pass ``mask_every=1`` to check after every step.
* per recorded step: the gradient norm ‖g‖, the update norm and the
  update-to-weight ratio.  The *update* of recorded step t is the last
  step's: ΔW = W_t − W_{t−1}, exact whatever the optimizer does (the copy
  made at the check right before step t is W_{t−1});
  update_ratio = ‖ΔW‖ / ‖W_{t−1}‖ (Frobenius norms; inf when W_{t−1} = 0).

Per layer (forward hooks on every leaf module; see :mod:`.probes`):
activation statistics per recorded step; units that were never > 0 on any
sample seen; for Dense/Conv2D layers the input features (Dense column / conv
channel) that were never nonzero on any sample seen and the output units
that never received a nonzero gradient -- these masks see every sample of
every step (exact) -- and, as evidence, the number of samples in which each
feature was nonzero / each unit got a gradient, counted on the recorded
steps only (``counted_samples``).

Recorded steps are 1, 1 + every, 1 + 2·every, ... (step 1 is the first
``optimizer.step()`` after ``attach()``).  Everything is kept on the
parameters' device as arrays and 0-d arrays; the host reads them only when
``history``, ``layer_stats``, ``changed_mask`` ... are asked for.
"""
import numpy as np

from tinynet import backend
from tinynet.diagnose import symmetry
from tinynet.diagnose.probes import LayerProbe, Topology, module_kind


_CHUNK = 1 << 15          # floats per chunk of _norms_chunked (128 KiB: stays in L2)


class Recorder:
    """Record parameter changes, gradient/update norms and layer evidence.

    model       -- a tinynet Module
    optimizer   -- the optimizer training it (used to find parameters it does
                   not update); optional, taken from ``fit`` when used as a callback
    every       -- record norms / statistics every ``every`` steps (default 10)
    activations -- hook the layers (activation statistics, dead units,
                   always-zero input features, effective width).  False records
                   only the parameters.
    mask_every  -- check which entries changed every this many steps as well
                   (default: only before recorded steps); 1 makes the changed mask
                   exact even for entries that move and come back bit for bit.
    """

    def __init__(self, model, optimizer=None, every=10, activations=True, mask_every=None):
        if not hasattr(model, "named_parameters"):
            raise TypeError(f"Recorder: expected a tinynet Module, got {type(model).__name__}")
        self.every = _positive_int("every", every)
        self.mask_every = self.every if mask_every is None else \
            _positive_int("mask_every", mask_every)
        self.model, self.optimizer, self.activations = model, optimizer, bool(activations)
        self.params = dict(model.named_parameters())
        if not self.params:
            raise ValueError("Recorder: the model has no parameters to record")
        self.steps = 0                    # optimizer steps seen since the first attach()
        self.attached = False
        self.initial = {}                 # name -> device copy at the first attach()
        self._last_change = {}            # name -> device int32: last check at which it moved,
        self._moved = {}                  # ... except the entries that moved at the latest check
        self._moved_spare = {}            # (bool masks; see _check)
        self._moved_step = 0
        self._ref = {}                    # name -> device copy at the last check
        self._grad_nonzero = {}           # name -> device bool mask (at recorded steps)
        self.grad_missing = {}            # name -> steps on which .grad was None
        self.lr_zero_steps = []           # steps on which the optimizer's lr was exactly 0
        self.full_epochs = []             # batches of each fit epoch proven complete
        self._epoch_steps = []
        self._hist = {}                   # name -> {"step": [ints], "grad_sq": [...], ...}
        self.probes = {}                  # module name -> LayerProbe
        self.topology = Topology()
        self._handles = []
        self._recording_forward = True    # the next forward is step 1: recorded
        self._width = {}                  # layer -> {"step": [], "proj": [], "scale": []}
        self._sym_pairs = None
        self._sym_vectors = {}
        self._cache = {}
        self._buffers = {}

    # ---- lifecycle --------------------------------------------------------
    def attach(self):
        """Start recording: remember the initial values (first time) and hook the layers."""
        if self.attached:
            return self
        if not self.initial:
            for name, p in self.params.items():
                xp = backend.array_module(p.data)
                self.initial[name] = p.data.copy()
                self._ref[name] = p.data.copy()
                self._last_change[name] = xp.zeros(p.data.shape, dtype=np.int32)
                self._moved[name] = xp.zeros(p.data.shape, dtype=bool)
                self._grad_nonzero[name] = xp.zeros(p.data.shape, dtype=bool)
                self.grad_missing[name] = 0
                self._hist[name] = {"step": [], "grad_sq": [], "update_sq": [], "weight_sq": []}
        if self.activations:
            for name, module in self.model.named_modules():
                if any(True for _ in module.children()):
                    continue                 # containers: their leaves are hooked
                name = name or "<model>"           # a model that is a single layer
                probe = self.probes.get(name)
                if probe is None:
                    probe = self.probes[name] = LayerProbe(name, module, module_kind(module),
                                                           self)
                self._handles.append(module.register_forward_hook(probe))
        self.attached = True
        return self

    def detach(self):
        """Stop recording (remove the hooks); what was recorded stays."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.attached = False
        return self

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.finalize()
        self.detach()
        return False

    # ---- fit callback -----------------------------------------------------
    def on_train_begin(self, state):
        if self.optimizer is None:
            self.optimizer = state.optimizer
        self.attach()

    def on_epoch_begin(self, state):
        # a new epoch begins only after the previous one ran to its end: that one was a
        # full pass over the data (fit stops mid-epoch only at max_steps / stop, and then
        # starts no other epoch)
        if self._epoch_steps:
            self.full_epochs.append(self._epoch_steps[-1])
        self._epoch_steps.append(0)

    def on_batch_end(self, state):
        self.step()
        if self._epoch_steps:
            self._epoch_steps[-1] += 1

    def on_train_end(self, state):
        # the last epoch was full too if it had as many batches as a full one
        if self._epoch_steps and self.full_epochs and \
                self._epoch_steps[-1] == self.full_epochs[-1]:
            self.full_epochs.append(self._epoch_steps[-1])
        self._epoch_steps = []
        self.finalize()
        self.detach()

    @property
    def data_passes(self):
        """Full passes over the training data seen through ``fit`` (0 when unknown):
        every batch the data yields in an epoch went through the model."""
        return len(self.full_epochs)

    # ---- the per-step work ------------------------------------------------
    def step(self, x=None):
        """Call after each ``optimizer.step()`` (``fit`` does it for a callback).

        ``x`` (optional): the batch's input; only counts samples when no layer
        hooks saw the forward pass (``activations=False``).
        """
        if not self.attached:
            raise RuntimeError("Recorder.step(): call rec.attach() before training (it "
                               "records the initial values), or pass the recorder to fit")
        self.steps += 1
        s = self.steps
        for name, p in self.params.items():
            if p.grad is None:
                self.grad_missing[name] += 1
        # a schedule may set opt.lr inside the loop: one float read per step
        if getattr(self.optimizer, "lr", None) == 0:
            self.lr_zero_steps.append(s)
        if x is not None and not self.probes:
            self._extra_samples = getattr(self, "_extra_samples", 0) + int(len(x))
        if (s - 1) % self.every == 0:
            self._record(s)                  # uses the copy made at step s - 1
        if s % self.every == 0 or s % self.mask_every == 0:
            self._check()                    # W_s: the "previous" of the next recorded step
        if not self.topology.closed and self.topology.known:
            self.topology.close()
            self._alias_relus()
        self._recording_forward = (s % self.every == 0)
        self._cache.clear()

    def _alias_relus(self):
        for name, probe in self.probes.items():
            src = self.probes.get(self.topology.producer.get(name))
            if probe.kind == "relu" and src is not None and src.kind in ("dense", "conv") \
                    and src.unit_max is not None and probe.unit_max is not None:
                probe.alias = src

    def finalize(self):
        """Bring the changed masks up to date with the current values (cheap; idempotent)."""
        if self.initial:
            self._check()
        self.topology.close()
        self._cache.clear()
        return self

    def _check(self):
        """Mark the entries that differ from the last check; remember the values.

        The entries that moved are kept as a bool mask (``_moved``, for the check at
        step ``_moved_step``); the int32 ``_last_change`` is written only where an entry
        that moved at the previous check did not move at this one (it stopped: its
        last change was that check).  In training almost nothing stops, so a check is
        one comparison and one copy, not a masked write of an int32 array.
        last_change = where(_moved, _moved_step, _last_change)."""
        xp = None
        prev_step = self._moved_step
        for name, p in self.params.items():
            xp = xp or backend.array_module(p.data)
            ref, old = self._ref[name], self._moved[name]
            spare = self._moved_spare.get(name)
            if spare is None:
                spare = self._moved_spare[name] = xp.empty(ref.shape, dtype=bool)
            moved = xp.not_equal(p.data, ref, out=spare)      # exact: no tolerance
            if prev_step:
                stopped = xp.greater(old, moved, out=self._scratch(xp, ref, bool))  # old & ~moved
                if xp is not np or stopped.any():     # (no device read on a GPU)
                    xp.copyto(self._last_change[name], np.int32(prev_step), where=stopped)
            self._moved[name], self._moved_spare[name] = moved, old
            xp.copyto(ref, p.data)
        self._moved_step = self.steps

    def _record(self, s):
        for name, p in self.params.items():
            w, prev = p.data, self._ref[name]          # prev = W_{s-1}
            xp = backend.array_module(w)
            g = None if p.grad is None else p.grad.data
            h = self._hist[name]
            h["step"].append(s)
            if xp is np and w.size > _CHUNK and w.flags.c_contiguous and \
                    prev.flags.c_contiguous and (g is None or g.flags.c_contiguous):
                upd, wsq, gsq = self._norms_chunked(w, prev, g, self._grad_nonzero[name])
            else:
                d = xp.subtract(w, prev, out=self._scratch(xp, w)).reshape(-1)
                upd = xp.dot(d, d)                 # one BLAS pass, no temporary
                flat = prev.reshape(-1)
                wsq = xp.dot(flat, flat)
                gsq = None
                if g is not None:
                    gf = g.reshape(-1)
                    gsq = xp.dot(gf, gf)
                    # mask |= (g != 0) in one pass: a float is True as a bool iff it is != 0
                    xp.logical_or(self._grad_nonzero[name], g, out=self._grad_nonzero[name])
            h["update_sq"].append(upd)
            h["weight_sq"].append(wsq)
            h["grad_sq"].append(gsq)
        self._record_width(s)

    def _norms_chunked(self, w, prev, g, grad_nonzero):
        """CPU: ‖w − prev‖², ‖prev‖², ‖g‖² and grad_nonzero |= (g != 0) in one sweep of
        cache-sized chunks (each array read once; the difference never written out
        whole).  Chunk sums are added in float64."""
        wf, pf, mf = w.reshape(-1), prev.reshape(-1), grad_nonzero.reshape(-1)
        gf = None if g is None else g.reshape(-1)
        buf = self._scratch(np, wf[:_CHUNK])
        upd = wsq = gsq = 0.0
        n = wf.size
        for i in range(0, n, _CHUNK):
            j = min(i + _CHUNK, n)
            pc = pf[i:j]
            d = np.subtract(wf[i:j], pc, out=buf[:j - i])
            upd += float(np.dot(d, d))
            wsq += float(np.dot(pc, pc))
            if gf is not None:
                gc = gf[i:j]
                gsq += float(np.dot(gc, gc))
                np.logical_or(mf[i:j], gc, out=mf[i:j])
        return np.float64(upd), np.float64(wsq), (None if gf is None else np.float64(gsq))

    def _scratch(self, xp, like, dtype=None):
        """A reused work array shaped like ``like`` (one flat buffer per array module and
        dtype, ``like``'s unless given)."""
        dtype = like.dtype if dtype is None else np.dtype(dtype)
        key = (id(xp), dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.size < like.size:
            buf = self._buffers[key] = xp.empty(like.size, dtype=dtype)
        return buf[:like.size].reshape(like.shape)

    def _record_width(self, s):
        """Random projections of each Dense layer's units, for the effective-width curve."""
        if self._sym_pairs is None:
            if not self.topology.known:
                return
            self._sym_pairs = symmetry.dense_pairs(self.topology, self.probes)
            self._param_names = {id(p): n for n, p in self.params.items()}
        for layer, nxt in self._sym_pairs:
            L, M = self.probes[layer].module, self.probes[nxt].module
            parts = symmetry.unit_parts(L, M)
            vec = self._sym_vectors.get(layer)
            if vec is None:
                vec = self._sym_vectors[layer] = symmetry.projection_vectors(parts)
            # 4 x RMS of each part from the norms just recorded (W_{s-1}): a cheap stand-in
            # for max |part| in the tolerance of this estimate
            xp = backend.array_module(parts[0])
            scale = xp.stack([4 * xp.sqrt(self._hist[self._param_names[id(p)]]["weight_sq"][-1]
                                          / max(p.size, 1))
                              for p in symmetry.unit_part_params(L, M)])
            proj, scale = symmetry.project(parts, vec, scale)
            w = self._width.setdefault(layer, {"step": [], "proj": [], "scale": []})
            w["step"].append(s)
            w["proj"].append(proj)
            w["scale"].append(scale)

    # ---- reading it back (host) ---------------------------------------------
    @property
    def samples_seen(self):
        """Training samples seen by the first hooked layer (or counted by ``step(x=...)``)."""
        for name in self.topology.order:
            probe = self.probes.get(name)
            if probe is not None and probe.samples:
                return probe.samples
        counts = [p.samples for p in self.probes.values() if p.samples]
        return max(counts) if counts else getattr(self, "_extra_samples", 0)

    def changed_mask(self, name):
        """Host bool array shaped like the parameter: True where it ever changed."""
        return self.last_change(name) > 0

    def last_change(self, name):
        """Host int array shaped like the parameter: the step at which each entry was last
        seen to change (0: never; steps are those of the checks, see ``mask_every``)."""
        self._check_name(name)
        if self.steps:
            self._check()
        last = backend.to_numpy(self._last_change[name]).astype(np.int64)
        moved = backend.to_numpy(self._moved[name]).astype(bool)
        return np.where(moved, np.int64(self._moved_step), last)

    def frozen_mask(self, name):
        """Host bool array: True where the entry is still bit-identical to its initial value."""
        return ~self.changed_mask(name)

    def grad_nonzero_mask(self, name):
        """Host bool array: True where the gradient was nonzero at some recorded step."""
        self._check_name(name)
        return backend.to_numpy(self._grad_nonzero[name]).astype(bool)

    def initial_numpy(self, name):
        self._check_name(name)
        return np.array(backend.to_numpy(self.initial[name]), copy=True)

    @property
    def history(self):
        """{param: {"step", "grad_norm", "update_norm", "weight_norm", "update_ratio", "grad_rms"}}.

        numpy arrays, one entry per recorded step; grad_norm is NaN on a step
        where the parameter had no gradient; update_ratio = update_norm /
        weight_norm (inf where the weight was all zero and moved, 0 where it
        did not move).
        """
        if "history" not in self._cache:
            out = {}
            for name, h in self._hist.items():
                steps = np.asarray(h["step"], dtype=np.int64)
                grad = _host_scalars(h["grad_sq"])
                upd = _host_scalars(h["update_sq"])
                wsq = _host_scalars(h["weight_sq"])
                gn, un, wn = np.sqrt(grad), np.sqrt(upd), np.sqrt(wsq)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(wn > 0, un / np.where(wn > 0, wn, 1.0),
                                     np.where(un > 0, np.inf, 0.0))
                size = self.params[name].size
                out[name] = {"step": steps, "grad_norm": gn, "update_norm": un,
                             "weight_norm": wn, "update_ratio": ratio,
                             "grad_rms": gn / np.sqrt(max(size, 1))}
            self._cache["history"] = out
        return self._cache["history"]

    @property
    def layer_stats(self):
        """{layer: {"step", "mean", "std", "zero_frac", "dead_units"}} per recorded forward.

        ``dead_units`` (ReLU layers): units never > 0 on any sample seen so far.
        """
        if "layer_stats" not in self._cache:
            out = {}
            for name in self._layer_names():
                st = self.probes[name].stats
                if not st["step"]:
                    continue
                entry = {"step": np.asarray(st["step"], dtype=np.int64)}
                for key in ("mean", "std", "zero_frac"):
                    entry[key] = _host_scalars(st[key])
                if self.probes[name].kind == "relu":
                    entry["dead_units"] = _host_scalars(st["dead"]).astype(np.int64)
                out[name] = entry
            self._cache["layer_stats"] = out
        return self._cache["layer_stats"]

    def activation_samples(self, name):
        """{step: up to 4096 output values of layer ``name``} for histograms: the first
        recorded step and the latest 15 (numpy arrays)."""
        probe = self.probes[name]
        return {s: backend.to_numpy(a).copy() for s, a in probe.samples_act.items()}

    @property
    def effective_width(self):
        """{Dense layer: {"step": array, "width": array, "units": int}}, hidden Dense layers.

        ``width`` counts groups of units whose incoming weights, bias and
        outgoing weights agree within the symmetry tolerance (estimated from
        random projections at each recorded step; see :mod:`.symmetry`).
        """
        if "width" not in self._cache:
            out = {}
            for layer, w in self._width.items():
                widths = [symmetry.width_from_projection(backend.to_numpy(p),
                                                         backend.to_numpy(sc),
                                                         self._sym_vectors[layer])
                          for p, sc in zip(w["proj"], w["scale"])]
                out[layer] = {"step": np.asarray(w["step"], dtype=np.int64),
                              "width": np.asarray(widths, dtype=np.int64),
                              "units": int(w["proj"][0].shape[0]) if w["proj"] else 0}
            self._cache["width"] = out
        return self._cache["width"]

    def dead_units(self, name):
        """Host bool (U,): units of layer ``name`` whose output was never > 0 on any sample."""
        probe = self.probes[name].units_source
        if probe.unit_max is None:
            return None
        return backend.to_numpy(probe.unit_max <= 0).astype(bool)

    def feature_counts(self, name):
        """Host int64 (F,): samples OF THE RECORDED STEPS in which each input feature of
        layer ``name`` was nonzero (out of ``counted_samples(name)``; evidence only --
        whether a feature was ever nonzero on ANY sample is ``zero_input_features``)."""
        probe = self.probes[name]
        if probe.feature_count is None:
            return None
        return backend.to_numpy(probe.feature_count).astype(np.int64)

    def counted_samples(self, name):
        """Samples of the recorded steps seen by layer ``name``: what the per-feature and
        per-unit counts count over (``samples_seen`` counts every step)."""
        return self.probes[name].counted_samples

    def zero_input_features(self, name):
        """Host bool (F,): input features of ``name`` that were 0 on every sample seen
        (every sample of every step: exact)."""
        probe = self.probes[name]
        if probe.last_feature is None:
            return None
        return backend.to_numpy(probe.last_feature == 0).astype(bool)

    def topology_or_sequence(self):
        """The watched data flow, or (never watched) the modules in registration order."""
        if self.topology.known:
            return self.topology
        return Topology.sequential([(n or "<model>", module_kind(m))
                                    for n, m in self.model.named_modules()
                                    if not any(True for _ in m.children())])

    def _layer_names(self):
        names = [n for n in self.topology.order if n in self.probes]
        return names + [n for n in self.probes if n not in names]

    def _check_name(self, name):
        if name not in self.params:
            raise KeyError(f"Recorder: no parameter named {name!r}; the model has "
                           f"{list(self.params)}")
        if not self.initial:
            raise RuntimeError("Recorder: nothing recorded yet; call attach() first")

    def __repr__(self):
        state = "attached" if self.attached else "detached"
        return (f"Recorder({len(self.params)} parameters, {len(self.probes)} layers hooked, "
                f"every={self.every}, {self.steps} steps, {state})")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Recorder: {name} must be a positive integer, got {value!r}")
    return int(value)


def _host_scalars(values):
    """A list of device 0-d arrays (or None) -> one float64 host array, one device read."""
    idx = [i for i, v in enumerate(values) if v is not None]
    out = np.full(len(values), np.nan)
    if idx:
        first = values[idx[0]]
        xp = backend.array_module(first)
        stacked = xp.stack([values[i].astype(np.float64) for i in idx])
        out[idx] = backend.to_numpy(stacked)
    return out
