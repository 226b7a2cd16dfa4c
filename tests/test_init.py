"""Initializers: shapes, dtype, seeds, the statistics of each scheme, the fans of
each layout, and the errors for a wrong ``kernel_init``."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import init, nn

DENSE_SHAPE = (300, 200)          # fan_in 300, fan_out 200
CONV_SHAPE = (64, 32, 3, 3)       # fan_in 32*9 = 288, fan_out 64*9 = 576

# scheme -> (expected std as a function of (fan_in, fan_out), uniform limit or None)
SCHEMES = {
    "glorot_uniform": (lambda fi, fo: np.sqrt(2 / (fi + fo)),
                       lambda fi, fo: np.sqrt(6 / (fi + fo))),
    "glorot_normal": (lambda fi, fo: np.sqrt(2 / (fi + fo)), None),
    "he_uniform": (lambda fi, fo: np.sqrt(2 / fi), lambda fi, fo: np.sqrt(6 / fi)),
    "he_normal": (lambda fi, fo: np.sqrt(2 / fi), None),
}


@pytest.mark.parametrize("name", sorted(SCHEMES))
@pytest.mark.parametrize("shape,layout,fans", [(DENSE_SHAPE, "dense", (300, 200)),
                                               (CONV_SHAPE, "conv", (288, 576))])
def test_variance_scaling_statistics_and_fans(name, shape, layout, fans):
    assert init.compute_fans(shape, layout) == fans
    assert init.compute_fans(shape) == fans            # guessed from ndim
    tn.manual_seed(0)
    w = getattr(init, name)(shape)
    std, limit = SCHEMES[name]
    fi, fo = fans
    assert w.shape == shape and w.dtype == np.float32
    assert abs(w.mean()) < 0.02 * std(fi, fo)      # ~5 standard errors for 60k draws
    assert w.std() == pytest.approx(std(fi, fo), rel=0.03)
    if limit is not None:
        assert np.abs(w).max() <= limit(fi, fo)
        assert np.abs(w).max() > 0.99 * limit(fi, fo)
    else:  # Keras: truncated at 2 std of the (rescaled) underlying normal
        assert np.abs(w).max() <= 2 * std(fi, fo) / 0.87962566103423978 + 1e-7


def test_explicit_fans_override_the_shape():
    tn.manual_seed(0)
    w = init.he_uniform((1000,), fan_in=4)
    assert np.abs(w).max() <= np.sqrt(6 / 4)
    assert np.abs(w).max() > 0.99 * np.sqrt(6 / 4)


def test_layers_pass_their_fans():
    tn.manual_seed(1)
    d = nn.Dense(500, 100, kernel_init=init.he_uniform)
    assert d.weight.shape == (500, 100)
    assert np.abs(d.weight.numpy()).max() <= np.sqrt(6 / 500)
    assert np.abs(d.weight.numpy()).max() > 0.99 * np.sqrt(6 / 500)
    c = nn.Conv2D(8, 16, 5, kernel_init=init.glorot_uniform)
    limit = np.sqrt(6 / (8 * 25 + 16 * 25))
    assert c.weight.shape == (16, 8, 5, 5)
    assert limit * 0.98 < np.abs(c.weight.numpy()).max() <= limit


def test_default_inits_are_keras_like():
    d = nn.Dense(20, 30)
    assert d.kernel_init is init.glorot_uniform and d.bias_init is init.zeros
    assert np.all(d.bias.numpy() == 0)
    c = nn.Conv2D(1, 4, 3)
    assert c.kernel_init is init.glorot_uniform and c.bias_init is init.zeros


@pytest.mark.parametrize("make,value", [(lambda: init.zeros, 0.0), (lambda: init.ones, 1.0),
                                        (lambda: init.constant(0.5), 0.5),
                                        (lambda: init.constant(-3), -3.0)])
def test_constant_schemes_are_exact(make, value):
    a = make()((4, 3, 2))
    assert a.shape == (4, 3, 2) and a.dtype == np.float32
    assert np.all(a == np.float32(value))
    assert make()((2,), dtype=np.float64).dtype == np.float64


def test_uniform_and_normal():
    tn.manual_seed(0)
    u = init.uniform()((200, 100))
    assert u.min() >= -0.05 and u.max() <= 0.05 and u.max() > 0.049
    u = init.uniform(-0.1, 0.3)((200, 100))
    assert u.min() >= -0.1 and u.max() <= 0.3 and u.mean() == pytest.approx(0.1, abs=0.005)
    n = init.normal()((200, 100))
    assert n.std() == pytest.approx(1.0, rel=0.03) and abs(n.mean()) < 0.03
    n = init.normal(2.0, 0.5)((200, 100))
    assert n.std() == pytest.approx(0.5, rel=0.03) and n.mean() == pytest.approx(2.0, abs=0.02)


def test_bare_factories_use_their_defaults_and_calls_without_shape_are_harmless():
    tn.manual_seed(0)
    d = nn.Dense(10, 10, kernel_init=init.uniform)
    assert np.abs(d.weight.numpy()).max() <= 0.05
    assert repr(d.kernel_init) == "uniform(low=-0.05, high=0.05)"
    d = nn.Dense(10, 10, kernel_init=init.glorot_uniform())    # Keras habit: GlorotUniform()
    assert d.kernel_init is init.glorot_uniform


@pytest.mark.parametrize("name", ["zeros", "ones", "uniform", "normal", "glorot_uniform",
                                  "glorot_normal", "he_uniform", "he_normal"])
def test_seed_reproduces_bit_for_bit(name):
    fn = getattr(init, name)
    fn = fn() if name in ("uniform", "normal") else fn
    tn.manual_seed(123)
    a = fn((7, 5))
    b = fn((7, 5))
    tn.manual_seed(123)
    assert np.array_equal(a, fn((7, 5))) and np.array_equal(b, fn((7, 5)))


def test_seed_reproduces_whole_models():
    def build():
        tn.manual_seed(7)
        return nn.Sequential(nn.Conv2D(1, 2, 3), nn.Flatten(), nn.Dense(8, 3))
    a, b = build().state_dict(), build().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_array_as_init_is_copied_and_shape_checked():
    w = np.arange(6, dtype=np.float64).reshape(2, 3)
    d = nn.Dense(2, 3, kernel_init=w, bias_init=[1, 2, 3])
    assert d.weight.dtype == np.float32
    assert np.array_equal(d.weight.numpy(), w) and np.array_equal(d.bias.numpy(), [1, 2, 3])
    w[0, 0] = 100
    assert d.weight.numpy()[0, 0] == 0
    with pytest.raises(ValueError, match=r"Dense\(3 -> 2\)\.weight.*\(2, 3\).*expected \(3, 2\)"):
        nn.Dense(3, 2, kernel_init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Conv2D\(1 -> 2.*bias.*expected \(2,\)"):
        nn.Conv2D(1, 2, 3, bias_init=np.zeros(3))


def test_custom_callables():
    d = nn.Dense(3, 4, kernel_init=lambda shape: np.full(shape, 0.25))
    assert np.all(d.weight.numpy() == 0.25)
    seen = {}

    def fan_aware(shape, dtype=None, fan_in=None, fan_out=None):
        seen.update(fan_in=fan_in, fan_out=fan_out)
        return np.zeros(shape)
    nn.Conv2D(3, 5, (2, 4), kernel_init=fan_aware)
    assert seen == {"fan_in": 3 * 8, "fan_out": 5 * 8}


def test_wrong_inits_raise_clear_errors():
    with pytest.raises(TypeError, match=r"Dense\(3 -> 4\): kernel_init must be an initializer"):
        nn.Dense(3, 4, kernel_init="glorot")
    with pytest.raises(ValueError,
                       match=r"Dense\(3 -> 4\)\.weight.*shape \(4, 3\), expected \(3, 4\)"):
        nn.Dense(3, 4, kernel_init=lambda shape: np.zeros(shape[::-1]))
    with pytest.raises(TypeError, match=r"Dense\(3 -> 4\)\.weight.*did not give a numeric array"):
        nn.Dense(3, 4, kernel_init=lambda shape: None)
    with pytest.raises(TypeError, match=r"init\.constant needs arguments"):
        nn.Dense(3, 4, bias_init=init.constant)
    with pytest.raises(ValueError, match="low < high"):
        init.uniform(1, 0)
    with pytest.raises(ValueError, match="unknown layout"):
        init.compute_fans((2, 3), "nhwc")
