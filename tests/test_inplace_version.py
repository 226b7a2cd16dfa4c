"""In-place changes between forward and backward: caught when they would make
a gradient wrong, never raised in normal training.

Each "caught / not caught" case is also run through PyTorch where it is
installed: PyTorch's version counters are the reference for which in-place
changes corrupt a saved tensor.
"""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn, optim
import tinynet.nn.functional as F

INPLACE = "modified by an inplace operation"


def _torch():
    return pytest.importorskip("torch")


# --------------------------------------------------------------------------
# scenarios: (build the graph, change something in place) -> does backward refuse?
# Each returns (loss, change) for tinynet and the same for PyTorch.
# --------------------------------------------------------------------------
def tn_mul_weight(x, w):
    loss = (x * w).sum()
    return loss, lambda: setattr(w, "data", w.data.__iadd__(1.0))   # w.data += 1


def tn_add_weight(x, w):
    loss = (x + w).sum()              # Add keeps only the shapes
    return loss, lambda: setattr(w, "data", w.data.__iadd__(1.0))


def tn_exp_output(x, w):
    y = (x * 1.0).exp()               # Exp keeps its output
    loss = (y * w).sum()
    return loss, lambda: setattr(y, "data", y.data.__imul__(2.0))


def tn_relu_input(x, w):
    h = x * w
    y = h.relu()                      # ReLU keeps a mask, not h
    return y.sum(), lambda: setattr(h, "data", h.data.__iadd__(5.0))


def th_mul_weight(torch, x, w):
    loss = (x * w).sum()
    return loss, lambda: _no_grad(torch, lambda: w.add_(1.0))


def th_add_weight(torch, x, w):
    loss = (x + w).sum()
    return loss, lambda: _no_grad(torch, lambda: w.add_(1.0))


def th_exp_output(torch, x, w):
    y = (x * 1.0).exp()
    loss = (y * w).sum()
    return loss, lambda: _no_grad(torch, lambda: y.mul_(2.0))


def th_relu_input(torch, x, w):
    h = x * w
    y = h.relu()
    return y.sum(), lambda: _no_grad(torch, lambda: h.add_(5.0))


def _no_grad(torch, f):
    with torch.no_grad():
        f()


SCENARIOS = {
    # name: (tinynet builder, torch builder, tinynet refuses?)
    "mul keeps its factors": (tn_mul_weight, th_mul_weight, True),
    "add keeps nothing": (tn_add_weight, th_add_weight, False),
    "exp keeps its output": (tn_exp_output, th_exp_output, True),
    "relu keeps a mask": (tn_relu_input, th_relu_input, False),
}


def _values():
    rng = np.random.default_rng(0)
    return rng.standard_normal(5), rng.standard_normal(5)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_backward_refuses_exactly_when_a_saved_array_changed(name, device):
    build, _, refuses = SCENARIOS[name]
    xv, wv = _values()
    x = tn.tensor(xv, dtype="float64", requires_grad=True, device=device)
    w = tn.tensor(wv, dtype="float64", requires_grad=True, device=device)
    loss, change = build(x, w)
    change()
    if refuses:
        with pytest.raises(RuntimeError, match=INPLACE):
            loss.backward()
    else:
        loss.backward()               # the gradient does not depend on what changed


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_pytorch_agrees_on_which_changes_corrupt_a_gradient(name):
    torch = _torch()
    _, build, refuses = SCENARIOS[name]
    xv, wv = _values()
    x = torch.tensor(xv, requires_grad=True)
    w = torch.tensor(wv, requires_grad=True)
    loss, change = build(torch, x, w)
    change()
    if refuses:
        with pytest.raises(RuntimeError, match=INPLACE):
            loss.backward()
    else:
        loss.backward()


def test_message_names_the_op_the_parameter_and_its_shape():
    layer = nn.Dense(3, 2)
    layer.weight.name = "0.weight"
    x = tn.tensor(np.ones((4, 3), np.float32))
    loss = layer(x).sum()
    layer.weight.data -= 0.1          # what a hand-written SGD step between forward and backward does
    with pytest.raises(RuntimeError) as info:
        loss.backward()
    msg = str(info.value)
    assert INPLACE in msg
    assert "input 1 of Dense" in msg and "parameter '0.weight'" in msg and "(3, 2)" in msg
    assert "version 1" in msg and "version 0" in msg


def test_message_for_a_changed_output_says_output():
    x = tn.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()
    y.data += 1.0
    with pytest.raises(RuntimeError, match=r"its output of Exp, tensor of shape \(2,\)"):
        y.sum().backward()


def test_conv_weight_changed_between_forward_and_backward_is_refused():
    conv = nn.Conv2D(1, 2, 3)
    x = tn.tensor(np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32))
    loss = conv(x).sum()
    conv.weight.data *= 0.5
    with pytest.raises(RuntimeError, match=INPLACE + ".*Conv2D"):
        loss.backward()


def test_an_op_that_kept_a_copy_is_not_disturbed():
    """Conv2D keeps im2col columns (a copy of x), not x: changing x after the
    forward pass cannot change its weight gradient, so backward runs, and gives
    the gradient of the forward that actually happened."""
    rng = np.random.default_rng(2)
    xv = rng.standard_normal((2, 1, 5, 5))
    conv = nn.Conv2D(1, 2, 3).to(dtype="float64")
    x = tn.tensor(xv)
    loss = conv(x).sum()
    x.data *= 3.0                     # in place, after the forward pass
    loss.backward()
    got = conv.weight.grad.numpy()
    conv.weight.grad = None
    conv(tn.tensor(xv)).sum().backward()              # the same forward, x untouched
    np.testing.assert_array_equal(got, conv.weight.grad.numpy())


