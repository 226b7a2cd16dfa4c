"""The PyTorch names (thin aliases over tinynet's own code), checked against PyTorch.

Each test computes the same thing with torch (CPU, skipped without it) or
against tinynet's own function the alias stands for.
"""
import numpy as np
import pytest

import tinynet as tn
import tinynet.nn.functional as F
from tinynet import init, nn, optim

DENSE = (300, 200)                 # tinynet Dense (IN, OUT); torch Linear holds (200, 300)
CONV = (64, 32, 3, 3)              # (O, C, KH, KW) in both


def _torch():
    return pytest.importorskip("torch")


# --------------------------------------------------------------------------
# cross entropy
# --------------------------------------------------------------------------
def test_cross_entropy_is_the_softmax_cross_entropy_op():
    assert F.cross_entropy is F.softmax_cross_entropy


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_and_module_match_torch(reduction, soft):
    torch = _torch()
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 5)) * 3
    if soft:
        y = rng.random((6, 5))
        y /= y.sum(1, keepdims=True)
    else:
        y = rng.integers(0, 5, size=6)
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(y), reduction=reduction)
    ref.backward(torch.ones_like(ref))
    for fn in (lambda a, b: F.cross_entropy(a, b, reduction=reduction),
               nn.CrossEntropyLoss(reduction=reduction)):
        x = tn.tensor(z, requires_grad=True)
        out = fn(x, y)
        out.backward(tn.tensor(np.ones(out.shape)))
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(x.grad.numpy(), zt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_cross_entropy_loss_module_checks_reduction_and_has_no_parameters():
    assert list(nn.CrossEntropyLoss().parameters()) == []
    assert "reduction='sum'" in repr(nn.CrossEntropyLoss("sum"))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss("avg")


def test_no_linear_alias():
    # Dense keeps Keras's (in, out) weight; an nn.Linear with it would surprise torch users
    assert not hasattr(nn, "Linear")


# --------------------------------------------------------------------------
# in-place initializers
# --------------------------------------------------------------------------
def test_fans_of_tinynet_layouts_match_torch_on_the_torch_layout():
    torch = _torch()
    fans = torch.nn.init._calculate_fan_in_and_fan_out
    assert init.compute_fans(DENSE) == fans(torch.empty(DENSE[::-1]))
    assert init.compute_fans(CONV) == fans(torch.empty(CONV))


@pytest.mark.parametrize("shape", [DENSE, CONV])
@pytest.mark.parametrize("name,kwargs", [
    ("kaiming_uniform_", {}), ("kaiming_uniform_", {"a": 0.2, "mode": "fan_out"}),
    ("kaiming_normal_", {}), ("kaiming_normal_", {"nonlinearity": "relu", "mode": "fan_out"}),
    ("xavier_uniform_", {}), ("xavier_normal_", {"gain": 2.0}),
    ("uniform_", {}), ("normal_", {"mean": 1.0, "std": 0.5}),
])
def test_in_place_initializers_match_torch_statistics(shape, name, kwargs):
    torch = _torch()
    torch.manual_seed(0)
    t = torch.empty(shape[::-1] if len(shape) == 2 else shape)
    getattr(torch.nn.init, name)(t, **kwargs)
    ref = t.numpy()
    tn.manual_seed(0)
    w = tn.tensor(np.zeros(shape, np.float32), requires_grad=True)
    assert getattr(init, name)(w, **kwargs) is w
    got = w.numpy()
    assert got.dtype == np.float32
    # same distribution: std, mean and range within sampling error (>= 60,000 draws)
    np.testing.assert_allclose(got.std(), ref.std(), rtol=0.02)
    assert abs(got.mean() - ref.mean()) < 0.02 * ref.std() + 1e-3
    if "uniform" in name:
        np.testing.assert_allclose([got.min(), got.max()], [ref.min(), ref.max()],
                                   rtol=0.01, atol=1e-3 * ref.std())


def test_kaiming_defaults_are_the_he_schemes_draw_for_draw():
    for under, ours in ((init.kaiming_uniform_, init.he_uniform),
                        (init.xavier_uniform_, init.glorot_uniform)):
        for shape in (DENSE, CONV):
            tn.manual_seed(3)
            expected = ours(shape)
            tn.manual_seed(3)
            w = under(tn.tensor(np.zeros(shape, np.float32)))
            np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


def test_in_place_initializers_on_a_layer():
    layer = nn.Dense(784, 10)
    init.zeros_(layer.bias)
    init.constant_(layer.weight, 0.5)
    assert (layer.bias.numpy() == 0).all() and (layer.weight.numpy() == 0.5).all()
    init.ones_(layer.bias)
    assert (layer.bias.numpy() == 1).all()
    # fan_in of the (784, 10) weight is 784: the bound is sqrt(6/784)
    init.kaiming_uniform_(layer.weight)
    assert np.abs(layer.weight.numpy()).max() <= np.sqrt(6 / 784) + 1e-7
    with pytest.raises(TypeError, match="Tensor"):
        init.zeros_(np.zeros(3))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal_(layer.weight, mode="fan_avg")


def test_calculate_gain_matches_torch():
    torch = _torch()
    for args in (("relu",), ("tanh",), ("linear",), ("leaky_relu",), ("leaky_relu", 0.2),
                 ("selu",), ("sigmoid",)):
        assert init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))


