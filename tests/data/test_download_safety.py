"""Downloads and file writes that survive slow mirrors, recompressed mirrors and kill -9.

A real HTTP server on 127.0.0.1 (a thread in this process) plays the mirrors:

    /good/NAME.gz          the files as the original mirror serves them
    /recompressed/NAME.gz  the same content, gzip-compressed differently (other md5)
    /trickle/NAME.gz       one byte every 0.2 s (never stalls, never finishes in time)
    /stall/NAME.gz         64 bytes, then nothing

kill -9 runs in child processes: the temp file a killed writer leaves must be
removed by the NEXT process writing the same target, and nothing else may be.
"""
import gzip
import hashlib
import http.server
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinynet import files
from tinynet.data import DatasetError, mnist

M = importlib.import_module("tinynet.data.mnist")
ROOT = Path(__file__).resolve().parents[2]
NAMES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx(arr):
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.tobytes()


def _split(n=6):
    rng = np.random.default_rng(1)
    raw = {NAMES[0]: _idx(rng.integers(0, 256, (n, 28, 28))),
           NAMES[1]: _idx(np.arange(n) % 10)}
    gz = {k: gzip.compress(v, compresslevel=9, mtime=0) for k, v in raw.items()}
    regz = {k: gzip.compress(v, compresslevel=1, mtime=123456789) for k, v in raw.items()}
    return raw, gz, regz


RAW, GZ, REGZ = _split()