def test_a_conv_on_the_row_route_keeps_x_itself_and_refuses_a_change_of_it():
    """Stride 1 with a sum C·KW >= ROWS_MIN_K: Conv2D keeps x itself (backward
    builds dW's rows from it), so changing x after the forward pass is refused --
    as PyTorch does for its conv, which also keeps its input."""
    rng = np.random.default_rng(3)
    conv = nn.Conv2D(16, 2, 3, padding=1).to(dtype="float64")
    x = tn.tensor(rng.standard_normal((2, 16, 5, 5)))
    y = conv(x)
    assert y.creator.route == "rows"
    loss = y.sum()
    x.data *= 3.0
    with pytest.raises(RuntimeError, match=INPLACE + ".*Conv2D"):
        loss.backward()
    torch = pytest.importorskip("torch")
    xt = torch.tensor(rng.standard_normal((2, 16, 5, 5)))
    ct = torch.nn.Conv2d(16, 2, 3, padding=1).double()
    lt = ct(xt).sum()
    with torch.no_grad():
        xt.mul_(3.0)
    with pytest.raises(RuntimeError, match="inplace operation"):
        lt.backward()


def test_mark_modified_reports_item_assignment():
    """``t.data[0] = 5`` is invisible to tinynet; mark_modified() makes it visible."""
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    w = tn.tensor([3.0, 4.0], requires_grad=True)
    loss = (x * w).sum()
    w.data[0] = 5.0
    assert w.version == 0             # the documented blind spot
    w.mark_modified()
    assert w.version == 1
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


def test_change_through_a_view_or_a_detached_tensor_is_seen(device):
    for make_alias in (lambda w: w.reshape(2, 2), lambda w: w.detach(), lambda w: w[1:],
                       lambda w: w.T):
        x = tn.tensor(np.arange(4.0), requires_grad=True, device=device)
        w = tn.tensor(np.ones(4), requires_grad=True, device=device)
        loss = (x * w).sum()
        alias = make_alias(w)
        alias.data += 1.0             # the same memory as w
        with pytest.raises(RuntimeError, match=INPLACE):
            loss.backward()


def test_assigning_a_new_array_keeps_the_saved_one_and_the_gradient_right():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    w = tn.tensor([3.0, 4.0], requires_grad=True)
    loss = (x * w).sum()
    w.data = np.array([10.0, 20.0], np.float32)      # rebinding: Mul still holds [3, 4]
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])   # d/dx sum(x*w) at the forward's w
    w.data += 1.0                     # changes only the new array: no graph saved it
    (x * 2.0).sum().backward()


# --------------------------------------------------------------------------
# no false alarms in normal training
# --------------------------------------------------------------------------
@pytest.mark.parametrize("make_opt", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                      lambda p: optim.Adam(p, lr=1e-2)])
def test_normal_training_never_raises(make_opt, device):
    rng = np.random.default_rng(1)
    model = nn.Sequential(nn.Dense(6, 5), nn.ReLU(), nn.Dense(5, 3)).to(device)
    opt = make_opt(model.parameters())
    x = tn.tensor(rng.standard_normal((8, 6)), dtype="float32", device=device)
    y = tn.tensor(rng.integers(0, 3, 8), device=device)
    kept_alive = []
    for step in range(4):
        loss = F.softmax_cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()                                     # in place, after backward
        with tn.no_grad():
            model(x)                                   # evaluation: no graph at all
        kept_alive.append(model(x).sum())              # a graph never backpropagated, kept
        for p in model.parameters():
            p.data *= 1.0                              # hand-written in-place update, after backward
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())


def test_retain_graph_twice_is_fine_and_a_change_between_is_refused():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    w = tn.tensor([3.0, 4.0], requires_grad=True)
    loss = (x * w).sum()
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 8.0])
    w.data -= 1.0
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


def test_optimizer_step_between_forward_and_backward_is_refused():
    w = tn.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    loss = (w * w).sum()              # forward with the current w ...
    opt.step()                        # ... then w changes in place before backward
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


# --------------------------------------------------------------------------
# assigning .data
# --------------------------------------------------------------------------
def test_wrong_shape_names_the_parameter_and_both_shapes():
    layer = nn.Dense(4, 3)
    layer.weight.name = "fc.weight"
    with pytest.raises(ValueError, match=r"parameter 'fc.weight'.*\(3, 4\).*\(4, 3\).*transposed"):
        layer.weight.data = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"^parameter\.data: got an array of shape \(5,\)"):
        nn.Dense(4, 3).bias.data = np.zeros(5, np.float32)
    t = tn.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^tensor\.data: .*\(3,\).*\(2,\)"):
        t.data = np.zeros(3, np.float32)
    assert layer.weight.shape == (4, 3)          # nothing half-changed


def test_wrong_dtype_or_type_is_a_clear_error():
    w = nn.Parameter(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="must be float"):
        w.data = np.zeros(3, np.int64)
    with pytest.raises(TypeError, match="expected a numpy or cupy array, got list"):
        w.data = [1.0, 2.0, 3.0]
    w.data = tn.tensor([1.0, 2.0, 3.0])          # a Tensor gives its array
    w.data = np.zeros(3, np.float64)             # another float dtype is allowed (model.to(dtype))
    assert w.dtype == np.float64


def test_data_may_move_to_another_device(strict_device):
    w = nn.Parameter(np.ones(2, np.float32))
    w.data = tn.tensor([1.0, 2.0], device=strict_device).data
    assert w.device == "cuda"
