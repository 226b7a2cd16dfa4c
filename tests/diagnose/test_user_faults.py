"""Faults students meet beyond the four article cases: each planted, explained, checked
against a replay of the same training (tests/diagnose/replay.py), and its suggested fix
applied to show the parameter then learns.

Each of these failed before the cause registry (see the commit that added this file)."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import init, nn, optim
from tinynet.diagnose import Finding, Recorder, explain
from tinynet.nn import functional as F

from replay import frozen, replay
from test_explain import batches, mlp, teacher_data, words


def images(n=64, c=1, size=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    y = (x.reshape(n, -1) @ rng.standard_normal((c * size * size, classes))).argmax(1)
    return x, y.astype(np.int64)


def moved_everywhere(model, before):
    return {n: bool((p.numpy() != before[n]).all()) for n, p in model.named_parameters()}


def snapshot(model):
    return {n: p.numpy().copy() for n, p in model.named_parameters()}


# ---- conv channel symmetry ---------------------------------------------------------------
def conv_net(kernel_init):
    # every layer initialized the same way (as the seed's all-ones MLP, but with a conv)
    return nn.Sequential(nn.Conv2D(1, 4, 3, kernel_init=kernel_init), nn.ReLU(),
                         nn.MaxPool2D(2), nn.Flatten(),
                         nn.Dense(4 * 3 * 3, 3, kernel_init=kernel_init))


def test_constant_conv_kernels_make_identical_channels():
    x, y = images()
    tn.manual_seed(0)
    model = conv_net(init.constant(0.1))
    data = batches(x, y, 16)
    truth = replay(model, lambda m: optim.SGD(m.parameters(), lr=0.05), data, seed=1, steps=12)
    tn.manual_seed(1)
    report = explain(model, data, optimizer=optim.SGD(model.parameters(), lr=0.05), steps=12)
    (f,) = report.by_cause("symmetry")
    assert (f.param, f.entries, f.total, f.permanent) == ("0.weight", 1, 4, True)
    # the truth, from the replay's weights: all four kernels and biases are identical
    w, b = truth["final"]["0.weight"], truth["final"]["0.bias"]
    assert (w == w[:1]).all() and (b == b[0]).all() and truth["changed"]["0.weight"].any()
    assert tn.diagnose.effective_width(model[0], model[4]) == 1
    assert "layer 0 works as if it had 1 channel(s), not 4" in words(report)
    # the fix: a random init -- no symmetry, four different channels
    tn.manual_seed(0)
    fixed = conv_net(init.he_normal)
    report = explain(fixed, data, optimizer=optim.SGD(fixed.parameters(), lr=0.05), steps=12)
    assert not report.by_cause("symmetry")
    assert tn.diagnose.effective_width(fixed[0], fixed[4]) == 4


def test_effective_width_is_one_public_definition():
    dense = nn.Dense(3, 5, kernel_init=init.ones)
    assert tn.diagnose.effective_width(dense) == 1
    tn.manual_seed(0)
    assert tn.diagnose.effective_width(nn.Dense(3, 5)) == 5
    # equal incoming weights but different outgoing ones: not interchangeable
    nxt = nn.Dense(5, 2)
    assert tn.diagnose.effective_width(dense, nxt) == 5
    with pytest.raises(TypeError, match="nn.Dense or nn.Conv2D"):
        tn.diagnose.effective_width(nn.ReLU())


# ---- learning rate 0 -----------------------------------------------------------------------
def warmup_run(lr_of_step, steps=8):
    x, y = teacher_data()
    tn.manual_seed(0)
    model = mlp([20, 16, 4])
    before = snapshot(model)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    rec = Recorder(model, opt, every=3).attach()
    for s, (xb, yb) in enumerate(batches(x, y)[:steps]):
        opt.lr = lr_of_step(s)           # a warm-up schedule, set inside the loop
        loss = F.softmax_cross_entropy(model(tn.tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step()
    rec.detach()
    return model, before, explain(model, recorder=rec)


def test_schedule_that_zeroes_lr_is_named_with_its_steps():
    model, before, report = warmup_run(lambda s: 0.0 * 1e-2)
    assert {f.cause for f in report.findings} == {"zero_lr"}
    assert {f.param for f in report.findings} == set(before)
    f = report.by_cause("zero_lr")[0]
    assert f.evidence["optimizer"] == "Adam" and f.evidence["lr_zero_steps"] == list(range(1, 9))
    text = words(report)
    assert "learning rate was 0 on steps 1-8" in text
    assert "float resolution" not in text and not report.unexplained
    # the fix the report gives: a warm-up from a small positive value
    model, before, report = warmup_run(lambda s: 1e-2 * (s + 1) / 8)
    assert all(moved_everywhere(model, before).values()) and not report.findings


# ---- deep tiny-init ReLU MLP: frozen by float resolution -----------------------------------
def test_deep_tiny_init_mlp_prints_and_names_updates_below_float_resolution():
    x, y = teacher_data()
    tn.manual_seed(0)
    model = mlp([20] + [32] * 8 + [4], kernel_init=init.normal(0.0, 1e-3))
    data = batches(x, y)
    make = lambda m: optim.SGD(m.parameters(), lr=0.1)      # noqa: E731
    truth = replay(model, make, data, seed=0, steps=8)
    report = explain(model, data, optimizer=make(model), steps=8, every=1)
    text = str(report)                              # printing must not raise
    assert report.to_dict()["findings"]
    below = {f.param: f for f in report.by_cause("below_resolution")}
    assert "0.weight" in below and below["0.weight"].entries == 20 * 32
    for name, f in below.items():
        # truth: never changed, and the gradient was NOT exactly zero on some step
        assert (f.mask <= frozen(truth, name)).all()
        assert (f.mask <= truth["grad_nz"][name].any(axis=0)).all()
        assert f.evidence["update_max"] < f.evidence["spacing_min"]
    assert "below half the float32 spacing" in " ".join(text.split())
    # the fix: He init -- the first layer learns
    tn.manual_seed(0)
    fixed = mlp([20] + [32] * 8 + [4], kernel_init=init.he_normal)
    before = snapshot(fixed)
    report = explain(fixed, data, optimizer=make(fixed), steps=8)
    assert not report.by_cause("below_resolution")
    assert (fixed[0].weight.numpy() != before["0.weight"]).mean() > 0.99


def test_a_few_entries_below_resolution_in_a_healthy_layer_are_not_blamed_on_the_init():
    # He init, SGD: a handful of first-layer weights read pixels that are rarely nonzero, so
    # their own lr*|g| stays under the float spacing while the rest of the layer learns.
    # The report must not tell a He-initialised network to "use He init".
    from tinynet.data import DataLoader, digits
    x, y = digits(1000, flatten=True)
    tn.manual_seed(0)
    model = mlp([784, 64, 64, 64, 10], kernel_init=init.he_normal)
    before = snapshot(model)
    make = lambda m: optim.SGD(m.parameters(), lr=0.005, momentum=0.9)      # noqa: E731
    report = explain(model, DataLoader(x, y, batch_size=64, shuffle=True, seed=0),
                     optimizer=make(model), steps=20)
    below = report.by_cause("below_resolution")
    assert below, "the planted case no longer produces rounded-away entries"
    for f in below:
        after = dict(model.named_parameters())[f.param].numpy()
        moved = after != before[f.param]
        assert not moved[f.mask].any()                    # truth: those entries never changed
        assert moved.mean() > 0.5                          # truth: the rest of the layer learns
        assert f.entries <= 0.01 * f.total and f.evidence["scattered"]
        assert f.fix.startswith("Nothing needs fixing") and "he_normal" not in f.fix
        assert "scattered" in " ".join(str(f).split())


def test_slow_findings_print_when_a_median_was_not_measured():
    for cause in ("vanishing_gradient", "tiny_update"):
        f = Finding(param="0.weight", cause=cause, entries=4, total=4, permanent=False,
                    evidence={"update_ratio_median": None, "grad_rms": None,
                              "grad_rms_vs_last_layer": None, "steps": 3,
                              "relative_change": None})
        assert "?" in str(f)


# ---- units that die during training -------------------------------------------------------
def dying_net():
    # units 0-2 of the second hidden layer (layer "2") dead from the start (bias -100);
    # a too-high lr kills more of them during training
    bias = np.zeros(24, np.float32)
    bias[:3] = -100.0
    return mlp([20, 24, 24, 4], overrides={1: dict(bias_init=lambda shape, **_: bias.copy())})


def test_units_dead_from_the_start_and_units_that_died_are_separate_findings():
    x, y = teacher_data(n=512)
    tn.manual_seed(0)
    model = dying_net()
    data = batches(x, y)
    make = lambda m: optim.SGD(m.parameters(), lr=3.0)      # noqa: E731
    truth = replay(model, make, data, seed=0, steps=40)
    report = explain(model, data, optimizer=make(model), steps=40, every=1)
    start = [f for f in report.by_cause("dead_unit") if f.since == 0 and f.layer == "2"]
    died = [f for f in report.by_cause("dead_unit") if f.since > 0]
    assert start and died
    for f in start:
        assert f.indices.tolist() == [0, 1, 2]
        assert not truth["open"][f.layer][:, f.indices].any()        # never open
    for f in died:
        k = f.since
        units = f.indices
        opened = truth["open"][f.layer]
        assert not opened[k - 1:, units].any()                         # shut from step k on
        assert opened[:k - 1, units].any(axis=0).all()                 # each was open before
        assert not set(units) & {0, 1, 2} or f.layer != "2"
    for f in start + died + report.by_cause("zero_input"):
        # one unit list: indices, evidence, mask and story agree
        axis = 1 if f.index_kind in ("unit", "channel") else 0
        if f.mask.ndim == 1:
            covered = np.flatnonzero(f.mask)
        else:
            other = tuple(a for a in range(f.mask.ndim) if a != axis)
            covered = np.flatnonzero(f.mask.any(axis=other))
        assert covered.tolist() == f.indices.tolist()
        if "units" in f.evidence:
            assert f.evidence["units"] == len(f.indices)
            assert f"{len(f.indices)} of {f.evidence['units_total']} units" in str(f)
    for f in died:
        # the mask: entries that moved before step k and never from step k on
        ch = truth["changed"][f.param]
        assert (f.mask <= ~ch[f.since - 1:].any(axis=0)).all()
        assert (f.mask <= ch[:f.since - 1].any(axis=0)).all()
    # the fix: a lower learning rate -- no unit dies during training
    tn.manual_seed(0)
    model = dying_net()
    report = explain(model, data, optimizer=optim.SGD(model.parameters(), lr=0.05), steps=40)
    assert not [f for f in report.by_cause("dead_unit") if f.since > 0]


# ---- permanence only when proven -----------------------------------------------------------
def test_zero_in_the_samples_seen_is_not_permanent_when_other_samples_have_it():
    x, y = teacher_data(n=256, d=20)
    x[:128, 5] = 0.0              # zero in the first half only
    tn.manual_seed(0)
    model = mlp([20, 8, 4])
    report = explain(model, batches(x, y), optimizer=optim.Adam(model.parameters(), lr=1e-2),
                     steps=4)                       # 4 batches of 32: the first half only
    (f,) = report.by_cause("zero_input")
    assert f.indices.tolist() == [5] and not f.permanent
    assert f.evidence["nonzero_elsewhere"] == 1 and f.evidence["data_samples"] == 256
    text = words(report)
    assert "0 in all 128 samples seen (256 in the data set; it is nonzero in some of the " \
           "others)" in text
    assert "Not proven permanent" in text and "carries no information" not in text
    # trained further, the rows learn: the claim "not permanent" was right
    report = explain(model, batches(x, y), optimizer=optim.Adam(model.parameters(), lr=1e-2),
                     steps=8)
    assert not report.by_cause("zero_input")


def test_zero_everywhere_is_permanent_when_the_data_was_scanned_or_seen():
    x, y = teacher_data(n=256, d=20, zero_cols=[5])
    for steps in (2, 8):              # 2: part seen, the rest scanned; 8: all seen
        tn.manual_seed(0)
        model = mlp([20, 8, 4])
        report = explain(model, batches(x, y),
                         optimizer=optim.Adam(model.parameters(), lr=1e-2), steps=steps)
        (f,) = report.by_cause("zero_input")
        assert f.permanent and f.evidence["zero_in_whole_data"]
        assert "and in all 256 samples of the data set" in words(report)


def test_a_recorder_alone_cannot_prove_a_data_wide_zero():
    x, y = teacher_data(n=256, d=20, zero_cols=[5])
    tn.manual_seed(0)
    model = mlp([20, 8, 4])
    opt = optim.Adam(model.parameters(), lr=1e-2)
    rec = Recorder(model, opt).attach()
    for xb, yb in batches(x, y)[:3]:
        loss = F.softmax_cross_entropy(model(tn.tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step()
    (f,) = explain(model, recorder=rec).by_cause("zero_input")
    assert not f.permanent
    (f,) = explain(model, (x, y), recorder=rec, steps=0).by_cause("zero_input")   # scanned
    assert f.permanent


# ---- graph cut, frozen on purpose, not in the optimizer -----------------------------------
class Cut(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a = nn.Dense(20, 16)
        self.b = nn.Dense(16, 4)

    def forward(self, x):
        if self.how == "detach":
            h = self.a(x).detach()
        elif self.how == "no_grad":
            with tn.no_grad():
                h = self.a(x)
        else:
            h = self.a(x)
        return self.b(F.relu(h))


@pytest.mark.parametrize("how", ["detach", "no_grad"])
def test_graph_cut_is_named_with_a_fix_that_works(how):
    x, y = teacher_data()
    tn.manual_seed(0)
    model = Cut(how)
    report = explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=5)
    cut = report.by_cause("graph_cut")
    assert {f.param for f in cut} == {"a.weight", "a.bias"}
    assert {f.cause for f in report.findings} == {"graph_cut"}
    assert cut[0].evidence["how"] == how
    assert ("Remove the .detach()" if how == "detach" else "outside tn.no_grad()") in cut[0].fix
    assert "does not depend on it" not in words(report)
    model.how = None                  # the fix applied: the same model, no cut
    before = snapshot(model)
    report = explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     steps=5)
    assert not report.findings and all(moved_everywhere(model, before).values())


def test_parameter_frozen_on_purpose_is_harmless_and_its_fix_runs():
    x, y = teacher_data()
    tn.manual_seed(0)
    model = mlp([20, 16, 4])
    model[0].weight.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    report = explain(model, batches(x, y), optimizer=optim.Adam(trainable, lr=1e-2), steps=5)
    (f,) = report.findings
    assert (f.param, f.cause, f.permanent) == ("0.weight", "frozen_by_user", True)
    assert "Nothing to fix if you froze it on purpose" in f.fix
    assert tn.diagnose.causes.REGISTRY["frozen_by_user"].harmless
    # following the fix: requires_grad back on, the optimizer built from model.parameters()
    assert "requires_grad_(True)" in f.fix and \
        "optim.Adam([p for p in model.parameters() if p.requires_grad]" in f.fix
    model[0].weight.requires_grad_(True)
    before = snapshot(model)
    report = explain(model, batches(x, y), optimizer=optim.Adam(model.parameters(), lr=1e-2),
                     steps=5)
    assert not report.findings and all(moved_everywhere(model, before).values())


def test_not_in_optimizer_fix_runs_and_the_parameter_learns():
    x, y = teacher_data()
    tn.manual_seed(0)
    model = mlp([20, 16, 4])
    params = [p for n, p in model.named_parameters() if n != "0.bias"]
    report = explain(model, batches(x, y), optimizer=optim.SGD(params, lr=0.1), steps=5)
    (f,) = report.findings
    assert f.cause == "not_in_optimizer" and \
        "optim.SGD([p for p in model.parameters() if p.requires_grad]" in f.fix
    before = snapshot(model)
    explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.1), steps=5)
    assert moved_everywhere(model, before)["0.bias"]


def test_a_recorder_in_fit_proves_a_data_wide_zero_only_after_a_full_pass():
    x, y = teacher_data(n=256, d=20, zero_cols=[2])
    x[200:, 7] = 0.0                     # zero only in the last 56 samples: never data-wide
    out = {}
    for epochs, max_steps in ((2, None), (1, 5), (2, 9)):
        tn.manual_seed(0)
        model = mlp([20, 8, 4])
        opt = optim.SGD(model.parameters(), lr=0.1)
        rec = Recorder(model, opt, every=2)
        tn.train.fit(model, F.softmax_cross_entropy, opt, batches(x, y), epochs=epochs,
                     callbacks=[rec], max_steps=max_steps, progress=False)
        out[epochs, max_steps] = explain(model, recorder=rec).by_cause("zero_input")
    (f,) = out[2, None]                  # 8 batches per epoch, two full epochs
    assert f.indices.tolist() == [2] and f.permanent and f.evidence["data_passes"] == 2
    (f,) = out[2, 9]                     # epoch 1 full, then 1 step of epoch 2
    assert f.permanent and f.evidence["data_passes"] == 1
    (f,) = out[1, 5]                     # 5 of 8 batches: not every sample seen
    assert not f.permanent and "Not proven permanent" in str(f)


def test_lr_zero_on_the_first_steps_only_is_a_note_not_a_freeze():
    model, before, report = warmup_run(lambda s: 0.0 if s < 3 else 1e-2)
    assert not report.findings and all(moved_everywhere(model, before).values())
    assert any("learning rate was 0 on steps 1-3 of 8" in n for n in report.notes)


def test_conv_entries_with_an_exactly_zero_gradient_are_never_called_a_resolution_problem():
    # stride 3 on a 6x6 image: kernel column 0 only ever reads image columns 0 and 3,
    # which are black in every image -- those kernel entries get an exactly-zero
    # gradient on every step.  A learning rate of 1e-9 freezes all the others by
    # rounding: they must be told apart.
    x, y = images(n=48, size=6)
    x[:, :, :, [0, 3]] = 0.0
    tn.manual_seed(0)
    model = nn.Sequential(nn.Conv2D(1, 3, 3, stride=3, kernel_init=init.he_normal), nn.ReLU(),
                          nn.Flatten(), nn.Dense(12, 3))
    data = batches(x, y, 8)
    make = lambda m: optim.SGD(m.parameters(), lr=1e-9)      # noqa: E731
    truth = replay(model, make, data, seed=0, steps=6)
    tn.manual_seed(0)
    report = explain(model, data, optimizer=make(model), steps=6, every=1)
    exact_zero = ~truth["grad_nz"]["0.weight"].any(axis=0)
    assert exact_zero[:, :, :, 0].all() and frozen(truth, "0.weight").all()   # the premise
    (f,) = [f for f in report.by_cause("below_resolution") if f.param == "0.weight"]
    np.testing.assert_array_equal(f.mask, ~exact_zero)       # exactly the nonzero ones
    left = report.unexplained["0.weight"]
    assert left["entries"] == int(exact_zero.sum()) and left["grad_nonzero"] == 0
    line = [l for l in words(report).split(" - ") if l.startswith("0.weight: 9 of 27")]
    assert line and "float" not in line[0]