class Mirror(http.server.BaseHTTPRequestHandler):
    stop = threading.Event()

    def log_message(self, *args):          # keep the test output clean
        pass

    def do_GET(self):
        _, kind, name = self.path.split("/")
        name = name[:-3]
        body = (REGZ if kind == "recompressed" else GZ)[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if kind in ("good", "recompressed"):
                self.wfile.write(body)
            elif kind == "trickle":
                for i in range(len(body)):
                    if self.stop.wait(0.2):
                        return
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
            elif kind == "stall":
                self.wfile.write(body[:64])
                self.wfile.flush()
                self.stop.wait(30)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    Mirror.stop.clear()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    Mirror.stop.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def checksums(monkeypatch, tmp_path):
    """The original mirror's checksums for the tiny split: md5 of GZ, sha256 of RAW."""
    sums = {n: (hashlib.md5(GZ[n]).hexdigest(), hashlib.sha256(RAW[n]).hexdigest())
            for n in NAMES}
    for n, v in sums.items():
        monkeypatch.setitem(M.CHECKSUMS, n, v)
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYNET_MNIST_DIR", raising=False)
    monkeypatch.setattr(M, "_urlopen", lambda request, timeout:
                        __import__("urllib.request").request.urlopen(request, timeout=timeout))
    return sums


# --------------------------------------------------------------------------
# slow and stalled mirrors
# --------------------------------------------------------------------------
def test_trickling_mirror_hits_the_deadline(server, checksums, monkeypatch, tmp_path):
    monkeypatch.setattr(M, "MIRRORS", [server + "/trickle/"])
    monkeypatch.setattr(M, "STALL_TIMEOUT_S", 1.0)    # each byte comes within 0.2 s
    monkeypatch.setattr(M, "DEADLINE_S", 1.0)
    start = time.monotonic()
    with pytest.raises(DatasetError) as info:
        mnist("test", root=tmp_path / "dl", progress=False)
    took = time.monotonic() - start
    msg = str(info.value)
    assert "too slow" in msg and "deadline" in msg and "/trickle/" in msg, msg
    assert 1.0 <= took < 15.0, took                     # bounded, not hanging
    assert list((tmp_path / "dl").iterdir()) == []       # no .part left behind


def test_stalled_mirror_hits_the_stall_timeout_then_the_next_mirror_works(
        server, checksums, monkeypatch, tmp_path):
    monkeypatch.setattr(M, "MIRRORS", [server + "/stall/", server + "/good/"])
    monkeypatch.setattr(M, "STALL_TIMEOUT_S", 0.5)
    monkeypatch.setattr(M, "DEADLINE_S", 60)
    start = time.monotonic()
    x, y = mnist("test", root=tmp_path / "dl", progress=False)
    assert time.monotonic() - start < 15.0             # two 0.5 s stalls, then the good mirror
    assert y.tolist() == [0, 1, 2, 3, 4, 5]
    monkeypatch.setattr(M, "MIRRORS", [server + "/stall/"])
    for n in NAMES:
        (tmp_path / "dl" / (n + ".gz")).unlink()
    with pytest.raises(DatasetError, match=r"stalled: no data for 0.5 s after 64 bytes"):
        mnist("test", root=tmp_path / "dl", progress=False)


# --------------------------------------------------------------------------
# a mirror that recompressed the files
# --------------------------------------------------------------------------
def test_recompressed_mirror_is_accepted_by_content(server, checksums, monkeypatch, tmp_path):
    assert all(hashlib.md5(REGZ[n]).hexdigest() != checksums[n][0] for n in NAMES)
    monkeypatch.setattr(M, "MIRRORS", [server + "/recompressed/"])
    x, y = mnist("test", root=tmp_path / "dl", progress=False)
    assert y.tolist() == [0, 1, 2, 3, 4, 5]
    assert (tmp_path / "dl" / (NAMES[0] + ".gz")).read_bytes() == REGZ[NAMES[0]]


def test_recompressed_wrong_content_is_refused(server, checksums, monkeypatch, tmp_path):
    monkeypatch.setitem(M.CHECKSUMS, NAMES[1], (checksums[NAMES[1]][0], "0" * 64))
    monkeypatch.setattr(M, "MIRRORS", [server + "/recompressed/"])
    with pytest.raises(DatasetError, match="sha256 of the uncompressed data"):
        mnist("test", root=tmp_path / "dl", progress=False)
    assert not (tmp_path / "dl" / (NAMES[1] + ".gz")).exists()


def test_without_a_content_hash_the_gzip_md5_still_decides(server, checksums, monkeypatch,
                                                           tmp_path):
    monkeypatch.setitem(M.CHECKSUMS, NAMES[1], (checksums[NAMES[1]][0], None))
    monkeypatch.setattr(M, "MIRRORS", [server + "/recompressed/"])
    with pytest.raises(DatasetError, match="md5 of the .gz"):
        mnist("test", root=tmp_path / "dl", progress=False)


def test_real_labels_recompressed_pass_the_shipped_checksums(tmp_path, monkeypatch):
    """The checksums tinynet ships, against the real file recompressed (other md5)."""
    real = None
    for d in (os.environ.get("TINYNET_MNIST_DIR"), ROOT.parent / "shared" / "data" / "mnist"):
        if d and (Path(d) / "t10k-labels-idx1-ubyte.gz").is_file():
            real = Path(d) / "t10k-labels-idx1-ubyte.gz"
            break
    if real is None:
        pytest.skip("real MNIST test labels not found (set TINYNET_MNIST_DIR)")
    name = "t10k-labels-idx1-ubyte"
    regz = gzip.compress(gzip.decompress(real.read_bytes()), compresslevel=1, mtime=42)
    assert hashlib.md5(regz).hexdigest() != M.CHECKSUMS[name][0]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / (name + ".gz")).write_bytes(regz)
    monkeypatch.setattr(M, "MIRRORS", [mirror.as_uri() + "/"])
    monkeypatch.setattr(M, "_urlopen", lambda request, timeout:
                        __import__("urllib.request").request.urlopen(request, timeout=timeout))
    (tmp_path / "dl").mkdir()
    assert M._download(name, tmp_path / "dl", progress=False).read_bytes() == regz


