"""MNIST: find the four IDX files, download and verify them when absent, load them.

Where the files are looked for, in order:

1. ``root`` if given (and only there; downloads also go there, like torchvision);
2. otherwise ``$TINYNET_MNIST_DIR`` if set, then the cache folder;
3. the cache folder is ``$TINYNET_HOME/mnist``, else ``$XDG_CACHE_HOME/tinynet/mnist``,
   else ``~/.cache/tinynet/mnist``; downloads go there when no ``root`` is given
   (``$TINYNET_MNIST_DIR`` may be a read-only shared folder, so we never write into it).

Each file may be raw (``t10k-images-idx3-ubyte``) or gzip-compressed (``...-ubyte.gz``).
Files found on disk are trusted (they may be recompressed copies); downloaded files are
verified before they are renamed into place: by the sha256 of the *uncompressed* content
where it is known (so a mirror that recompressed the files is accepted when the data is
right), else by the md5 of the ``.gz`` as the original mirrors serve it.

A download gives up on a stalled connection (no byte for ``STALL_TIMEOUT_S``) and on a
mirror too slow to finish one file within ``DEADLINE_S``.  It is written to
``.<name>.gz.tinynet-<pid>-<random>.part`` and renamed when verified; ``.part`` files
that a killed process left behind are removed by the next download into that folder.
"""
import gzip
import hashlib
import os
import secrets
import socket
import time
import zlib
from pathlib import Path

import numpy as np

from tinynet.files import remove_stale_temp_files, temp_prefix

from .errors import DatasetError
from .idx import read_idx

ENV_DIR = "TINYNET_MNIST_DIR"
ENV_HOME = "TINYNET_HOME"

