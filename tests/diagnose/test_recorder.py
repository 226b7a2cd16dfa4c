"""Recorder: exact changed masks, the per-step history, layer evidence, use as a fit
callback, and recording on a device without reading anything back to the host."""
import time

import numpy as np
import pytest

import tinynet as tn
from tinynet import init, nn, optim
from tinynet.diagnose import Recorder
import tinynet.nn.functional as F


def data(n=96, d=6, classes=3, seed=0, zero_cols=()):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:, list(zero_cols)] = 0.0
    y = rng.integers(0, classes, n)
    return x, y


def small(d=6, hidden=5, classes=3, bias_init=init.zeros):
    tn.manual_seed(0)
    return nn.Sequential(nn.Dense(d, hidden, kernel_init=init.he_normal, bias_init=bias_init),
                         nn.ReLU(), nn.Dense(hidden, classes, kernel_init=init.he_normal))


def train(model, opt, rec, x, y, steps, batch=16, device="cpu"):
    """The manual loop: forward, backward, step, rec.step() -- no host reads."""
    n = len(x)
    for s in range(steps):
        i = (s * batch) % n
        xb = tn.tensor(x[i:i + batch], device=device)
        yb = tn.tensor(y[i:i + batch], device=device)
        loss = F.softmax_cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step()


def test_changed_mask_is_exact_and_matches_the_values(device):
    x, y = data(zero_cols=[1, 4])
    model = small().to(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, every=3).attach()
    initial = {n: p.numpy() for n, p in model.named_parameters()}
    train(model, opt, rec, x, y, steps=8, device=device)
    rec.detach()
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(rec.changed_mask(name), p.numpy() != initial[name])
        np.testing.assert_array_equal(rec.initial_numpy(name), initial[name])
    rows = np.zeros((6, 5), bool)
    rows[[1, 4]] = True
    np.testing.assert_array_equal(rec.frozen_mask("0.weight"), rows)
    assert rec.last_change("0.weight")[~rows].max() == 8           # checked at the end
    assert rec.zero_input_features("0").tolist() == [False, True, False, False, True, False]
    counts = rec.feature_counts("0")
    assert rec.samples_seen == 8 * 16
    # counts are evidence, taken on the recorded steps 1, 4, 7 only; the zero mask above
    # sees every sample of every step
    assert rec.counted_samples("0") == 3 * 16
    assert counts[[1, 4]].tolist() == [0, 0] and counts[0] == 3 * 16


def test_history_every_k_and_exact_update_norms():
    x, y = data()
    model = small()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    rec = Recorder(model, opt, every=3).attach()
    values, grads = [model[0].weight.numpy()], []
    for s in range(10):
        train(model, opt, rec, x[(s * 16) % 96:], y[(s * 16) % 96:], steps=1)
        values.append(model[0].weight.numpy())
        grads.append(model[0].weight.grad.numpy())
    h = rec.history["0.weight"]
    assert h["step"].tolist() == [1, 4, 7, 10]
    for key in ("grad_norm", "update_norm", "weight_norm", "update_ratio", "grad_rms"):
        assert h[key].shape == (4,)
    for i, s in enumerate([1, 4, 7, 10]):
        upd = np.linalg.norm(values[s] - values[s - 1])         # the last step's update
        np.testing.assert_allclose(h["update_norm"][i], upd, rtol=1e-5)
        np.testing.assert_allclose(h["weight_norm"][i], np.linalg.norm(values[s - 1]), rtol=1e-5)
        np.testing.assert_allclose(h["grad_norm"][i], np.linalg.norm(grads[s - 1]), rtol=1e-5)
    np.testing.assert_allclose(h["update_ratio"], h["update_norm"] / h["weight_norm"])
    np.testing.assert_allclose(h["grad_rms"], h["grad_norm"] / np.sqrt(30))
    assert rec.layer_stats["1"]["step"].tolist() == [1, 4, 7, 10]


def test_zero_initial_bias_gives_an_infinite_ratio_not_a_crash():
    x, y = data()
    model = small()
    opt = optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, opt, every=1).attach()
    train(model, opt, rec, x, y, steps=2)
    r = rec.history["0.bias"]["update_ratio"]
    assert np.isinf(r[0]) and np.isfinite(r[1])


def test_works_as_a_fit_callback():
    x, y = data()
    model = small()
    opt = optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, every=2)                       # optimizer taken from fit
    tn.train.fit(model, F.softmax_cross_entropy, opt, tn.data.DataLoader(x, y, batch_size=16),
                 epochs=3, max_steps=7, callbacks=[rec], progress=False)
    assert rec.optimizer is opt and rec.steps == 7 and not rec.attached
    assert rec.history["2.weight"]["step"].tolist() == [1, 3, 5, 7]
    assert rec.samples_seen == 7 * 16
    stats = rec.layer_stats
    assert set(stats) == {"0", "1", "2"}
    relu = stats["1"]
    assert relu["step"].tolist() == [1, 3, 5, 7]
    assert ((relu["zero_frac"] > 0) & (relu["zero_frac"] < 1)).all()
    assert (relu["dead_units"] == 0).all() and "dead_units" not in stats["0"]
    samples = rec.activation_samples("1")
    assert sorted(samples) == [1, 3, 5, 7] and samples[1].size == 16 * 5
    # evaluation (no_grad) is not training evidence
    tn.train.evaluate(model, F.softmax_cross_entropy, (x, y))
    assert rec.samples_seen == 7 * 16


