"""trace_step: one step op by op, and where (and why) the gradient becomes exactly zero."""
import json

import numpy as np
import pytest

import tinynet as tn
from tinynet import init, nn
from tinynet.diagnose.trace import FirstZero, Node, Trace, trace_loss, trace_step


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def tiny_mlp(rng, bias=None, dtype="float64"):
    """Dense(4, 3) -> ReLU -> Dense(3, 2) with fixed random weights."""
    b1 = np.zeros(3) if bias is None else np.asarray(bias, float)
    model = nn.Sequential(
        nn.Dense(4, 3, kernel_init=rng.normal(size=(4, 3)), bias_init=b1),
        nn.ReLU(),
        nn.Dense(3, 2, kernel_init=rng.normal(size=(3, 2)), bias_init=rng.normal(size=2)))
    return model.to(dtype=dtype)


def zero_kernel_cnn(device="cpu"):
    """conv -> relu -> conv (zero kernel, zero bias) -> relu -> conv -> flatten -> dense."""
    tn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2D(1, 4, 3, padding="same"), nn.ReLU(),
        nn.Conv2D(4, 4, 3, padding="same", kernel_init=init.zeros, bias_init=init.zeros),
        nn.ReLU(),
        nn.Conv2D(4, 4, 3, padding="same"),
        nn.Flatten(),
        nn.Dense(4 * 6 * 6, 3))
    return model.to(device)


def batch(rng, n=5, shape=(1, 6, 6), classes=3):
    return rng.random((n,) + shape).astype(np.float32), rng.integers(0, classes, n)


def by_hand(model, x, y):
    """The MLP's forward values and gradients in plain numpy (float64)."""
    w1, b1, w2, b2 = (p.numpy() for p in model.parameters())
    z1 = x @ w1 + b1
    h = np.maximum(z1, 0)
    z2 = h @ w2 + b2
    p = np.exp(z2 - z2.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y]).mean()
    dz2 = p.copy()
    dz2[np.arange(n), y] -= 1
    dz2 /= n
    dh = dz2 @ w2.T
    dz1 = dh * (z1 > 0)
    return dict(z1=z1, h=h, z2=z2, loss=loss, dz2=dz2, dh=dh, dz1=dz1,
                dw1=x.T @ dz1, db1=dz1.sum(0), dw2=h.T @ dz2, db2=dz2.sum(0))


def norm(a):
    return float(np.sqrt((np.asarray(a, float) ** 2).sum()))


# --------------------------------------------------------------------------
# the nodes and their numbers
# --------------------------------------------------------------------------
def test_mlp_nodes_in_forward_order(rng):
    model = tiny_mlp(rng)
    x, y = rng.random((6, 4)), rng.integers(0, 2, 6)
    trace = trace_step(model, x, y)
    assert isinstance(trace, Trace) and all(isinstance(n, Node) for n in trace.nodes)
    assert [n.name for n in trace.nodes] == [
        "x", "0.weight", "0.bias", "0:Dense", "1:ReLU", "2.weight", "2.bias", "2:Dense",
        "loss:SoftmaxCrossEntropy"]
    assert [n.kind for n in trace.nodes] == [
        "input", "param", "param", "op", "op", "param", "param", "op", "op"]
    assert [n.index for n in trace.nodes] == list(range(9))
    dense = trace.node("0:Dense")
    assert dense.inputs == [0, 1, 2] and dense.layer == "0" and dense.layer_type == "Dense"
    assert trace.node("1:ReLU").inputs == [3]
    assert trace.node("1:ReLU").derivative.startswith("relu'(z) = 1 where z > 0, else 0")
    assert "xᵀ·g" in dense.derivative and "g·Wᵀ" in dense.derivative


