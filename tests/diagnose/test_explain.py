"""explain(): plant each cause of a parameter not updating in a small network, and
check that the report names exactly that cause, for exactly those entries, with
the evidence -- and that healthy networks get no finding at all."""
import json

import numpy as np
import pytest

import tinynet as tn
from tinynet import init, nn, optim
from tinynet.diagnose import CAUSES, FROZEN_CAUSES, Finding, Report, explain


# ---- small data and models -------------------------------------------------------------
def teacher_data(n=256, d=20, classes=4, seed=0, zero_cols=()):
    """Gaussian inputs (no feature is ever exactly 0) labelled by a random linear teacher."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:, list(zero_cols)] = 0.0
    y = (x @ rng.standard_normal((d, classes))).argmax(1).astype(np.int64)
    return x, y


def batches(x, y, size=32):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def mlp(sizes, kernel_init=init.he_normal, overrides=None):
    """Dense-ReLU stack; ``overrides[i] = dict(kernel_init=..., bias_init=...)`` for Dense i."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        kw = {"kernel_init": kernel_init}
        kw.update((overrides or {}).get(i, {}))
        layers.append(nn.Dense(a, b, **kw))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def snapshot(model):
    return {n: p.numpy() for n, p in model.named_parameters()}


def only(findings):
    assert len(findings) == 1, findings
    return findings[0]


def words(report):
    """The story with its line wrapping undone."""
    return " ".join(str(report).split())


def freezes(report):
    return [f for f in report.findings if f.cause in FROZEN_CAUSES]


# ---- zero_input --------------------------------------------------------------------------
def test_zero_input_on_exactly_the_planted_columns(device):
    cols = [3, 17, 18, 31]
    x, y = teacher_data(n=256, d=40, zero_cols=cols)
    tn.manual_seed(0)
    model = mlp([40, 16, 4]).to(device)
    before = snapshot(model)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    report = explain(model, batches(x, y), optimizer=opt, steps=20, every=3)

    f = only(report.by_cause("zero_input"))
    rows = np.zeros((40, 16), bool)
    rows[cols] = True
    assert (f.param, f.layer, f.root, f.permanent) == ("0.weight", "0", None, True)
    assert f.indices.tolist() == cols and f.index_kind == "input feature"
    assert (f.entries, f.total) == (4 * 16, 40 * 16)
    np.testing.assert_array_equal(f.mask, rows)
    assert f.evidence["samples_seen"] == 20 * 32
    assert f.evidence["samples_with_feature_nonzero"] == 0
    np.testing.assert_array_equal(report.frozen("0.weight"), rows)
    after = snapshot(model)
    np.testing.assert_array_equal(after["0.weight"][cols], before["0.weight"][cols])
    assert report.findings == [f] and report.unexplained == {}
    text = words(report)
    assert "4 of 40 input rows (64 of 640 entries) never changed" in text
    assert "0 in all 640 samples seen" in text and "Permanent for this data" in text


def test_zero_input_border_pixels_of_digits_is_a_true_finding():
    x, y = tn.data.digits(300, seed=1)
    never = ~(x.reshape(len(x), -1) != 0).any(0)           # always-zero pixels in the data
    assert never.sum() > 100                                # the black border and corners
    tn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dense(784, 32, kernel_init=init.he_normal),
                          nn.ReLU(), nn.Dense(32, 10, kernel_init=init.he_normal))
    report = explain(model, tn.data.DataLoader(x, y, batch_size=50, seed=0),
                     optimizer=optim.Adam(model.parameters(), lr=1e-3), steps=12)
    f = only(report.by_cause("zero_input"))
    assert f.param == "1.weight" and f.evidence["feature_kind"] == "pixel"
    assert f.indices.tolist() == np.flatnonzero(never).tolist()
    assert f.evidence["samples_seen"] == 600 and f.permanent
    assert f"{never.sum()} of 784 pixels" not in words(report)      # rows wording, not features
    assert f"{never.sum()} of 784 input rows" in words(report)
    assert not [g for g in report.findings if g is not f and g.is_freeze]


