"""Writing files so that a crash never leaves half a file behind.

Checkpoints, figures, released homework and built lessons all go through
:func:`atomic_write`: the bytes go to a temporary file in the target's
folder, are flushed to disk, and only then renamed over the target
(``os.replace`` is atomic on one filesystem).  A failure at any point leaves
the old file intact and removes the temporary one.
"""
import contextlib
import os
import tempfile


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
    folders are created.  The finished file gets the mode an ordinary open()
    would have given it (mkstemp's files are private, 0600).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
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
