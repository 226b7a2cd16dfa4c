"""The recorder's device accumulators, read back once, as host arrays for the analysis.

:func:`collect` is the only place the analysis touches the device: it copies
each parameter's initial and current values, its changed mask and each
layer's accumulators to numpy.  Everything in causes / symmetry / updates
then works on plain numpy arrays.

Layer shapes (see :mod:`.probes` for "feature" and "unit"): a Dense weight is
(IN, OUT) -- features on axis 0, units on axis 1; a Conv2D weight is
(O, C, KH, KW) -- units on axis 0, features on axis 1.
"""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from tinynet import backend
from tinynet.diagnose.probes import module_kind


@dataclass
class ParamInfo:
    name: str
    shape: tuple
    layer: Optional[str]              # module name, or None
    role: str                         # "weight", "bias" or the attribute name
    initial: np.ndarray
    final: np.ndarray
    frozen: np.ndarray                # bool, shaped like the parameter: never changed
    last_change: np.ndarray           # int, the step of the last change (0: never)
    grad_nonzero: np.ndarray          # bool: gradient nonzero at some recorded step
    grad_missing: int                 # steps on which .grad was None
    steps: int
    in_optimizer: Optional[bool]      # None when no optimizer is known
    opt_skipped: Optional[int]        # optimizer.skipped count, when the optimizer keeps one
    requires_grad: bool
    history: dict = field(default_factory=dict)
    last_update: Optional[np.ndarray] = None   # the last step's update, recomputed from the
    #                                            optimizer's state (None: unknown)

    @property
    def size(self):
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class LayerInfo:
    name: str
    kind: str                         # "dense", "conv", "relu", ...
    module: object
    weight: Optional[str] = None      # parameter names
    bias: Optional[str] = None
    probed: bool = False
    samples: int = 0                             # every training step's samples
    nograd_forwards: int = 0                     # forwards run with gradients off
    counted_samples: int = 0                     # the recorded steps' samples: what the
    #                                              counts (feature_count, grad_count,
    #                                              grad_zero_samples) count over
    feature_count: Optional[np.ndarray] = None   # (F,) int64, recorded steps only
    unit_max: Optional[np.ndarray] = None        # (U,)
    bias_values: Optional[np.ndarray] = None     # (U,) the bias at the end (None: no bias)
    grad_nonzero: Optional[np.ndarray] = None    # (U,) bool
    grad_seen: int = 0
    grad_zero_samples: int = 0                   # samples with an all-zero output gradient
    grad_count: Optional[np.ndarray] = None      # (U,) samples with a nonzero gradient
    #                                              (recorded steps only)
    last_feature: Optional[np.ndarray] = None    # (F,) last step the feature was nonzero
    last_open: Optional[np.ndarray] = None       # (U,) last step the unit was > 0
    last_grad: Optional[np.ndarray] = None       # (U,) last step its gradient was nonzero
    batches: list = field(default_factory=list)  # [(step, samples)]
    out_shape: Optional[tuple] = None
    feeds_relu: bool = False
    upstream: Optional[str] = None               # nearest dense/conv/other layer feeding it
    upstream_path: list = field(default_factory=list)
    downstream: list = field(default_factory=list)   # [(layer, path kinds)]

    @property
    def feature_axis(self):
        return 0 if self.kind == "dense" else 1

    @property
    def unit_axis(self):
        return 1 if self.kind == "dense" else 0

    # Each "since t0" mask reads: on every sample of every step after t0 ...
    # t0 = 0 means over the whole training (the exact "ever" accumulators).
    def samples_since(self, t0=0):
        return self.samples if t0 == 0 else sum(n for s, n in self.batches if s > t0)

    def zero_features(self, t0=0):
        """(F,) bool: features that were 0 on every sample (after step t0); None if not recorded.

        From ``last_feature``, updated on every step (exact over every sample) -- not
        from ``feature_count``, which counts the recorded steps only."""
        if self.last_feature is None or self.samples_since(t0) == 0:
            return None
        return self.last_feature <= t0

    def dead(self, t0=0):
        """(U,) bool: units followed by a ReLU whose pre-activation never exceeded 0."""
        if self.unit_max is None or not self.feeds_relu:
            return None
        return self.unit_max <= 0 if t0 == 0 else self.last_open <= t0

    def exact_zero(self, t0=0):
        """(U,) bool: units whose output was exactly 0 on every sample.

        Known for certain when the whole input was 0: the output is then just the
        bias, so the units with a zero (or no) bias.  Otherwise reported False.
        """
        if self.unit_max is None:
            return None
        zf = self.zero_features(t0)
        if zf is None or not zf.all():
            return np.zeros(self.unit_max.shape, dtype=bool)
        if self.bias_values is None:
            return np.ones(self.unit_max.shape, dtype=bool)
        return self.bias_values == 0

    def no_grad(self, t0=0):
        """(U,) bool: units whose output never received a nonzero gradient."""
        if self.grad_nonzero is None or self.grad_seen == 0:
            return None
        return ~self.grad_nonzero if t0 == 0 else self.last_grad <= t0


