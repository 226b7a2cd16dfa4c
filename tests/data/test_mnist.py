"""mnist(): the real test split (when present), folder resolution, download, verify, offline errors."""
import gzip
import hashlib
import importlib
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tinynet.data import DatasetError, mnist

M = importlib.import_module("tinynet.data.mnist")  # the module (tinynet.data.mnist is the function)
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
TEST_NAMES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


def real_dir():
    for d in (os.environ.get("TINYNET_MNIST_DIR"), SHARED):
        if d and all(M._find(n, [Path(d)]) for n in TEST_NAMES):
            return Path(d)
    pytest.skip(f"real MNIST test split not found (set TINYNET_MNIST_DIR or provide {SHARED})")


def idx(arr):
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def fake_split(folder, prefix="t10k", n=5, compress=True, n_labels=None, image_shape=(28, 28)):
    """Write a tiny valid split; returns {name: gz bytes or raw bytes written}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {
        f"{prefix}-images-idx3-ubyte": idx(rng.integers(0, 256, (n, *image_shape))),
        f"{prefix}-labels-idx1-ubyte": idx(np.arange(n_labels or n) % 10),
    }
    out = {}
    for name, raw in files.items():
        data = gzip.compress(raw, mtime=0) if compress else raw
        (folder / (name + (".gz" if compress else ""))).write_bytes(data)
        out[name] = (data, raw)
    return out


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test reads the user's cache, honours the caller's env, or reaches the network."""
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYNET_MNIST_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_network(request, timeout):
        raise AssertionError(f"test tried to open {request.full_url}")
    monkeypatch.setattr(M, "_urlopen", no_network)


def file_opener(request, timeout):
    assert request.full_url.startswith("file:"), request.full_url
    return urllib.request.urlopen(request, timeout=timeout)


# ---- the real test split -------------------------------------------------------------

def test_real_test_split_facts():
    x, y = mnist("test", root=real_dir(), download=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int((x == 0).all(axis=0).sum()) == 116
    assert x.flags.c_contiguous


def test_real_test_split_via_env_flattened(monkeypatch):
    monkeypatch.setenv("TINYNET_MNIST_DIR", str(real_dir()))
    x, y = mnist("test", download=False, flatten=True)
    assert x.shape == (10000, 784) and y.shape == (10000,)
    x4, y4 = mnist("test", download=False)
    np.testing.assert_array_equal(x, x4.reshape(10000, 784))
    np.testing.assert_array_equal(y, y4)


def test_real_folder_lacks_train_images(monkeypatch):
    d = real_dir()
    with pytest.raises(DatasetError) as info:
        mnist("train", root=d, download=False)
    msg = str(info.value)
    assert "train-images-idx3-ubyte" in msg and str(d) in msg
    assert ("train-labels-idx1-ubyte" in msg) == (M._find("train-labels-idx1-ubyte", [d]) is None)


def test_real_sha256_verified_on_simulated_download(tmp_path, monkeypatch):
    """Serve the real labels file from a file:// 'mirror': its sha256 must match the known one."""
    d = real_dir()
    name = "t10k-labels-idx1-ubyte"
    src = M._find(name, [d])
    if src.suffix != ".gz":
        pytest.skip("real labels file is not gzip-compressed")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / (name + ".gz")).write_bytes(src.read_bytes())
    monkeypatch.setattr(M, "MIRRORS", [mirror.as_uri() + "/"])
    monkeypatch.setattr(M, "_urlopen", file_opener)
    monkeypatch.setitem(M.CHECKSUMS, name, (None, M.CHECKSUMS[name][1]))  # md5 of a recompressed copy differs
    dest = tmp_path / "dl"
    dest.mkdir()
    assert M._download(name, dest, progress=False) == dest / (name + ".gz")
    assert (dest / (name + ".gz")).read_bytes() == src.read_bytes()


# ---- folders ------------------------------------------------------------------------

