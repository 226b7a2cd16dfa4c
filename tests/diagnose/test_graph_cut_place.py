"""graph_cut names WHERE the graph was cut: planted cuts of several forms at several
places, each checked against the place the test planted it (the truth here)."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn, optim
from tinynet.diagnose import explain
from tinynet.nn import functional as F

from test_explain import batches, teacher_data


class Planted(nn.Module):
    """d1 -> r1 -> d2 -> r2 -> d3, with one cut planted at ``where`` by ``how``."""

    def __init__(self, how, where):
        super().__init__()
        self.how, self.where = how, where
        self.d1, self.r1 = nn.Dense(20, 16), nn.ReLU()
        self.d2, self.r2 = nn.Dense(16, 12), nn.ReLU()
        self.d3 = nn.Dense(12, 4)

    def cut(self, h, name):
        if self.where != name:
            return h
        if self.how == "detach":
            return h.detach()
        if self.how == "copy":
            return tn.tensor(h.data)          # a new tensor from the raw array
        if self.how == "function":
            return F.relu(h.detach() * 2.0)   # cut by plain functions between modules
        return h

    def forward(self, x):
        h = self.cut(self.r1(self.d1(x)), "r1")
        if self.how == "no_grad" and self.where == "d2":
            with tn.no_grad():
                h = self.d2(h)
        else:
            h = self.d2(h)
        h = self.cut(self.r2(h), "r2")
        return self.d3(h)


def run(model):
    x, y = teacher_data()
    return explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                   steps=4)


# (how, where it was planted) -> (cut_op, the last module in the graph, the module cut
# from it, the layers whose parameters are cut off: the truth of the planted cut)
CASES = {
    ("detach", "r2"): ("detach", "r2", "d3", {"d1", "d2"}),
    ("detach", "r1"): ("detach", "r1", "d2", {"d1"}),
    ("copy", "r2"): ("copy", "r2", "d3", {"d1", "d2"}),
    ("no_grad", "d2"): ("no_grad", "r1", "d2", {"d1"}),
    ("function", "r1"): (None, "r1", "d2", {"d1"}),
}


@pytest.mark.parametrize("how,where", list(CASES))
def test_the_finding_names_the_planted_cut(how, where):
    op, after, at, cut_layers = CASES[(how, where)]
    tn.manual_seed(0)
    report = run(Planted(how, where))
    found = [f for f in report.by_cause("graph_cut") if f.evidence.get("how") == "detach"]
    assert {f.layer for f in found} == cut_layers
    for f in found:
        ev = f.evidence
        assert (ev["cut_op"], ev["cut_after"], ev["cut_at"]) == (op, after, at)
        sentence = " ".join(str(report).split())
        assert f"layer {after} (ReLU)" in sentence and f"layer {at} (Dense)" in sentence
        if op is None:
            assert "not proven which op" in sentence
            assert "Remove the .detach() (or the tn.no_grad() block" in f.fix
        else:
            assert "not proven which op" not in sentence
            assert f"layer {at}" in f.fix
    if how == "no_grad":        # the no_grad layer itself is told as such
        (own,) = [f for f in report.by_cause("graph_cut") if f.layer == "d2"
                  and f.param == "d2.weight"]
        assert own.evidence["how"] == "no_grad"


@pytest.mark.parametrize("how,where", [("detach", "r2"), ("copy", "r2"), ("no_grad", "d2")])
def test_the_named_fix_at_the_named_place_makes_the_cut_layers_learn(how, where):
    """Remove exactly the op the finding names (the planted one): d1 then learns."""
    tn.manual_seed(0)
    model = Planted(how, where)
    report = run(model)
    (f,) = [f for f in report.by_cause("graph_cut") if f.param == "d1.weight"]
    assert f"layer {f.evidence['cut_at']}" in f.fix
    model.how = None
    before = model.d1.weight.numpy().copy()
    report = run(model)
    assert not report.by_cause("graph_cut")
    assert (model.d1.weight.numpy() != before).all()


class ConvCut(nn.Module):
    """conv -> relu -> pool -> [detach] -> flatten -> dense."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv2D(1, 3, 3, padding="same"), nn.ReLU(), \
            nn.MaxPool2D(2)
        self.flat, self.head = nn.Flatten(), nn.Dense(3 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.flat(self.pool(self.relu(self.conv(x))).detach()))


def test_cut_inside_a_cnn_names_the_pool_and_the_flatten():
    rng = np.random.default_rng(0)
    x = rng.random((32, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    tn.manual_seed(0)
    model = ConvCut()
    report = explain(model, batches(x, y, 16), optimizer=optim.Adam(model.parameters()),
                     steps=3)
    found = report.by_cause("graph_cut")
    assert {f.param for f in found} == {"conv.weight", "conv.bias"}
    ev = found[0].evidence
    assert (ev["cut_op"], ev["cut_after"], ev["cut_at"]) == ("detach", "pool", "flat")
    assert "the output of layer pool (MaxPool2D) was detached (.detach()) before layer flat " \
        "(Flatten)" in " ".join(str(report).split())
