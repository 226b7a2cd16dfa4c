"""Keep freed memory in the process between training steps (glibc only).

Why: a training step allocates and frees tens of megabytes of arrays of a
few megabytes each (conv outputs, padded copies, gradients).  With glibc's
default settings a freed block that large is handed back to the operating
system -- unmapped, or trimmed off the top of the heap -- and the next
step's array of the same size is fresh memory again, which the kernel
zero-fills page by page on first touch.  Measured on the seed-003 CNN step
(batch 50): about 5,000 page faults (~20 MB) per step, every step.

``keep_freed_memory()`` asks glibc (``mallopt``) to serve blocks up to
32 MB from its heap and to keep up to 512 MB of freed heap instead of
returning it: after the first step the same memory is reused and the page
faults disappear.  The peak memory a step needs is unchanged (the freed
memory is what the next step would have asked for again); memory is
returned to the system only at exit.  Results are untouched: this changes
where arrays live, not what is computed.

Not done when the user tuned malloc (``MALLOC_*_`` or ``GLIBC_TUNABLES``
in the environment), off glibc, or with ``TINYNET_KEEP_FREED_MEMORY=0``.
"""
import os
import platform

_M_TRIM_THRESHOLD = -1           # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20       # glibc's largest allowed value on 64-bit
_TRIM_THRESHOLD = 512 << 20

_done = False


def keep_freed_memory():
    """Tune glibc's malloc once per process (see the module docstring).
    Returns True if the settings were applied (now or earlier)."""
    global _done
    if _done is not False:
        return _done
    _done = None                 # tried: never again, whatever happens below
    env = os.environ
    if env.get("TINYNET_KEEP_FREED_MEMORY", "1") == "0" or "GLIBC_TUNABLES" in env \
            or any(k.startswith("MALLOC_") and k.endswith("_") for k in env):
        return None
    try:
        if platform.libc_ver()[0] != "glibc":
            return None
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
        ok = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
              and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1)
    except Exception:            # no libc symbol, ctypes unavailable: leave malloc as it is
        return None
    _done = ok or None
    return _done