def test_forward_and_gradient_stats_equal_numpy_by_hand(rng):
    model = tiny_mlp(rng, bias=[0.3, -0.2, 0.1])
    x, y = rng.normal(size=(7, 4)), rng.integers(0, 2, 7)
    t = by_hand(model, x, y)
    trace = trace_step(model, x, y)

    assert trace.loss == pytest.approx(t["loss"], rel=1e-12)
    for name, value in (("0:Dense", t["z1"]), ("1:ReLU", t["h"]), ("2:Dense", t["z2"]),
                        ("x", x)):
        n = trace.node(name)
        assert n.shape == value.shape
        assert (n.mean, n.std, n.min, n.max) == pytest.approx(
            (value.mean(), value.std(), value.min(), value.max()), rel=1e-12, abs=1e-15)
        assert n.zero_frac == (value == 0).mean()
    for name, grad in (("2:Dense", t["dz2"]), ("1:ReLU", t["dh"]), ("0:Dense", t["dz1"]),
                       ("0.weight", t["dw1"]), ("0.bias", t["db1"]), ("2.weight", t["dw2"]),
                       ("2.bias", t["db2"])):
        n = trace.node(name)
        assert n.grad_norm == pytest.approx(norm(grad), rel=1e-12), name
        assert n.grad_nonzero == int((grad != 0).sum()), name
        assert n.grad_zero_frac == pytest.approx((grad == 0).mean()), name
        assert n.grad_max == pytest.approx(np.abs(grad).max(), rel=1e-12), name
    assert trace.node("x").grad_norm is None                  # the images need no gradient
    loss = trace.node("loss:SoftmaxCrossEntropy")
    assert loss.value == pytest.approx(t["loss"]) and loss.grad_value == 1.0
    # each backward edge carries what the op sends to that input
    edges = {(trace.nodes[e.src].name, trace.nodes[e.dst].name): e for e in trace.edges}
    assert edges[("2:Dense", "1:ReLU")].grad_norm == pytest.approx(norm(t["dh"]), rel=1e-12)
    assert edges[("1:ReLU", "0:Dense")].grad_norm == pytest.approx(norm(t["dz1"]), rel=1e-12)
    assert edges[("0:Dense", "x")].grad_norm is None
    assert len(trace.edges) == 3 + 1 + 3 + 1


def test_relu_mask_count_in_the_derivative(rng):
    model = tiny_mlp(rng, bias=[0.3, -0.2, 0.1])
    x, y = rng.normal(size=(7, 4)), rng.integers(0, 2, 7)
    on = int((by_hand(model, x, y)["z1"] > 0).sum())
    assert f"mask on for {on} of 21" in trace_step(model, x, y).node("1:ReLU").derivative


def test_trace_changes_neither_values_nor_grads(rng):
    model = tiny_mlp(rng)
    params = dict(model.named_parameters())
    before = {k: p.numpy() for k, p in params.items()}
    sentinel = tn.tensor(np.full((4, 3), 7.0))
    params["0.weight"].grad = sentinel                      # e.g. left over from a backward
    trace_step(model, rng.random((3, 4)), np.array([0, 1, 1]))
    assert params["0.weight"].grad is sentinel
    assert all(params[k].grad is None for k in ("0.bias", "2.weight", "2.bias"))
    for k, p in params.items():
        np.testing.assert_array_equal(p.numpy(), before[k])
    assert all(not m._forward_hooks for m in model.modules())     # hooks removed


def test_parameters_not_connected_to_the_loss(rng):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Dense(4, 2)
            self.unused = nn.Dense(4, 2)

        def forward(self, x):
            return self.used(x)

    trace = trace_step(TwoHeads(), rng.random((3, 4)).astype(np.float32), np.array([0, 1, 0]))
    assert trace.disconnected == ["unused.weight", "unused.bias"]
    assert "Not connected to the loss at all" in str(trace)
    assert [n.name for n in trace.nodes][:4] == ["x", "used.weight", "used.bias", "used:Dense"]


def test_errors_name_the_problem(rng):
    model = tiny_mlp(rng)
    with pytest.raises(ValueError, match="single number"):
        trace_step(model, rng.random((3, 4)), None, loss_fn=lambda out, y: out)
    with pytest.raises(TypeError, match="must be a Tensor"):
        trace_loss(3.0)


# --------------------------------------------------------------------------
# where the gradient becomes exactly zero
# --------------------------------------------------------------------------
def test_zero_kernel_first_zero_is_the_relu_after_it(rng):
    """The zero conv ("2") has zero kernel and bias, so its output z is exactly 0.

    Walking backward from the loss, the gradient passes Dense "6", Flatten and
    conv "4" alive (conv 4's dx = g·Wᵀ with a random W); the ReLU "3" then
    multiplies it by relu'(z) = relu'(0) = 0 everywhere.  That is the first
    factor: the gradient arriving at the zero conv's output is exactly 0.  The
    zero weight itself would have stopped it one op later (dx = g·Wᵀ = 0),
    which the trace reports in ``also``; the root of both is "2.weight".
    """
    model = zero_kernel_cnn()
    x, y = batch(rng)
    trace = trace_step(model, x, y)
    fz = trace.first_zero
    assert isinstance(fz, FirstZero)
    assert trace.nodes[fz.node].name == "2:Conv2D"
    assert (fz.op, fz.layer, fz.cause, fz.factor) == ("ReLU", "3", "dead_unit", "relu'(0) = 0")
    assert trace.nodes[fz.op_node].name == "3:ReLU"
    assert fz.root == "2.weight"
    assert "exactly 0 in all" in fz.detail
    assert any(a.startswith("zero_weights") and "2.weight" in a for a in fz.also)
    assert fz.cut_off == ["0.weight", "0.bias", "2.weight", "2.bias"]
    # the earlier conv gets exactly zero gradient, as does everything after the zero conv
    # that multiplies its (zero) output; only the biases after it learn
    for name in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "6.weight"):
        assert trace.node(name).grad_is_zero, name
    for name in ("4.bias", "6.bias"):
        assert trace.node(name).grad_nonzero == trace.node(name).size, name
    zp = trace.zero_params
    assert zp["4.weight"].reasons == {"zero_input": 144}
    assert zp["6.weight"].reasons == {"zero_input": 144 * 3}
    assert zp["2.weight"].reasons == {"zero_weights": 144}
    assert zp["0.weight"].reasons == {"blocked_downstream": 36}
    assert set(zp) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "6.weight"}
    assert zp["4.weight"].all_zero and zp["4.weight"].mask.all()


