"""Module mechanics: registration and names, modes, devices and dtypes, gradients,
state_dict / load_state_dict (with their errors), printing, hooks; Parameter."""
from collections import OrderedDict

import numpy as np
import pytest

import tinynet as tn
from tinynet import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2D(1, 2, 3), nn.ReLU())
        self.flatten = nn.Flatten()
        self.layer1 = nn.Dense(2 * 3 * 3, 4)
        self.drop = nn.Dropout(0.5)
        self.scale = nn.Parameter(np.ones(1, np.float32))

    def forward(self, x):
        return self.drop(self.layer1(self.flatten(self.features(x)))) * self.scale


def mlp(seed=0):
    tn.manual_seed(seed)
    return nn.Sequential(nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))


def test_named_parameters_are_dotted_and_in_order():
    assert [n for n, _ in mlp().named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    # a module's own parameters first, then its children's in registration order
    assert [n for n, _ in Net().named_parameters()] == [
        "scale", "features.0.weight", "features.0.bias", "layer1.weight", "layer1.bias"]
    assert [p.shape for p in mlp().parameters()] == [(4, 3), (3,), (3, 2), (2,)]
    assert [n for n, _ in Net().named_parameters(recurse=False)] == ["scale"]


def test_children_and_modules():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["features", "flatten", "layer1", "drop"]
    assert list(net.children())[0] is net.features
    names = [n for n, _ in net.named_modules()]
    assert names == ["", "features", "features.0", "features.1", "flatten", "layer1", "drop"]
    assert sum(1 for _ in net.modules()) == 7


def test_reassigning_and_deleting_update_the_registry():
    m = mlp()
    d = nn.Dense(4, 4)
    m.extra = d
    assert "extra.weight" in dict(m.named_parameters())
    m.extra = None
    assert "extra.weight" not in dict(m.named_parameters())
    layer = nn.Dense(2, 2)
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match=r"Dense: cannot assign a Tensor to the parameter "
                                        r"'weight'.*nn\.Parameter\(\.\.\.\).*data\[\.\.\.\]"):
        layer.weight = tn.tensor(np.zeros((2, 2), np.float32))
    del layer.weight
    assert list(layer.named_parameters()) == []


def test_shared_parameters_appear_once():
    m = mlp()
    m[2].weight = nn.Parameter(np.ones((3, 2), np.float32))
    m.tied = m[2].weight
    assert sum(1 for _ in m.parameters()) == 4
    assert m.num_parameters() == 4 * 3 + 3 + 3 * 2 + 2


def test_forgetting_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Dense(2, 2)
    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) at the start of Bad"):
        Bad()


def test_num_parameters_trainable_only():
    m = mlp()
    assert m.num_parameters() == 4 * 3 + 3 + 3 * 2 + 2
    m[0].weight.requires_grad = False
    assert m.num_parameters(trainable_only=True) == 3 + 3 * 2 + 2


def test_train_eval_propagate_and_return_self():
    net = Net()
    assert net.training and net.drop.training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net and all(m.training for m in net.modules())
    x = tn.tensor(np.ones((2, 1, 5, 5), np.float32))
    net.eval()
    assert np.array_equal(net(x).numpy(), net(x).numpy())     # dropout off


def test_to_device_keeps_parameter_identity(device):
    m = mlp()
    before = list(m.parameters())
    values = [p.numpy() for p in before]
    x = tn.tensor(np.ones((2, 4), np.float32))
    m(x).sum().backward()
    assert m.to(device) is m
    after = list(m.parameters())
    assert all(a is b for a, b in zip(before, after))
    assert all(p.device == device and p.grad.device == device for p in after)
    assert all(np.array_equal(p.numpy(), v) for p, v in zip(after, values))
    # an "optimizer" holding the old references still updates the model
    for p in before:
        p.data -= 0.1 * p.grad.data
    assert not np.array_equal(m[0].weight.numpy(), values[0])
    out = m(x.to(device))
    assert out.device == device
    assert m.to("cpu") is m and m[0].weight.device == "cpu"


def test_to_dtype_for_gradchecking():
    m = mlp()
    w = m[0].weight
    m.to(dtype="float64")
    assert m[0].weight is w and all(p.dtype == np.float64 for p in m.parameters())
    m.to("float32")
    assert all(p.dtype == np.float32 for p in m.parameters())
    m.to(np.float64)
    assert m[2].bias.dtype == np.float64
    with pytest.raises(TypeError, match="parameters must stay float"):
        m.to(dtype="int32")
    with pytest.raises(tn.DeviceError, match="unknown device 'tpu'"):
        m.to("tpu")


