"""Symmetric hidden units: the layer acts as fewer units than it has.

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
        term = p @ r
        proj = term if proj is None else proj + term
    if scale is None:
        # max |part| as max(max, -min): two reductions, no temporary array
        scale = xp.stack([xp.maximum(p.max(), -p.min()) for p in parts])
    return proj, scale


def _tolerances(scale):
    return RTOL * np.asarray(scale, dtype=np.float64)


def _proj_bounds(scale, l1):
    """Per projection, the largest difference two equal-within-tolerance units can show."""
    scale = np.asarray(scale, dtype=np.float64)
    return ((RTOL + _ROUNDING) * scale[:, None] * l1).sum(axis=0)      # (NPROJ,)


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


def group_units(parts):
    """Exact grouping of hidden units.

    parts: host arrays [(U, d1), (U, d2), ...] (incoming column, bias, outgoing row).
    Returns (labels (U,) int: group id per unit, numbered by first member;
    max_dev: the largest within-group difference relative to the tolerance
    scale (0 for bit-identical groups)).
    """
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    U = parts[0].shape[0]
    scale = np.array([np.abs(p).max() if p.size else 0.0 for p in parts])
    tol = _tolerances(scale)
    vec = projection_vectors([p.astype(np.float32) for p in parts])
    proj = sum(p @ h.astype(np.float64) for p, h in zip(parts, vec["host"]))
    labels = np.full(U, -1, dtype=np.int64)
    max_dev = 0.0
    for cand in _candidate_groups(proj, _proj_bounds(scale, vec["l1"])):
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


def symmetry_findings(ev):
    """[Finding] for every hidden Dense layer whose units fall into fewer groups than units.

    Layers whose weight never changed at all are left to the freeze findings.
    """
    from tinynet.diagnose.findings import Finding
    from tinynet.diagnose.updates import optimizer_info

    kind, _, _ = optimizer_info(ev.optimizer)
    findings = []
    for L in ev.param_layers():
        if L.kind != "dense" or len(L.downstream) != 1:
            continue
        nxt, path = L.downstream[0]
        M = ev.layers.get(nxt)
        if M is None or M.kind != "dense" or not M.weight or \
                not all(k in ("relu", "dropout") for k in path):
            continue
        W = ev.params[L.weight]
        if W.frozen.all():
            continue
        parts = [W.final.T]
        if L.bias is not None:
            parts.append(ev.params[L.bias].final.reshape(-1, 1))
        parts.append(ev.params[M.weight].final)
        labels, dev = group_units(parts)
        units = labels.size
        groups = int(labels.max()) + 1
        if groups >= units:
            continue
        sizes = np.bincount(labels)
        shared = sizes[labels] > 1                      # units that have a twin
        mask = np.broadcast_to(shared.reshape(1, -1), W.shape).copy()
        dropout = "dropout" in path
        evidence = {"units": units, "groups": groups, "largest_group": int(sizes.max()),
                    "next_layer": nxt, "max_relative_difference": dev, "rtol": RTOL,
                    "optimizer": kind, "dropout_between": dropout}
        width = ev.recorder.effective_width.get(L.name) if ev.recorder is not None else None
        if width is not None and len(width["width"]):
            evidence["effective_width_over_steps"] = {
                "step": width["step"].tolist(), "width": width["width"].tolist()}
        findings.append(Finding(
            param=L.weight, cause="symmetry", entries=groups, total=units,
            permanent=not dropout, evidence=evidence, mask=mask, indices=labels,
            index_kind="group of unit", layer=L.name,
            fix="Initialize the weights randomly (any random init breaks the tie; "
                "init.he_normal for ReLU); a constant is only safe for biases."))
    return findings
