"""Symmetric hidden units: the layer acts as fewer units than it has.

(Conv2D: the same with output channels for units -- incoming kernel
``W_L[j]``, bias, and the next layer's weights that read channel j -- through
ReLU / MaxPool2D / Flatten.)

Two hidden units j and k of a Dense layer L (weight (IN, U), bias (U,))
followed -- through ReLU / Dropout only -- by a Dense layer M (weight (U, OUT))
compute the same thing and receive the same gradient when their *incoming
column* ``W_L[:, j]``, their *bias* ``b_L[j]`` and their *outgoing row*
``W_M[j, :]`` are equal: the forward values are equal, so the backward
values are equal, so every elementwise optimizer (SGD, momentum, RMSprop,
Adam) applies equal updates -- the tie is kept forever.  The entries DO
change; the layer just never becomes wider than its number of groups (its
*effective width*).  A Dropout between L and M breaks the tie (it drops
different units on each sample).

Tolerance.  In exact arithmetic equal units stay equal.  In floating point
the matrix products that make the gradients may sum different columns in a
different order (BLAS blocking, threads, GPU kernels), so two units that
should be identical can differ in the last bits.  Units therefore count as
equal when every part agrees to within ``RTOL`` times the largest magnitude
of that part in the layer (RTOL = 1e-5, about 100 float32 ulps): far below
the difference between two randomly initialized units, far above rounding.
(With NumPy's float32 BLAS on the all-ones 784-256-30-10 network the units
stayed bit-identical for every step we measured.)

Grouping is exact (max-abs comparison of the full vectors) but cheap: units
are first sorted by random projections (NPROJ = 4 per unit), and only units
whose projections are all within the tolerance bound are compared.  The
effective-width curve the Recorder keeps over steps uses the projections
alone (four numbers per unit per recorded step, computed on the device), with
4 x the RMS of each part (from the norms the Recorder computes anyway) standing
in for its max |value|; two different units pass that test only by a chance of
about (1e-3)^4 per pair.
"""
import numpy as np

from tinynet import backend

RTOL = 1e-5
NPROJ = 4                # random projections per unit: a chance match in all four is negligible
_ROUNDING = 1e-6         # slack for rounding inside the projection itself (float32 matvec)
_SEED = 20240611         # fixed: the projections must not draw from tinynet's own RNG


def dense_pairs(topology, probes):
    """[(L, M)]: Dense layers L whose output feeds exactly one Dense layer M via ReLU/Dropout."""
    pairs = []
    for name in topology.order:
        probe = probes.get(name)
        if probe is None or probe.kind != "dense":
            continue
        down = topology.downstream(name)
        if len(down) != 1:
            continue
        nxt, path = down[0]
        if probes.get(nxt) is not None and probes[nxt].kind == "dense" and \
                all(k in ("relu", "dropout") for k in path):
            pairs.append((name, nxt))
    return pairs


def unit_part_params(layer, nxt):
    """The Parameters behind :func:`unit_parts`, in the same order."""
    return [layer.weight] + ([layer.bias] if layer.bias is not None else []) + [nxt.weight]


def unit_parts(layer, nxt):
    """Device arrays, one row per hidden unit: [W_L.T (U, IN), b_L (U, 1), W_M (U, OUT)]."""
    parts = [layer.weight.data.T]
    if layer.bias is not None:
        parts.append(layer.bias.data.reshape(-1, 1))
    parts.append(nxt.weight.data)
    return parts


def projection_vectors(parts):
    """Fixed random vectors, NPROJ per part: {"host": [(d, NPROJ)], "dev": [...], "l1"}."""
    rng = np.random.default_rng(_SEED)
    host = [rng.standard_normal((p.shape[1], NPROJ)).astype(np.float32) for p in parts]
    device = backend.device_of(parts[0])
    return {"host": host, "dev": [backend.to_device(h, device) for h in host],
            "l1": np.array([np.abs(h).sum(axis=0) for h in host])}       # (parts, NPROJ)


def project(parts, vec, scale=None):
    """(proj (U, NPROJ), scale (parts,)) on the device: projections per unit, and the
    magnitude of each part (max |part| unless a cheaper ``scale`` is given)."""
    xp = backend.array_module(parts[0])
    proj = None
    for p, r in zip(parts, vec["dev"]):
        r = r.astype(p.dtype, copy=False)
        term = _small_matmul(p, r) if xp is np else p @ r
        proj = term if proj is None else proj + term
    if scale is None:
        # max |part| as max(max, -min): two reductions, no temporary array
        scale = xp.stack([xp.maximum(p.max(), -p.min()) for p in parts])
    return proj, scale


#: rows x inner x columns of one product below which OpenBLAS stays on one thread
_ONE_THREAD_WORK = 200_000