# --------------------------------------------------------------------------
# learning-rate schedulers
# --------------------------------------------------------------------------
def _lrs(make_ours, make_torch, epochs=12, lr=0.1):
    """The learning rate at each epoch, tinynet's and torch's, stepping once per epoch."""
    torch = _torch()
    w = nn.Dense(2, 2)
    opt = optim.SGD(w.parameters(), lr=lr)
    sched = make_ours(opt)
    tw = torch.nn.Parameter(torch.zeros(2))
    topt = torch.optim.SGD([tw], lr=lr)
    tsched = make_torch(topt)
    ours, theirs = [], []
    for _ in range(epochs):
        ours.append(opt.lr)
        theirs.append(topt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [opt.lr]
        topt.step()
        sched.step()
        tsched.step()
    return ours, theirs


def warmup(e):
    return min(1.0, (e + 1) / 5)


@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 9], "gamma": 0.1}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("LambdaLR", {"lr_lambda": warmup}),
])
def test_schedulers_match_torch(name, kwargs):
    torch = _torch()
    ours, theirs = _lrs(lambda o: getattr(optim.lr_scheduler, name)(o, **kwargs),
                        lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kwargs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_scheduler_drives_the_update_size():
    """The step really uses the scheduled rate: p moves by lr * grad."""
    p = tn.tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = optim.lr_scheduler.LambdaLR(opt, warmup)
    moved = []
    for _ in range(6):
        before = p.numpy().copy()
        opt.zero_grad()
        (p * 1.0).sum().backward()
        opt.step()
        sched.step()
        moved.append(float(before[0] - p.numpy()[0]))
    np.testing.assert_allclose(moved, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0], rtol=1e-6)


def test_scheduler_import_forms_state_and_errors():
    from tinynet.optim.lr_scheduler import StepLR
    assert StepLR is optim.lr_scheduler.StepLR
    opt = optim.SGD(nn.Dense(2, 2).parameters(), lr=1.0)
    s = StepLR(opt, step_size=2)
    for _ in range(3):
        s.step()
    state = s.state_dict()
    opt2 = optim.SGD(nn.Dense(2, 2).parameters(), lr=5.0)
    s2 = StepLR(opt2, step_size=2)
    s2.load_state_dict(state)
    assert opt2.lr == opt.lr == pytest.approx(0.1)
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(TypeError, match="optimizer"):
        StepLR(object(), step_size=1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.lr_scheduler.LambdaLR(opt, lambda e: -1.0)


# --------------------------------------------------------------------------
# TensorDataset and a DataLoader over any dataset
# --------------------------------------------------------------------------
from tinynet.data import DataLoader, TensorDataset  # noqa: E402


def _xy(n=10):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 4, size=n)


class Squares:
    """A map-style dataset written the PyTorch way: __len__ and __getitem__ only."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.array([i, i * i], dtype=np.float32), i % 3


def _as_lists(batches):
    return [tuple(np.asarray(getattr(t, "numpy", lambda t=t: t)()) for t in b) for b in batches]


@pytest.mark.parametrize("drop_last", [False, True])
def test_tensor_dataset_loader_matches_torch_and_the_array_form(drop_last):
    torch = _torch()
    x, y = _xy()
    ours = list(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=False, drop_last=drop_last))
    arrays = list(DataLoader(x, y, batch_size=4, shuffle=False, drop_last=drop_last))
    theirs = list(torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=4, shuffle=False, drop_last=drop_last))
    assert len(ours) == len(theirs) == len(arrays)
    for (xb, yb), (ax, ay), (tx, ty) in zip(ours, arrays, theirs):
        np.testing.assert_array_equal(xb.numpy(), tx.numpy())
        np.testing.assert_array_equal(yb.numpy(), ty.numpy())
        np.testing.assert_array_equal(xb.numpy(), ax.numpy())
        np.testing.assert_array_equal(yb.numpy(), ay.numpy())


def test_tensor_dataset_items_and_errors():
    x, y = _xy()
    ds = TensorDataset(tn.tensor(x), y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), x[3])
    assert int(yi.numpy()) == y[3]
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(x, y[:5])
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_any_dataset_with_len_and_getitem():
    torch = _torch()
    ds = Squares(7)
    ours = list(DataLoader(ds, 3, shuffle=False))          # torch's positional batch_size
    theirs = list(torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False))
    assert len(ours) == len(theirs) == 3
    for (xb, yb), (tx, ty) in zip(ours, theirs):
        np.testing.assert_array_equal(xb.numpy(), tx.numpy())
        np.testing.assert_array_equal(yb.numpy(), ty.numpy())
    # shuffled: every sample exactly once per epoch, in a new order each epoch
    loader = DataLoader(ds, batch_size=2, seed=0)
    firsts = []
    for _ in range(2):
        seen = np.concatenate([xb.numpy()[:, 0] for xb, _ in loader])
        assert sorted(seen.tolist()) == list(range(7))
        firsts.append(seen.tolist())
    assert firsts[0] != firsts[1]
    # a list of (x, y) pairs is a dataset too
    pairs = [ds[i] for i in range(7)]
    (xb, yb), = list(DataLoader(pairs, batch_size=7, shuffle=False))
    np.testing.assert_array_equal(yb.numpy(), [i % 3 for i in range(7)])


def test_fit_trains_from_a_dataset_loader():
    from tinynet.train import fit
    tn.manual_seed(0)
    x, y = _xy(64)
    model = nn.Sequential(nn.Dense(3, 8), nn.ReLU(), nn.Dense(8, 4))
    h = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2),
            DataLoader(TensorDataset(x, y), batch_size=16, seed=0), epochs=3, progress=False)
    assert h.steps == 12 and h.epoch["loss"][-1] < h.epoch["loss"][0]