def test_zero_grad():
    m = mlp()
    m(tn.tensor(np.ones((2, 4), np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_state_dict_is_host_copies(device):
    m = mlp().to(device)
    sd = m.state_dict()
    assert isinstance(sd, OrderedDict) and list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(type(v) is np.ndarray and v.dtype == np.float32 for v in sd.values())
    sd["0.weight"][...] = 7
    assert not np.any(m[0].weight.numpy() == 7)


def test_load_state_dict_round_trip(device):
    a, b = mlp(seed=1), mlp(seed=2).to(device)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    w = b[0].weight
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b[0].weight is w and w.device == device
    np.testing.assert_array_equal(b(tn.tensor(x, device=device)).numpy(), a(tn.tensor(x)).numpy())
    # Tensors and float64 arrays are accepted (converted to the parameter's dtype)
    sd = {k: tn.tensor(v.astype(np.float64)) for k, v in a.state_dict().items()}
    b.load_state_dict(sd)
    assert b[0].weight.dtype == np.float32


def test_load_state_dict_key_errors():
    m = mlp()
    sd = m.state_dict()
    del sd["2.bias"]
    sd["3.weight"] = np.zeros(2)
    with pytest.raises(KeyError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    assert "Sequential.load_state_dict" in msg
    assert "missing keys (in the model, not in the state dict): '2.bias'" in msg
    assert "unexpected keys (in the state dict, not in the model): '3.weight'" in msg
    assert "strict=False" in msg
    before = m[0].weight.numpy()
    sd["0.weight"] = np.full((4, 3), 3.0)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["2.bias"] and unexpected == ["3.weight"]
    assert np.all(m[0].weight.numpy() == 3.0) and not np.all(before == 3.0)


def test_load_state_dict_shape_errors_leave_the_model_unchanged():
    m = mlp()
    before = m.state_dict()
    sd = m.state_dict()
    sd["0.bias"] = np.zeros(3)
    sd["2.weight"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r"parameter '2\.weight' has shape \(3, 2\) in the model "
                                         r"but \(3, 5\) in the state dict"):
        m.load_state_dict(sd)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())
    sd["2.weight"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"looks transposed.*\(in, out\)"):
        m.load_state_dict(sd)
    sd["2.weight"] = "weights"
    with pytest.raises(TypeError, match=r"'2\.weight' is not a numeric array"):
        m.load_state_dict(sd)


def test_repr_is_indented_like_pytorch():
    assert repr(Net()) == (
        "Net(\n"
        "  (features): Sequential(\n"
        "    (0): Conv2D(1 -> 2, kernel_size=3)\n"
        "    (1): ReLU()\n"
        "  )\n"
        "  (flatten): Flatten()\n"
        "  (layer1): Dense(18 -> 4)\n"
        "  (drop): Dropout(p=0.5)\n"
        ")")


def test_call_runs_forward_and_hooks():
    m = mlp()
    seen = []
    handle = m[0].register_forward_hook(lambda mod, inputs, out: seen.append((mod, out.shape)))
    m(tn.tensor(np.ones((2, 4), np.float32)))
    assert seen == [(m[0], (2, 3))]
    handle.remove()
    m(tn.tensor(np.ones((2, 4), np.float32)))
    assert len(seen) == 1
    m[2].register_forward_hook(lambda mod, inputs, out: out * 0)
    assert np.all(m(tn.tensor(np.ones((1, 4), np.float32))).numpy() == 0)
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(1)


def test_parameter():
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    assert p.requires_grad and p.is_leaf and isinstance(p, tn.Tensor)
    assert nn.Parameter([1, 2]).dtype == np.float32
    assert nn.Parameter(tn.tensor(np.ones(2))).dtype == np.float64
    assert repr(nn.Parameter([1.5])) == "Parameter containing:\ntensor([1.5], requires_grad=True)"
    assert not nn.Parameter([1.0], requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="Parameter: parameters must be float.*int64"):
        nn.Parameter(np.arange(3))
    with pytest.raises(TypeError, match="Parameter: expected an array"):
        nn.Parameter("abc")


def test_add_module_and_register_parameter_checks():
    m = nn.Module()
    with pytest.raises(ValueError, match="without dots"):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(TypeError, match="must be a Module"):
        m.add_module("a", 3)
    with pytest.raises(TypeError, match="must be a Parameter"):
        m.register_parameter("w", tn.tensor([1.0]))
    m.register_parameter("w", nn.Parameter([1.0]))
    assert [n for n, _ in m.named_parameters()] == ["w"]
