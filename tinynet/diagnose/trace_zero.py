"""Find the zero factor of one traced step: where the gradient first becomes exactly 0,
why (through the rule table of :mod:`.trace_rules`), and which entries of each
parameter got exactly 0 and why.

What "first zero" means.  Walking backward from the loss, the gradient is
passed from op to op along the activations; parameters are side branches
that take their gradient from the op that uses them.  ``first_zero`` is the
first activation (in that backward walk) whose arriving gradient is exactly
zero everywhere: the place where the backward signal itself dies, so that
every parameter before it is cut off.  A parameter whose own gradient is
zero while the signal flows on past it (a Dense weight after a zero layer:
zero input) does not cut anything off; it is listed in ``zero_params`` with
its cause.  Only when the signal survives all the way to the input does
``first_zero`` name the first parameter (walking backward) whose gradient is
exactly zero everywhere.
"""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from tinynet import backend
from tinynet.backend import array_module
from tinynet.diagnose.trace_rules import CAUSE, LINEAR, all_zero, rule_for, why_zero
from tinynet.ops.conv import Conv2D
from tinynet.ops.dense import Dense
from tinynet.ops.elementwise import ReLU
from tinynet.ops.matmul import MatMul
from tinynet.ops.arithmetic import Add, Sub


@dataclass
class FirstZero:
    """Where the gradient first became exactly zero, and which factor did it.

    node      index of the node whose arriving gradient is exactly 0
    name      that node in words
    op_node   index of the op whose backward produced the zero (a consumer)
    op, layer that op's Function name and layer (e.g. "ReLU", "3")
    cause     the cause, in the report's words (trace_rules.CAUSE): "dead_unit",
              "zero_input", "zero_weights", ... or one of the one-step names
              "dropped", "cancellation", "unexplained"
    factor    the factor of the chain rule that is 0, in words: "relu'(0) = 0",
              "relu'(z) = 0", "x = 0", "W = 0", "keep = 0", "Σ = 0", ...
    detail    one sentence with the numbers
    root      the parameter (or "input x") whose zeros caused it, when known
    also      other factors that would have zeroed the gradient too
    cut_off   parameters before it that therefore get exactly zero gradient
    """
    node: int
    name: str
    op_node: int
    op: str
    layer: Optional[str]
    cause: str
    factor: str
    detail: str
    root: Optional[str] = None
    also: list = field(default_factory=list)
    cut_off: list = field(default_factory=list)


@dataclass
class ParamZeros:
    """The entries of one parameter whose gradient is exactly zero, and why.

    mask      host bool array of the parameter's shape, True = exactly 0
    reasons   {cause: entry count}, causes in the report's words:
              "zero_input" (the input feature -- a Dense row, a conv tap (c, kh, kw) --
              was 0 on every sample of the batch), "zero_weights" (the layer's own weight
              and bias are all 0, so its output is exactly 0 and the ReLU after it passes
              nothing), "dead_unit" (the unit's pre-activation was <= 0 on every sample),
              "blocked_downstream" (nothing reached the unit's output although its ReLU
              was open), "cancellation" (contributions summed to exactly 0),
              "unexplained" (the parameter feeds several ops, or an op with no rule)
    zero_inputs   Dense: row indices; conv: (c, kh, kw) taps with zero input
    silent_units  output units (Dense columns, conv filters) that got no gradient
    dead_units    the silent units whose following ReLU was off on every sample
                  (pre-activation <= 0, including exactly 0)
    flat_units    the dead units whose pre-activation was exactly 0 on every sample
                  (relu'(0) = 0 decides)
    """
    param: str
    shape: tuple
    total: int
    zero: int
    mask: np.ndarray = field(repr=False)
    reasons: dict = field(default_factory=dict)
    zero_inputs: list = field(default_factory=list)
    silent_units: list = field(default_factory=list)
    dead_units: list = field(default_factory=list)
    flat_units: list = field(default_factory=list)

    @property
    def all_zero(self):
        return self.zero == self.total