def test_dead_units_and_detach():
    x, y = data()
    bias = np.zeros(5, np.float32)
    bias[[0, 3]] = -50.0
    model = small(bias_init=bias)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    with Recorder(model, opt, every=4) as rec:
        train(model, opt, rec, x, y, steps=5)
    assert not rec.attached
    assert rec.dead_units("1").tolist() == [True, False, False, True, False]
    np.testing.assert_array_equal(rec.frozen_mask("0.bias"), [True, False, False, True, False])
    seen = rec.samples_seen
    model(tn.tensor(x[:8]))                             # hooks are gone
    assert rec.samples_seen == seen


def test_effective_width_over_steps():
    x, y = data(n=64, d=4)
    tn.manual_seed(0)
    model = nn.Sequential(nn.Dense(4, 7, kernel_init=init.he_normal), nn.ReLU(),
                          nn.Dense(7, 6, kernel_init=init.constant(0.3)), nn.ReLU(),
                          nn.Dense(6, 3, kernel_init=init.constant(0.3)))
    opt = optim.SGD(model.parameters(), lr=0.05)
    rec = Recorder(model, opt, every=2).attach()
    train(model, opt, rec, x, y, steps=6)
    w = rec.effective_width
    assert set(w) == {"0", "2"}
    assert w["0"]["width"].tolist() == [7, 7, 7] and w["0"]["units"] == 7
    assert w["2"]["width"].tolist() == [1, 1, 1] and w["2"]["step"].tolist() == [1, 3, 5]


def test_records_on_the_device_without_reading_it_back(strict_device, monkeypatch):
    """The recorder adds no host read during training: training with it attached reads
    the device exactly as often as training without it (the loss's own finiteness
    check is the only read)."""
    from tinynet.testing import strict_cupy
    x, y = data(zero_cols=[2])
    reads = []
    real_get = strict_cupy.ndarray.get

    def counted(name, real):
        def wrapper(*args, **kwargs):
            reads.append(name)
            return real(*args, **kwargs)
        return wrapper

    def run(with_recorder):
        model = small().to(strict_device)
        opt = optim.RMSprop(model.parameters(), lr=1e-2)
        rec = Recorder(model, opt, every=2).attach() if with_recorder else None
        reads.clear()
        with monkeypatch.context() as m:
            for name in ("get", "item", "tolist", "__bool__", "__float__", "__int__"):
                m.setattr(strict_cupy.ndarray, name,
                          counted(name, getattr(strict_cupy.ndarray, name)))
            m.setattr(strict_cupy, "asnumpy", lambda a, **kw: (reads.append("asnumpy"),
                                                                real_get(a))[1])
            if rec:
                train(model, opt, rec, x, y, steps=5, device=strict_device)
            else:
                train(model, opt, _NoRecorder(), x, y, steps=5, device=strict_device)
        return rec, list(reads)

    _, baseline = run(False)
    rec, with_rec = run(True)
    assert with_rec == baseline
    assert type(rec.initial["0.weight"]) is strict_cupy.ndarray
    assert type(rec.probes["0"].feature_count) is strict_cupy.ndarray
    assert type(rec.history["0.weight"]["grad_norm"]) is np.ndarray      # read at report time
    assert rec.zero_input_features("0").tolist() == [False, False, True, False, False, False]
    report = tn.diagnose.explain(rec.model, recorder=rec, steps=0)
    assert [f.indices.tolist() for f in report.by_cause("zero_input")] == [[2]]


class _NoRecorder:
    def step(self):
        pass


def test_recording_is_cheap_smoke():
    """Overhead smoke test (the numbers are the benchmark's job): no assertion on time."""
    x, y = data(n=256, d=64, classes=10)
    tn.manual_seed(0)
    times = {}
    for label, rec_kw in (("plain", None), ("every=10", {"every": 10})):
        model = nn.Sequential(nn.Dense(64, 128), nn.ReLU(), nn.Dense(128, 10))
        opt = optim.Adam(model.parameters(), lr=1e-3)
        rec = Recorder(model, opt, **rec_kw).attach() if rec_kw else None
        t = time.perf_counter()
        for s in range(20):
            xb, yb = tn.tensor(x[(s * 32) % 256:][:32]), tn.tensor(y[(s * 32) % 256:][:32])
            loss = F.softmax_cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if rec:
                rec.step()
        times[label] = time.perf_counter() - t
    print(f"20 steps: {times}")
    assert rec.steps == 20


def test_errors():
    model = small()
    with pytest.raises(ValueError, match="every must be a positive integer"):
        Recorder(model, every=0)
    with pytest.raises(TypeError, match="expected a tinynet Module"):
        Recorder(object())
    rec = Recorder(model)
    with pytest.raises(RuntimeError, match="attach"):
        rec.step()
    with pytest.raises(KeyError, match="no parameter named 'x'"):
        rec.attach().changed_mask("x")
    assert "every=10" in repr(rec)


def test_last_change_is_the_last_check_at_which_an_entry_moved():
    """Checks every ``every`` steps compare bit for bit with the previous check; an entry
    that moved and then stopped keeps the step of the last check that saw it move."""
    tn.manual_seed(0)
    model = nn.Dense(2, 2, kernel_init=init.he_normal)
    rec = Recorder(model, every=2, activations=False).attach()
    w = model.weight.data
    moves = {1: [(0, 0)], 2: [(0, 1)], 3: [(0, 0)], 4: [], 5: [], 6: []}
    for s in range(1, 7):
        for i, j in moves[s]:
            w[i, j] += 1.0
        rec.step()
        if s == 5:                      # a read in between checks changes nothing
            assert rec.last_change("weight").tolist() == [[4, 2], [0, 0]]
    assert rec.last_change("weight").tolist() == [[4, 2], [0, 0]]
    assert rec.changed_mask("weight").tolist() == [[True, True], [False, False]]
    rec.finalize()
    assert rec.last_change("weight").tolist() == [[4, 2], [0, 0]]
