"""Optimizers: exact updates against hand-written numpy and torch.optim, state, errors, devices."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import backend, optim
from tinynet.tensor import Tensor

GRADS = [np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]]),
         np.array([[-0.3, 0.7, 1.5], [1e-4, -2.0, 0.6]]),
         np.array([[1.1, 0.2, -0.9], [0.05, 0.8, -1.3]])]
P0 = np.array([[1.0, -2.0, 0.5], [0.25, 0.0, -1.5]])


# ---- reference updates, written from the formulas in tinynet/optim.py's docstring ----
def ref_sgd(p, grads, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    p, v, out = p.copy(), None, []
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            v = g.copy() if v is None else momentum * v + g
            d = g + momentum * v if nesterov else v
        else:
            d = g
        p = p - lr * d
        out.append(p)
    return out


def ref_rmsprop(p, grads, lr=1e-3, rho=0.9, eps=1e-7):
    p, s, out = p.copy(), np.zeros_like(p), []
    for g in grads:
        s = rho * s + (1 - rho) * g ** 2
        p = p - lr * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def ref_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    (b1, b2), p = betas, p.copy()
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        out.append(p)
    return out


CASES = [
    ("sgd", lambda ps: optim.SGD(ps, lr=0.1), lambda p, g: ref_sgd(p, g, 0.1)),
    ("sgd_momentum", lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
     lambda p, g: ref_sgd(p, g, 0.1, momentum=0.9)),
    ("sgd_nesterov_wd", lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, weight_decay=0.01,
                                             nesterov=True),
     lambda p, g: ref_sgd(p, g, 0.05, 0.8, 0.01, True)),
    ("rmsprop", lambda ps: optim.RMSprop(ps, lr=0.01), lambda p, g: ref_rmsprop(p, g, lr=0.01)),
    ("rmsprop_keras_defaults", lambda ps: optim.RMSprop(ps), lambda p, g: ref_rmsprop(p, g)),
    ("adam", lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
     lambda p, g: ref_adam(p, g, 0.01, (0.8, 0.99), 1e-6)),
    ("adam_defaults", lambda ps: optim.Adam(ps), lambda p, g: ref_adam(p, g)),
]


def _set_grad(p, g, device="cpu"):
    p.grad = Tensor(backend.to_device(np.asarray(g, dtype=p.dtype), device))


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_first_three_steps_match_hand_computed_float64(name, make, ref):
    p = tn.tensor(P0, requires_grad=True, dtype=np.float64)
    buffer = p.data
    opt = make([p])
    expected = ref(P0, GRADS)
    for g, want in zip(GRADS, expected):
        _set_grad(p, g)
        opt.step()
        np.testing.assert_allclose(p.data, want, rtol=1e-12, atol=1e-12)
    assert p.data is buffer, "the update must be in place"
    assert opt.step_count == 3


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_float32_stays_float32(name, make, ref):
    p = tn.tensor(P0.astype(np.float32), requires_grad=True)
    opt = make([p])
    expected = ref(P0, GRADS)
    for g, want in zip(GRADS, expected):
        _set_grad(p, g)
        opt.step()
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.data, want, rtol=2e-5, atol=2e-6)
    for st in opt.state:
        for key, value in st.items():
            if key != "step":
                assert value.dtype == np.float32, key


def test_numpy_float64_hyperparameters_do_not_promote():
    p = tn.tensor(P0.astype(np.float32), requires_grad=True)
    opt = optim.Adam([p], lr=np.float64(1e-2), betas=(np.float64(0.9), np.float64(0.999)))
    _set_grad(p, GRADS[0])
    opt.step()
    assert p.dtype == np.float32 and type(opt.lr) is float


def test_grad_is_not_modified_by_weight_decay_or_momentum():
    p = tn.tensor(P0, requires_grad=True, dtype=np.float64)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    for g in GRADS:
        _set_grad(p, g)
        opt.step()
        np.testing.assert_array_equal(p.grad.data, g)


# ---- torch.optim as the reference ------------------------------------------
def _torch_pairs():
    return [
        (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
         lambda torch, ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
        (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
         lambda torch, ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01,
                                           nesterov=True)),
        # Keras-2 RMSprop == torch RMSprop(alpha=rho): s starts at 0, eps outside the sqrt.
        (lambda ps: optim.RMSprop(ps, lr=0.01, rho=0.9, eps=1e-7),
         lambda torch, ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-7)),
        (lambda ps: optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8),
         lambda torch, ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    ]


@pytest.mark.parametrize("pair", range(4), ids=["sgd_momentum", "sgd_nesterov_wd",
                                                "rmsprop", "adam"])
def test_matches_torch_on_a_quadratic(pair):
    torch = pytest.importorskip("torch")
    make_tn, make_torch = _torch_pairs()[pair]
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 4))
    b = rng.normal(size=(5,))
    w0 = rng.normal(size=(4,))
    bias0 = np.array([0.3])

    w, bias = (tn.tensor(v, requires_grad=True, dtype=np.float64) for v in (w0, bias0))
    opt = make_tn([("w", w), ("bias", bias)])
    tw, tb = (torch.tensor(v, requires_grad=True, dtype=torch.float64) for v in (w0, bias0))
    topt = make_torch(torch, [tw, tb])
    ta, tbv = torch.tensor(a), torch.tensor(b)
    at, bt = tn.tensor(a, dtype=np.float64), tn.tensor(b, dtype=np.float64)
    for _ in range(5):
        r = at @ w + bias - bt
        loss = (r * r).sum() * 0.5
        opt.zero_grad()
        loss.backward()
        opt.step()
        tr = ta @ tw + tb - tbv
        tloss = 0.5 * (tr * tr).sum()
        topt.zero_grad()
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(bias.data, tb.detach().numpy(), rtol=1e-12, atol=1e-13)


# ---- skipped parameters ------------------------------------------------------
def test_parameters_without_gradient_are_skipped_and_counted():
    a = tn.tensor(np.ones(3), requires_grad=True, dtype=np.float64)
    b = tn.tensor(np.ones(2), requires_grad=True, dtype=np.float64)
    opt = optim.Adam([("layer.a", a), ("layer.b", b)], lr=0.1)
    assert opt.skipped == {"layer.a": 0, "layer.b": 0}
    for _ in range(3):
        opt.zero_grad()
        (a * a).sum().backward()       # b takes no part: its grad stays None
        opt.step()
    assert opt.skipped == {"layer.a": 0, "layer.b": 3}
    assert opt.last_skipped == ["layer.b"]
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert "exp_avg" not in opt.state[1], "a skipped parameter's state does not advance"
    opt.zero_grad()
    ((a * a).sum() + b.sum()).backward()
    opt.step()
    assert opt.last_skipped == [] and opt.skipped["layer.b"] == 3
    assert opt.state[0]["step"] == 4 and opt.state[1]["step"] == 1


def test_unnamed_parameters_get_positional_names_and_zero_grad_sets_none():
    a = tn.tensor(np.ones(3), requires_grad=True)
    b = tn.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD(iter([a, b]), lr=0.1)
    assert opt.names == ["param0", "param1"]
    assert dict(opt.named_parameters())["param1"] is b
    (a.sum() + b.sum()).backward()
    assert a.grad is not None
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_named_parameters_from_a_module():
    nn = pytest.importorskip("tinynet.nn")
    model = nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.names == [n for n, _ in model.named_parameters()]
    assert all(isinstance(p, nn.Parameter) for p in opt.params)


# ---- state_dict --------------------------------------------------------------
def _run(opt, params, grads):
    for g in grads:
        for p, gi in zip(params, g):
            _set_grad(p, gi)
        opt.step()


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.RMSprop(ps, lr=0.01),
    lambda ps: optim.Adam(ps, lr=0.01),
], ids=["sgd", "rmsprop", "adam"])
def test_state_dict_round_trip_resumes_identically(make):
    rng = np.random.default_rng(3)
    grads = [[rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]
             for _ in range(6)]
    init = [rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]

    ps = [tn.tensor(v, requires_grad=True) for v in init]
    opt = make(list(zip(["w", "b"], ps)))
    _run(opt, ps, grads)                       # 6 uninterrupted steps

    qs = [tn.tensor(v, requires_grad=True) for v in init]
    first = make(list(zip(["w", "b"], qs)))
    _run(first, qs, grads[:3])
    saved = first.state_dict()
    for entry in saved["state"].values():
        for key, value in entry.items():
            assert key == "step" or type(value) is np.ndarray
    _run(first, qs, grads[3:4])                # mutating the optimizer must not touch `saved`
    resumed_params = [tn.tensor(q.numpy(), requires_grad=True) for q in qs]
    # rebuild from scratch at the step-3 point
    qs = [tn.tensor(v, requires_grad=True) for v in init]
    _run(make(list(zip(["w", "b"], qs))), qs, grads[:3])
    second = make(list(zip(["w", "b"], qs)))
    second.load_state_dict(saved)
    assert second.step_count == 3
    _run(second, qs, grads[3:])
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(p.data, q.data)
    assert resumed_params[0].shape == (2, 3)


def test_load_state_dict_names_the_mismatch():
    w = tn.tensor(np.ones((2, 3)), requires_grad=True)
    b = tn.tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([("w", w), ("b", b)])
    (w.sum() + b.sum()).backward()
    opt.step()
    sd = opt.state_dict()

    with pytest.raises(ValueError, match="saved from Adam.*SGD"):
        optim.SGD([("w", w), ("b", b)], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="'bias' is missing"):
        optim.Adam([("w", w), ("bias", b)]).load_state_dict(sd)
    with pytest.raises(ValueError, match="unexpected parameter 'b'"):
        optim.Adam([("w", w)]).load_state_dict(sd)
    w2 = tn.tensor(np.ones((3, 3)), requires_grad=True)
    other = optim.Adam([("w", w2), ("b", b)])
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 'w' has shape \(2, 3\), "
                                         r"expected \(3, 3\)"):
        other.load_state_dict(sd)
    assert other.state[0] == {} and other.step_count == 0, "a failed load changes nothing"


# ---- errors --------------------------------------------------------------------
def test_constructor_errors_are_clear():
    p = tn.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=0)
    with pytest.raises(ValueError, match="lr"):
        optim.Adam([p], lr=-1e-3)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="pair"):
        optim.Adam([p], betas=0.9)
    with pytest.raises(ValueError, match="rho"):
        optim.RMSprop([p], rho=1.5)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError, match="ndarray.*Parameter or Tensor"):
        optim.SGD([np.ones(3)], lr=0.1)
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([("frozen", tn.tensor(np.ones(3)))], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)

    class FakeModel:
        def parameters(self):
            return [p]
    with pytest.raises(TypeError, match=r"model.parameters\(\)"):
        optim.SGD(FakeModel(), lr=0.1)


def test_wrong_gradient_shape_is_named():
    p = tn.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([("fc.bias", p)], lr=0.1)
    p.grad = tn.tensor(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="'fc.bias'.*\\(4,\\).*\\(3,\\)"):
        opt.step()


# ---- devices ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sgd", "rmsprop", "adam"])
def test_step_on_device_stays_on_device(device, kind, monkeypatch):
    make = {"sgd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01,
                                        nesterov=True),
            "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01),
            "adam": lambda ps: optim.Adam(ps, lr=0.01)}[kind]
    w = tn.tensor(P0.astype(np.float32), device=device, requires_grad=True)
    b = tn.tensor(np.zeros(3, np.float32), device=device, requires_grad=True)
    opt = make([("w", w), ("b", b)])
    xp = backend.xp_for(device)
    buffer = w.data

    def no_host(*args, **kwargs):
        raise AssertionError("optimizer step made a device-to-host copy")

    for _ in range(3):
        opt.zero_grad()
        ((w * w).sum() + b.sum()).backward()
        with monkeypatch.context() as m:
            if device != "cpu":
                m.setattr(backend, "to_numpy", no_host)
                m.setattr(xp, "asnumpy", no_host, raising=False)
            opt.step()
    assert w.data is buffer and w.device == device and w.dtype == np.float32
    for st in opt.state:
        for key, value in st.items():
            if key != "step":
                assert backend.device_of(value) == device and value.dtype == np.float32
    # the same three steps on numpy give the same numbers
    wc = tn.tensor(P0.astype(np.float32), requires_grad=True)
    bc = tn.tensor(np.zeros(3, np.float32), requires_grad=True)
    cpu_opt = make([("w", wc), ("b", bc)])
    for _ in range(3):
        cpu_opt.zero_grad()
        ((wc * wc).sum() + bc.sum()).backward()
        cpu_opt.step()
    np.testing.assert_allclose(w.numpy(), wc.data, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.numpy(), bc.data, rtol=1e-6, atol=1e-7)


def test_state_dict_from_device_is_host_numpy(strict_device):
    w = tn.tensor(P0.astype(np.float32), device=strict_device, requires_grad=True)
    opt = optim.Adam([("w", w)], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert type(sd["state"]["w"]["exp_avg"]) is np.ndarray
    fresh = optim.Adam([("w", w)], lr=0.1)
    fresh.load_state_dict(sd)
    assert backend.device_of(fresh.state[0]["exp_avg"]) == "cuda"


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
    lambda ps: optim.RMSprop(ps, lr=1e-2),
    lambda ps: optim.Adam(ps, lr=1e-2)])
def test_blocked_updates_give_the_bits_of_one_piece_for_any_thread_count(make, monkeypatch):
    """step() updates a large parameter in fixed blocks on the pool (small ones whole).
    The parameters after a few steps are the bits of updating each parameter in one
    piece, one after another, for 1, 2 or 4 threads."""
    rng = np.random.default_rng(5)
    shapes = [(300, 301), (7,), (257, 256), (3, 5, 2), (1,)]      # two above _BLOCK_ELEMENTS
    p0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def train(threads, one_piece):
        before = tn.get_num_threads()
        tn.set_num_threads(threads)
        try:
            with pytest.MonkeyPatch.context() as mp:
                if one_piece:
                    mp.setattr(optim.Optimizer, "_BLOCK_ELEMENTS", 1 << 40)
                ps = [Tensor(a.copy(), requires_grad=True) for a in p0]
                opt = make(ps)
                for gs in grads:
                    for p, g in zip(ps, gs):
                        p.grad = Tensor(g)
                    opt.step()
                return [p.numpy().tobytes() for p in ps]
        finally:
            tn.set_num_threads(before)
    reference = train(1, one_piece=True)
    for threads in (1, 2, 4):
        assert train(threads, one_piece=False) == reference


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.RMSprop(ps, lr=1e-2),
    lambda ps: optim.Adam(ps, lr=1e-2)])
def test_a_gradient_of_the_wrong_shape_stops_the_step_before_any_parameter_changes(make):
    """step() checks every gradient before it updates anything: the error names the
    parameter, and the parameters (also those before it) and their states are
    exactly as they were -- a fixed gradient and a second step() continue cleanly."""
    rng = np.random.default_rng(3)
    a = Tensor(rng.standard_normal((300, 300)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal((4,)).astype(np.float32), requires_grad=True)
    opt = make([("a", a), ("b", b)])
    a.grad = Tensor(rng.standard_normal((300, 300)).astype(np.float32))
    b.grad = Tensor(np.ones(4, np.float32))
    opt.step()                                       # states exist from here on
    before = [a.numpy().copy(), b.numpy().copy()]
    states = [{k: (v.copy() if hasattr(v, "copy") else v) for k, v in s.items()}
              for s in opt.state]
    b.grad = Tensor(np.ones(5, np.float32))
    with pytest.raises(ValueError, match=r"gradient of 'b' has shape \(5,\), the parameter "
                                         r"has shape \(4,\)"):
        opt.step()
    assert a.numpy().tobytes() == before[0].tobytes()
    assert b.numpy().tobytes() == before[1].tobytes()
    for s, s0 in zip(opt.state, states):
        assert s.keys() == s0.keys()
        for k in s:
            assert np.array_equal(s[k], s0[k])
    assert opt.step_count == 1
    b.grad = Tensor(np.ones(4, np.float32))
    opt.step()
    assert opt.state[0]["step"] == opt.state[1]["step"] == 2