# Folders holding the four .gz files; tried in order. Tests replace this list.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# name -> (md5 of the .gz the mirrors serve [the values torchvision checks],
#          sha256 of the uncompressed file, or None where we do not know it)
CHECKSUMS = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
    "train-labels-idx1-ubyte": (
        "d53e105ee54ea40749a09fcbcd1e9432",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": (
        "9fb629c4189551a2d022fa330f9573f3",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": (
        "ec29112dd5afa0611ce80d1b7f02629c",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

STALL_TIMEOUT_S = 30    # seconds without a byte before a connection counts as stalled
DEADLINE_S = 600        # seconds for one whole file (9.9 MB at >= 17 kB/s); tests lower both
TIMEOUT_S = STALL_TIMEOUT_S   # the old name
_CHUNK = 1 << 16


def _urlopen(request, timeout):
    """The one place that touches the network; tests replace it with a fake opener."""
    import urllib.request  # lazy: importing tinynet.data should not pull in http/ssl

    return urllib.request.urlopen(request, timeout=timeout)


class _DownloadFailed(Exception):
    """Every mirror failed for one file; args[0] is a list of 'url: reason' lines."""


def cache_dir():
    """The folder that downloads go to when no ``root`` is given (a ``Path``; may not exist yet)."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser() / "mnist"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tinynet" / "mnist"


def _folders(root):
    """(folders to search, folder to download into)."""
    if root is not None:
        root = Path(root).expanduser()
        return [root], root
    cache = cache_dir()
    env = os.environ.get(ENV_DIR)
    if env:
        env = Path(env).expanduser()
        return ([env] if env == cache else [env, cache]), cache
    return [cache], cache


def _find(name, folders):
    """The first existing `name` (raw preferred: no decompression) or `name.gz` in folders, else None."""
    for folder in folders:
        for candidate in (folder / name, folder / (name + ".gz")):
            if candidate.is_file():
                return candidate
    return None


def _progress_bar(total, desc, enabled):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional here: no bar is better than no download
        enabled = False
    if not enabled:
        class _NoBar:
            def update(self, n):
                pass

            def close(self):
                pass
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def _sha256_of_gunzipped(path):
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class DownloadTimeout(OSError):
    """A mirror stalled or was too slow; the message says which and how far it got."""


def _read_all(resp, out, digest, bar, deadline):
    """Copy the response into ``out``; returns the byte count.

    ``read1`` returns whatever has arrived (one socket read), so a mirror that
    trickles a byte at a time is seen chunk by chunk and the deadline checked
    between them; ``read(n)`` would block until n bytes had trickled in.
    """
    read = getattr(resp, "read1", None) or resp.read
    size = 0
    while True:
        try:
            chunk = read(_CHUNK)
        except (socket.timeout, TimeoutError):
            raise DownloadTimeout(f"stalled: no data for {STALL_TIMEOUT_S} s after {size} "
                                  f"bytes (stall timeout)") from None
        if not chunk:
            return size
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
        bar.update(len(chunk))
        if time.monotonic() > deadline:
            raise DownloadTimeout(f"too slow: only {size} bytes in {DEADLINE_S} s (the "
                                  f"deadline for one file); try again later or put the "
                                  f"file in place by hand")


def _fetch(url, dest, md5, sha256, progress):
    """Download url to dest atomically: temp file in the same folder, verify, then os.replace.

    Raises the network/OS error, DownloadTimeout, or a ValueError('checksum ...'); the
    temp file never survives.
    """
    import urllib.request

    remove_stale_temp_files(dest.parent, dest.name, ".part")
    tmp = dest.with_name(f"{temp_prefix(dest.name)}{secrets.token_hex(4)}.part")
    request = urllib.request.Request(url, headers={"User-Agent": "tinynet"})
    deadline = time.monotonic() + DEADLINE_S
    try:
        try:
            resp = _urlopen(request, timeout=STALL_TIMEOUT_S)
        except (socket.timeout, TimeoutError):
            raise DownloadTimeout(f"no answer within {STALL_TIMEOUT_S} s "
                                  f"(stall timeout)") from None
        with resp, open(tmp, "xb") as out:
            length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
            total = int(length) if length and length.isdigit() else None
            bar = _progress_bar(total, dest.name, progress)
            digest = hashlib.md5(usedforsecurity=False)
            try:
                size = _read_all(resp, out, digest, bar, deadline)
            finally:
                bar.close()
        if total is not None and size != total:
            raise ValueError(f"incomplete download: expected {total} bytes, got {size}")
        # The content is what matters: with its sha256 known, a mirror's own
        # (re)compression is fine; the .gz's md5 is the check only without it.
        if sha256 is None and md5 is not None and digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch: md5 of the .gz is {digest.hexdigest()}, expected {md5}")
        if sha256 is not None:
            try:
                found = _sha256_of_gunzipped(tmp)
            except (gzip.BadGzipFile, zlib.error, EOFError) as e:
                raise ValueError(f"corrupt gzip stream: {e}") from None
            if found != sha256:
                raise ValueError(f"checksum mismatch: sha256 of the uncompressed data is {found}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        # no-op after a successful os.replace; otherwise never leave a partial file behind
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _download(name, folder, progress):
    """Fetch name.gz from the first mirror that works into folder; return its path."""
    import urllib.error
    from http.client import HTTPException

    md5, sha256 = CHECKSUMS.get(name, (None, None))
    dest = folder / (name + ".gz")
    failures = []
    for mirror in MIRRORS:
        url = mirror.rstrip("/") + "/" + name + ".gz"
        try:
            _fetch(url, dest, md5, sha256, progress)
            return dest
        except (urllib.error.URLError, HTTPException, OSError, ValueError) as e:
            # HTTPError's str has the status code; a plain URLError's reason is the useful part
            reason = e.reason if type(e) is urllib.error.URLError else e
            failures.append(f"{url}: {reason}")
    raise _DownloadFailed(failures)


def _missing_message(split, missing, searched, dest, why):
    names = ", ".join(f"{n}[.gz]" for n in missing)
    where = ", ".join(str(f) for f in searched)
    return (
        f"MNIST split {split!r}: missing file(s) {names}.\n"
        f"Searched: {where}.\n"
        f"{why}\n"
        f"To fix: put the MNIST files (the .gz as downloaded, or uncompressed) into {dest}, "
        f"or set {ENV_DIR}=/folder/with/the/files, or call mnist(root='/folder/with/the/files'). "
        f"The files are at {MIRRORS[0] if MIRRORS else 'https://ossci-datasets.s3.amazonaws.com/mnist/'}. "
        f"With no network, tinynet.data.load('embedded') gives tinynet's own offline digits."
    )


def _load_files(images_path, labels_path):
    """(uint8 images (N, 28, 28), uint8 labels (N,)) with shapes and ranges checked."""
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{images_path}: expected MNIST images of shape (N, 28, 28) uint8, found {images.shape} {images.dtype}"
        )
    labels = read_idx(labels_path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected MNIST labels of shape (N,) uint8, found {labels.shape} {labels.dtype}")
    if len(images) != len(labels):
        raise DatasetError(
            f"MNIST images and labels disagree: {images_path} holds {len(images)} images "
            f"but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{labels_path}: expected labels 0..9, found a label {int(labels.max())}")
    return images, labels


def mnist(split="train", root=None, download=True, flatten=False, progress=True):
    """Load MNIST as float arrays.

    Args:
        split: "train" (60,000 images) or "test" (10,000 images).
        root: folder holding the files; default ``$TINYNET_MNIST_DIR``, then the cache folder.
        download: fetch missing files into the cache folder (or into ``root``).
        flatten: return x as (N, 784) instead of (N, 1, 28, 28).
        progress: show a tqdm progress bar while downloading.

    Returns:
        x: float32 (N, 1, 28, 28) or (N, 784), pixel / 255, in [0, 1].
        y: int64 (N,), the digit 0..9.

    Raises:
        DatasetError: files missing (download=False or no network), a download that fails
            verification, or a truncated/corrupt/inconsistent file; the message says which
            files, which folders were searched, and how to fix it.
    """
    if split not in FILES:
        raise ValueError(f"mnist(split={split!r}): expected 'train' or 'test'")
    searched, dest = _folders(root)
    names = FILES[split]
    for name in names:              # .part files of a download killed in an earlier run
        remove_stale_temp_files(dest, name + ".gz", ".part")
    paths = {name: _find(name, searched) for name in names}
    missing = [name for name in names if paths[name] is None]
    if missing and not download:
        raise DatasetError(_missing_message(split, missing, searched, dest, "Download was not attempted (download=False)."))
    if missing:
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatasetError(_missing_message(split, missing, searched, dest, f"Cannot create {dest}: {e}.")) from None
        for i, name in enumerate(missing):
            try:
                paths[name] = _download(name, dest, progress)
            except _DownloadFailed as e:
                why = "Download failed (offline?):\n  " + "\n  ".join(e.args[0])
                raise DatasetError(_missing_message(split, missing[i:], searched, dest, why)) from None
    images, labels = _load_files(paths[names[0]], paths[names[1]])
    shape = (len(images), 784) if flatten else (len(images), 1, 28, 28)
    x = np.empty(shape, dtype=np.float32)
    np.divide(images.reshape(shape), np.float32(255), out=x)  # uint8 -> float32 once, no temporaries
    del images
    return x, labels.astype(np.int64)