@dataclass
class Evidence:
    params: dict                      # name -> ParamInfo (model order)
    layers: dict                      # name -> LayerInfo (forward order)
    steps: int
    samples_seen: int
    optimizer: object
    recorder: object
    lr_zero_steps: list = field(default_factory=list)   # steps with the optimizer's lr == 0
    data: Optional[dict] = None       # what is known of the WHOLE data set (see explain):
    #                                   {"samples": M or None, "all_seen": bool,
    #                                    "zero_features": {layer: (F,) bool} scanned}
    cache: dict = field(default_factory=dict)           # shared passes (attribution)

    def layer_of(self, param):
        info = self.params.get(param)
        return None if info is None or info.layer is None else self.layers.get(info.layer)

    def output_layer(self):
        """The last Dense/Conv2D layer that ran (the network's output, usually the logits)."""
        layers = self.param_layers()
        return layers[-1] if layers else None

    def param_layers(self):
        """Dense / Conv2D layers that own a recorded weight, in forward order."""
        return [l for l in self.layers.values() if l.kind in ("dense", "conv") and l.weight]


def collect(recorder, data=None):
    """Evidence from a Recorder (reads the device once per array); ``data``: what
    explain knows of the whole data set (see :func:`tinynet.diagnose.explain.data_coverage`)."""
    rec = recorder
    rec.finalize()
    opt = rec.optimizer
    opt_ids, opt_names = None, {}
    if opt is not None and hasattr(opt, "params"):
        opt_ids = {id(p) for p in opt.params}
        for n, p in zip(getattr(opt, "names", []), opt.params):
            opt_names[id(p)] = n
    skipped = getattr(opt, "skipped", None) if opt is not None else None

    owner = {}                                        # id(param) -> (module name, attr)
    for mname, module in rec.model.named_modules():
        for attr, p in module._parameters.items():
            if p is not None and id(p) not in owner:
                owner[id(p)] = (mname, attr)

    history = rec.history
    params = {}
    for name, p in rec.params.items():
        mname, attr = owner.get(id(p), (None, name.rsplit(".", 1)[-1]))
        last = rec.last_change(name)
        in_opt = None if opt_ids is None else id(p) in opt_ids
        skip = None
        if skipped is not None and id(p) in opt_names:
            skip = int(skipped.get(opt_names[id(p)], 0))
        params[name] = ParamInfo(
            name=name, shape=tuple(p.shape), layer=mname, role=attr,
            initial=rec.initial_numpy(name), final=p.numpy(), frozen=last == 0,
            last_change=last,
            grad_nonzero=rec.grad_nonzero_mask(name), grad_missing=rec.grad_missing[name],
            steps=rec.steps, in_optimizer=in_opt, opt_skipped=skip,
            requires_grad=bool(p.requires_grad), history=history.get(name, {}),
            last_update=last_update(opt, p) if in_opt else None)

    topo = rec.topology_or_sequence()
    by_module = {}
    for mname, module in rec.model.named_modules():
        if not any(True for _ in module.children()):
            by_module[mname or "<model>"] = module
    names = [n for n in topo.order if n in by_module] + \
        [n for n in by_module if n not in topo.order]
    layers = {}
    for lname in names:
        module = by_module[lname]
        probe = rec.probes.get(lname)
        kind = probe.kind if probe is not None else module_kind(module)
        info = LayerInfo(name=lname, kind=kind, module=module)
        prefix = "" if lname == "<model>" else lname + "."
        w = getattr(module, "weight", None)
        b = getattr(module, "bias", None)
        if w is not None and prefix + "weight" in params:
            info.weight = prefix + "weight"
        if b is not None and prefix + "bias" in params:
            info.bias = prefix + "bias"
            info.bias_values = params[info.bias].final.reshape(-1)
        if probe is not None:
            info.nograd_forwards = probe.nograd_forwards
        if probe is not None and probe.samples:
            info.probed = True
            info.samples = probe.samples
            info.counted_samples = probe.counted_samples
            info.feature_count = _host(probe.feature_count, np.int64)
            units = probe.units_source          # a ReLU reads the layer it follows
            info.unit_max = _host(units.unit_max, np.float64)
            info.grad_nonzero = _host(probe.grad_nonzero, bool)
            info.grad_seen = probe.grad_seen
            info.grad_count = _host(probe.grad_count, np.int64)
            if probe.grad_zero_samples is not None:
                info.grad_zero_samples = int(backend.to_numpy(probe.grad_zero_samples))
            info.last_feature = _host(probe.last_feature, np.int64)
            info.last_open = _host(units.last_open, np.int64)
            info.last_grad = _host(probe.last_grad, np.int64)
            info.batches = list(probe.batches)
            info.out_shape = probe.out_shape
        if lname in topo.kind:
            info.feeds_relu = topo.feeds_relu(lname)
            info.upstream, info.upstream_path = topo.upstream(lname)
            info.downstream = topo.downstream(lname)
        layers[lname] = info
    if data is not None and data.get("arrays") is not None:
        data = dict(data)
        arrays = data.pop("arrays")
        data["zero_features"] = {n: z for n, z in
                                 ((n, scan_zero_features(arrays, L)) for n, L in layers.items())
                                 if z is not None}
    return Evidence(params=params, layers=layers, steps=rec.steps,
                    samples_seen=rec.samples_seen, optimizer=opt, recorder=rec,
                    lr_zero_steps=list(getattr(rec, "lr_zero_steps", [])), data=data)


