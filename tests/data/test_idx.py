"""read_idx: round trips through an independent writer, and every way a file can be broken."""
import gzip
import struct

import numpy as np
import pytest

from tinynet.data import DatasetError, read_idx

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr, shape=None, code=None, magic=None):
    """The bytes of an IDX file for arr (big-endian); shape/code/magic override the header."""
    arr = np.asarray(arr)
    shape = arr.shape if shape is None else shape
    code = CODES[arr.dtype.type] if code is None else code
    head = bytes(magic) if magic is not None else bytes([0, 0, code, len(shape)])
    return head + struct.pack(f">{len(shape)}I", *shape) + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path, data, compress=False):
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        arr = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    path = write(tmp_path / ("a.idx.gz" if compress else "a.idx"), idx_bytes(arr), compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    np.testing.assert_array_equal(out, arr)
    out[...] = 0  # a fresh, writable array, not a view of a read-only buffer


def test_gzip_detected_by_magic_without_gz_name(tmp_path):
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)
    path = write(tmp_path / "noext", idx_bytes(arr), compress=True)
    np.testing.assert_array_equal(read_idx(str(path)), arr)


def test_empty_first_dimension(tmp_path):
    path = write(tmp_path / "e.idx", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    assert read_idx(path).shape == (0, 28, 28)


def assert_error(path, *words):
    with pytest.raises(DatasetError) as info:
        read_idx(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    assert isinstance(info.value, ValueError)
    return msg


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(tmp_path, compress):
    data = idx_bytes(np.ones((10, 28, 28), np.uint8))
    path = write(tmp_path / ("t.gz" if compress else "t"), data[:-100], compress)
    msg = assert_error(path, "truncated", "7840", "(10, 28, 28)")
    assert "7740" in msg  # what was found


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_bytes(tmp_path, compress):
    data = idx_bytes(np.ones((4, 3), np.uint8)) + b"extra"
    path = write(tmp_path / ("t.gz" if compress else "t"), data, compress)
    assert_error(path, "too long", "12", "17")


@pytest.mark.parametrize("compress", [False, True])
def test_dims_product_disagrees_with_payload(tmp_path, compress):
    data = idx_bytes(np.ones(10, np.int16), shape=(3, 4))  # 12 items declared, 10 present
    path = write(tmp_path / ("d.gz" if compress else "d"), data, compress)
    assert_error(path, "expected shape (3, 4)", "24", "found")


def test_truncated_header(tmp_path):
    data = idx_bytes(np.ones((2, 2, 2), np.uint8))[:9]
    assert_error(write(tmp_path / "h", data), "truncated IDX header", "12")
    assert_error(write(tmp_path / "m", b"\x00\x00"), "magic")


def test_bad_magic(tmp_path):
    data = idx_bytes(np.ones(4, np.uint8), magic=[1, 2, 8, 1])
    assert_error(write(tmp_path / "b", data), "not an IDX file", "01 02 08 01")


def test_unknown_dtype_code(tmp_path):
    data = idx_bytes(np.ones(4, np.uint8), code=0x0A)
    assert_error(write(tmp_path / "c", data), "dtype code 0x0A", "0x08")


def test_zero_dimensions(tmp_path):
    assert_error(write(tmp_path / "z", bytes([0, 0, 8, 0, 5])), "0 dimensions")


def test_corrupt_gzip_stream(tmp_path):
    rng = np.random.default_rng(1)
    good = gzip.compress(idx_bytes(rng.integers(0, 255, (50, 28, 28), dtype=np.uint8)))
    bad = bytearray(good)
    bad[len(bad) // 2:len(bad) // 2 + 64] = bytes(64)  # smash the deflate data
    assert_error(write(tmp_path / "x.gz", bytes(bad)), "gzip")
    assert_error(write(tmp_path / "y.gz", good[: len(good) // 2]), "gzip")  # cut mid-stream
    crc = bytearray(good)
    crc[-8] ^= 0xFF  # data intact, CRC32 wrong
    assert_error(write(tmp_path / "w.gz", bytes(crc)), "gzip")


def test_absurd_header_in_small_gzip_is_refused_before_allocating(tmp_path):
    data = idx_bytes(np.ones(4, np.uint8), shape=(4_000_000_000, 4_000_000_000))
    assert_error(write(tmp_path / "huge.gz", data, compress=True), "corrupt")
    assert_error(write(tmp_path / "huge", data), "truncated")