# ---- symmetry ----------------------------------------------------------------------------
def test_constant_hidden_layer_has_effective_width_one_and_the_random_layer_is_not_reported():
    x, y = teacher_data(n=128, d=12, classes=3)
    tn.manual_seed(0)
    model = mlp([12, 16, 24, 3], overrides={1: dict(kernel_init=init.constant(0.1)),
                                             2: dict(kernel_init=init.constant(0.1))})
    opt = optim.SGD(model.parameters(), lr=0.05)
    report = explain(model, batches(x, y), optimizer=opt, steps=12, every=2)

    f = only(report.by_cause("symmetry"))
    assert (f.param, f.layer, f.entries, f.total) == ("2.weight", "2", 1, 24)
    assert f.permanent and f.root is None and not f.is_freeze
    assert f.evidence["next_layer"] == "4" and f.evidence["largest_group"] == 24
    assert (f.indices == 0).all() and f.mask.all()
    assert not report.frozen("2.weight").any()          # the entries DO change
    w = model[2].weight.numpy()
    np.testing.assert_array_equal(w, np.repeat(w[:, :1], 24, axis=1))
    # the randomly initialized layer before it: distinct units, never reported as symmetric
    assert [g for g in report.findings if g.param == "0.weight" and g.is_freeze] == []
    width = report.recorder.effective_width
    assert width["2"]["width"].tolist() == [1] * 6 and width["2"]["units"] == 24
    assert width["0"]["width"].tolist() == [16] * 6
    assert "effective width 1 of 24" in words(report)


def test_all_ones_network_of_the_seed_collapses_to_one_unit_per_layer():
    from tinynet.experiments import constant_init_mlp
    x, y = tn.data.digits(256, seed=2, flatten=True)
    model = constant_init_mlp()
    report = explain(model, tn.data.DataLoader(x, y, batch_size=64, seed=0),
                     optimizer=optim.SGD(model.parameters(), lr=0.5), steps=8, every=1)
    sym = {f.param: (f.entries, f.total) for f in report.by_cause("symmetry")}
    assert sym == {"0.weight": (1, 256), "2.weight": (1, 30)}
    assert not report.by_cause("vanishing_gradient")


def test_dropout_between_symmetric_layers_is_not_permanent():
    x, y = teacher_data(n=64, d=8, classes=3)
    tn.manual_seed(0)
    model = nn.Sequential(nn.Dense(8, 6, kernel_init=init.constant(0.2)), nn.ReLU(),
                          nn.Dropout(0.0), nn.Dense(6, 3, kernel_init=init.constant(0.2)))
    report = explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=4)
    f = only(report.by_cause("symmetry"))
    assert f.entries == 1 and f.evidence["dropout_between"] and not f.permanent


# ---- zero_weights ------------------------------------------------------------------------
def small_zero_kernel_cnn():
    g = init.glorot_normal
    return nn.Sequential(
        nn.Conv2D(1, 4, 3, padding="same", kernel_init=g), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(4, 4, 3, padding="same", kernel_init=init.zeros), nn.ReLU(),
        nn.Conv2D(4, 4, 3, padding="same", kernel_init=g), nn.ReLU(),
        nn.Flatten(),
        nn.Dense(4 * 6 * 6, 16, kernel_init=g), nn.ReLU(),
        nn.Dense(16, 3, kernel_init=g))


