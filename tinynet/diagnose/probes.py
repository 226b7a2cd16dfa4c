"""Per-layer evidence gathered by forward hooks, and who feeds whom.

Notation.  N samples in a batch.  Dense: input (N, IN), output (N, OUT).
Conv2D: input (N, C, H, W), output (N, O, OH, OW).  A *feature* is what one
row-slice of a weight multiplies: a column of a Dense input (IN of them) or
a channel of a Conv2D input (C).  A *unit* is what one output slice of a
weight produces: a column of a Dense output (OUT) or a channel of a conv
output (O); a ReLU's units are the columns / channels of its output.

Why these accumulators.  The weight gradient is dW = Aᵀ·Δ (A the layer's
input, Δ the gradient at its output; a conv is the same after im2col), so
an entry of dW is exactly 0 on every step when

* its feature is 0 on every sample          -> ``feature_count[f] == 0``
* its unit receives no gradient at all      -> ``grad_nonzero[u]`` False,
  because the ReLU after it never opened    -> ``unit_max[u] <= 0``
  (a unit whose whole input is 0 outputs exactly its bias: the analysis
  reads "exactly 0" from there, no extra accumulator needed)

Beside each "ever" accumulator a *last step* tracker (int64, 0 = never)
remembers the last training step on which the feature was nonzero, the unit
was > 0, or its gradient was nonzero: "dead since step 3" for a
unit that died during training comes from there.

The "ever" / "last step" accumulators are exact (no tolerance) and are
updated on EVERY training forward / backward -- "never nonzero on any sample
seen" must see every sample -- but each is one reduction of an array the
layer has just computed (a conv's channels as contiguous rows when the
memory layout allows it, an OR of the bit patterns per row; a Dense input as
``x != 0`` into a reused bool buffer, then ``any``) and an in-place update of
a small (F,) / (U,) array, so they cost little next to the layer itself.  The per-feature and
per-unit sample COUNTS (``feature_count``, ``grad_count``,
``grad_zero_samples``) and the activation statistics are evidence only: they
are gathered on recorded steps only, over ``counted_samples`` samples (the
samples of the recorded steps), never over all ``samples``.
They stay on the layer's device; nothing is read back until report time.
Forwards run with gradients off (``evaluate``, ``no_grad``) are not
training and are ignored.
"""
import numpy as np

from tinynet.backend import array_module
from tinynet.tensor import Tensor, is_grad_enabled

#: Module kinds that only pass values on (no parameters): the data-flow
#: walks through them when it looks for the layer before / after another.
PASSTHROUGH = ("relu", "pool", "flatten", "dropout")

ACTIVATION_SAMPLE = 4096   # values of each recorded output kept for histograms
ACTIVATION_STEPS = 16      # ... at the first recorded step and the latest 15
_UNIT_KINDS = ("dense", "conv", "relu", "other")


def module_kind(module):
    """'dense', 'conv', 'relu', 'pool', 'flatten', 'dropout' or 'other'."""
    from tinynet import nn
    for cls, kind in ((nn.Dense, "dense"), (nn.Conv2D, "conv"), (nn.ReLU, "relu"),
                      (nn.MaxPool2D, "pool"), (nn.Flatten, "flatten"),
                      (nn.Dropout, "dropout")):
        if isinstance(module, cls):
            return kind
    return "other"


def _unit_axes(ndim):
    """Axes reduced to get one value per unit: all but axis 1 (N, U, ...)."""
    return (0,) + tuple(range(2, ndim)) if ndim >= 2 else (0,)


