"""The rule table of trace_step: for every op of tinynet.ops, its local derivative in words,
whether it carries all-zero inputs to an all-zero output, and why it can send back exactly 0.

    rule_for(fn)              the Rule of Function ``fn`` (an unknown Function gets a rule
                              that says so: cause "unexplained", never a guess)
    describe_derivative(fn)   the local derivative in words
    CAUSE                     the cause names, ONE vocabulary with the report

Backward multiplies the gradient g arriving at an op by the op's local derivative,
so an exact zero has one of a few causes, each checked exactly (no tolerance).  The
names are the report's (tinynet/diagnose/causes.py) wherever the report has a name
for it; the few things only one step can show have names of their own (TRACE_ONLY).

Adding an op to tinynet.ops: add its Rule below; tests/diagnose/test_trace_rules.py
fails until every Function subclass of tinynet.ops has one.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from tinynet import backend
from tinynet.backend import array_module
from tinynet.ops.arithmetic import Add, Div, Mul, Neg, Pow, Sub
from tinynet.ops.conv import Conv2D
from tinynet.ops.conv_relu_pool import Conv2DReLUPool
from tinynet.ops.dense import Dense
from tinynet.ops.dropout import Dropout
from tinynet.ops.elementwise import Exp, Log, ReLU
from tinynet.ops.loss import SoftmaxCrossEntropy
from tinynet.ops.matmul import MatMul
from tinynet.ops.pool import MaxPool2D
from tinynet.ops.reduction import Max, Mean, Sum
from tinynet.ops.shape import BroadcastTo, Cast, Concatenate, GetItem, Reshape, ToDevice, Transpose
from tinynet.ops.softmax import LogSoftmax, Softmax

# --------------------------------------------------------------------------
# the vocabulary: the ONE place where trace names causes
# --------------------------------------------------------------------------
#: trace word -> the report's cause name (tinynet.diagnose.findings.CAUSES).  If the
#: report renames a cause, change the right-hand side here and nothing else.
CAUSE = {
    "zero_input": "zero_input",                   # dW = xᵀ·g with x = 0 on every sample
    "dead_unit": "dead_unit",                     # z <= 0 on every sample: relu'(z) = 0
    "blocked_downstream": "blocked_downstream",   # nothing reached the unit's output
    "zero_weights": "zero_weights",               # dx = g·Wᵀ with W = 0 (or the layer's own
                                                  # zero kernel: its z is exactly 0)
    # one step only -- the report has no such cause:
    "dropped": "dropped",                         # dropout dropped every unit this step
    "cancellation": "cancellation",               # nonzero contributions summed to exactly 0
    "unexplained": "unexplained",                 # an op with no rule here, or several users
}
REPORT_CAUSES = tuple(CAUSE[k] for k in ("zero_input", "dead_unit", "blocked_downstream",
                                         "zero_weights"))
TRACE_ONLY = tuple(CAUSE[k] for k in ("dropped", "cancellation", "unexplained"))


@dataclass
class Why:
    """Why an op sent exactly 0 to one input: the cause (a CAUSE name), the factor of the
    chain rule that is 0 (in words), a sentence with the numbers, the root parameter
    (or "input x") when known, and other factors that would have zeroed it too."""
    cause: str
    factor: str
    detail: str
    root: Optional[str] = None
    also: list = None

    def __post_init__(self):
        self.also = [] if self.also is None else self.also


@dataclass(frozen=True)
class Rule:
    """What trace_step knows about one Function class.

    derivative   the local derivative in words (shown in the table)
    keeps_zero   "all": all-zero inputs -> all-zero output (reshape, relu(0), max-pool);
                 "any": one all-zero input is enough (a product); "linear": Dense/Conv2D
                 (zero x and zero bias, or zero W and zero bias); None: no
    why          (ctx, fn, arg) -> Why or None: a structural reason for an exactly-zero
                 gradient sent to input ``arg``; None falls back to ``otherwise``
    otherwise    the cause when ``why`` finds nothing.  "cancellation" only where the op's
                 backward sums (or multiplies) numbers that can make an exact 0
    """
    derivative: str
    keeps_zero: Optional[str] = None
    why: Optional[Callable] = None
    otherwise: str = CAUSE["cancellation"]


def all_zero(a):
    return not bool((a != 0).any())


# --------------------------------------------------------------------------
# the structural reasons, op by op
# --------------------------------------------------------------------------
def _why_relu(ctx, fn, arg):
    z = fn.inputs[0].data
    xp = array_module(z)
    n0, nneg = (int(v) for v in backend.to_numpy(xp.stack([(z == 0).sum(), (z < 0).sum()])))
    n = z.size
    if n0 + nneg < n:
        return Why(CAUSE["cancellation"], "relu'(z)·g = 0",
                   f"relu'(z) is 1 for {n - n0 - nneg} of {n} entries, but the gradient "
                   f"arriving there is 0")
    if n0 == n:
        detail = (f"its input z is exactly 0 in all {n} entries, so relu'(z) = 0 "
                  f"everywhere (relu'(0) = 0)")
        factor = "relu'(0) = 0"
    elif nneg == n:
        detail = (f"its input z is negative in all {n} entries (dead units), so "
                  f"relu'(z) = 0 everywhere")
        factor = "relu'(z) = 0"
    else:
        detail = (f"its input z is <= 0 everywhere ({n0} of {n} exactly 0, {nneg} "
                  f"negative), so relu'(z) = 0 everywhere (relu'(0) = 0)")
        factor = "relu'(z) = 0"
    root, why = ctx.zero_source(fn.inputs[0]) if n0 == n else (None, None)
    if why:
        detail += f"; z is 0 because {why}"
    also = []
    producer = fn.inputs[0].creator
    if producer is not None and type(producer) in LINEAR and all_zero(producer.inputs[1].data):
        wname = ctx.name_of(producer.inputs[1]) or "its weight"
        also.append(f"{CAUSE['zero_weights']}: even if relu'(0) were 1, {producer.name}'s "
                    f"dx = g·Wᵀ would be 0 because '{wname}' is all zero")
    return Why(CAUSE["dead_unit"], factor, detail, root, also)


def _why_linear(ctx, fn, arg):
    x, w = fn.inputs[0], fn.inputs[1]
    if arg == 0:
        if all_zero(w.data):
            wname = ctx.name_of(w)
            label = f"'{wname}'" if wname else "the weight"
            return Why(CAUSE["zero_weights"], "W = 0",
                       f"{fn.name} passes back dx = g·Wᵀ, and {label} is all zero", wname)
        return Why(CAUSE["cancellation"], "g·Wᵀ = 0",
                   f"{fn.name}'s dx = g·Wᵀ summed to exactly 0 although W is not all zero "
                   f"(the units that get gradient have zero weights)")
    if arg == 1:
        if all_zero(x.data):
            root, why = ctx.zero_source(x)
            detail = (f"{fn.name}'s dW = xᵀ·g and its input x is exactly 0 everywhere"
                      if not fn.name.startswith("Conv2D") else
                      f"{fn.name}'s dW = im2col(x)ᵀ·g and its input x is exactly 0 everywhere")
            if why:
                detail += f" (because {why})"
            return Why(CAUSE["zero_input"], "x = 0", detail, root)
        return Why(CAUSE["cancellation"], "xᵀ·g = 0",
                   f"{fn.name}'s dW = xᵀ·g summed to exactly 0 although x is not all zero")
    return Why(CAUSE["cancellation"], "Σ g = 0", f"{fn.name}'s db = Σ g summed to exactly 0")


def _why_mul(ctx, fn, arg):
    other = fn.inputs[1 - arg]
    if not all_zero(other.data):
        return None
    oname = ctx.name_of(other)
    is_param = oname is not None and not oname.startswith("input")
    return Why(CAUSE["zero_weights"] if is_param else CAUSE["zero_input"], "other factor = 0",
               f"Mul passes back g·(the other factor), and "
               f"{repr(oname) if oname else 'the other factor'} is all zero", oname)


def _why_dropout(ctx, fn, arg):
    scale = getattr(fn, "scale", None)
    if scale is None:
        return None
    dropped_all = (scale == 0) if isinstance(scale, (int, float)) else all_zero(scale)
    if dropped_all:
        return Why(CAUSE["dropped"], "keep = 0", "dropout dropped every unit (keep mask all 0)")
    return None


def _why_pow(ctx, fn, arg):
    a, b = fn.inputs
    if arg == 0 and all_zero(a.data) and bool((b.data > 1).all()):
        return Why(CAUSE["zero_input"], "p·x^(p−1) = 0",
                   "Pow passes back g·p·x^(p−1), and its base x is all zero")
    return None


_SUMS = CAUSE["cancellation"]
RULES = {
    ReLU: Rule("relu'(z) = 1 where z > 0, else 0 (relu'(0) = 0)", "all", _why_relu),
    Dense: Rule("dW = xᵀ·g, dx = g·Wᵀ, db = Σₙ g", "linear", _why_linear),
    MatMul: Rule("da = g·bᵀ, db = aᵀ·g", "any", _why_linear),
    Conv2D: Rule("dW = im2col(x)ᵀ·g, dx = col2im(g·W), db = Σ g over N, OH, OW", "linear",
                 _why_linear),
    # nn.Sequential runs Conv2D, ReLU, MaxPool2D(2) as this op only where no hook
    # watches them -- trace_step's hooks always see the three ops -- but a graph
    # built elsewhere may hold it
    Conv2DReLUPool: Rule("g to each 2x2 window's argmax where the pooled value is > 0, "
                         "then Conv2D's dW = im2col(x)ᵀ·g, dx, db", "linear", _why_linear),
    MaxPool2D: Rule("g routed to the argmax of each window, 0 elsewhere", "all"),
    Reshape: Rule("g reshaped back (identity)", "all"),
    Transpose: Rule("g transposed back (identity)", "all"),
    Dropout: Rule("dx = g·keep/(1 − p): 0 where the unit was dropped", "all", _why_dropout),
    SoftmaxCrossEntropy: Rule("dz = (softmax(z) − onehot(y)) / N"),
    LogSoftmax: Rule("dx = g − softmax(x)·Σg"),
    Softmax: Rule("dx = y·(g − Σ g·y)"),
    Add: Rule("da = g, db = g (summed over broadcast axes)", "all"),
    Sub: Rule("da = g, db = −g", "all"),
    Mul: Rule("da = g·b, db = g·a", "any", _why_mul),
    Div: Rule("da = g / b, db = −g·a / b²"),
    Neg: Rule("dx = −g", "all"),
    Pow: Rule("dx = g·p·x^(p−1)", None, _why_pow),
    Exp: Rule("dx = g·exp(x)"),
    Log: Rule("dx = g / x"),
    Sum: Rule("g copied to every summed entry", "all"),
    Mean: Rule("g / n copied to every averaged entry", "all"),
    Max: Rule("g goes to the maximal entries", "all"),
    GetItem: Rule("g put back at the picked entries, 0 elsewhere", "all"),
    Concatenate: Rule("g split back into the pieces", "all"),
    BroadcastTo: Rule("g summed over the broadcast axes", "all"),
    Cast: Rule("g cast back to the input's dtype", "all"),
    ToDevice: Rule("g moved back to the input's device", "all"),
}
LINEAR = (Dense, MatMul, Conv2D, Conv2DReLUPool)    # x·W: dW = xᵀ·g, dx = g·Wᵀ


def _unknown(fn):
    doc = (type(fn).__doc__ or "").strip().splitlines()
    return Rule(doc[0] if doc else f"{fn.name}.backward", None, None, CAUSE["unexplained"])


def rule_for(fn):
    """The Rule of Function ``fn``: by its exact class, so a subclass a user writes
    (a ReLU with relu'(0) = 1) is not mistaken for the op it derives from."""
    return RULES.get(type(fn)) or _unknown(fn)


def describe_derivative(fn):
    """The local derivative of Function ``fn`` in words (its docstring's first line if unknown)."""
    return rule_for(fn).derivative


def why_zero(ctx, fn, arg):
    """Why: why Function ``fn`` sent an exactly-zero gradient to its input ``arg``."""
    rule = rule_for(fn)
    found = rule.why(ctx, fn, arg) if rule.why is not None else None
    if found is not None:
        return found
    if rule.otherwise == CAUSE["unexplained"]:
        return Why(rule.otherwise, "unknown",
                   f"{fn.name}'s backward gave exactly 0; tinynet has no rule for "
                   f"{fn.name}, so it cannot say which factor was 0")
    return Why(rule.otherwise, "Σ = 0",
               f"{fn.name}'s backward ({rule.derivative}) gave exactly 0")


#: {op name: derivative} -- the table in words, for readers and the lessons
DERIVATIVES = {cls.__name__: rule.derivative for cls, rule in RULES.items()}

__all__ = ["CAUSE", "REPORT_CAUSES", "TRACE_ONLY", "Rule", "RULES", "Why", "rule_for",
           "why_zero", "describe_derivative", "DERIVATIVES", "LINEAR", "all_zero"]