def test_zero_kernel_in_a_middle_conv_is_the_root_and_only_the_last_bias_moves(device):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    tn.manual_seed(0)
    model = small_zero_kernel_cnn().to(device)
    before = snapshot(model)
    report = explain(model, (x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=6, every=2)

    root = only(report.roots())
    assert (root.param, root.cause, root.permanent) == ("3.weight", "zero_weights", True)
    assert root.evidence["nonzero_weights"] == 0 and root.evidence["max_output"] == 0
    expected = {("0.weight", "blocked_downstream"), ("0.bias", "blocked_downstream"),
                ("3.bias", "zero_weights"), ("5.weight", "zero_input"), ("5.bias", "dead_unit"),
                ("8.weight", "zero_input"), ("8.bias", "dead_unit"),
                ("10.weight", "zero_input")}
    got = {(f.param, f.cause) for f in report.findings if f is not root}
    assert got == expected
    for f in report.findings:
        if f is not root:
            assert f.root == "3.weight" and f.permanent and f.entries == f.total
    assert report.consequences(root) == report.findings[1:]
    after = snapshot(model)
    for name in before:
        if name == "10.bias":
            assert not report.frozen(name).any()
            assert (after[name] != before[name]).all()
        else:
            assert report.frozen(name).all()
            np.testing.assert_array_equal(after[name], before[name])   # bit-identical
    assert report.moved == ["10.bias"]
    text = words(report)
    assert text.index("ROOT CAUSES") < text.index("3.weight: all 144 weights")
    assert "Because of 3.weight" in text


# ---- dead_unit ---------------------------------------------------------------------------
def test_large_negative_bias_kills_exactly_those_units():
    dead = [1, 5, 6]
    bias = np.zeros(8, np.float32)
    bias[dead] = -100.0
    x, y = teacher_data(n=128, d=12, classes=3)
    tn.manual_seed(0)
    model = mlp([12, 8, 3], overrides={0: dict(bias_init=bias)})
    report = explain(model, batches(x, y), optimizer=optim.Adam(model.parameters(), lr=1e-2),
                     steps=10)

    by = {(f.param, f.cause): f for f in report.findings}
    assert set(by) == {("0.weight", "dead_unit"), ("0.bias", "dead_unit"),
                       ("2.weight", "zero_input")}
    cols = np.zeros((12, 8), bool)
    cols[:, dead] = True
    w, b = by["0.weight", "dead_unit"], by["0.bias", "dead_unit"]
    np.testing.assert_array_equal(w.mask, cols)
    np.testing.assert_array_equal(b.mask, np.isin(np.arange(8), dead))
    assert w.indices.tolist() == dead == b.indices.tolist()
    assert w.root is None and w.permanent and w.evidence["max_preactivation"] < -50
    np.testing.assert_array_equal(report.frozen("0.weight"), cols)
    z = by["2.weight", "zero_input"]
    assert z.indices.tolist() == dead and (z.root, z.root_cause) == ("0.weight", "dead_unit")
    assert z.permanent
    assert "3 of 8 units are dead" in words(report)


# ---- tiny_update and vanishing_gradient ----------------------------------------------------
def test_badly_scaled_layer_under_adam_is_a_tiny_update_on_that_layer_only():
    x, y = teacher_data(n=256, d=20, classes=4)
    tn.manual_seed(0)
    model = mlp([20, 64, 64, 4], overrides={1: dict(kernel_init=init.normal(0.0, 3.0))})
    report = explain(model, batches(x, y), optimizer=optim.Adam(model.parameters(), lr=1e-3),
                     steps=24, every=1)
    f = only(report.by_cause("tiny_update"))
    assert f.param == "2.weight" and not f.permanent and not f.is_freeze
    assert f.evidence["rule"] == "adaptive_ceiling"
    assert f.evidence["update_ratio_median"] < 1e-3
    assert f.evidence["lr_over_weight_rms"] < 2e-3
    assert f.evidence["grad_rms_vs_last_layer"] > 1e-2          # not a vanishing gradient
    assert f.entries == (~report.frozen("2.weight")).sum() > 0.99 * f.total   # entries that moved
    assert not report.by_cause("vanishing_gradient") and not freezes(report)


def test_vanishing_gradient_in_a_deep_net_with_tiny_weights_and_large_biases():
    # biases of 1 keep the forward values alive; weights of 0.01 shrink the gradient
    # about 20x per layer on its way back to the input
    x, y = teacher_data(n=128, d=16, classes=4)
    tn.manual_seed(0)
    model = mlp([16, 32, 32, 32, 32, 4], kernel_init=init.normal(0.0, 0.01),
                overrides={i: dict(bias_init=init.constant(1.0)) for i in range(4)})
    report = explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=10, every=1)
    vanishing = [f.param for f in report.by_cause("vanishing_gradient")]
    assert vanishing[:2] == ["0.weight", "2.weight"] and "8.weight" not in vanishing
    f = report.by_cause("vanishing_gradient")[0]
    assert f.evidence["grad_rms_vs_last_layer"] < 1e-3
    assert not [g for g in report.by_cause("tiny_update") if g.param in vanishing]