class LayerProbe:
    """The accumulators of one leaf module (all device arrays, host ints).

    samples        -- samples seen in training forwards (host int)
    counted_samples -- samples of the recorded steps' forwards (host int): what the
                      counts below count over
    feature_count  -- (F,) int64: samples OF RECORDED STEPS in which feature f was
                      nonzero [dense, conv]; whether it was EVER nonzero, over every
                      sample, is ``last_feature > 0`` (exact, every step)
    unit_max       -- (U,) largest output value of unit u over every sample seen
    grad_nonzero   -- (U,) bool: the gradient at the output was nonzero on some sample
    grad_seen      -- backward passes that reached the output (host int)
    grad_count     -- (U,) int64: samples on which unit u's gradient was nonzero
    grad_zero_samples -- samples whose whole output gradient was exactly 0 (device int;
                      at the logits: a saturated softmax gives exactly 0 there); these
                      two are evidence only and are counted on recorded steps
    last_feature, last_open, last_grad -- (F,) / (U,) int64: the last step on which
                      the feature was nonzero / the unit > 0 / its gradient nonzero
                      (0: never)
    batches        -- [(step, samples)] of the training forwards (host)
    stats          -- per recorded forward: "step", "mean", "std", "zero_frac" (device 0-d)
    samples_act    -- {step: (<= 4096,) device array}: output values for histograms, at
                      the first recorded step and the latest 15
    """

    def __init__(self, name, module, kind, recorder):
        self.name, self.module, self.kind = name, module, kind
        self._recorder = recorder
        self.samples = 0
        self.nograd_forwards = 0          # forwards with gradients off (evaluation, no_grad)
        self.counted_samples = 0
        self.feature_count = None
        self._unit_max = None
        self.grad_seen = 0
        self.grad_zero_samples = None
        self.grad_count = None
        self._last_feature = self._last_open = self._last_grad = None
        # the every-step reductions of the latest steps, folded in on read (see _Pending)
        self._pending = {"feature": None, "unit": None, "grad": None}
        self.batches = []
        self.in_shape = self.out_shape = None
        self.stats = {"step": [], "mean": [], "std": [], "zero_frac": [], "dead": []}
        # A ReLU right after a Dense/Conv2D shares its units: relu(z) > 0 exactly where
        # z > 0, so it reads that layer's accumulators instead of reducing again.
        self.alias = None
        self.samples_act = {}

    # ---- the exact "ever" accumulators (pending rows folded in first) -------
    @property
    def unit_max(self):
        self._fold("unit")
        return self._unit_max

    @property
    def last_feature(self):
        self._fold("feature")
        return self._last_feature

    @property
    def last_open(self):
        self._fold("unit")
        return self._last_open

    @property
    def last_grad(self):
        self._fold("grad")
        return self._last_grad

    def flush(self):
        """Fold every pending row into the accumulators (reading them does it too)."""
        for what in self._pending:
            self._fold(what)

    def _fold(self, what):
        pend = self._pending[what]
        if pend is None or not pend.steps:
            return
        rows, steps = pend.take()
        if what == "unit":
            hi = rows.max(axis=0)
            if self._unit_max is None:
                self._unit_max = hi
                self._last_open = np.zeros(hi.shape, dtype=np.int64)
            else:
                np.maximum(self._unit_max, hi, out=self._unit_max)
            opened = rows > 0
        else:
            opened = (rows & _BITS_BY_UINT[rows.dtype]) != 0
        # the last pending step on which each one was nonzero / > 0 (0: none of them)
        last = np.where(opened, steps[:, None], 0).max(axis=0)
        attr = {"feature": "_last_feature", "unit": "_last_open", "grad": "_last_grad"}[what]
        cur = getattr(self, attr)
        if cur is None:
            setattr(self, attr, last)
        else:
            np.maximum(cur, last, out=cur)

    def _push(self, what, a, along):
        """One reduction of ``a`` (numpy) into the next pending row of ``what``: the OR
        of the bit patterns ("feature", "grad") or the max ("unit") over ``along``.
        False when ``a`` is not laid out for it (the caller reduces directly)."""
        if along == 0:
            ok = a.ndim == 2 and a.flags.c_contiguous
            width = a.shape[1] if ok else 0
        else:
            a = _unit_rows(a)
            ok = a is not None
            width = a.shape[0] if ok else 0
        if not ok or a.dtype not in _BITS:
            return False
        dtype = a.dtype if what == "unit" else _BITS[a.dtype][0]
        row = self._next_row(what, width, dtype)
        if what == "unit":
            np.maximum.reduce(a, axis=along, out=row)
        else:
            np.bitwise_or.reduce(a.view(dtype), axis=along, out=row)
        return True

    def _next_row(self, what, width, dtype):
        """The pending row of ``what`` for the current step (room made first)."""
        pend = self._pending[what]
        if pend is None or pend.rows.shape[1] != width or pend.rows.dtype != dtype:
            self._fold(what)
            pend = self._pending[what] = _Pending(self._recorder.every, width, dtype)
        elif pend.full:
            self._fold(what)
        return pend.next_row(self._recorder.steps + 1)

    # ---- a Conv2D / Dense + ReLU (+ pool) run as one op (nn.Sequential) -------
    def observes_fused(self):
        """True when this probe can watch its layer run fused with the ReLU after it
        (asked by nn.Sequential before each forward): not on a recorded step (the
        statistics need the pre-activation itself) nor before the data flow is
        known; a conv probe takes the op's per-channel reports, the ReLU's probe
        reads its conv's accumulators anyway (``alias``)."""
        rec = self._recorder
        if rec._recording_forward or not rec.topology.closed:
            return False
        return self.kind in ("conv", "dense", "pool") or \
            (self.kind == "relu" and self.alias is not None)

    def fused_observer(self):
        """The callback the fused op reports to (conv probes), else None."""
        return self._observe_fused if self.kind in ("conv", "dense") else None

    def fused_forward(self, module, inputs, output):
        """The forward hook of a fused step: what ``__call__`` does, with the unit
        maxima and the gradient taken from the op's reports instead."""
        return self(module, inputs, output, fused=True)

    def _observe_fused(self, event, values):
        """("max", (O,)) in forward, ("grad_nonzero", (O,) bool) in backward: the same
        per-channel facts the hooks read from the pre-activation and its gradient."""
        xp = array_module(values)
        if event == "max":
            if xp is np and values.dtype in _BITS:
                self._next_row("unit", values.shape[0], values.dtype)[...] = values
            else:
                self._update_units(xp, values, self._recorder.steps + 1)
        elif event == "grad_nonzero":
            if xp is np:
                pend = self._pending["grad"]
                dtype = pend.rows.dtype if pend is not None else np.dtype(np.uint32)
                self._next_row("grad", values.shape[0], dtype)[...] = values
            else:
                self._update_grad(xp, values)
            self.grad_seen += 1

    @property
    def grad_nonzero(self):
        """(U,) bool: the gradient at the output was nonzero on some sample (= last_grad > 0)."""
        return None if self.last_grad is None else self.last_grad > 0

    def _bool_scratch(self, a):
        return self._recorder._scratch(array_module(a), a, bool)

    @property
    def passive(self):
        """Nothing to accumulate between recorded steps: pool, flatten, dropout, aliased ReLU."""
        return self.kind in ("pool", "flatten", "dropout") or self.alias is not None

    @property
    def units_source(self):
        """The probe whose unit accumulators describe this layer's units."""
        return self.alias if self.alias is not None else self

    # ---- forward hook ------------------------------------------------------
    def __call__(self, module, inputs, output, fused=False):
        if not is_grad_enabled() or not isinstance(output, Tensor):
            # counted only: a layer that ran ONLY like this while training (a forward
            # wrapped in no_grad) had its graph cut -- see the graph_cut cause
            self.nograd_forwards += 1
            if not self._recorder.topology.closed:
                self._recorder.topology.see_nograd(self.name, inputs[0] if inputs else None,
                                                   output)
            return None
        rec = self._recorder
        y = output.data
        step = rec.steps + 1                      # the step this forward belongs to
        n = int(y.shape[0]) if y.ndim else 1
        self.samples += n
        self.batches.append((step, n))
        recording = rec._recording_forward
        if recording:
            self.counted_samples += n
        if self.passive and not recording and rec.topology.closed:
            return None                           # nothing to accumulate on this step
        xp = array_module(y)
        x = inputs[0] if inputs else None
        xa = x.data if isinstance(x, Tensor) else x       # a layer may be called on an array
        if not rec.topology.closed:               # the first training forward
            self.out_shape = tuple(y.shape[1:])
            self.in_shape = tuple(xa.shape[1:]) if hasattr(xa, "shape") else None
            rec.topology.see(self.name, self.kind, x, output)
        weighted = self.kind in ("dense", "conv")
        if weighted and getattr(xa, "ndim", 0) >= 2 and array_module(xa) is xp:
            self._see_input(xp, xa, step, recording)
        if not fused:             # else the fused op reports the maxima and the gradient
            if self.alias is None and self.kind in _UNIT_KINDS and y.ndim >= 1:
                self._see_units(xp, y, step)
            if weighted and output.requires_grad:
                output.register_hook(self._on_grad)
        if recording:
            self._record_stats(xp, y, step)
        return None

    def _see_input(self, xp, xa, step, recording):
        """Every step: the last step on which each feature (column / channel) was nonzero
        on some sample (exact).  Recorded steps: feature_count += samples with it nonzero."""
        if xp is np and self._push("feature", xa, _layout_axis(xa)):
            if self.feature_count is None:
                self.feature_count = np.zeros(xa.shape[1], dtype=np.int64)
        else:
            self._fold("feature")
            nz = _any_per_unit(xp, xa, self._bool_scratch)      # (F,) bool
            if self._last_feature is None:
                self._last_feature = xp.zeros(nz.shape, dtype=np.int64)
            if self.feature_count is None:
                self.feature_count = xp.zeros(nz.shape, dtype=np.int64)
            xp.copyto(self._last_feature, np.int64(step), where=nz)
        if recording:
            per_sample = xa.any(axis=tuple(range(2, xa.ndim))) if xa.ndim > 2 else xa != 0
            self.feature_count += per_sample.sum(axis=0, dtype=np.int32)

    def _see_units(self, xp, y, step):
        """Running max of every unit, and the last step on which it was > 0."""
        if xp is np and self._push("unit", y, _layout_axis(y)):
            return
        self._update_units(xp, _max_per_unit(xp, y), step)

    def _update_units(self, xp, hi, step):
        """Fold in one step's (U,) maxima directly (no pending row)."""
        self._fold("unit")
        if self._unit_max is None:
            self._unit_max = hi
            self._last_open = xp.zeros(hi.shape, dtype=np.int64)
        else:
            xp.maximum(self._unit_max, hi, out=self._unit_max)
        xp.copyto(self._last_open, np.int64(step), where=hi > 0)

    def _on_grad(self, g):
        """Tensor hook on the output: which units got any nonzero gradient (every step);
        per-unit sample counts and all-zero samples (recorded steps only: evidence)."""
        ga = g.data
        xp = array_module(ga)
        if self._recorder._recording_forward and ga.ndim >= 2:
            per_sample = ga.any(axis=tuple(range(2, ga.ndim))) if ga.ndim > 2 else ga != 0
            count = per_sample.sum(axis=0, dtype=np.int32).astype(np.int64)
            nz = count > 0
            zero_rows = ga.shape[0] - per_sample.any(axis=1).sum()
            self.grad_count = count if self.grad_count is None else self.grad_count + count
            self.grad_zero_samples = zero_rows if self.grad_zero_samples is None else \
                self.grad_zero_samples + zero_rows
        elif xp is np and ga.ndim >= 2 and self._push("grad", ga, _layout_axis(ga)):
            nz = None
        else:
            nz = _any_per_unit(xp, ga, self._bool_scratch) if ga.ndim >= 2 else ga != 0
        if nz is not None:
            self._update_grad(xp, nz)
        self.grad_seen += 1
        return None

    def _update_grad(self, xp, nz):
        """Fold in one step's (U,) "gradient nonzero" directly (no pending row)."""
        self._fold("grad")
        if self._last_grad is None:
            self._last_grad = xp.zeros(nz.shape, dtype=np.int64)
        xp.copyto(self._last_grad, np.int64(self._recorder.steps + 1), where=nz)

    def _record_stats(self, xp, y, step):
        """Mean, std, fraction of exact zeros and a histogram sample of the output.

        Read through a flat view in memory order (a conv output is a transposed
        view: ``reshape(-1)`` would copy it), in three passes, one of them into a reused
        scratch buffer: sum; (y - mean)·(y - mean); nonzeros counted."""
        s = self.stats
        s["step"].append(step)
        flat = _flat_view(y)
        if flat.dtype.kind != "f":
            flat = flat.astype(np.float32)
        n = max(int(flat.size), 1)
        mean = flat.sum() / n
        d = xp.subtract(flat, mean, out=self._recorder._scratch(xp, flat))
        s["mean"].append(mean)
        s["std"].append(xp.sqrt(xp.dot(d, d) / n))
        s["zero_frac"].append(xp.asarray(n - xp.count_nonzero(flat)) / n)
        src = self.units_source
        s["dead"].append((src.unit_max <= 0).sum()
                         if self.kind == "relu" and src.unit_max is not None else None)
        stride = max(1, flat.size // ACTIVATION_SAMPLE)
        self.samples_act[step] = flat[::stride][:ACTIVATION_SAMPLE].copy()
        if len(self.samples_act) > ACTIVATION_STEPS:      # keep the first and the latest
            del self.samples_act[sorted(self.samples_act)[1]]


def _memory_order(a):
    """The axes of ``a`` from the largest stride to the smallest, and whether ``a``
    transposed that way is C-contiguous (then it reshapes to any 2-D / 1-D view)."""
    order = sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]) if a.shape[i] > 1 else 0)
    return order, a.transpose(order).flags.c_contiguous


