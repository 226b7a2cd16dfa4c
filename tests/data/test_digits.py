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


# The images of digits(2000) and digits(500, split="test"), as sha256 of their bytes.
# The lessons quote counts measured on these exact images (e.g. always-zero pixels),
# so they must be the same on every machine: any numpy, any matplotlib (whose FreeType
# draws different pixels from release to release -- 3.10 and 3.11 disagree -- which is
# why the glyph masks are shipped in tinynet/data/glyphs.npz).  scripts/check_numpy_floor.sh
# runs this file on the oldest numpy and an older matplotlib.  Change these only together
# with the glyphs or the generator, on purpose.
FINGERPRINTS = {
    ("train", 2000): "94f7d80e9eb2b5c4",
    ("test", 500): "b16210302faa05c0",
}


def _fingerprint(x):
    import hashlib
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def test_the_same_images_on_every_numpy_and_matplotlib():
    import matplotlib
    x, _ = digits(2000, flatten=True)
    assert _fingerprint(x) == FINGERPRINTS[("train", 2000)], (
        f"digits(2000) changed under numpy {np.__version__}, matplotlib {matplotlib.__version__}")
    assert int((x.max(axis=0) == 0).sum()) == 274
    x, _ = digits(500, split="test", flatten=True)
    assert _fingerprint(x) == FINGERPRINTS[("test", 500)]


def test_digits_do_not_render_fonts_at_run_time(monkeypatch):
    # the glyphs come from the shipped file, never from matplotlib's FreeType
    import importlib
    import matplotlib.ft2font
    d = importlib.import_module("tinynet.data.digits")

    def refuse(*a, **k):
        raise AssertionError("digits rendered a font at run time")
    monkeypatch.setattr(matplotlib.ft2font, "FT2Font", refuse)
    d._glyph_bank.cache_clear()
    try:
        x, _ = digits(10)
    finally:
        d._glyph_bank.cache_clear()
    assert x.shape == (10, 1, 28, 28)


def test_shipped_glyphs_are_what_the_render_script_draws():
    import importlib
    import matplotlib
    d = importlib.import_module("tinynet.data.digits")
    with np.load(d.GLYPHS_FILE) as f:
        rendered_with = str(f["matplotlib"])
    if matplotlib.__version__ != rendered_with:
        pytest.skip(f"glyphs.npz was rendered with matplotlib {rendered_with}; "
                    f"this is {matplotlib.__version__}, whose FreeType draws other pixels")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import render_glyphs
    finally:
        sys.path.pop(0)
    masks, shapes, fonts, _ = render_glyphs.render_all()
    shipped = d.load_glyph_masks()
    assert len(shipped) == len(masks) == 10 * len(fonts)
    for k, a in enumerate(shipped):
        assert np.array_equal(a, masks[k, :shapes[k][0], :shapes[k][1]]), k
