"""softmax_cross_entropy (and nll_loss): values against numpy and PyTorch, gradients
against central differences, stability, label forms and every error message."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinynet as tn
from tinynet.ops import loss as loss_mod
from tinynet.ops.loss import NonFiniteLossWarning, nll_loss, softmax_cross_entropy
from tinynet.ops.softmax import log_softmax

SETTINGS = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def reference(z, labels, reduction="mean"):
    """numpy cross-entropy; labels are ids (N,) or rows (N, C)."""
    m = z.max(1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(1, keepdims=True))
    rows = np.eye(z.shape[1])[labels] if labels.ndim == 1 else labels
    losses = -(rows * logp).sum(1)
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


def t64(arr, device, requires_grad=True):
    return tn.tensor(arr, requires_grad=requires_grad, dtype=np.float64, device=device)


@SETTINGS
@given(n=st.integers(1, 5), c=st.integers(2, 5), kind=st.sampled_from(["ids", "onehot", "probs"]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 2**16))
def test_values_and_gradcheck(n, c, kind, reduction, seed, device):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(n, c))
    ids = rng.integers(0, c, size=n)
    labels = {"ids": ids, "onehot": np.eye(c)[ids],
              "probs": rng.dirichlet(np.ones(c), size=n)}[kind]
    x = t64(z, device)
    out = softmax_cross_entropy(x, labels, reduction=reduction)
    np.testing.assert_allclose(out.numpy(), reference(z, labels, reduction), rtol=1e-10)
    assert tn.gradcheck(lambda a: softmax_cross_entropy(a, labels, reduction=reduction), [x])


def test_backward_is_softmax_minus_onehot_over_n(device):
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.array([2, 0])
    x = t64(z, device)
    softmax_cross_entropy(x, y).backward()
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(x.grad.numpy(), (p - np.eye(3)[y]) / 2, rtol=1e-12)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    z = rng.normal(scale=4.0, size=(8, 6))
    y = rng.integers(0, 6, size=8)
    x = t64(z, "cpu")
    ours = softmax_cross_entropy(x, y)
    ours.backward()
    zt = torch.tensor(z, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(zt, torch.tensor(y))
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), zt.grad.numpy(), rtol=1e-10, atol=1e-14)
    probs = rng.dirichlet(np.ones(6), size=8)
    assert softmax_cross_entropy(t64(z, "cpu"), probs, reduction="sum").item() == pytest.approx(
        torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(probs),
                                          reduction="sum").item(), rel=1e-12)


def test_stable_for_huge_logits_and_float32(device):
    z = tn.tensor(np.array([[1000.0, 0.0, -1000.0], [-5e4, 5e4, 0.0]], np.float32),
                  requires_grad=True, device=device)
    out = softmax_cross_entropy(z, [0, 2])
    assert out.dtype == np.float32
    assert out.item() == pytest.approx((0.0 + 5e4) / 2, rel=1e-6)
    out.backward()
    assert np.isfinite(z.grad.numpy()).all() and z.grad.dtype == np.float32


@pytest.mark.parametrize("make", [list, np.array, lambda a: np.array(a, np.uint8),
                                  lambda a: tn.tensor(a)])
def test_label_forms(make, device):
    z = np.random.default_rng(1).normal(size=(4, 3))
    y = [0, 2, 1, 2]
    out = softmax_cross_entropy(t64(z, device), make(y))
    assert out.item() == pytest.approx(reference(z, np.array(y)), rel=1e-12)


def test_device_labels_are_range_checked(device):
    if device == "cpu":
        pytest.skip("host labels are checked on the host")
    z = t64(np.zeros((3, 4)), device)
    good = tn.tensor([0, 3, 1], device=device)
    assert softmax_cross_entropy(z, good).item() == pytest.approx(np.log(4))
    with pytest.raises(ValueError, match=r"label 4 is out of range for 4 classes.*0\.\.3"):
        softmax_cross_entropy(z, tn.tensor([0, 4, 1], device=device))
    with pytest.raises(ValueError, match=r"label -1 is out of range"):
        softmax_cross_entropy(z, tn.tensor([0, -1, 1], device=device))


def test_nll_loss_matches_fused(device):
    z = np.random.default_rng(2).normal(size=(5, 4))
    y = np.array([0, 1, 3, 3, 2])
    a, b = t64(z, device), t64(z, device)
    fused = softmax_cross_entropy(a, y)
    split = nll_loss(log_softmax(b), y)
    assert fused.item() == pytest.approx(split.item(), rel=1e-12)
    fused.backward()
    split.backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10)
    rows = np.eye(4)[y]
    assert nll_loss(log_softmax(t64(z, device)), rows).item() == pytest.approx(fused.item())
    assert tn.gradcheck(lambda x: nll_loss(log_softmax(x), y, reduction="sum"), [t64(z, device)])


# ---- errors ------------------------------------------------------------------------
Z = np.zeros((4, 3), np.float32)


@pytest.mark.parametrize("logits,labels,exc,match", [
    (Z, [0, 1, 3, 0], ValueError, r"softmax_cross_entropy: label 3 at position 2 is out of range "
                                  r"for 3 classes; class ids must be in 0\.\.2"),
    (Z, [0, -2, 1, 0], ValueError, r"label -2 at position 1 is out of range for 3 classes"),
    (Z, [0, 1, 2], ValueError, r"got 3 labels for a batch of 4"),
    (Z, np.zeros(4, np.float32), TypeError, r"labels of shape \(4,\) must be integer class ids, "
                                            r"got float32.*astype\('int64'\)"),
    (Z, np.zeros((4, 2)), ValueError, r"expected one-hot or probability rows of shape \(4, 3\), "
                                      r"got \(4, 2\)"),
    (Z, np.zeros((4, 1), np.int64), ValueError, r"reshape\(-1\)"),
    (Z, np.zeros((5, 3)), ValueError, r"got 5 label rows for a batch of 4"),
    (Z, np.zeros((4, 3, 1)), ValueError, r"expected labels of shape \(N,\).*got \(4, 3, 1\)"),
    (np.zeros(3, np.float32), [0], ValueError, r"expected logits of shape \(N, C\), got \(3,\); "
                                               r"for a single sample"),
    (np.zeros((2, 3, 4), np.float32), [0, 1], ValueError, r"got \(2, 3, 4\)"),
    (np.zeros((2, 3), np.int64), [0, 1], TypeError, r"logits must be float"),
    (np.zeros((0, 3), np.float32), [], ValueError, r"the batch is empty"),
])
def test_errors(logits, labels, exc, match):
    with pytest.raises(exc, match=match):
        softmax_cross_entropy(tn.tensor(logits), labels)


def test_bad_reduction_and_mode():
    with pytest.raises(ValueError, match="reduction must be one of"):
        softmax_cross_entropy(tn.tensor(Z), [0, 0, 0, 0], reduction="avg")
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        softmax_cross_entropy(tn.tensor(Z), [0, 0, 0, 0], on_nonfinite="loud")


def test_device_labels_with_cpu_logits(strict_device):
    with pytest.raises(tn.DeviceError, match="labels are on cuda but the logits are on cpu"):
        softmax_cross_entropy(tn.tensor(Z), tn.tensor([0, 0, 0, 0], device=strict_device))


# ---- NaN / Inf -------------------------------------------------------------------------
def test_nan_logits_raise_naming_loss_and_step(device):
    z = np.ones((2, 3), np.float32)
    z[1, 2] = np.nan
    x = tn.tensor(z, requires_grad=True, device=device)
    with pytest.raises(FloatingPointError, match=r"softmax_cross_entropy: the loss is nan at "
                                                 r"step 41.*1 NaN and 0 infinite.*learning rate"):
        softmax_cross_entropy(x, [0, 1], step=41)
    z[1, 2] = np.inf
    with pytest.raises(FloatingPointError, match=r"0 NaN and 1 infinite"):
        softmax_cross_entropy(tn.tensor(z, device=device), [0, 1])
    with pytest.raises(FloatingPointError, match=r"not finite for some samples"):
        softmax_cross_entropy(tn.tensor(z, device=device), [0, 1], reduction="none")


def test_nan_label_rows_are_named(device):
    rows = np.array([[1.0, 0.0, np.nan], [0.0, 1.0, 0.0]])
    with pytest.raises(FloatingPointError, match=r"label rows contain NaN"):
        softmax_cross_entropy(tn.tensor(np.ones((2, 3)), device=device), rows)


def test_warn_and_ignore_modes_and_module_switch(device):
    z = tn.tensor(np.full((2, 3), np.nan, np.float32), device=device)
    with pytest.warns(NonFiniteLossWarning, match=r"the loss is nan at step 3"):
        out = softmax_cross_entropy(z, [0, 1], step=3, on_nonfinite="warn")
    assert np.isnan(out.item())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(softmax_cross_entropy(z, [0, 1], on_nonfinite="ignore").item())
    previous = loss_mod.set_on_nonfinite("warn")
    try:
        assert previous == "raise" and loss_mod.get_on_nonfinite() == "warn"
        with pytest.warns(NonFiniteLossWarning):
            softmax_cross_entropy(z, [0, 1])
    finally:
        loss_mod.set_on_nonfinite(previous)
    with pytest.raises(FloatingPointError):
        softmax_cross_entropy(z, [0, 1])


def test_one_device_read_per_call(strict_device, monkeypatch):
    """The checks cost one device->host copy per call (none when there is nothing to check)."""
    from tinynet import backend
    calls = []
    real = backend.to_numpy
    monkeypatch.setattr(backend, "to_numpy", lambda a: calls.append(1) or real(a))
    z = tn.tensor(np.zeros((4, 3), np.float32), requires_grad=True, device=strict_device)
    softmax_cross_entropy(z, tn.tensor([0, 1, 2, 0], device=strict_device))
    assert len(calls) == 1
    calls.clear()
    softmax_cross_entropy(z, np.array([0, 1, 2, 0]), on_nonfinite="ignore")
    assert calls == []


@pytest.mark.parametrize("rows, bad_row, pattern", [
    ([[1.0, 0.0, 0.0], [0.5, 0.2, 0.2]], 1, r"label row 1 .* sums to 0\.9 and its smallest entry is 0\.2"),
    ([[1.5, -0.5, 0.0], [0.0, 1.0, 0.0]], 0, r"label row 0 .* sums to 1 and its smallest entry is -0\.5"),
    ([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 0, r"label row 0 .* sums to 0 "),
])
def test_soft_label_rows_must_be_probability_rows(rows, bad_row, pattern, device):
    z = tn.tensor(np.zeros((2, 3)), device=device)
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: " + pattern):
        softmax_cross_entropy(z, np.array(rows))


def test_probability_rows_within_float32_rounding_pass(device):
    t = np.random.default_rng(0).random((64, 10)).astype(np.float32)
    t /= t.sum(axis=1, keepdims=True)
    z = tn.tensor(np.zeros((64, 10), np.float32), device=device)
    assert np.isclose(softmax_cross_entropy(z, t).item(), np.log(10), rtol=1e-5)
    assert np.isclose(softmax_cross_entropy(z, np.eye(10, dtype=bool)[np.arange(64) % 10]).item(),
                      np.log(10), rtol=1e-5)
