"""The rule table of trace_step covers every op, and names causes as the report does."""
import importlib
import inspect
import pkgutil

import numpy as np

import tinynet as tn
import tinynet.ops
from tinynet import init, nn
from tinynet.diagnose.findings import CAUSES
from tinynet.diagnose.trace import trace_loss, trace_step
from tinynet.diagnose.trace_rules import CAUSE, REPORT_CAUSES, RULES, TRACE_ONLY, rule_for
from tinynet.tensor import Function


def ops_function_classes():
    """Every Function subclass defined in a module of tinynet.ops (found by walking the
    package, so a class added tomorrow is found without editing this test)."""
    found = {}
    for info in pkgutil.walk_packages(tinynet.ops.__path__, "tinynet.ops."):
        mod = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, Function) and cls is not Function and cls.__module__ == mod.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_op_of_tinynet_ops_has_a_rule():
    classes = ops_function_classes()
    assert len(classes) >= 25                      # the walk really found the ops
    missing = sorted(name for name, cls in classes.items() if cls not in RULES)
    assert not missing, f"add a Rule to tinynet/diagnose/trace_rules.py for: {missing}"
    for cls in classes.values():
        assert RULES[cls].derivative, cls          # a derivative in words for the table


def test_the_table_holds_only_ops():
    for cls, rule in RULES.items():
        assert issubclass(cls, Function) and cls.__module__.startswith("tinynet.ops.")
        assert rule.keeps_zero in (None, "all", "any", "linear")
        assert rule.otherwise in CAUSE.values()


def test_one_vocabulary_with_the_report():
    """The trace's names for the report's causes ARE the report's names; the others
    are names the report does not use for something else."""
    assert set(REPORT_CAUSES) <= set(CAUSES)
    assert not set(TRACE_ONLY) & set(CAUSES)
    assert set(CAUSE.values()) == set(REPORT_CAUSES) | set(TRACE_ONLY)


class Squash(Function):
    """y = x * 0 (a Function the rule table has never heard of)."""

    def forward(self, x):
        return x * 0

    def backward(self, g):
        return (g * 0,)


def test_an_unknown_op_is_unexplained_not_cancellation():
    x = tn.tensor(np.array([1.0, 2.0]), requires_grad=True)
    trace = trace_loss(Squash()(x).sum(), names={"x": x})
    fz = trace.first_zero
    assert fz.op == "Squash" and fz.cause == "unexplained"
    assert "no rule for Squash" in fz.detail
    assert rule_for(Squash()).derivative == "y = x * 0 (a Function the rule table has never heard of)."


def test_a_subclass_of_an_op_does_not_borrow_its_rule():
    """A ReLU variant with relu'(0) = 1 (lesson 04) must not be explained as relu'(0) = 0."""
    from tinynet.ops.elementwise import ReLU

    class OpenReLU(ReLU):
        def backward(self, g):
            return (g * 0,)

    assert rule_for(OpenReLU()).otherwise == "unexplained"


def test_every_unit_dropped_is_named_dropped():
    tn.manual_seed(0)
    model = nn.Sequential(nn.Dense(4, 3), nn.Dropout(1.0), nn.Dense(3, 2))
    model.train()
    trace = trace_step(model, np.ones((5, 4), np.float32), np.array([0, 1, 0, 1, 0]))
    fz = trace.first_zero
    assert (fz.op, fz.cause, fz.factor) == ("Dropout", "dropped", "keep = 0")
    assert fz.cut_off == ["0.weight", "0.bias"]


def test_zero_weights_downstream_blocks_the_layer_before():
    """Dense(3, 2) with an all-zero weight: dx = g·Wᵀ = 0, so the first layer is blocked;
    the report calls those units blocked_downstream, rooted in zero_weights."""
    tn.manual_seed(0)
    model = nn.Sequential(nn.Dense(4, 3, bias_init=init.constant(0.5)), nn.ReLU(),
                          nn.Dense(3, 2, kernel_init=init.zeros))
    x = np.abs(np.random.default_rng(0).normal(size=(6, 4))).astype(np.float32)
    trace = trace_step(model, x, np.array([0, 1, 0, 1, 1, 0]))
    fz = trace.first_zero
    assert (fz.op, fz.cause, fz.factor, fz.root) == ("Dense", "zero_weights", "W = 0", "2.weight")
    blocked = trace.zero_params["0.weight"]
    assert blocked.reasons == {"blocked_downstream": 12} and blocked.dead_units == []


# --------------------------------------------------------------------------
# the same words for the same entries: trace (one step) vs explain (training)
# --------------------------------------------------------------------------
def _agree(model, x, y, steps=5):
    """Every frozen finding of the report is named by the trace of the first step with the
    same cause for the same number of entries.  (Not the converse: one step can show a
    zero that training then lifts -- 6.weight below sees zeros only before 4.bias moves.)"""
    from tinynet import optim
    from tinynet.diagnose import FROZEN_CAUSES, explain
    trace = trace_step(model, x, y)
    report = explain(model, (x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=steps, progress=False)
    frozen = [f for f in report.findings if f.cause in FROZEN_CAUSES]
    assert frozen
    for f in frozen:
        assert f.cause in REPORT_CAUSES
        assert trace.zero_params[f.param].reasons.get(f.cause) == f.entries, (f, trace.zero_params[f.param])
    return trace, report


def test_trace_and_report_agree_on_a_zero_kernel():
    tn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2D(1, 4, 3, padding="same"), nn.ReLU(),
        nn.Conv2D(4, 4, 3, padding="same", kernel_init=init.zeros, bias_init=init.zeros),
        nn.ReLU(), nn.Conv2D(4, 4, 3, padding="same"), nn.Flatten(), nn.Dense(4 * 6 * 6, 3))
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 6, 6)).astype(np.float32)
    trace, report = _agree(model, x, rng.integers(0, 3, 16))
    causes = {(f.param, f.cause) for f in report.findings}
    assert {("2.weight", "zero_weights"), ("0.weight", "blocked_downstream"),
            ("4.weight", "zero_input")} <= causes
    assert trace.zero_params["6.weight"].reasons == {"zero_input": 432}   # this step only


def test_trace_and_report_agree_on_dead_units_and_zero_features():
    """A planted fault that is not one of the four article cases: two input features that
    are always 0 and one hidden unit with a bias of -50 (dead on every sample)."""
    tn.manual_seed(1)
    model = nn.Sequential(nn.Dense(6, 5, bias_init=np.array([0.1, -50.0, 0.1, 0.1, 0.1])),
                          nn.ReLU(), nn.Dense(5, 3))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    x[:, [2, 4]] = 0
    trace, report = _agree(model, x, rng.integers(0, 3, 32))
    assert trace.zero_params["0.weight"].dead_units == [1]
    assert {(f.param, f.cause) for f in report.findings} >= {("0.weight", "zero_input"),
                                                             ("0.weight", "dead_unit")}
