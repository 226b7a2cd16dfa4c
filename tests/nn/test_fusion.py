"""Sequential runs Conv2D + ReLU as one op where nothing can observe the
pre-activation.  The fused and unfused paths must give the same bits, and
anything that watches layers (forward hooks: the Recorder, trace_step) must
still see every layer."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.nn.functional as F
from tinynet import nn, optim
from tinynet.nn import containers


def _model():
    tn.manual_seed(3)
    return nn.Sequential(nn.Conv2D(1, 4, 3, padding="same"), nn.ReLU(), nn.MaxPool2D(2),
                         nn.Conv2D(4, 6, 3, padding=1), nn.ReLU(),
                         nn.Conv2D(6, 6, 3, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Dense(6 * 2 * 2, 5))


def _train(fuse, monkeypatch, steps=3):
    monkeypatch.setattr(containers, "FUSE", fuse)
    model = _model()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x = tn.tensor(rng.standard_normal((6, 1, 10, 10)).astype(np.float32))
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(x), rng.integers(0, 5, 6))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {n: (p.numpy(), p.grad.numpy()) for n, p in model.named_parameters()}


def test_fused_and_unfused_paths_give_the_same_bits(monkeypatch):
    fused, unfused = _train(True, monkeypatch), _train(False, monkeypatch)
    assert fused[0] == unfused[0]
    for name, (p, g) in fused[1].items():
        assert p.tobytes() == unfused[1][name][0].tobytes(), name
        assert g.tobytes() == unfused[1][name][1].tobytes(), name


def test_the_fused_path_is_taken_only_without_hooks(monkeypatch):
    monkeypatch.setattr(containers, "FUSE", True)
    model = _model()
    x = tn.tensor(np.random.default_rng(1).standard_normal((2, 1, 10, 10)).astype(np.float32))
    assert type(model(x).creator).__name__ == "Dense"
    first_relu_input = []
    assert model[0](x).creator.fuse_relu is False            # a layer alone never fuses
    out = model[:2](x)
    assert out.creator.fuse_relu is True                     # Conv2D + ReLU: one node
    handle = model[1].register_forward_hook(lambda m, inp, o: first_relu_input.append(inp[0]))
    out_hooked = model[:2](x)
    handle.remove()
    # with a hook the ReLU runs on its own and sees the conv's pre-activation
    assert len(first_relu_input) == 1 and first_relu_input[0].creator.fuse_relu is False
    assert (first_relu_input[0].numpy() < 0).any()
    assert out_hooked.numpy().tobytes() == out.numpy().tobytes()


def test_diagnose_reports_are_the_same_with_fusion_on_and_off(monkeypatch):
    diagnose = pytest.importorskip("tinynet.diagnose")
    reports = []
    for fuse in (True, False):
        monkeypatch.setattr(containers, "FUSE", fuse)
        model = _model()
        with tn.no_grad():
            model[3].weight.data[...] = 0          # a zero kernel: something to find
            model[3].bias.data[...] = 0
        rng = np.random.default_rng(0)
        x = rng.standard_normal((12, 1, 10, 10)).astype(np.float32)
        y = rng.integers(0, 5, 12)
        report = diagnose.explain(model, (x, y), loss_fn=F.softmax_cross_entropy,
                                  optimizer=optim.SGD(model.parameters(), lr=0.1), steps=3)
        reports.append([(f.param, f.cause, f.entries, f.total, f.permanent)
                        for f in report.findings])
    assert reports[0] == reports[1] and reports[0]


def _mlp():
    tn.manual_seed(4)
    return nn.Sequential(nn.Dense(12, 16), nn.ReLU(), nn.Dropout(0.25), nn.Dense(16, 8),
                         nn.ReLU(), nn.Dense(8, 5))


def test_dense_relu_fused_and_unfused_give_the_same_bits(monkeypatch):
    out = []
    for fuse in (True, False):
        monkeypatch.setattr(containers, "FUSE", fuse)
        model = _mlp()
        opt = optim.Adam(model.parameters(), lr=1e-2)
        rng = np.random.default_rng(0)
        tn.manual_seed(7)                           # the same dropout masks
        losses = []
        for _ in range(4):
            x = tn.tensor(rng.standard_normal((9, 12)).astype(np.float32))
            opt.zero_grad()
            loss = F.softmax_cross_entropy(model(x), rng.integers(0, 5, 9))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if fuse:
            assert model(x).creator.fuse_relu is False      # the last Dense has no ReLU
            assert model[:2](x).creator.fuse_relu is True
        out.append((losses, [p.numpy().tobytes() for p in model.parameters()]))
    assert out[0] == out[1]


def _recorded_run(fuse, monkeypatch, steps=8, every=3, mlp=False):
    """Train _model() (or _mlp()) with a Recorder; dead channels / units (a very
    negative bias) and, for the CNN, an input channel that is always 0 give the
    accumulators something to find."""
    from tinynet.diagnose import Recorder
    monkeypatch.setattr(containers, "FUSE", fuse)
    fused_calls = []
    real = containers._run_fused
    monkeypatch.setattr(containers, "_run_fused",
                        lambda *a: fused_calls.append(1) or real(*a))
    model = _mlp() if mlp else _model()
    with tn.no_grad():
        model[3].bias.data[:2] = -50.0         # units / channels 0, 1 of layer 3: never > 0
    opt = optim.SGD(model.parameters(), lr=0.05)
    rec = Recorder(model, opt, every=every).attach()
    rng = np.random.default_rng(0)
    tn.manual_seed(7)
    for _ in range(steps):
        x = rng.standard_normal((9, 12) if mlp else (6, 1, 10, 10)).astype(np.float32)
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(tn.tensor(x)), rng.integers(0, 5, len(x)))
        loss.backward()
        opt.step()
        rec.step()
    rec.finalize()
    probes = {}
    for name, p in rec.probes.items():
        fields = {}
        for key in ("unit_max", "last_open", "last_grad", "last_feature", "feature_count",
                    "grad_count", "grad_zero_samples"):
            v = getattr(p, key)
            fields[key] = None if v is None else np.asarray(v).tobytes()
        fields["counts"] = (p.samples, p.counted_samples, p.grad_seen, len(p.batches))
        probes[name] = fields
    params = {n: p.numpy().tobytes() for n, p in model.named_parameters()}
    return params, probes, len(fused_calls)


@pytest.mark.parametrize("stream", [False, "rows", True],
                         ids=["patch-matrix-kept", "row-route", "streamed"])
def test_a_recorder_watches_the_fused_pair_exactly(monkeypatch, stream):
    """Between its recorded steps the Recorder lets Conv2D + ReLU run fused and takes
    the op's per-channel reports (largest pre-activation, where its gradient was
    nonzero): every accumulator comes out bit for bit as with every layer run alone
    (on every CPU route of the conv: the patch matrix kept, the stride-1 row route, or
    streamed in chunks)."""
    if stream == "rows":
        from tinynet.ops import _conv_rows
        monkeypatch.setattr(_conv_rows, "ROWS_MIN_K", 1)
    elif stream:
        from tinynet.ops import _im2col, conv
        monkeypatch.setattr(conv, "STREAM_MIN_BYTES", 0)
        monkeypatch.setattr(_im2col, "CHUNK_BYTES", 1500)
    fused = _recorded_run(True, monkeypatch)
    unfused = _recorded_run(False, monkeypatch)
    assert fused[2] > 0 and unfused[2] == 0          # the fused path really ran
    assert fused[0] == unfused[0]
    assert fused[1] == unfused[1]
    # the dead channels' largest pre-activation is the real (negative) one
    assert set(fused[1]) >= {"3", "4"}
    unit_max = np.frombuffer(fused[1]["3"]["unit_max"], dtype=np.float32)
    assert (unit_max[:2] < -40).all() and (unit_max[2:] > 0).all()


def test_a_recorder_watches_the_fused_dense_relu_exactly(monkeypatch):
    fused = _recorded_run(True, monkeypatch, mlp=True)
    unfused = _recorded_run(False, monkeypatch, mlp=True)
    assert fused[2] > 0 and unfused[2] == 0
    assert fused[0] == unfused[0]
    assert fused[1] == unfused[1]
    unit_max = np.frombuffer(fused[1]["3"]["unit_max"], dtype=np.float32)
    assert (unit_max[:2] < -40).all() and (unit_max[2:] > 0).all()


def test_recorded_steps_and_plain_hooks_still_see_every_layer(monkeypatch):
    """The fused path is never taken on a recorded step (the statistics need the
    pre-activation) nor while a plain hook function watches either layer."""
    from tinynet.diagnose import Recorder
    monkeypatch.setattr(containers, "FUSE", True)
    fused_calls = []
    real = containers._run_fused
    monkeypatch.setattr(containers, "_run_fused",
                        lambda *a: fused_calls.append(1) or real(*a))
    model = _model()
    x = tn.tensor(np.random.default_rng(1).standard_normal((2, 1, 10, 10)).astype(np.float32))
    rec = Recorder(model, every=1).attach()          # every step recorded
    for _ in range(3):
        model(x).sum().backward()
        rec.step()
    assert fused_calls == []
    rec.detach()
    rec = Recorder(model, every=10).attach()
    model(x).sum().backward()
    rec.step()                                       # the next steps are not recorded
    model(x)
    assert len(fused_calls) == 3                     # all three Conv2D + ReLU pairs
    seen = []
    handle = model[1].register_forward_hook(lambda m, inp, o: seen.append(inp[0]))
    model(x)
    handle.remove()
    assert len(fused_calls) == 5                     # all but the watched pair
    assert seen and seen[0].creator.fuse_relu is False
