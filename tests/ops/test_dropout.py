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


def _same_state(a, b):
    """The two generators will draw the same numbers from here on."""
    sa, sb = a.bit_generator.state, b.bit_generator.state
    return (sa["state"] == sb["state"] and sa["has_uint32"] == sb["has_uint32"]
            and (not sa["has_uint32"] or sa["uinteger"] == sb["uinteger"]))


@settings(max_examples=200, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
       p=st.one_of(st.floats(0, 1), st.sampled_from([0.2, 0.5, 1 - 2**-25, 2**-30, 1.0])),
       half_used=st.booleans(), seed=st.integers(0, 2**32))
def test_the_keep_mask_is_the_float_draw_compared_with_p(shape, p, half_used, seed):
    """keep_mask takes its mask from the generator's raw output where it can: the
    same mask as drawing float32 numbers and comparing them with p, and the
    generator left where the float draw leaves it -- for any p, any count (odd
    ones draw the floats), and a generator holding half of an output back."""
    from tinynet.ops.dropout import keep_mask
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    if half_used:                                # an odd draw before: a half is held back
        a.random(3, dtype=np.float32), b.random(3, dtype=np.float32)
    got = keep_mask(a, shape, p)
    expected = b.random(shape, dtype=np.float32) >= p
    assert got.shape == expected.shape and got.dtype == bool
    np.testing.assert_array_equal(got, expected)
    assert _same_state(a, b)
    np.testing.assert_array_equal(a.random(7, dtype=np.float32), b.random(7, dtype=np.float32))


def test_seeded_dropout_masks_are_the_float_draws():
    """tn.manual_seed fixes the masks as before: each is the float32 draw >= p."""
    x = tn.tensor(np.ones((128, 512), np.float32))
    tn.manual_seed(3)
    masks = [dropout(x, 0.2).numpy() != 0 for _ in range(3)]
    rng = np.random.default_rng(3)
    for mask in masks:
        np.testing.assert_array_equal(mask, rng.random((128, 512), dtype=np.float32) >= 0.2)
