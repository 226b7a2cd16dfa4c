"""Inverted dropout: scaling, seeding, eval mode, fixed masks (gradcheck) and p checks."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
from tinynet.ops.dropout import dropout

SETTINGS = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
       p=st.sampled_from([0.0, 0.25, 0.5, 0.9]), seed=st.integers(0, 2**16))
def test_fixed_mask_values_and_gradcheck(shape, p, seed, device):
    rng = np.random.default_rng(seed)
    x_np = rng.normal(size=shape)
    mask = rng.random(shape) >= 0.5
    x = tn.tensor(x_np, requires_grad=True, dtype=np.float64, device=device)
    out = dropout(x, p, mask=mask)
    np.testing.assert_allclose(out.numpy(), x_np * mask / (1 - p), rtol=1e-12)
    assert tn.gradcheck(lambda a: dropout(a, p, mask=mask), [x])


def test_random_mask_drops_about_p_and_keeps_the_mean(device):
    tn.manual_seed(0)
    x = tn.tensor(np.ones((200, 100), np.float32), requires_grad=True, device=device)
    out = dropout(x, 0.3)
    y = out.numpy()
    assert out.dtype == np.float32
    kept = y != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.01)
    assert np.allclose(y[kept], 1 / 0.7)
    assert y.mean() == pytest.approx(1.0, abs=0.02)
    out.sum().backward()
    assert np.array_equal(x.grad.numpy(), y)        # dx = keep / (1 - p) for g = 1


def test_seed_fixes_the_mask(device):
    x = tn.tensor(np.ones((10, 10), np.float32), device=device)
    tn.manual_seed(5)
    a = dropout(x, 0.5).numpy()
    tn.manual_seed(5)
    b = dropout(x, 0.5).numpy()
    c = dropout(x, 0.5).numpy()
    assert np.array_equal(a, b) and not np.array_equal(b, c)


def test_eval_and_p_zero_are_identity_and_p_one_drops_everything(device):
    x = tn.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True,
                  device=device)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    out = dropout(x, 1.0)
    assert np.all(out.numpy() == 0)
    out.sum().backward()
    assert np.all(x.grad.numpy() == 0)


@pytest.mark.parametrize("p,exc", [(-0.1, ValueError), (1.5, ValueError), ("0.5", TypeError),
                                   (True, TypeError), (None, TypeError)])
def test_bad_p(p, exc):
    with pytest.raises(exc, match=r"dropout: p must be"):
        dropout(tn.tensor(np.ones(3, np.float32)), p)


def test_bad_mask_and_input():
    x = tn.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError,
                       match=r"dropout: the mask has shape \(3, 2\), expected.*\(2, 3\)"):
        dropout(x, 0.5, mask=np.ones((3, 2)))
    with pytest.raises(TypeError, match=r"dropout: the input must be float, got int64"):
        dropout(tn.tensor([1, 2]), 0.5)
