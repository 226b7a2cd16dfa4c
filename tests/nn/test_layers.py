"""Every layer (and a small Sequential) against central differences, in float64,
on every device; the layers agree with their function forms in nn.functional."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinynet as tn
import tinynet.nn.functional as F
from tinynet import init, nn

SETTINGS = settings(max_examples=8, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def gradcheck_module(module, x, **forward_kwargs):
    """Gradcheck ``module(x)`` with respect to x and every parameter.

    The module is converted to float64; gradcheck hands ``fn`` float64 copies of
    the inputs, which are swapped in for the parameters while ``fn`` runs.
    """
    module.to(dtype="float64")
    names, params = zip(*module.named_parameters()) if module.num_parameters() else ((), ())
    owners = []
    for name in names:
        *path, attr = name.split(".")
        owner = module
        for part in path:
            owner = getattr(owner, part)
        owners.append((owner, attr))

    def fn(x_, *ps):
        for (owner, attr), p in zip(owners, ps):
            object.__setattr__(owner, attr, p)
        try:
            return module(x_, **forward_kwargs)
        finally:
            for (owner, attr), p in zip(owners, params):
                object.__setattr__(owner, attr, p)
    return tn.gradcheck(fn, [x, *params])


def x64(arr, device):
    return tn.tensor(arr, requires_grad=True, dtype=np.float64, device=device)


def distinct(shape, seed):
    """Values at least 0.1 apart and away from 0 (no ReLU kinks, no max-pool ties)."""
    n = int(np.prod(shape))
    v = (np.random.default_rng(seed).permutation(n) - n / 2 + 0.5) * 0.1
    return v.reshape(shape)


@SETTINGS
@given(n=st.integers(1, 3), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_dense(n, n_in, n_out, bias, seed, device):
    tn.manual_seed(seed)
    layer = nn.Dense(n_in, n_out, bias_init=init.normal(0.0, 0.5), bias=bias).to(device)
    x = np.random.default_rng(seed).normal(size=(n, n_in))
    out = layer(tn.tensor(x, device=device).astype(np.float32))
    assert out.shape == (n, n_out) and out.dtype == np.float32
    expected = x @ layer.weight.numpy() + (layer.bias.numpy() if bias else 0)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert gradcheck_module(layer, x64(x, device))


def test_dense_first_layer_input_without_grad(device):
    layer = nn.Dense(3, 2).to(device).to(dtype="float64")
    x = tn.tensor(np.ones((2, 3)), device=device)
    layer(x).sum().backward()
    assert x.grad is None and layer.weight.grad.shape == (3, 2)
    np.testing.assert_allclose(layer.weight.grad.numpy(), np.full((3, 2), 2.0))


@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 2), o=st.integers(1, 2), h=st.integers(3, 5),
       w=st.integers(3, 5), k=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.sampled_from([0, 1, "same", "valid"]), seed=st.integers(0, 2**16))
def test_conv2d(n, c, o, h, w, k, stride, padding, seed, device):
    tn.manual_seed(seed)
    layer = nn.Conv2D(c, o, k, stride=stride, padding=padding,
                      bias_init=init.normal(0.0, 0.5)).to(device)
    x = np.random.default_rng(seed).normal(size=(n, c, h, w))
    out = layer(tn.tensor(x, dtype=np.float32, device=device))
    ref = F.conv2d(tn.tensor(x, dtype=np.float32), tn.tensor(layer.weight.numpy()),
                   tn.tensor(layer.bias.numpy()), stride=stride, padding=padding)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)
    if padding == "same":
        assert out.shape[2:] == (-(-h // stride), -(-w // stride))
    assert gradcheck_module(layer, x64(x, device))


def test_conv2d_rectangular_kernel_and_stride(device):
    layer = nn.Conv2D(2, 3, (2, 3), stride=(2, 1), padding=(1, 0)).to(device)
    assert layer.kernel_size == (2, 3) and layer.stride == (2, 1) and layer.padding == (1, 0)
    assert layer.weight.shape == (3, 2, 2, 3)
    assert gradcheck_module(layer, x64(np.random.default_rng(0).normal(size=(1, 2, 4, 5)), device))


def test_relu(device):
    x = x64(distinct((2, 3, 4), 0), device)
    out = nn.ReLU()(x)
    np.testing.assert_array_equal(out.numpy(), np.maximum(x.numpy(), 0))
    assert gradcheck_module(nn.ReLU(), x)


@SETTINGS
@given(n=st.integers(1, 2), c=st.integers(1, 2), h=st.integers(2, 5), w=st.integers(2, 5),
       k=st.integers(1, 2), stride=st.sampled_from([None, 1, 2]), seed=st.integers(0, 2**16))
def test_max_pool2d(n, c, h, w, k, stride, seed, device):
    layer = nn.MaxPool2D(k, stride=stride)
    x = x64(distinct((n, c, h, w), seed), device)
    s = k if stride is None else stride
    out = layer(x)
    assert out.shape == (n, c, (h - k) // s + 1, (w - k) // s + 1)
    np.testing.assert_array_equal(out.numpy(), F.max_pool2d(x, k, stride).numpy())
    assert gradcheck_module(layer, x)


def test_max_pool2d_values_and_padding(device):
    x = tn.tensor(np.arange(16.0).reshape(1, 1, 4, 4), device=device)
    np.testing.assert_array_equal(nn.MaxPool2D(2)(x).numpy(), [[[[5, 7], [13, 15]]]])
    layer = nn.MaxPool2D(3, stride=2, padding=1)
    assert layer(x).shape == (1, 1, 2, 2)
    assert gradcheck_module(layer, x64(distinct((1, 2, 4, 4), 3), device))


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (1, 2, 3, 4)])
def test_flatten(shape, device):
    x = x64(np.random.default_rng(0).normal(size=shape), device)
    out = nn.Flatten()(x)
    assert out.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(out.numpy(), F.flatten(x).numpy())
    assert gradcheck_module(nn.Flatten(), x)


def test_dropout_fixed_mask_and_eval(device):
    rng = np.random.default_rng(0)
    x = x64(rng.normal(size=(3, 4)), device)
    mask = rng.random((3, 4)) > 0.5
    layer = nn.Dropout(0.25)
    np.testing.assert_allclose(layer(x, mask=mask).numpy(), x.numpy() * mask / 0.75)
    assert gradcheck_module(layer, x, mask=mask)
    layer.eval()
    assert layer(x) is x
    assert gradcheck_module(layer, x)
    layer.train()
    tn.manual_seed(0)
    a = layer(x).numpy()
    tn.manual_seed(0)
    assert np.array_equal(a, layer(x).numpy())


def test_small_sequential(device):
    tn.manual_seed(0)
    model = nn.Sequential(nn.Conv2D(1, 2, 3, padding=1, bias_init=init.normal(0.0, 0.5)), nn.ReLU(),
                          nn.MaxPool2D(2), nn.Flatten(), nn.Dense(2 * 2 * 2, 3),
                          nn.Dropout(0.5)).to(device)
    model.eval()
    x = x64(distinct((2, 1, 4, 4), 1), device)
    assert gradcheck_module(model, x)
    model.to(dtype="float32").train()
    xs = tn.tensor(np.random.default_rng(0).random((2, 1, 4, 4)), dtype=np.float32, device=device)
    loss = F.softmax_cross_entropy(model(xs), [0, 2])
    loss.backward()
    assert all(p.grad is not None and p.grad.device == device for p in model.parameters())


def test_functional_names_exist():
    for name in ["dense", "conv2d", "relu", "max_pool2d", "dropout", "flatten",
                 "softmax_cross_entropy", "nll_loss", "log_softmax", "softmax"]:
        assert callable(getattr(F, name))
    x = tn.tensor(np.ones((2, 3), np.float32))
    layer = nn.Dense(3, 2)
    np.testing.assert_array_equal(F.dense(x, layer.weight, layer.bias).numpy(), layer(x).numpy())
    assert np.all(F.relu(tn.tensor([-1.0, 2.0])).numpy() == [0, 2])
    assert nn.functional is F