def _host(a, dtype):
    return None if a is None else np.asarray(backend.to_numpy(a)).astype(dtype)


def last_update(opt, p):
    """The update the optimizer applied to ``p`` at its last step, recomputed from its
    state and ``p.grad`` with the optimizer's own operations (host array, the
    parameter's dtype), or None when that cannot be known (no gradient, an optimizer
    tinynet does not know, weight decay).

    Why: an entry whose gradient was nonzero but which never changed was moved by
    less than half the float spacing of its value -- this is the update to compare.
    """
    g = getattr(p, "grad", None)
    if opt is None or g is None:
        return None
    try:
        i = [id(q) for q in opt.params].index(id(p))
    except (AttributeError, ValueError):
        return None
    state = opt.state[i] if hasattr(opt, "state") else {}
    kind = type(opt).__name__
    g = np.asarray(backend.to_numpy(g.data))
    w = np.asarray(backend.to_numpy(p.data))
    lr = np.float64(opt.lr)
    with np.errstate(all="ignore"):
        if kind == "SGD" and not getattr(opt, "weight_decay", 0):
            buf = state.get("momentum_buffer")
            d = g if buf is None or getattr(opt, "nesterov", False) else \
                np.asarray(backend.to_numpy(buf))
            if getattr(opt, "nesterov", False):
                return None
            return (d * lr).astype(w.dtype)
        if kind == "RMSprop" and "square_avg" in state:
            s = np.asarray(backend.to_numpy(state["square_avg"]))
            return (g / (np.sqrt(s) + w.dtype.type(opt.eps)) * w.dtype.type(lr)).astype(w.dtype)
        if kind == "Adam" and "exp_avg" in state:
            import math
            m = np.asarray(backend.to_numpy(state["exp_avg"]))
            v = np.asarray(backend.to_numpy(state["exp_avg_sq"]))
            b1, b2 = opt.betas
            t = state["step"]
            denom = np.sqrt(v) / w.dtype.type(math.sqrt(1.0 - b2 ** t)) + w.dtype.type(opt.eps)
            return (m / denom * w.dtype.type(opt.lr / (1.0 - b1 ** t))).astype(w.dtype)
    return None


def scan_zero_features(arrays, L):
    """(F,) bool: input features of layer ``L`` that are 0 in EVERY sample of ``arrays``
    (the whole data set), or None when L's input is not the data as such.

    Only for a Dense/Conv2D fed by the data directly or through a Flatten: there a
    feature is a column of x.reshape(N, -1) / a channel of x, so zero in the data
    means zero at the layer."""
    if L.kind not in ("dense", "conv") or L.upstream is not None or \
            any(k != "flatten" for k in L.upstream_path) or L.feature_count is None:
        return None
    nz = None
    for x in arrays:
        x = np.asarray(backend.to_numpy(getattr(x, "data", x)))
        if x.ndim < 2:
            return None
        if L.kind == "conv":
            part = (x != 0).any(axis=tuple(a for a in range(x.ndim) if a != 1))
        else:
            part = (x.reshape(len(x), -1) != 0).any(axis=0)
        nz = part if nz is None else nz | part
    if nz is None or nz.shape != L.feature_count.shape:
        return None
    return ~nz
