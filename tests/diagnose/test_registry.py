"""The cause registry: every registered cause is complete, and each is produced by a
planted fault here (a new cause without a planter below fails this file)."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import init, nn, optim
from tinynet.diagnose import CAUSES, FROZEN_CAUSES, Recorder, explain
from tinynet.diagnose.causes import LEGENDS, ORDER, REGISTRY
from tinynet.nn import functional as F

from test_explain import batches, mlp, teacher_data
from test_user_faults import Cut


def _train(model, opt, x, y, steps, lr=None):
    rec = Recorder(model, opt, every=1).attach()
    for xb, yb in batches(x, y)[:steps]:
        if lr is not None:
            opt.lr = lr
        loss = F.softmax_cross_entropy(model(tn.tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step()
    return explain(model, recorder=rec)


def plant(cause, fixed=False):
    """A small network with the fault behind ``cause`` planted; returns (report, model).

    fixed=True: the same network with the fix the report suggests applied."""
    x, y = teacher_data()
    tn.manual_seed(0)
    sgd = lambda m: optim.SGD(m.parameters(), lr=0.1)          # noqa: E731
    if cause == "frozen_by_user":
        m = mlp([20, 8, 4])
        m[2].bias.requires_grad_(False)
        if fixed:                        # the fix: requires_grad_(True), model.parameters()
            m[2].bias.requires_grad_(True)
        return explain(m, batches(x, y), optimizer=optim.SGD(
            [p for p in m.parameters() if p.requires_grad], lr=0.1), steps=3), m
    if cause == "not_in_optimizer":
        m = mlp([20, 8, 4])
        params = list(m.parameters()) if fixed else [m[0].weight, m[0].bias, m[2].weight]
        return explain(m, batches(x, y), optimizer=optim.SGD(params, lr=0.1), steps=3), m
    if cause == "graph_cut":
        m = Cut(None if fixed else "detach")          # the fix: no .detach()
        return explain(m, batches(x, y), optimizer=sgd(m), steps=3), m
    if cause == "no_gradient":
        m = nn.Sequential(nn.Dense(20, 4), nn.Dense(4, 4))
        if not fixed:                    # the fix: delete the unused layer
            m.add_module("spare", nn.Dense(3, 3))
        m.forward = lambda x: m[1](m[0](x))
        return explain(m, batches(x, y), optimizer=sgd(m), steps=3), m
    if cause == "zero_lr":
        m = mlp([20, 8, 4])
        return _train(m, optim.SGD(m.parameters(), lr=0.1), x, y, 3,
                      lr=0.1 if fixed else 0.0), m
    if cause in ("zero_weights", "blocked_downstream"):
        m = mlp([20, 16, 16, 4],                    # the fix: a random init for the layer
                overrides={1: dict(kernel_init=init.he_normal if fixed else init.zeros)})
        return explain(m, batches(x, y), optimizer=sgd(m), steps=3), m
    if cause == "zero_input":
        x[:, 3] = 0.0
        m = mlp([20, 8, 4])
        if fixed:                        # nothing to fix: the rows do not matter (below)
            return None, (m, x, y)
        return explain(m, batches(x, y), optimizer=sgd(m), steps=3), m
    if cause == "dead_unit":
        m = mlp([20, 8, 4], overrides={0: dict(   # the fix: a zero bias with He init
            bias_init=init.zeros if fixed else init.constant(-100.0))})
        return explain(m, batches(x, y), optimizer=sgd(m), steps=3), m
    if cause == "below_resolution":
        m = mlp([20] + [32] * 8 + [4],              # the fix: He init
                kernel_init=init.he_normal if fixed else init.normal(0.0, 1e-3))
        return explain(m, batches(x, y), optimizer=sgd(m), steps=3), m
    if cause == "symmetry":
        m = mlp([20, 8, 4],                         # the fix: a random init
                kernel_init=init.he_normal if fixed else init.constant(0.1))
        return explain(m, batches(x, y), optimizer=sgd(m), steps=3), m
    if cause == "tiny_update":
        m = mlp([20, 16, 16, 4], overrides={1: dict(  # the fix: scale the init (He)
            kernel_init=init.he_normal if fixed else init.normal(0.0, 10.0))})
        return explain(m, batches(x, y), optimizer=optim.Adam(m.parameters(), lr=1e-3),
                       steps=6, every=1), m
    if cause == "vanishing_gradient":
        m = mlp([16, 32, 32, 32, 32, 4],            # the fix: He init
                kernel_init=init.he_normal if fixed else init.normal(0.0, 0.01),
                overrides={i: dict(bias_init=init.constant(1.0)) for i in range(4)})
        x, y = teacher_data(n=128, d=16, classes=4)
        return explain(m, batches(x, y), optimizer=sgd(m), steps=6, every=1), m
    raise KeyError(f"no planted fault for cause {cause!r}: add one to plant()")


def test_registry_is_the_single_list_of_causes():
    assert CAUSES == ORDER == tuple(REGISTRY)
    assert FROZEN_CAUSES == tuple(c for c in CAUSES if REGISTRY[c].freezes)
    assert set(LEGENDS) == set(CAUSES)


@pytest.mark.parametrize("name", CAUSES)
def test_every_cause_is_complete(name):
    c = REGISTRY[name]
    assert c.name == name and isinstance(c.freezes, bool) and isinstance(c.harmless, bool)
    assert isinstance(c.plain, str) and 0 < len(c.plain) <= 32      # fits a legend
    assert callable(c.detect) and callable(c.story)
    module = __import__(f"tinynet.diagnose.causes.{name}", fromlist=["CAUSE"])
    assert module.__doc__ and name in module.__doc__.split(":")[0]


@pytest.mark.parametrize("name", CAUSES)
def test_every_cause_is_produced_by_a_planted_fault(name):
    report, _ = plant(name)
    found = report.by_cause(name)
    assert found, (name, [(f.param, f.cause) for f in report.findings])
    for f in found:
        text = str(f)
        assert f"[{name}]" in text and "{" not in text
        assert "None" not in text.replace(".grad stayed None", "")     # no unformatted value
        assert f.fix and f.entries <= f.total
        assert REGISTRY[name].story(f) in text
    str(report)
    report.to_dict()


@pytest.mark.parametrize("name", CAUSES)
def test_every_fix_applied_to_its_planted_fault_makes_the_parameter_learn(name):
    planted, model = plant(name)
    params = {f.param for f in planted.by_cause(name)}
    if name == "zero_input":
        # nothing needs fixing: the frozen rows multiply a feature that is 0 in every
        # sample, so whatever they hold, the outputs on the data are the same
        model, x, y = plant(name, fixed=True)[1]
        with tn.no_grad():
            before = model(tn.tensor(x)).numpy()
            model[0].weight.data[3] = np.random.default_rng(0).standard_normal(8)
            after = model(tn.tensor(x)).numpy()
        np.testing.assert_array_equal(before, after)
        return
    fixed, model = plant(name, fixed=True)
    assert not fixed.by_cause(name), str(fixed)
    if REGISTRY[name].freezes:
        named = dict(model.named_parameters())
        for f in planted.by_cause(name):
            if f.param in named:
                # the parameter learns: the entries the finding named move now -- all but
                # a rare one that still missed its one sample (see "unexplained"), or one
                # frozen by ANOTHER, real cause of the fixed network (a deep He net has a
                # few units dead at init), which its report names
                still = fixed.frozen(f.param) & f.mask
                other = np.zeros_like(still)
                for g in fixed.findings:
                    if g.param == f.param and g.mask is not None:
                        other |= g.mask
                left = int((still & ~other).sum())
                told = fixed.unexplained.get(f.param, {}).get("entries", 0)
                assert left <= max(told, 0.05 * f.mask.sum()), (f.param, left, str(fixed))