# ---- not_in_optimizer / no_gradient --------------------------------------------------------
def test_parameter_left_out_of_the_optimizer():
    x, y = teacher_data()
    tn.manual_seed(0)
    model = mlp([20, 16, 16, 4])
    params = [p for n, p in model.named_parameters() if n != "2.weight"]
    report = explain(model, batches(x, y), optimizer=optim.Adam(params, lr=1e-2), steps=6)
    f = only(report.findings)
    assert (f.param, f.cause, f.entries, f.total, f.permanent) == \
        ("2.weight", "not_in_optimizer", 256, 256, True)
    assert f.evidence["optimizer_parameters"] == 5 and f.evidence["model_parameters"] == 6


class WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = mlp([20, 8, 4])
        self.unused = nn.Parameter(np.ones((3, 2), np.float32))

    def forward(self, x):
        return self.body(x)


def test_parameter_not_connected_to_the_loss_has_no_gradient():
    x, y = teacher_data()
    tn.manual_seed(0)
    model = WithUnused()
    report = explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=5)
    f = only(report.findings)
    assert (f.param, f.cause, f.entries, f.permanent) == ("unused", "no_gradient", 6, True)
    assert f.evidence == {"steps": 5, "steps_without_gradient": 5, "optimizer_skipped": 5}


# ---- healthy networks: no false alarms ---------------------------------------------------
@pytest.mark.parametrize("opt", ["adam", "sgd", "rmsprop"])
def test_healthy_mlp_has_no_findings(opt):
    x, y = teacher_data(n=512, d=30, classes=5)
    tn.manual_seed(1)
    model = mlp([30, 64, 64, 5])
    make = {"adam": lambda p: optim.Adam(p, lr=1e-3), "sgd": lambda p: optim.SGD(p, lr=0.05),
            "rmsprop": lambda p: optim.RMSprop(p, lr=1e-3)}[opt]
    report = explain(model, batches(x, y), optimizer=make(model.parameters()), steps=30)
    assert report.findings == [], str(report)
    # at most a few entries where a rare input never met a rarely-open unit on one sample
    assert sum(u["entries"] for u in report.unexplained.values()) < 0.005 * 6469
    assert "No findings" in words(report)


def test_healthy_cnn_has_no_findings():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 10, 10)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    tn.manual_seed(0)
    he = init.he_normal
    model = nn.Sequential(nn.Conv2D(1, 6, 3, padding="same", kernel_init=he), nn.ReLU(),
                          nn.MaxPool2D(2), nn.Flatten(), nn.Dense(6 * 5 * 5, 3, kernel_init=he))
    report = explain(model, batches(x, y, 16), optimizer=optim.Adam(model.parameters(), lr=1e-3),
                     steps=12)
    assert report.findings == [] and report.unexplained == {}, str(report)