def test_zero_kernel_story(rng):
    text = " ".join(str(trace_step(zero_kernel_cnn(), *batch(rng))).split())  # unwrap lines
    assert "local derivative" in text and "gradient arriving" in text
    assert "◀ gradient becomes 0 here" in text
    assert "The gradient became zero at the output of Conv2D in layer '2'" in text
    assert "because relu'(0) = 0" in text
    assert "The root: '2.weight'" in text
    assert "cannot learn: 0.weight, 0.bias, 2.weight, 2.bias" in text
    assert "4.weight (4, 4, 3, 3): 144 of 144 entries exactly 0 (zero_input: 144)" in text


def test_dead_relu_every_unit(rng):
    model = tiny_mlp(rng, bias=[-100.0, -100.0, -100.0])
    trace = trace_step(model, rng.random((5, 4)), rng.integers(0, 2, 5))
    fz = trace.first_zero
    assert trace.nodes[fz.node].name == "0:Dense"
    assert (fz.op, fz.cause, fz.factor, fz.root) == ("ReLU", "dead_unit", "relu'(z) = 0", None)
    assert "negative in all 15 entries (dead units)" in fz.detail
    assert trace.zero_params["0.weight"].reasons == {"dead_unit": 12}
    assert trace.zero_params["0.weight"].dead_units == [0, 1, 2]
    assert trace.zero_params["2.weight"].reasons == {"zero_input": 6}


def test_one_dead_unit_is_a_partial_zero(rng):
    model = tiny_mlp(rng, bias=[0.5, -100.0, 0.5])
    x = rng.random((5, 4)) + 0.1
    trace = trace_step(model, x, rng.integers(0, 2, 5))
    pz = trace.zero_params["0.weight"]
    assert pz.dead_units == [1] and pz.silent_units == [1]
    assert pz.reasons == {"dead_unit": 4}
    np.testing.assert_array_equal(pz.mask, np.arange(3)[None, :].repeat(4, 0) == 1)
    assert trace.zero_params["0.bias"].reasons == {"dead_unit": 1}
    assert trace.zero_params["2.weight"].zero_inputs == [1]     # unit 1's output is 0
    assert trace.first_zero is None or trace.first_zero.factor != "relu'(0) = 0"


def test_zero_input_x(rng):
    """x all zero and a positive bias: activations flow, only dW = xᵀ·g is 0."""
    model = tiny_mlp(rng, bias=[0.5, 0.5, 0.5])
    trace = trace_step(model, np.zeros((5, 4)), rng.integers(0, 2, 5))
    fz = trace.first_zero
    assert trace.nodes[fz.node].name == "0.weight"
    assert (fz.op, fz.layer, fz.cause, fz.factor, fz.root) == ("Dense", "0", "zero_input", "x = 0",
                                                            "input x")
    assert trace.zero_params["0.weight"].reasons == {"zero_input": 12}
    assert trace.zero_params["0.weight"].zero_inputs == [0, 1, 2, 3]
    assert "0.bias" not in trace.zero_params
    assert "because x = 0 (zero_input)" in " ".join(str(trace).split())


def test_zero_input_columns_give_exactly_those_rows(rng):
    model = tiny_mlp(rng, bias=[0.5, 0.5, 0.5])
    w1 = dict(model.named_parameters())["0.weight"]
    w1.data = np.abs(w1.data)                       # positive pre-activations: no dead unit
    x = rng.random((6, 4)) + 0.1
    x[:, [1, 3]] = 0
    trace = trace_step(model, x, rng.integers(0, 2, 6))
    pz = trace.zero_params["0.weight"]
    assert pz.zero_inputs == [1, 3] and pz.reasons == {"zero_input": 6}
    np.testing.assert_array_equal(pz.mask.any(axis=1), [False, True, False, True])
    assert trace.first_zero is None
    assert "rows whose input was 0 on every sample of this batch: 1, 3" in str(trace)