# --------------------------------------------------------------------------
# names and the forward origin of zeros
# --------------------------------------------------------------------------
class ZeroContext:
    """What the rules need to name things: parameter names and the batch inputs."""

    def __init__(self, names, inputs):
        self.names, self.inputs = names, inputs

    def name_of(self, t):
        if id(t) in self.names:
            return self.names[id(t)]
        if id(t) in self.inputs:
            return "input " + self.inputs[id(t)]
        return None

    def layer_words(self, fn):
        """ "layer 3 (Conv2D)" from the op's weight name, or just "Conv2D"."""
        wname = self.name_of(fn.inputs[1]) if len(fn.inputs) > 1 else None
        if wname and "." in wname:
            return f"layer {wname.rpartition('.')[0]} ({fn.name})"
        return fn.name

    def zero_source(self, t):
        """(root, sentence): why every value of ``t`` is exactly 0, traced back.

        Follows the forward graph through ops that keep zeros zero (the rules'
        ``keeps_zero``: a layer with all-zero input and zero bias, relu(0), max-pool,
        reshape, ...) until it finds an all-zero weight (the root) or the all-zero
        input x; (None, None) when the zeros have another origin.
        """
        passed = []                              # layers that only passed the zeros on
        for _ in range(10_000):                  # a chain, not a tree: bounded walk
            fn = t.creator
            if fn is None:
                name = self.name_of(t)
                if name is None:
                    return None, None
                words = ("the input x is all zero" if name.startswith("input") else
                         f"'{name}' is all zero")
                return name, _chain(words, passed)
            ins = fn.inputs or ()
            keeps = rule_for(fn).keeps_zero
            if keeps == "linear":
                x, w = ins[0], ins[1]
                b = ins[2] if len(ins) > 2 else None
                if not (b is None or all_zero(b.data)):
                    return None, None
                if all_zero(w.data):
                    wname = self.name_of(w) or "its weight"
                    bias = "no bias" if b is None else "a zero bias"
                    return wname, _chain(f"{self.layer_words(fn)} has an all-zero weight "
                                         f"'{wname}' and {bias}", passed)
                if not all_zero(x.data):
                    return None, None
                passed.append(self.layer_words(fn))
                t = x
            elif keeps == "any":
                zero_in = [x for x in ins if all_zero(x.data)]
                if not zero_in:
                    return None, None
                t = zero_in[0]
            elif keeps == "all" and ins and all(all_zero(x.data) for x in ins):
                t = ins[0]                       # relu(z) with z = 0 is 0, not "dead"
            else:
                return None, None
        return None, None


def _chain(root_words, passed):
    if not passed:
        return root_words
    return (f"{root_words}, and the layers after it pass the 0 on (all-zero input, zero "
            f"bias): {', '.join(reversed(passed))}")


# --------------------------------------------------------------------------
# the first zero
# --------------------------------------------------------------------------
def first_zero(tensors, nodes, consumers, ctx):
    """The cut (see the module docstring), or the first all-zero parameter; None if neither."""
    pos = {id(t): k for k, t in enumerate(tensors)}

    def factor_for(i):
        uses = consumers.get(id(tensors[i]), [])
        if not uses:
            return None
        explained = [(why_zero(ctx, u.creator, arg), u) for u, arg in uses]
        why, u = explained[0]
        also = list(why.also)
        for w2, u2 in explained[1:]:
            also.append(f"{w2.cause} at {u2.creator.name}: {w2.detail}")
        j = pos[id(u)]
        return FirstZero(node=i, name=nodes[i].label, op_node=j, op=u.creator.name,
                         layer=nodes[j].layer, cause=why.cause, factor=why.factor,
                         detail=why.detail, root=why.root, also=also)

    for i in range(len(nodes) - 1, -1, -1):
        if nodes[i].kind == "op" and nodes[i].grad_is_zero:
            return factor_for(i)
    for i in range(len(nodes) - 1, -1, -1):
        if nodes[i].kind in ("param", "leaf") and nodes[i].grad_is_zero:
            return factor_for(i)
    return None


def ancestors(nodes, i):
    """Indices of every node that ``nodes[i]`` was computed from."""
    out, stack = set(), list(nodes[i].inputs)
    while stack:
        j = stack.pop()
        if j not in out:
            out.add(j)
            stack.extend(nodes[j].inputs)
    return sorted(out)