def _flat_view(a):
    """All values of ``a`` as a 1-D array in memory order: a view when possible."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    order, contiguous = _memory_order(a)
    return a.transpose(order).reshape(-1) if contiguous else a.reshape(-1)


def _unit_rows(a):
    """``a`` (N, U, ...) as a (U, rest) view when axis 1 is outermost in memory and the
    rest is contiguous (a conv output stored channel-first: one row per unit), else None."""
    if a.ndim < 2 or a.flags.c_contiguous:
        return None
    order, contiguous = _memory_order(a)
    if not contiguous or order[0] != 1:
        return None
    return a.transpose(order).reshape(a.shape[1], -1)


def _any_per_unit(xp, a, scratch):
    """(U,) bool: unit (axis 1) nonzero on some sample / position.

    Channel-first rows: an OR of the bit patterns of each (contiguous) row.  Otherwise
    (a Dense input (N, F), reduced along the slow axis) ``a != 0`` into a reused bool
    buffer ``scratch(a)`` and ``any`` over it: twice as fast as ``any`` on the floats."""
    rows = _unit_rows(a)
    if rows is not None:
        if xp is np and a.dtype in _BITS:
            # OR of the bit patterns along each row, the sign bit masked off: nonzero
            # exactly where some value is != 0 (NaN too; -0.0 is 0).  One pass like
            # ``any``, but a vectorized integer reduction: about twice as fast.
            uint, magnitude = _BITS[a.dtype]
            return (np.bitwise_or.reduce(rows.view(uint), axis=1) & magnitude) != 0
        return rows.any(axis=1)
    return xp.not_equal(a, 0, out=scratch(a)).any(axis=_unit_axes(a.ndim))


#: float dtype -> (unsigned int of the same width, the mask of all bits but the sign)
_BITS = {np.dtype(f): (np.dtype(u), u(~(1 << (8 * np.dtype(u).itemsize - 1)) &
                                      np.iinfo(u).max))
         for f, u in ((np.float16, np.uint16), (np.float32, np.uint32),
                      (np.float64, np.uint64))}


_BITS_BY_UINT = {u: m for u, m in _BITS.values()}


def _layout_axis(a):
    """0 for a C-contiguous (N, U) array (reduce over the rows), 1 for channel-first
    rows (N, U, ...) -- which :meth:`LayerProbe._push` reduces along."""
    return 0 if a.ndim == 2 else 1


class _Pending:
    """Up to ``capacity`` rows of per-step reductions, with their steps, waiting to be
    folded into a probe's accumulators.  Why: folding one step at a time costs a
    handful of small NumPy calls per layer per step; a row costs one, and the fold
    of ``every`` rows at once is as cheap as a single step's."""

    def __init__(self, capacity, width, dtype):
        self.rows = np.empty((max(1, int(capacity)), width), dtype=dtype)
        self.steps = []

    @property
    def full(self):
        return len(self.steps) == self.rows.shape[0]

    def next_row(self, step):
        self.steps.append(step)
        return self.rows[len(self.steps) - 1]

    def take(self):
        k = len(self.steps)
        steps = np.asarray(self.steps, dtype=np.int64)
        self.steps = []
        return self.rows[:k], steps


def _max_per_unit(xp, a):
    rows = _unit_rows(a)
    if rows is not None:
        return rows.max(axis=1)
    return a.max(axis=_unit_axes(a.ndim))


class Topology:
    """Which leaf module feeds which, learned from one real forward pass.

    A module's *producer* is the module whose output tensor it received
    (matched by identity, so it works for any ``forward``, not only
    Sequential); None means the model's input.  The first training
    forward is watched; :meth:`close` (called at the end of the first
    step) stops watching and drops the tensors it held.
    """

    def __init__(self):
        self.order = []          # module names in the order they first ran
        self.kind = {}
        self.producer = {}       # name -> producer name or None (the data)
        self._outputs = {}       # id(tensor) -> (name, tensor); tensors held so ids stay unique
        self.closed = False
        # Where the graph was cut, seen on the watched forward (see :meth:`cut_after`):
        # [{"at": module that got a tensor outside the graph (or ran under no_grad),
        #   "after": the last module whose output was still in the graph (None: unknown),
        #   "op": "detach" | "copy" | "no_grad" | None (not proven which op)}]
        self.cuts = []
        self._data = None        # the tensor the first module received: the model's input
        self._nograd = {}        # name -> (its latest no_grad output, the in-graph producer)

    @property
    def known(self):
        return bool(self.order)

    def see(self, name, kind, x, out):
        if self.closed:
            return
        if name not in self.kind:
            if not self.order and isinstance(x, Tensor):
                self._data = x
            self.order.append(name)
            self.kind[name] = kind
            src = self._outputs.get(id(x)) if isinstance(x, Tensor) else None
            self.producer[name] = src[0] if src is not None and src[1] is x else None
            if self.producer[name] is None and isinstance(x, Tensor) and not x.requires_grad \
                    and x is not self._data:
                self._see_cut(name, x)
        self._outputs[id(out)] = (name, out)

    def see_nograd(self, name, x, out):
        """A forward with gradients off while the first step is watched: its output is
        cut from the graph; remember it (the latest only: evaluation passes must not
        pile up) and which in-graph module fed it."""
        if self.closed or not isinstance(out, Tensor):
            return
        src = self._outputs.get(id(x)) if isinstance(x, Tensor) else None
        self._nograd[name] = (out, src[0] if src is not None and src[1] is x else None)

    def _see_cut(self, name, x):
        """Module ``name`` received ``x``: a tensor outside the graph that is not the
        model's input.  Which op made it is told from what the hooks saw: a no_grad
        module's output (identity), a graph output's very array (``.detach()``), or an
        exact copy of a graph output's values (``tn.tensor(h.data)``); else unknown."""
        for ng, (out, fed) in self._nograd.items():
            if out is x:
                self.cuts.append({"at": ng, "after": fed, "op": "no_grad", "into": name})
                return
        xa = x.data
        copies = []
        for prod, out in self._outputs.values():
            if out.data is xa:
                self.cuts.append({"at": name, "after": prod, "op": "detach"})
                return
            o = out.data
            if o.shape == xa.shape and o.dtype == xa.dtype and \
                    array_module(o) is array_module(xa) and bool((o == xa).all()):
                copies.append(prod)
        if copies:                # several equal outputs (a passthrough): the latest one
            self.cuts.append({"at": name, "after": copies[-1], "op": "copy"})
            return
        prev = next((m for m in reversed(self.order[:-1])), None)
        self.cuts.append({"at": name, "after": prev, "op": None})

    def cut_after(self, name):
        """The first cut downstream of module ``name`` (a dict of :attr:`cuts`), or None.

        Downstream: ``name`` and every module its output reached in the graph."""
        reach, grew = {name}, True
        while grew:
            grew = False
            for m in self.order:
                if m not in reach and self.producer.get(m) in reach:
                    reach.add(m)
                    grew = True
        for c in self.cuts:
            if c["after"] in reach:
                return c
        for ng, (_, fed) in self._nograd.items():        # a no_grad module fed by it
            if fed in reach and ng not in self.kind:       # ... that never ran in training
                return {"at": ng, "after": fed, "op": "no_grad"}
        return None

    def close(self):
        if self.order:
            self.closed = True
        self._outputs.clear()
        self._data = None
        self._nograd = {n: (None, fed) for n, (_, fed) in self._nograd.items()}

    @classmethod
    def sequential(cls, names_kinds):
        """Fallback without a watched forward: each module feeds the next."""
        t = cls()
        prev = None
        for name, kind in names_kinds:
            t.order.append(name)
            t.kind[name] = kind
            t.producer[name] = prev
            prev = name
        t.closed = True
        return t

    # ---- walking the data flow -----------------------------------------------
    def consumers(self, name):
        return [m for m in self.order if self.producer.get(m) == name]

    def upstream(self, name):
        """(the nearest dense/conv/other layer feeding ``name``, the kinds passed on the way).

        Walks back through ReLU / pool / flatten / dropout; (None, path) when
        the input comes from the data.
        """
        path = []
        p = self.producer.get(name)
        while p is not None and self.kind.get(p) in PASSTHROUGH:
            path.append(self.kind[p])
            p = self.producer.get(p)
        return p, path

    def downstream(self, name):
        """[(layer, kinds passed on the way)] for the nearest layers fed by ``name``."""
        found, stack, seen = [], [(name, [])], set()
        while stack:
            cur, path = stack.pop()
            for c in self.consumers(cur):
                if c in seen:
                    continue
                seen.add(c)
                if self.kind.get(c) in PASSTHROUGH:
                    stack.append((c, path + [self.kind[c]]))
                else:
                    found.append((c, path))
        found.sort(key=lambda item: self.order.index(item[0]))
        return found

    def feeds_relu(self, name):
        """True if the output of ``name`` goes straight into a ReLU (maybe after dropout)."""
        stack = list(self.consumers(name))
        while stack:
            c = stack.pop()
            kind = self.kind.get(c)
            if kind == "relu":
                return True
            if kind == "dropout":
                stack.extend(self.consumers(c))
        return False