def test_conv_taps_with_zero_input(rng):
    """A conv tap (c, kh, kw) that only ever sees zeros gets exactly zero gradient."""
    tn.manual_seed(1)
    model = nn.Sequential(nn.Conv2D(1, 2, 3), nn.Flatten(), nn.Dense(2 * 4 * 4, 2))
    x = np.zeros((3, 1, 6, 6), np.float32)
    x[:, :, 2:4, 2:4] = rng.random((3, 1, 2, 2)) + 0.1   # valid conv: every tap sees these
    x[:, :, :, 0] = 0
    trace = trace_step(model, x, np.array([0, 1, 0]))
    assert "0.weight" not in trace.zero_params
    x2 = np.zeros((3, 1, 6, 6), np.float32)
    x2[:, :, :, 3:] = 1.0                              # columns 3..5 only: tap kw=0 sees
    trace = trace_step(model, x2, np.array([0, 1, 0]))  # x[..., 0..3]: never zero; fine
    assert "0.weight" not in trace.zero_params
    x3 = np.zeros((3, 1, 6, 6), np.float32)
    x3[:, :, :, :2] = 1.0                              # tap kw=2 sees columns 2..5: zero
    trace = trace_step(model, x3, np.array([0, 1, 0]))
    pz = trace.zero_params["0.weight"]
    assert pz.zero_inputs == [(0, 0, 2), (0, 1, 2), (0, 2, 2)]
    assert pz.reasons == {"zero_input": 6}


def test_to_dict_is_json(rng):
    trace = trace_step(zero_kernel_cnn(), *batch(rng))
    d = json.loads(json.dumps(trace.to_dict()))
    assert d["first_zero"]["factor"] == "relu'(0) = 0"
    assert d["nodes"][0]["name"] == "x" and d["nodes"][0]["shape"] == [5, 1, 6, 6]
    assert d["zero_params"]["4.weight"]["reasons"] == {"zero_input": 144}
    assert any(e["zero"] for e in d["edges"])


def test_scalar_graph(rng):
    a = tn.tensor(2.0, requires_grad=True)
    b = tn.tensor(-3.0, requires_grad=True)
    loss = (a * b + a) ** 2                       # 16; dL/da = 2(ab + a)(b + 1), dL/db = 2(ab + a)a
    trace = trace_loss(loss, names={"a": a, "b": b})
    assert [n.name for n in trace.nodes] == ["a", "b", "Mul", "Add", "2", "Pow"]
    assert trace.node("a").grad_value == 16.0 and trace.node("b").grad_value == -16.0
    assert trace.node("Mul").value == -6.0 and trace.node("Add").value == -4.0
    edges = {(trace.nodes[e.src].name, trace.nodes[e.dst].name): e.grad_value
             for e in trace.edges}
    assert edges[("Mul", "a")] == 24.0 and edges[("Add", "a")] == -8.0   # 24 - 8 = 16
    assert a.grad is None and b.grad is None        # restored
    loss.backward()                                 # the graph is still the user's to use
    assert a.grad.item() == 16.0


def test_strict_device_zero_kernel(strict_device, rng):
    """On the strict CuPy stand-in: no implicit host conversion anywhere in the trace."""
    model = zero_kernel_cnn(strict_device)
    params = dict(model.named_parameters())
    before = {k: p.numpy() for k, p in params.items()}
    x, y = batch(rng)
    trace = trace_step(model, tn.tensor(x, device=strict_device), y)
    assert trace.device == "cuda"
    fz = trace.first_zero
    assert (fz.op, fz.layer, fz.factor, fz.root) == ("ReLU", "3", "relu'(0) = 0", "2.weight")
    assert trace.zero_params["4.weight"].reasons == {"zero_input": 144}
    assert isinstance(trace.zero_params["4.weight"].mask, np.ndarray)
    for k, p in params.items():
        assert p.grad is None and p.device == "cuda"
        np.testing.assert_array_equal(p.numpy(), before[k])
    str(trace)
    trace.to_dot()


def test_strict_device_partial_zeros(strict_device, rng):
    model = tiny_mlp(rng, bias=[0.5, -100.0, 0.5], dtype="float32").to(strict_device)
    x = (rng.random((5, 4)) + 0.1).astype(np.float32)
    x[:, 2] = 0
    trace = trace_step(model, x, rng.integers(0, 2, 5))
    pz = trace.zero_params["0.weight"]
    assert pz.zero_inputs == [2] and pz.dead_units == [1]
    assert pz.reasons == {"zero_input": 3, "dead_unit": 3}
