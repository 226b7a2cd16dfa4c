"""Finding and Report: what ``explain`` found, as data and as a story.

    report = tn.diagnose.explain(model, data, optimizer=opt, steps=100)
    print(report)                    # the story, root causes first, with the numbers
    report.findings                  # [Finding, ...]
    report.roots()                   # the findings that cause the others
    report.by_cause("zero_input")
    report.frozen("0.weight")        # bool mask: entries bit-identical to their initial value
    report.to_dict()                 # JSON-ready

A Finding's ``cause`` is one of :data:`CAUSES`, read from the registry
(:mod:`tinynet.diagnose.causes`, one module per cause).  Those in
:data:`FROZEN_CAUSES` are freezes: the entries named never changed at all
(bit for bit), because their gradient was exactly 0, never computed, never
applied, or too small for the float resolution.  ``symmetry`` entries do
change, but in lock step; ``tiny_update`` and ``vanishing_gradient`` entries
change, by little.
"""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from tinynet.diagnose.causes import CAUSES, FROZEN_CAUSES


@dataclass(eq=False)
class Finding:
    """One cause, for some entries of one parameter.

    param      -- name from ``model.named_parameters()`` ("0.weight")
    cause      -- one of CAUSES
    entries    -- how many entries are affected (symmetry: the effective number of units)
    total      -- out of how many (symmetry: the number of units)
    permanent  -- True when further training cannot change it
    root       -- the ``param`` of the root finding that causes this one; None for a root
    root_cause -- the ``cause`` of that root finding (a parameter can have several)
    evidence   -- the numbers that prove it (plain ints / floats / lists)
    fix        -- one sentence
    mask       -- bool array shaped like the parameter: the affected entries
    indices    -- 1-D int array: the affected input features / units (see ``index_kind``);
                  symmetry: the group number of every unit
    index_kind -- what ``indices`` index: "input feature", "input channel", "unit",
                  "channel", "entry", "group of unit"
    layer      -- the module name ("0"), when the parameter belongs to a layer
    since      -- 0: the entries never changed at all.  s > 0: they changed before
                  step s and not from step s on (units that died during training)
    """
    param: str
    cause: str
    entries: int
    total: int
    permanent: bool
    root: Optional[str] = None
    evidence: dict = field(default_factory=dict)
    fix: str = ""
    mask: Optional[np.ndarray] = field(default=None, repr=False)
    indices: Optional[np.ndarray] = field(default=None, repr=False)
    index_kind: str = "entry"
    layer: Optional[str] = None
    since: int = 0
    root_cause: Optional[str] = None

    def __post_init__(self):
        if self.cause not in CAUSES:
            raise ValueError(f"Finding: unknown cause {self.cause!r}; expected one of {CAUSES}")

    @property
    def is_root(self):
        return self.root is None

    @property
    def is_freeze(self):
        """True for causes whose entries never changed at all."""
        return self.cause in FROZEN_CAUSES

    def to_dict(self, masks=False):
        d = {"param": self.param, "cause": self.cause, "entries": int(self.entries),
             "total": int(self.total), "permanent": bool(self.permanent), "root": self.root,
             "root_cause": self.root_cause,
             "layer": self.layer, "evidence": _plain(self.evidence), "fix": self.fix,
             "index_kind": self.index_kind, "since": int(self.since),
             "indices": None if self.indices is None else [int(i) for i in self.indices]}
        if masks:
            d["mask"] = None if self.mask is None else self.mask.astype(bool).tolist()
        return d

    def __str__(self):
        from tinynet.diagnose.story import describe
        return describe(self)


class Report:
    """The result of :func:`tinynet.diagnose.explain`.

    findings   -- [Finding], roots first
    params     -- {name: {"shape", "layer", "entries", "frozen", "moved"}}: every parameter
    steps      -- optimizer steps recorded;  samples_seen -- training samples seen
    data_samples -- samples in the whole data set, when explain could tell (else None)
    optimizer  -- e.g. "Adam(lr=0.001)" (or None);  loss -- per-step losses when explain trained
    unexplained -- {param: {"entries": n, "grad_nonzero": m}}: frozen entries with no cause found
    notes      -- extra sentences (e.g. training stopped early)
    recorder   -- the Recorder that holds the curves (for plots)
    """

    def __init__(self, findings, params, steps, samples_seen, optimizer=None, loss=None,
                 unexplained=None, notes=None, recorder=None, frozen_masks=None,
                 data_samples=None):
        self.findings = list(findings)
        self.params = params
        self.steps, self.samples_seen = steps, samples_seen
        self.data_samples = data_samples
        self.optimizer, self.loss = optimizer, loss
        self.unexplained = unexplained or {}
        self.notes = list(notes or [])
        self.recorder = recorder
        self._frozen = frozen_masks or {}

    def frozen(self, param):
        """Bool array shaped like ``param``: True where the entry never changed (bit-identical)."""
        if param not in self._frozen:
            raise KeyError(f"Report.frozen: no parameter {param!r}; have {list(self._frozen)}")
        return self._frozen[param].copy()

    def by_cause(self, cause):
        if cause not in CAUSES:
            raise ValueError(f"Report.by_cause: unknown cause {cause!r}; expected one of {CAUSES}")
        return [f for f in self.findings if f.cause == cause]

    def roots(self):
        return [f for f in self.findings if f.root is None]

    def consequences(self, root):
        """Findings caused by ``root``: a root Finding, or a parameter name (all its roots)."""
        if isinstance(root, Finding):
            return [f for f in self.findings if f.root == root.param and
                    f.root_cause == root.cause and f.since == root.since]
        return [f for f in self.findings if f.root == root]

    @property
    def moved(self):
        """Names of the parameters with nothing to report: no finding, no unexplained entry."""
        flagged = {f.param for f in self.findings} | set(self.unexplained)
        return [n for n in self.params if n not in flagged]

    def to_dict(self, masks=False):
        return {"steps": int(self.steps), "samples_seen": int(self.samples_seen),
                "data_samples": None if self.data_samples is None else int(self.data_samples),
                "optimizer": self.optimizer,
                "findings": [f.to_dict(masks=masks) for f in self.findings],
                "params": _plain(self.params), "unexplained": _plain(self.unexplained),
                "notes": list(self.notes),
                "loss": None if self.loss is None else [float(v) for v in self.loss]}

    def __str__(self):
        from tinynet.diagnose.story import render
        return render(self)

    def __repr__(self):
        causes = {}
        for f in self.findings:
            causes[f.cause] = causes.get(f.cause, 0) + 1
        body = ", ".join(f"{c}: {n}" for c, n in causes.items()) or "no findings"
        return f"<Report: {self.steps} steps, {len(self.findings)} findings ({body})>"

    def _repr_markdown_(self):
        from tinynet.diagnose.story import render_markdown
        return render_markdown(self)


def _plain(obj):
    """Numbers, arrays and tuples -> JSON-ready Python values."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        v = float(obj)
        return v if np.isfinite(v) else str(v)
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj
