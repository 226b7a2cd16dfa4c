"""PyTorch's tensor-level names in tinynet: zeros, ones, randn, arange,
from_numpy, cat, stack, view, and sum/mean/max with dim= and keepdim=.

Values and gradients are compared with PyTorch itself where it is installed
(those tests skip cleanly without it); the rest checks tinynet's own rules
(seeded randn, shared memory, gradchecks, errors) on every device.
"""
import numpy as np
import pytest

import tinynet as tn


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _np_dtype(torch_dtype):
    return np.dtype(str(torch_dtype).replace("torch.", ""))


def _grads_match(tn_inputs, th_inputs, rtol=1e-6):
    for a, b in zip(tn_inputs, th_inputs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-12)


# --------------------------------------------------------------------------
# factories
# --------------------------------------------------------------------------
FACTORY_CASES = [
    ("zeros", (2, 3), {}), ("zeros", ((2, 3),), {}), ("ones", ([4],), {}),
    ("zeros", (2,), {"dtype": "float64"}), ("ones", ((),), {}),
    ("arange", (5,), {}), ("arange", (2, 9, 3), {}), ("arange", (10, 0, -3), {}),
    ("arange", (0, 1, 0.1), {}), ("arange", (1.5, 4), {}), ("arange", (0.0, 1.0, 0.3), {}),
    ("arange", (-1, 1, 0.25), {"dtype": "float64"}),
]


@pytest.mark.parametrize("name,args,kwargs", FACTORY_CASES)
def test_factories_match_pytorch(torch, name, args, kwargs):
    ours = getattr(tn, name)(*args, **kwargs)
    th_kwargs = {k: getattr(torch, v) for k, v in kwargs.items()}
    theirs = getattr(torch, name)(*args, **th_kwargs)
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype == _np_dtype(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-7, atol=0)


def test_factories_take_device_and_requires_grad(device):
    z = tn.zeros(2, 2, device=device, requires_grad=True)
    assert z.device == ("cpu" if device == "cpu" else "cuda") and z.requires_grad and z.is_leaf
    assert tn.arange(3, device=device).numpy().tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match=r"zeros: sizes must be non-negative ints"):
        tn.zeros(2.5, 3)
    with pytest.raises(ValueError, match="step must not be zero"):
        tn.arange(0, 1, 0)


def test_randn_is_seeded_float32_and_the_same_on_every_device(device):
    tn.manual_seed(3)
    a = tn.randn(2000, 5)
    tn.manual_seed(3)
    b = tn.randn((2000, 5), device=device)
    assert a.dtype == np.float32 and b.shape == (2000, 5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert abs(a.numpy().mean()) < 0.05 and abs(a.numpy().std() - 1) < 0.05
    assert tn.randn(3, dtype="float64").dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        tn.randn(3, dtype="int64")


def test_from_numpy_shares_memory_and_dtype_like_pytorch(torch):
    arr = np.arange(6.0).reshape(2, 3)
    ours, theirs = tn.from_numpy(arr), torch.from_numpy(arr)
    assert ours.dtype == _np_dtype(theirs.dtype) == np.float64
    arr[0, 0] = 42.0
    assert ours.numpy()[0, 0] == theirs.numpy()[0, 0] == 42.0
    with pytest.raises(TypeError, match="expected a numpy.ndarray, got list"):
        tn.from_numpy([1.0, 2.0])


# --------------------------------------------------------------------------
# cat and stack
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1, 2, -3])
def test_stack_and_cat_forward_and_backward_match_pytorch(torch, dim):
    rng = np.random.default_rng(abs(dim))
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    weights = rng.standard_normal((3, 2, 3))
    ours = [tn.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = tn.stack(ours, dim=dim), torch.stack(theirs, dim=dim)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy())
    w = np.moveaxis(weights, 0, dim % 3)           # a weighting of stack's output shape
    (y * tn.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    _grads_match(ours, theirs)

    if dim in (0, 1, -1):
        for t in ours + theirs:
            t.grad = None
        c, ct = tn.cat(ours, dim=dim), torch.cat(theirs, dim=dim)
        np.testing.assert_allclose(c.numpy(), ct.detach().numpy())
        wc = rng.standard_normal(tuple(ct.shape))
        (c * tn.tensor(wc)).sum().backward()
        (ct * torch.tensor(wc)).sum().backward()
        _grads_match(ours, theirs)


def test_stack_gradchecks_and_refuses_bad_input(device):
    a = tn.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True,
                  dtype="float64", device=device)
    b = tn.tensor(np.random.default_rng(1).standard_normal((2, 3)), requires_grad=True,
                  dtype="float64", device=device)
    assert tn.gradcheck(lambda p, q: tn.stack([p, q], dim=1) * 1.5, [a, b])
    with pytest.raises(ValueError, match=r"stack: tensor 1 has shape \(3,\), tensor 0 has \(2,\)"):
        tn.stack([tn.ones(2), tn.ones(3)])
    with pytest.raises(IndexError, match=r"dim 3 is out of range.*-3 \.\. 2"):
        tn.stack([tn.ones(2, 2), tn.ones(2, 2)], dim=3)
    with pytest.raises(ValueError, match="at least one"):
        tn.stack([])


# --------------------------------------------------------------------------
# view and the dim=/keepdim= reductions
# --------------------------------------------------------------------------
def test_view_is_reshape(torch):
    x = tn.arange(12.0).view(3, 4).view(-1, 2)
    assert x.shape == tuple(torch.arange(12.0).view(3, 4).view(-1, 2).shape) == (6, 2)
    assert tn.arange(6).view((2, 3)).shape == (2, 3)


@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("dim,keepdim", [(1, False), (0, True), (-1, True), ((0, 2), False),
                                          ([1, 2], True), (None, False)])
def test_sum_and_mean_with_dim_match_pytorch(torch, op, dim, keepdim):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 3, 4))
    x, xt = tn.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    if dim is None:
        y, yt = getattr(x, op)(), getattr(xt, op)()
    else:
        y = getattr(x, op)(dim=dim, keepdim=keepdim)
        yt = getattr(xt, op)(dim=dim, keepdim=keepdim)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
    w = rng.standard_normal(tuple(yt.shape))
    (y * tn.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    _grads_match([x], [xt])


@pytest.mark.parametrize("dim,keepdim", [(0, False), (1, True), (-1, False)])
def test_max_with_dim_returns_values_and_indices_like_pytorch(torch, dim, keepdim):
    rng = np.random.default_rng(7)
    a = rng.permutation(24).reshape(2, 3, 4).astype(np.float64)   # no ties
    x, xt = tn.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    values, indices = x.max(dim=dim, keepdim=keepdim)
    vt, it = xt.max(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(values.numpy(), vt.detach().numpy())
    np.testing.assert_array_equal(indices.numpy(), it.numpy())
    r = x.max(dim=dim, keepdim=keepdim)
    assert r.values.shape == tuple(vt.shape) and r.indices.dtype == np.int64
    w = rng.standard_normal(tuple(vt.shape))
    (values * tn.tensor(w)).sum().backward()
    (vt * torch.tensor(w)).sum().backward()
    _grads_match([x], [xt])


def test_reductions_keep_numpy_spelling_and_refuse_both(device):
    x = tn.tensor(np.arange(6.0).reshape(2, 3), device=device)
    np.testing.assert_array_equal(x.sum(1).numpy(), [3.0, 12.0])               # positional = axis
    np.testing.assert_array_equal(x.sum(axis=0, keepdims=True).numpy(), [[3.0, 5.0, 7.0]])
    np.testing.assert_array_equal(x.max(1).numpy(), [2.0, 5.0])                # values only
    np.testing.assert_array_equal(x.mean(dim=0).numpy(), [1.5, 2.5, 3.5])
    for op in ("sum", "mean", "max"):
        with pytest.raises(TypeError, match="not both"):
            getattr(x, op)(axis=0, dim=0)
    with pytest.raises(TypeError, match="dim must be one int"):
        x.max(dim=(0, 1))
