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
