"""digits(): format, determinism, the always-zero border, balance, and that it is learnable."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynet.data import digits


@pytest.fixture(scope="module")
def sample():
    return digits(2000, seed=0)


def test_format(sample):
    x, y = sample
    assert x.shape == (2000, 1, 28, 28) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (2000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    xf, yf = digits(2000, seed=0, flatten=True)
    assert xf.shape == (2000, 784)
    np.testing.assert_array_equal(xf, x.reshape(2000, 784))
    np.testing.assert_array_equal(yf, y)
    assert digits(0)[0].shape == (0, 1, 28, 28)


def test_mnist_like_images(sample):
    x, _ = sample
    ink = x > 0
    assert 0.1 < ink.mean() < 0.3          # mostly-0 background (MNIST: 0.19)
    assert ink.any(axis=(1, 2, 3)).all()   # no blank image
    assert (x.max(axis=(1, 2, 3)) > 0.9).all()  # every digit has solid strokes


def test_border_is_exactly_zero(sample):
    x, _ = sample
    border = np.ones((28, 28), bool)
    border[2:26, 2:26] = False
    assert (x[:, 0][:, border] == 0.0).all()
    # ...and the ink is centred like MNIST: it reaches the 20x20 core in every image
    assert (x[:, 0, 4:24, 4:24].sum(axis=(1, 2)) > 0.9 * x.sum(axis=(1, 2, 3))).all()


def test_deterministic_and_prefix_stable():
    a, ya = digits(1100, seed=7)
    b, yb = digits(1100, seed=7)
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    c, yc = digits(40, seed=7)  # a prefix across the 1000-sample chunk boundary too
    assert np.array_equal(a[:40], c) and np.array_equal(ya[:40], yc)
    d, _ = digits(40, seed=8)
    assert not np.array_equal(c, d)


def test_train_and_test_streams_differ():
    tr, _ = digits(50, seed=0, split="train")
    te, _ = digits(50, seed=0, split="test")
    assert not any(np.array_equal(t, u) for t in tr for u in te)


def test_labels_balanced():
    _, y = digits(2500, seed=1)
    counts = np.bincount(y, minlength=10)
    assert counts.min() >= 240 and counts.max() <= 260
    assert np.bincount(y[:1000], minlength=10).tolist() == [100] * 10


@pytest.mark.parametrize("kwargs", [dict(n=-1), dict(n=2.5), dict(seed=-1), dict(seed="a"), dict(split="val")])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        digits(**{"n": 3, **kwargs})


def test_logistic_regression_learns_it():
    """Well above chance (0.1) for a linear model, as with MNIST; measured ~0.89 on 8000/2000."""
    x, y = digits(3000, seed=2, flatten=True)
    xtr, ytr, xte, yte = x[:2400], y[:2400], x[2400:], y[2400:]
    rng = np.random.default_rng(0)
    w, b = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)
    for _ in range(15):
        order = rng.permutation(len(xtr))
        for i in range(0, len(xtr), 100):
            j = order[i:i + 100]
            z = xtr[j] @ w + b
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(j)), ytr[j]] -= 1
            w -= 0.5 * xtr[j].T @ p / len(j)
            b -= 0.5 * p.mean(axis=0)
    accuracy = ((xte @ w + b).argmax(axis=1) == yte).mean()
    assert accuracy > 0.6, accuracy


def test_importing_tinynet_data_does_not_import_matplotlib():
    repo = Path(__file__).resolve().parents[2]
    code = "import sys, tinynet.data; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True)