def test_cache_dir_resolution(tmp_path, monkeypatch):
    assert M.cache_dir() == tmp_path / "home" / "mnist"
    monkeypatch.delenv("TINYNET_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert M.cache_dir() == tmp_path / "xdg" / "tinynet" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert M.cache_dir() == Path.home() / ".cache" / "tinynet" / "mnist"


def test_folder_with_only_test_split(tmp_path):
    fake_split(tmp_path / "m")
    x, y = mnist("test", root=tmp_path / "m", download=False)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == [0, 1, 2, 3, 4] and y.dtype == np.int64
    with pytest.raises(DatasetError) as info:
        mnist("train", root=tmp_path / "m", download=False)
    msg = str(info.value)
    for word in (*TRAIN_NAMES, str(tmp_path / "m"), "download=False", "TINYNET_MNIST_DIR"):
        assert word in msg, msg


def test_raw_files_and_env_var(tmp_path, monkeypatch):
    written = fake_split(tmp_path / "raw", compress=False, n=3)
    monkeypatch.setenv("TINYNET_MNIST_DIR", str(tmp_path / "raw"))
    x, _ = mnist("test", download=False, flatten=True)
    raw_images = written["t10k-images-idx3-ubyte"][1]
    expect = np.frombuffer(raw_images[16:], np.uint8).reshape(3, 784) / np.float32(255)
    np.testing.assert_array_equal(x, expect)


def test_env_dir_then_cache(tmp_path, monkeypatch):
    fake_split(tmp_path / "home" / "mnist", n=4)  # in the cache only
    monkeypatch.setenv("TINYNET_MNIST_DIR", str(tmp_path / "empty"))
    x, _ = mnist("test", download=False)
    assert len(x) == 4


def test_count_mismatch(tmp_path):
    fake_split(tmp_path / "m", n=5, n_labels=6)
    with pytest.raises(DatasetError, match="5 images.*6 labels"):
        mnist("test", root=tmp_path / "m", download=False)


def test_wrong_image_shape(tmp_path):
    fake_split(tmp_path / "m", image_shape=(27, 28))
    with pytest.raises(DatasetError, match=r"t10k-images.*\(N, 28, 28\)"):
        mnist("test", root=tmp_path / "m", download=False)


def test_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        mnist("valid")


# ---- downloads ----------------------------------------------------------------------

@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A file:// mirror holding a tiny test split, with checksums for it installed."""
    files = fake_split(tmp_path / "mirror", n=7)
    for name, (gz, raw) in files.items():
        monkeypatch.setitem(M.CHECKSUMS, name, (hashlib.md5(gz).hexdigest(), hashlib.sha256(raw).hexdigest()))
    dead = (tmp_path / "nowhere").as_uri() + "/"  # the first mirror fails: the second must be tried
    monkeypatch.setattr(M, "MIRRORS", [dead, (tmp_path / "mirror").as_uri() + "/"])
    monkeypatch.setattr(M, "_urlopen", file_opener)
    return files


@pytest.mark.parametrize("progress", [False, True])
def test_download_atomic_and_verified(tmp_path, monkeypatch, mirror, progress):
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst)))
        assert Path(src).exists() and not Path(dst).exists()
        real_replace(src, dst)
    monkeypatch.setattr(M.os, "replace", spy)
    x, y = mnist("test", progress=progress)
    assert x.shape == (7, 1, 28, 28) and y.tolist() == [0, 1, 2, 3, 4, 5, 6]
    cache = tmp_path / "home" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == [n + ".gz" for n in TEST_NAMES]
    assert len(renames) == 2 and all(s.parent == d.parent == cache for s, d in renames)
    for name in TEST_NAMES:
        assert (cache / (name + ".gz")).read_bytes() == mirror[name][0]
    renames.clear()
    mnist("test", progress=False)  # second call: found on disk, nothing downloaded
    assert renames == []


def test_download_into_explicit_root(tmp_path, mirror):
    mnist("test", root=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "t10k-labels-idx1-ubyte.gz").is_file()
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("which", ["md5", "sha256"])
def test_bad_checksum_leaves_nothing(tmp_path, monkeypatch, mirror, which):
    # md5 of the .gz is the check only where the content's sha256 is unknown
    name = "t10k-images-idx3-ubyte"
    md5, sha = M.CHECKSUMS[name]
    monkeypatch.setitem(M.CHECKSUMS, name, ("0" * 32, None) if which == "md5" else (md5, "0" * 64))
    with pytest.raises(DatasetError) as info:
        mnist("test", progress=False)
    msg = str(info.value)
    assert "checksum mismatch" in msg and which in msg and name in msg
    assert list((tmp_path / "home" / "mnist").iterdir()) == []


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch, mirror):
    class Broken:
        headers = {"Content-Length": "1000"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            if getattr(self, "sent", False):
                raise ConnectionResetError("connection reset by peer")
            self.sent = True
            return b"\x1f\x8b" + bytes(100)

    monkeypatch.setattr(M, "_urlopen", lambda request, timeout: Broken())
    with pytest.raises(DatasetError, match="connection reset"):
        mnist("test", progress=False)
    assert list((tmp_path / "home" / "mnist").iterdir()) == []


def test_offline_message(tmp_path, monkeypatch):
    def offline(request, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(M, "_urlopen", offline)
    monkeypatch.setenv("TINYNET_MNIST_DIR", str(tmp_path / "shared"))
    with pytest.raises(DatasetError) as info:
        mnist("train", progress=False)
    msg = str(info.value)
    for word in (*TRAIN_NAMES, str(tmp_path / "shared"), str(tmp_path / "home" / "mnist"),
                 "TINYNET_MNIST_DIR", "name resolution", M.MIRRORS[0], "load('embedded')"):
        assert word in msg, msg
    assert list((tmp_path / "home" / "mnist").iterdir()) == []