# --------------------------------------------------------------------------
# per-parameter zeros
# --------------------------------------------------------------------------
def param_zeros(t, name, consumers):
    """ParamZeros: which entries of parameter ``t`` got exactly zero gradient, and why.

    dW = xᵀ·g entry (feature f, unit u) is structurally 0 when feature f of x is 0
    on every sample (zero_input) or unit u got no gradient; the unit's cause is then
    read off the ReLU after it (dead_unit / zero_weights) or is blocked_downstream.
    Whatever is 0 without either is cancellation.
    """
    g = t.grad.data
    mask = backend.to_numpy(g == 0)
    pz = ParamZeros(name, t.shape, t.size, int(mask.sum()), mask)
    uses = consumers.get(id(t), [])
    if len(uses) != 1 or uses[0][0].grad is None:
        pz.reasons = {CAUSE["unexplained"] if len(uses) != 1 else CAUSE["blocked_downstream"]:
                      pz.zero}
        return pz
    u, arg = uses[0]
    fn = u.creator
    gout = u.grad.data
    xp = array_module(g)
    op = type(fn)
    if op in (Dense, MatMul) and arg == 1 and t.ndim == 2 and fn.inputs[0].ndim == 2:
        x = fn.inputs[0].data                                      # (N, IN)
        zero_in = backend.to_numpy((x != 0).sum(axis=0) == 0)      # (IN,)
        silent = backend.to_numpy((gout != 0).sum(axis=0) == 0)    # (OUT,)
        structural = zero_in[:, None] | silent[None, :]
        in_mask = np.broadcast_to(zero_in[:, None], t.shape)
        pz.zero_inputs = np.flatnonzero(zero_in).tolist()
    elif op is Conv2D and arg == 1:
        from tinynet.ops.conv import im2col
        x = fn.inputs[0].data
        O, C, KH, KW = t.shape
        cols = im2col(x, KH, KW, fn.stride, fn.padding)            # (C·KH·KW, L)
        zero_in = backend.to_numpy((cols != 0).sum(axis=1) == 0).reshape(C, KH, KW)
        del cols
        silent = backend.to_numpy((gout != 0).sum(axis=(0, 2, 3)) == 0)   # (O,)
        structural = zero_in[None] | silent[:, None, None, None]
        in_mask = np.broadcast_to(zero_in[None], t.shape)
        pz.zero_inputs = [tuple(int(v) for v in c) for c in np.argwhere(zero_in)]
    elif op in (Dense, Conv2D) and arg == 2:
        axes = (0,) if gout.ndim == 2 else (0, 2, 3)
        silent = backend.to_numpy((gout != 0).sum(axis=axes) == 0)
        structural, in_mask = silent, np.zeros(t.shape, bool)
    elif op in (Add, Sub) and t.ndim >= 1:
        from tinynet.ops._operands import sum_to
        counts = sum_to((gout != 0).astype(xp.float32), t.shape)
        silent = backend.to_numpy(counts == 0).reshape(-1)
        structural, in_mask = silent.reshape(t.shape), np.zeros(t.shape, bool)
    else:
        why = why_zero(ctx=ZeroContext({}, {}), fn=fn, arg=arg) if pz.all_zero else None
        pz.reasons = {why.cause if why else CAUSE["unexplained"]: pz.zero}
        return pz
    pz.silent_units = np.flatnonzero(silent).tolist()
    off, flat = _relu_off_units(u, consumers)
    unit_axis = 1 if op in (Dense, MatMul) and arg == 1 else 0

    def per_unit(v):
        return _expand_units(None if v is None else v & silent, t.shape, unit_axis)

    silent_mask = per_unit(silent) & ~in_mask
    dead_mask = silent_mask & per_unit(off)
    if off is not None:
        pz.dead_units = [j for j in pz.silent_units if off[j]]
        pz.flat_units = [j for j in pz.silent_units if flat[j]]
    # the layer's own kernel and bias all zero: its z is exactly 0 by construction --
    # the report's root cause "zero_weights", not a unit that died
    own_zero = op in (Dense, Conv2D) and len(fn.inputs) >= 2 and all_zero(fn.inputs[1].data) \
        and (len(fn.inputs) < 3 or all_zero(fn.inputs[2].data))
    reasons = {
        CAUSE["zero_input"]: int((mask & in_mask).sum()),
        CAUSE["zero_weights"]: int((mask & dead_mask).sum()) if own_zero else 0,
        CAUSE["dead_unit"]: 0 if own_zero else int((mask & dead_mask).sum()),
        CAUSE["blocked_downstream"]: int((mask & silent_mask & ~dead_mask).sum()),
        CAUSE["cancellation"]: int((mask & ~structural).sum()),
    }
    pz.reasons = {k: v for k, v in reasons.items() if v}
    return pz


def _expand_units(per_unit, shape, axis):
    """A per-unit bool vector broadcast over a parameter of ``shape`` along ``axis``."""
    if per_unit is None:
        return np.zeros(shape, bool)
    if len(shape) == 1:
        return per_unit.reshape(shape)
    view = [1] * len(shape)
    view[axis] = -1
    return np.broadcast_to(per_unit.reshape(view), shape)


def _relu_off_units(u, consumers):
    """Per unit (column / channel) of op ``u``'s output, when a ReLU follows it:
    (off, flat) -- off: z <= 0 on every sample (the ReLU passes nothing);
    flat: z exactly 0 on every sample (relu'(0) = 0, e.g. after a zero kernel).
    (None, None) when no ReLU follows."""
    uses = consumers.get(id(u), [])
    if len(uses) != 1 or type(uses[0][0].creator) is not ReLU:
        return None, None
    z = u.data
    axes = (0,) if z.ndim == 2 else (0,) + tuple(range(2, z.ndim))
    off = backend.to_numpy((z > 0).sum(axis=axes) == 0).reshape(-1)
    flat = backend.to_numpy((z != 0).sum(axis=axes) == 0).reshape(-1)
    return off, flat


__all__ = ["FirstZero", "ParamZeros", "ZeroContext", "first_zero", "param_zeros", "ancestors",
           "LINEAR"]
