"""DataLoader and load()."""
import os
from pathlib import Path

import numpy as np
import pytest

from tinynet.data import DataLoader, load

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


def data(n=103):
    x = np.arange(n, dtype=np.float64)[:, None] * np.ones((1, 3))  # row i holds i: x and y stay paired
    return x, np.arange(n)


def epoch(loader):
    return [(xb.copy(), yb.copy()) for xb, yb in loader]


def test_every_sample_once_per_epoch():
    x, y = data()
    loader = DataLoader(x, y, batch_size=10, seed=0, as_tensor=False)
    assert len(loader) == 11
    for _ in range(3):
        batches = epoch(loader)
        assert [len(yb) for _, yb in batches] == [10] * 10 + [3]
        seen = np.concatenate([yb for _, yb in batches])
        assert sorted(seen.tolist()) == list(range(103))
        for xb, yb in batches:
            assert (xb == yb[:, None]).all()


def test_drop_last():
    x, y = data()
    loader = DataLoader(x, y, batch_size=10, drop_last=True, seed=0, as_tensor=False)
    assert len(loader) == 10
    batches = epoch(loader)
    assert len(batches) == 10 and all(len(yb) == 10 for _, yb in batches)
    assert len(np.unique(np.concatenate([yb for _, yb in batches]))) == 100
    assert len(DataLoader(x[:5], y[:5], batch_size=10, drop_last=True, as_tensor=False)) == 0


def test_reproducible_and_new_order_each_epoch():
    x, y = data()
    a = DataLoader(x, y, batch_size=16, seed=42, as_tensor=False)
    b = DataLoader(x, y, batch_size=16, seed=42, as_tensor=False)
    order = lambda loader: np.concatenate([yb for _, yb in loader])  # noqa: E731
    a1, a2 = order(a), order(a)
    b1, b2 = order(b), order(b)
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    assert not np.array_equal(a1, np.arange(103))
    assert not np.array_equal(a1, order(DataLoader(x, y, batch_size=16, seed=43, as_tensor=False)))


def test_no_shuffle_keeps_order_and_dtype_cast():
    x, y = data(20)
    batches = epoch(DataLoader(x, y, batch_size=8, shuffle=False, dtype=np.float32, as_tensor=False))
    assert np.array_equal(np.concatenate([yb for _, yb in batches]), np.arange(20))
    assert all(xb.dtype == np.float32 and yb.dtype == y.dtype for xb, yb in batches)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        DataLoader(np.zeros((10, 2)), np.zeros(9))


@pytest.mark.parametrize("bs", [0, -1, 2.0, True])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros((4, 2)), np.zeros(4), batch_size=bs)


def test_yields_tensors():
    try:
        from tinynet.tensor import tensor  # noqa: F401
    except ImportError:
        pytest.skip("tinynet.tensor is not importable yet")
    x, y = data(10)
    batches = list(DataLoader(x, y, batch_size=4, shuffle=False, dtype=np.float32))
    assert len(batches) == 3
    xb, yb = batches[0]
    assert xb.device == "cpu" and yb.device == "cpu"
    np.testing.assert_array_equal(np.asarray(xb.data), x[:4].astype(np.float32))
    assert np.asarray(xb.data).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(yb.data), y[:4])


def test_load_embedded():
    x, y = load("embedded", n=30)
    assert x.shape == (30, 1, 28, 28) and y.shape == (30,)
    xt, _ = load("embedded", "test", n=30, flatten=True)
    assert xt.shape == (30, 784)
    assert not np.array_equal(x.reshape(30, 784), xt)
    x2, _ = load("embedded", n=30, seed=1)
    assert not np.array_equal(x, x2)


def test_load_unknown_name_and_split():
    with pytest.raises(ValueError, match="'embedded', 'mnist'"):
        load("cifar")
    with pytest.raises(ValueError, match="split"):
        load("embedded", "val")


def test_load_mnist_test_split(tmp_path, monkeypatch):
    d = os.environ.get("TINYNET_MNIST_DIR") or str(SHARED)
    if not any(Path(d).glob("t10k-images-idx3-ubyte*")):
        pytest.skip(f"real MNIST test split not found (set TINYNET_MNIST_DIR or provide {SHARED})")
    monkeypatch.setenv("TINYNET_MNIST_DIR", d)
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path))  # a missing file would never hit the user's cache
    x, y = load("mnist", "test", n=100, flatten=True)
    assert x.shape == (100, 784) and y[:3].tolist() == [7, 2, 1]


def test_manual_seed_fixes_the_order_of_an_unseeded_loader():
    import tinynet as tn
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    tn.manual_seed(3)
    a = [yb.tolist() for _, yb in DataLoader(x, y, batch_size=4, as_tensor=False)]
    tn.manual_seed(3)
    b = [yb.tolist() for _, yb in DataLoader(x, y, batch_size=4, as_tensor=False)]
    assert a == b