def _small_matmul(a, b):
    """``a @ b`` for a thin ``b`` (k, NPROJ), in row blocks small enough that OpenBLAS
    runs each on the calling thread.  One (512, 784) @ (784, 4) product is split over
    the BLAS threads otherwise, and on a busy machine the caller then spins waiting
    for them: up to 100x the CPU of the same work done on one thread (measured in
    scripts/recorder_overhead.py)."""
    rows = max(1, _ONE_THREAD_WORK // max(1, a.shape[1] * b.shape[1]))
    if a.shape[0] <= rows:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    for i in range(0, a.shape[0], rows):
        np.matmul(a[i:i + rows], b, out=out[i:i + rows])
    return out


def _proj_bounds(scale, l1, rtol=RTOL):
    """Per projection, the largest difference two equal-within-tolerance units can show."""
    scale = np.asarray(scale, dtype=np.float64)
    return ((rtol + _ROUNDING) * scale[:, None] * l1).sum(axis=0)      # (NPROJ,)


def _chains(values, bound, members):
    """Split ``members`` (indices) into runs whose sorted ``values`` differ by <= bound."""
    order = members[np.argsort(values[members], kind="stable")]
    if len(order) == 0:
        return []
    gaps = np.diff(values[order]) > bound
    cuts = np.flatnonzero(gaps) + 1
    return np.split(order, cuts)


def _components(adjacent):
    """Connected components of a small symmetric bool adjacency matrix -> [index arrays]."""
    k = adjacent.shape[0]
    label = np.full(k, -1)
    comps = []
    for start in range(k):
        if label[start] >= 0:
            continue
        frontier = np.array([start])
        label[start] = len(comps)
        members = [start]
        while frontier.size:
            nxt = np.flatnonzero(adjacent[frontier].any(axis=0) & (label < 0))
            label[nxt] = len(comps)
            members.extend(nxt.tolist())
            frontier = nxt
        comps.append(np.sort(np.asarray(members)))
    return comps


def _candidate_groups(proj, bound):
    """Supersets of the equality classes: units linked by chains of pairs whose two
    projections are both within ``bound`` (equal units are always linked)."""
    groups = []
    for chain in _chains(proj[:, 0], bound[0], np.arange(proj.shape[0])):
        if len(chain) == 1:
            groups.append(chain)
            continue
        p = proj[chain]
        adjacent = (np.abs(p[:, None, :] - p[None, :, :]) <= bound).all(axis=2)
        groups.extend(chain[c] for c in _components(adjacent))
    return groups


def width_from_projection(proj, scale, vec):
    """Number of unit groups suggested by the projections alone (for the curve over steps)."""
    proj = np.asarray(proj, dtype=np.float64)
    return len(_candidate_groups(proj, _proj_bounds(scale, vec["l1"])))


def group_units(parts, rtol=RTOL):
    """Exact grouping of hidden units.

    parts: host arrays [(U, d1), (U, d2), ...] (incoming column, bias, outgoing row).
    Returns (labels (U,) int: group id per unit, numbered by first member;
    max_dev: the largest within-group difference relative to the tolerance
    scale (0 for bit-identical groups)).
    """
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    U = parts[0].shape[0]
    scale = np.array([np.abs(p).max() if p.size else 0.0 for p in parts])
    tol = rtol * scale
    vec = projection_vectors([p.astype(np.float32) for p in parts])
    proj = sum(p @ h.astype(np.float64) for p, h in zip(parts, vec["host"]))
    labels = np.full(U, -1, dtype=np.int64)
    max_dev = 0.0
    for cand in _candidate_groups(proj, _proj_bounds(scale, vec["l1"], rtol)):
        rest = np.sort(cand)
        while len(rest):
            ref = rest[0]
            same = np.ones(len(rest), dtype=bool)
            devs = np.zeros(len(rest))
            for p, t, sc in zip(parts, tol, scale):
                diff = np.abs(p[rest] - p[ref]).max(axis=1) if p.shape[1] else np.zeros(len(rest))
                same &= diff <= t
                devs = np.maximum(devs, diff / (sc or 1.0))
            labels[rest[same]] = ref
            max_dev = max(max_dev, float(devs[same].max()))
            rest = rest[~same]
    # renumber 0, 1, 2, ... in order of first member
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = {labels[first[o]]: i for i, o in enumerate(order)}
    return np.array([remap[v] for v in labels], dtype=np.int64), max_dev


def unit_vectors(kind, weight, bias=None, next_kind=None, next_weight=None):
    """Host arrays, one row per unit (Dense column / conv output channel), for grouping.

    kind        -- "dense" (weight (IN, U)) or "conv" (weight (U, C, KH, KW))
    bias        -- (U,) or None
    next_kind, next_weight -- the layer that reads these units: "dense" (IN2, OUT) --
                   after a conv, through Flatten, rows channel-major (c·H·W + ...) --
                   or "conv" (O2, U, KH, KW); None: the incoming side alone.
    Returns [incoming (U, d1), bias (U, 1), outgoing (U, d2)] (bias / outgoing left out
    when not given), or None when the outgoing weights cannot be split by unit.
    """
    w = np.asarray(weight)
    inc = w.T if kind == "dense" else w.reshape(w.shape[0], -1)
    U = inc.shape[0]
    parts = [inc]
    if bias is not None:
        parts.append(np.asarray(bias).reshape(-1, 1))
    if next_weight is not None:
        m = np.asarray(next_weight)
        if next_kind == "conv":
            if m.shape[1] != U:
                return None
            parts.append(m.transpose(1, 0, 2, 3).reshape(U, -1))
        else:
            if m.shape[0] % U:
                return None
            parts.append(m.reshape(U, -1))     # Dense: (U, OUT); after a conv: channel-major
    return parts


def effective_width(layer, next_layer=None, rtol=RTOL):
    """How many different units a layer really has: the number of groups of identical units.

    layer      -- an ``nn.Dense`` (units = output columns) or ``nn.Conv2D`` (units =
                  output channels)
    next_layer -- optional: the Dense / Conv2D that reads this layer's output (through
                  ReLU, MaxPool2D, Flatten, Dropout).  Two units are only truly
                  interchangeable when their OUTGOING weights agree too; without it
                  only the incoming weights and bias are compared.
    rtol       -- units are equal when every part (incoming weights, bias, outgoing
                  weights) differs by at most ``rtol`` times that part's largest
                  magnitude in the layer (default 1e-5: about 100 float32 ulps, far
                  above BLAS reordering, far below two random units' difference).

    Equal units compute equal values, get equal gradients and equal updates, so
    they stay equal under SGD, RMSprop and Adam: a layer with effective width 1
    acts as a single unit however wide it is.  Returns an int in 1..units.

        >>> effective_width(nn.Dense(3, 5, kernel_init=init.ones))
        1
    """
    from tinynet import backend as _b
    from tinynet.diagnose.probes import module_kind
    kind = module_kind(layer)
    if kind not in ("dense", "conv"):
        raise TypeError(f"effective_width: expected an nn.Dense or nn.Conv2D, got "
                        f"{type(layer).__name__}")
    host = lambda t: None if t is None else np.asarray(_b.to_numpy(t.data))   # noqa: E731
    nk = nw = None
    if next_layer is not None:
        nk = module_kind(next_layer)
        if nk not in ("dense", "conv"):
            raise TypeError(f"effective_width: next_layer must be an nn.Dense or nn.Conv2D, "
                            f"got {type(next_layer).__name__}")
        nw = host(next_layer.weight)
    parts = unit_vectors(kind, host(layer.weight), host(getattr(layer, "bias", None)), nk, nw)
    if parts is None:
        raise ValueError(f"effective_width: {type(next_layer).__name__} weight of shape "
                         f"{next_layer.weight.shape} does not read this layer's "
                         f"{layer.weight.shape} units")
    labels, _ = group_units(parts, rtol=rtol)
    return int(labels.max()) + 1


def symmetry_findings(ev):
    """[Finding] for every hidden Dense / Conv2D layer whose units (channels) fall into
    fewer groups than it has units.

    Layers whose weight never changed at all are left to the freeze findings.
    """
    from tinynet.diagnose.causes import symmetry as cause
    from tinynet.diagnose.findings import Finding
    from tinynet.diagnose.updates import optimizer_info

    kind, _, _ = optimizer_info(ev.optimizer)
    findings = []
    for L in ev.param_layers():
        if len(L.downstream) != 1:
            continue
        nxt, path = L.downstream[0]
        M = ev.layers.get(nxt)
        allowed = ("relu", "dropout") if L.kind == "dense" else \
            ("relu", "dropout", "pool", "flatten")
        if M is None or M.kind not in ("dense", "conv") or not M.weight or \
                not all(k in allowed for k in path):
            continue
        W = ev.params[L.weight]
        if W.frozen.all():
            continue
        parts = unit_vectors(L.kind, W.final,
                             ev.params[L.bias].final if L.bias is not None else None,
                             M.kind, ev.params[M.weight].final)
        if parts is None:
            continue
        labels, dev = group_units(parts)
        units = labels.size
        groups = int(labels.max()) + 1
        if groups >= units:
            continue
        sizes = np.bincount(labels)
        shared = sizes[labels] > 1                      # units that have a twin
        mask = _along_units(shared, L.unit_axis, W.shape)
        dropout = "dropout" in path
        evidence = {"units": units, "groups": groups, "largest_group": int(sizes.max()),
                    "next_layer": nxt, "max_relative_difference": dev, "rtol": RTOL,
                    "optimizer": kind, "dropout_between": dropout, "kind": L.kind}
        width = ev.recorder.effective_width.get(L.name) if ev.recorder is not None else None
        if width is not None and len(width["width"]):
            evidence["effective_width_over_steps"] = {
                "step": width["step"].tolist(), "width": width["width"].tolist()}
        findings.append(Finding(
            param=L.weight, cause="symmetry", entries=groups, total=units,
            permanent=not dropout, evidence=evidence, mask=mask, indices=labels,
            index_kind="group of unit" if L.kind == "dense" else "group of channel",
            layer=L.name, fix=cause.fix()))
    return findings


def _along_units(vec, axis, shape):
    view = [1] * len(shape)
    view[axis] = vec.size
    return np.broadcast_to(vec.reshape(view), shape).copy()
