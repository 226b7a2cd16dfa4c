"""Writing files so that a crash never leaves half a file behind.

Checkpoints, figures, released homework and built lessons all go through
:func:`atomic_write`: the bytes go to a temporary file in the target's
folder, are flushed to disk, and only then renamed over the target
(``os.replace`` is atomic on one filesystem).  A failure at any point leaves
the old file intact and removes the temporary one.

A process killed outright (``kill -9``, a power cut) cannot remove its
temporary file.  So temporary files carry a recognisable name,
``.<target>.tinynet-<pid>-<random><suffix>``, and the next write to the same
target removes the ones left behind: only files of that exact pattern, whose
process is gone and which are older than the current process.
"""
import contextlib
import os
import re
import stat
import tempfile
import time

# When this process (near enough: tinynet's first import) started; a temp file
# modified after it may belong to a writer that is still running.
PROCESS_START = time.time()
TAG = "tinynet"


def temp_prefix(target_name):
    """The start of a temporary file's name for ``target_name`` (see the module docstring)."""
    return f".{target_name}.{TAG}-{os.getpid()}-"


def _pid_alive(pid):
    if os.name == "nt":
        return True            # os.kill(pid, 0) would terminate it on Windows: never clean there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True            # exists but is not ours, or we cannot tell: keep its file
    return True


def remove_stale_temp_files(folder, target_name, suffix):
    """Remove temporary files that a killed tinynet process left for ``target_name``.

    Only ``.<target_name>.tinynet-<pid>-<random><suffix>`` regular files whose
    pid is not a running process and whose modification time is before this
    process started.  Returns the removed paths; errors are ignored (another
    process may be cleaning the same folder).
    """
    pattern = re.compile(r"\." + re.escape(target_name) + r"\." + TAG
                         + r"-(\d+)-[A-Za-z0-9_]+" + re.escape(suffix) + r"\Z")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime >= PROCESS_START:
                continue
            os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:
            pass
    return removed


def _default_mode(path):
    """The mode an ordinary open() would give: the old file's, or 0o666 minus the umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None, newline=None):
    """Open a temporary file for writing; on success it replaces ``path``.

        with atomic_write("model.npz") as f:
            np.savez(f, **arrays)

    ``mode`` is "wb" or "w" (then ``encoding``/``newline`` apply).  Missing
    folders are created; temporary files a killed process left for ``path``
    are removed first.  The finished file gets the mode an ordinary open()
    would have given it (mkstemp's files are private, 0600).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    remove_stale_temp_files(folder, name, ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(name), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
