"""Reader for the IDX format, the file format of MNIST.

IDX layout (all integers big-endian)::

    offset  size     field
    0       2        zero bytes: 0x00 0x00
    2       1        dtype code: 0x08 uint8, 0x09 int8, 0x0B int16,
                                 0x0C int32, 0x0D float32, 0x0E float64
    3       1        ndim, the number of dimensions (>= 1)
    4       4*ndim   the dimensions, each an unsigned 32-bit integer
    4+4*ndim ...     the payload: prod(dims) items of the dtype, C order

Files may be gzip-compressed (MNIST is distributed as ``*.gz``).
"""
import gzip
import os
import sys
import zlib

import numpy as np

from .errors import DatasetError

# dtype code -> numpy dtype (read big-endian, returned in native byte order)
DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(np.int16),
    0x0C: np.dtype(np.int32),
    0x0D: np.dtype(np.float32),
    0x0E: np.dtype(np.float64),
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # read in 1 MiB pieces so a gzip stream never needs a second full-size buffer
# deflate cannot expand data by more than ~1032:1; a header claiming more than that
# from a .gz of a given size is corrupt, and we refuse before allocating anything.
_MAX_DEFLATE_RATIO = 1100


def _is_gzip(path):
    if str(path).endswith(".gz"):
        return True
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_exact(f, n):
    """Up to n bytes from f (fewer only at end of file)."""
    parts = []
    while n > 0:
        b = f.read(n)
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def _parse_header(f, name):
    """(dtype, shape, header_size) from the start of an open IDX stream."""
    magic = _read_exact(f, 4)
    if len(magic) < 4:
        raise DatasetError(f"{name}: truncated IDX file: expected a 4-byte magic number, found {len(magic)} bytes")
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"{name}: not an IDX file: expected magic bytes 00 00 <dtype> <ndim>, found {magic.hex(' ')}"
        )
    code, ndim = magic[2], magic[3]
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X} ({d})" for c, d in DTYPES.items())
        raise DatasetError(f"{name}: unknown IDX dtype code 0x{code:02X}; expected one of {known}")
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header declares 0 dimensions; expected at least 1")
    raw_dims = _read_exact(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetError(
            f"{name}: truncated IDX header: expected {4 * ndim} bytes of dimensions for ndim={ndim}, "
            f"found {len(raw_dims)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    return DTYPES[code], shape, 4 + 4 * ndim


def _count_rest(f):
    n = 0
    while True:
        b = f.read(_CHUNK)
        if not b:
            return n
        n += len(b)


def _read_payload(f, dtype, shape, name, header_size):
    """Fill a fresh array from f; raise DatasetError unless the payload is exactly the right size."""
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    desc = f"shape {shape} {dtype.name} = {nbytes} payload bytes after the {header_size}-byte header"
    try:
        out = np.empty(shape, dtype=dtype)
    except (MemoryError, ValueError) as e:
        raise DatasetError(f"{name}: IDX header declares {desc}, which cannot be allocated ({e})") from None
    buf = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < nbytes:
        k = f.readinto(buf[got:got + _CHUNK])
        if not k:
            break
        got += k
    if got < nbytes:
        raise DatasetError(f"{name}: truncated IDX file: expected {desc}, found only {got}")
    extra = _count_rest(f)
    if extra:
        raise DatasetError(f"{name}: IDX payload too long: expected {desc}, found {nbytes + extra}")
    if dtype.itemsize > 1 and sys.byteorder == "little":
        out.byteswap(inplace=True)  # the file is big-endian; fix it in place, no copy
    return out


def read_idx(path):
    """Read one IDX file (raw or gzip-compressed) into a numpy array.

    Args:
        path: a ``str`` or ``os.PathLike``. Gzip is detected by a ``.gz`` name or
            by the gzip magic bytes ``1f 8b``.

    Returns:
        A new, writable numpy array of shape ``dims`` in the file's dtype (native
        byte order), e.g. ``(10000, 28, 28) uint8`` for MNIST test images.

    Raises:
        DatasetError: bad magic, unknown dtype code, a header/payload size
            mismatch (truncated or trailing bytes), or a corrupt gzip stream.
            The message names the file. No partially parsed array is returned.
        FileNotFoundError: the file does not exist.
    """
    path = os.fspath(path)
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as f:
                dtype, shape, hsize = _parse_header(f, path)
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if need > _MAX_DEFLATE_RATIO * os.path.getsize(path) + (1 << 16):
                    raise DatasetError(
                        f"{path}: IDX header declares shape {shape} {dtype.name} = {need} bytes, "
                        f"more than a {os.path.getsize(path)}-byte gzip file can hold; the file is corrupt"
                    )
                return _read_payload(f, dtype, shape, path, hsize)
        with open(path, "rb") as f:
            dtype, shape, hsize = _parse_header(f, path)
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            found = os.path.getsize(path) - hsize
            if found != need:  # check before allocating: the size of a raw file is known
                kind = "truncated IDX file" if found < need else "IDX payload too long"
                raise DatasetError(
                    f"{path}: {kind}: expected shape {shape} {dtype.name} = {need} payload bytes "
                    f"after the {hsize}-byte header, found {found}"
                )
            return _read_payload(f, dtype, shape, path, hsize)
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        # EOFError: "Compressed file ended before the end-of-stream marker was reached"
        raise DatasetError(f"{path}: corrupt gzip stream: {e}") from None