def test_cnn_positions_that_never_open_are_zero_input_from_that_layer():
    # A conv on non-negative inputs (pooled ReLU outputs) can have positions where a
    # channel never opens -- near the zero padding most often.  The Dense rows that
    # read those positions never change: a true finding, attributed to the layer
    # whose output is 0 there, not to a root cause.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 10, 10)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    he = init.he_normal

    def build():
        tn.manual_seed(0)
        return nn.Sequential(nn.Conv2D(1, 6, 3, padding="same", kernel_init=he), nn.ReLU(),
                             nn.MaxPool2D(2), nn.Conv2D(6, 8, 3, padding="same", kernel_init=he),
                             nn.ReLU(), nn.Flatten(), nn.Dense(8 * 5 * 5, 3, kernel_init=he))
    model = build()
    report = explain(model, batches(x, y, 16), optimizer=optim.Adam(model.parameters(), lr=1e-3),
                     steps=12)
    f = only(report.findings)
    assert (f.param, f.cause, f.root, f.permanent) == ("6.weight", "zero_input", None, False)
    assert f.evidence["source"] == "3" and f.evidence["samples_with_feature_nonzero"] == 0
    # the first step's forward pass (initial weights, first batch) already had them at 0
    with tn.no_grad():
        first = build()[:6](tn.tensor(x[:16])).numpy()
    assert set(f.indices.tolist()) <= set(np.flatnonzero(~(first != 0).any(0)).tolist())


# ---- the API around it -----------------------------------------------------------------
def test_report_api_and_json():
    x, y = teacher_data(zero_cols=[0])
    tn.manual_seed(0)
    model = mlp([20, 8, 4])
    report = explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=4)
    assert isinstance(report, Report) and all(isinstance(f, Finding) for f in report.findings)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["steps"] == 4 and d["findings"][0]["cause"] == "zero_input"
    assert d["findings"][0]["indices"] == [0]
    assert len(json.loads(json.dumps(report.to_dict(masks=True)))["findings"][0]["mask"]) == 20
    assert report.roots() == report.by_cause("zero_input")
    assert "zero_input" in report._repr_markdown_()
    assert "zero_input: 1" in repr(report)
    with pytest.raises(ValueError, match="unknown cause"):
        report.by_cause("frozen")
    with pytest.raises(KeyError, match="no parameter 'nope'"):
        report.frozen("nope")
    with pytest.raises(ValueError, match="unknown cause"):
        Finding("w", "broken", 1, 1, True)
    assert set(FROZEN_CAUSES) < set(CAUSES)


def test_explain_cycles_short_data_and_accepts_generators():
    x, y = teacher_data(n=64)
    tn.manual_seed(0)
    model = mlp([20, 8, 4])
    report = explain(model, (b for b in batches(x, y)), optimizer=optim.SGD(
        model.parameters(), lr=0.1), steps=5, every=1)
    assert report.steps == 5 and report.samples_seen == 5 * 32 and len(report.loss) == 5


def test_explain_analyzes_a_recorder_without_training():
    x, y = teacher_data(zero_cols=[2])
    tn.manual_seed(0)
    model = mlp([20, 8, 4])
    opt = optim.SGD(model.parameters(), lr=0.1)
    rec = tn.diagnose.Recorder(model, opt, every=2)
    tn.train.fit(model, tn.nn.functional.softmax_cross_entropy, opt, batches(x, y),
                 callbacks=[rec], max_steps=5, progress=False)
    before = snapshot(model)
    report = explain(model, recorder=rec, steps=0)
    assert report.steps == 5 and only(report.findings).indices.tolist() == [2]
    after = snapshot(model)
    assert all((before[n] == after[n]).all() for n in before)          # no training
    with pytest.raises(ValueError, match="nothing to analyze"):
        explain(model, steps=0)
    with pytest.raises(ValueError, match="optimizer is needed"):
        explain(model, batches(x, y), steps=3)


def test_trace_step_is_reexported_lazily():
    import tinynet.diagnose as d
    assert callable(d.trace_step) and "trace_step" in dir(d)