# --------------------------------------------------------------------------
# kill -9 mid-write: the next writer cleans up, and only what is stale
# --------------------------------------------------------------------------
def _child(code, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for(pred, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = pred()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _kill9(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="kill -9 and stale-temp cleanup are POSIX-only")


@POSIX_ONLY
def test_checkpoint_temp_file_of_a_killed_writer_is_cleaned_by_the_next_save(tmp_path):
    target = tmp_path / "model.npz"
    writer = _child(f"""
        import time
        from tinynet.files import atomic_write
        cm = atomic_write({str(target)!r})    # kept referenced: the write stays open
        f = cm.__enter__()
        f.write(b"half a checkpoint")
        f.flush()
        print("ready", flush=True)
        time.sleep(60)
    """)
    assert writer.stdout.readline().strip() == "ready"
    stale = _wait_for(lambda: list(tmp_path.glob(".model.npz.tinynet-*.tmp")))
    _kill9(writer)
    assert stale[0].exists() and not target.exists()
    # files that must survive: a user's own file, a live process's temp file
    # (this test's pid), a dead pid's file newer than the next process, another target's
    mine = tmp_path / ".model.npz.backup.tmp"
    live = tmp_path / f".model.npz.tinynet-{os.getpid()}-abc123.tmp"
    fresh = tmp_path / ".model.npz.tinynet-999999999-fresh1.tmp"
    other = tmp_path / ".other.npz.tinynet-999999999-old111.tmp"
    for p in (mine, live, fresh, other):
        p.write_text("x")
    future = time.time() + 3600
    os.utime(fresh, (future, future))
    time.sleep(0.05)
    saver = _child(f"""
        import tinynet as tn
        from tinynet import nn
        tn.save(nn.Sequential(nn.Dense(2, 2)), {str(target)!r})
    """)
    out, err = saver.communicate(timeout=60)
    assert saver.returncode == 0, err
    assert not stale[0].exists()
    assert target.is_file() and tn_load_ok(target)
    for p in (mine, live, fresh, other):
        assert p.exists(), p.name
    # killed again; this time the next run only loads (resumes): it cleans too
    writer = _child(f"""
        import time
        from tinynet.files import atomic_write
        cm = atomic_write({str(target)!r})
        f = cm.__enter__()
        f.write(b"half")
        f.flush()
        print("ready", flush=True)
        time.sleep(60)
    """)
    assert writer.stdout.readline().strip() == "ready"
    stale = list(tmp_path.glob(f".model.npz.tinynet-{writer.pid}-*.tmp"))
    _kill9(writer)
    assert len(stale) == 1
    time.sleep(0.05)
    loader = _child(f"""
        import tinynet as tn
        print(list(tn.load({str(target)!r})))
    """)
    out, err = loader.communicate(timeout=60)
    assert loader.returncode == 0 and "0.weight" in out, err
    assert not stale[0].exists()


def tn_load_ok(path):
    import tinynet as tn
    return list(tn.load(path)) == ["0.weight", "0.bias"]


@POSIX_ONLY
def test_download_part_file_of_a_killed_process_is_cleaned_by_the_next_download(
        server, tmp_path):
    dl = tmp_path / "dl"
    script = """
        import sys, importlib, json
        M = importlib.import_module("tinynet.data.mnist")
        M.MIRRORS = [sys.argv[1]]
        M.CHECKSUMS.update({k: tuple(v) for k, v in json.loads(sys.argv[2]).items()})
        print("start", flush=True)
        M.mnist("test", root=sys.argv[3], progress=False)
        print("done", flush=True)
    """
    sums = json.dumps({n: [hashlib.md5(GZ[n]).hexdigest(), hashlib.sha256(RAW[n]).hexdigest()]
                       for n in NAMES})
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(ROOT)
    stuck = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), server + "/stall/",
                              sums, str(dl)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    part = _wait_for(lambda: list(dl.glob(".*.part")) if dl.is_dir() else None)
    time.sleep(0.2)                       # mid-download: the server holds after 64 bytes
    _kill9(stuck)
    assert part[0].exists() and part[0].name.startswith(f".{NAMES[0]}.gz.tinynet-{stuck.pid}-")
    time.sleep(0.05)
    again = subprocess.run([sys.executable, "-c", textwrap.dedent(script), server + "/good/",
                            sums, str(dl)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "done" in again.stdout, again.stderr
    assert sorted(p.name for p in dl.iterdir()) == sorted(n + ".gz" for n in NAMES)
    # a .part of a killed run beside files already there: the next load removes it
    leftover = dl / f".{NAMES[1]}.gz.tinynet-{stuck.pid}-dead00.part"
    leftover.write_bytes(b"\x1f\x8b")
    os.utime(leftover, (time.time() - 60, time.time() - 60))
    again = subprocess.run([sys.executable, "-c", textwrap.dedent(script), server + "/stall/",
                            sums, str(dl)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and not leftover.exists(), again.stderr


@POSIX_ONLY
def test_remove_stale_temp_files_pattern_is_exact(tmp_path):
    old = time.time() - 3600
    keep = [".model.npz.tinynet-1x-abc.tmp", ".model.npz.tinynet-999999999-abc.tmp.bak",
            "model.npz.tinynet-999999999-abc.tmp", ".model.npzz.tinynet-999999999-abc.tmp"]
    gone = ".model.npz.tinynet-999999999-a_b9.tmp"
    for name in keep + [gone]:
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".model.npz.tinynet-999999998-dir.tmp").mkdir()     # not a regular file
    removed = files.remove_stale_temp_files(tmp_path, "model.npz", ".tmp")
    assert [Path(p).name for p in removed] == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        keep + [".model.npz.tinynet-999999998-dir.tmp"])
