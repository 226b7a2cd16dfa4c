"""Array backends: NumPy on "cpu", CuPy on "cuda".

Every op is written once against an array module ``xp`` that it gets from
its operands with :func:`array_module`; this is the only module in tinynet
that imports cupy.  On a machine without a GPU the test suite registers the
strict stand-in (:mod:`tinynet.testing.strict_cupy`) as the "cuda" module so
that the very same op code is run through something that refuses host/device
mixing the way CuPy does.
"""
import numpy as np

DEVICES = ("cpu", "cuda")

_cuda_xp = None          # cupy, or the strict stand-in, once loaded
_cuda_is_standin = False
_cupy_failure = None     # why real cupy could not be used (for error messages)

INSTALL_HINT = (
    "install the GPU extra with `pip install -e .[gpu]` (CuPy for CUDA 12: "
    "`pip install cupy-cuda12x`) on a machine with an NVIDIA GPU"
)


class DeviceError(RuntimeError):
    """A device was asked for that is not there, or two devices were mixed."""


def _try_cupy():
    """Return the cupy module if it imports and sees a GPU, else None."""
    global _cupy_failure
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("CuPy found no CUDA device")
        return cupy
    except Exception as exc:  # ImportError, CUDARuntimeError, ...
        _cupy_failure = f"{type(exc).__name__}: {exc}"
        return None


def cuda_xp():
    """The array module behind "cuda"; raises DeviceError if there is none."""
    global _cuda_xp
    if _cuda_xp is None:
        _cuda_xp = _try_cupy()
    if _cuda_xp is None:
        raise DeviceError(
            f"device 'cuda' is not available ({_cupy_failure}); {INSTALL_HINT}"
        )
    return _cuda_xp


def cuda_available():
    """True if "cuda" can be used (real CuPy with a GPU, or the stand-in)."""
    try:
        cuda_xp()
        return True
    except DeviceError:
        return False


def has_real_cupy():
    """True if "cuda" is backed by real CuPy on a real GPU."""
    return cuda_available() and not _cuda_is_standin


def use_strict_standin(enable=True):
    """Back "cuda" with the strict CuPy stand-in (tests on machines without a GPU).

    Returns the previous (module, is_standin) pair so a caller can restore it
    with :func:`restore_cuda`.
    """
    global _cuda_xp, _cuda_is_standin
    previous = (_cuda_xp, _cuda_is_standin)
    if enable:
        from tinynet.testing import strict_cupy
        _cuda_xp, _cuda_is_standin = strict_cupy, True
    else:
        _cuda_xp, _cuda_is_standin = None, False
    return previous


def restore_cuda(previous):
    global _cuda_xp, _cuda_is_standin
    _cuda_xp, _cuda_is_standin = previous


def normalize_device(device):
    """Map "cpu", "cuda", "cuda:0", "gpu" to "cpu" or "cuda"; reject the rest."""
    name = str(device).lower()
    if name == "cpu":
        return "cpu"
    if name in ("cuda", "gpu") or name.startswith("cuda:"):
        return "cuda"
    raise DeviceError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")


def array_module(*arrays):
    """numpy or the "cuda" module, whichever owns the first device array given."""
    for a in arrays:
        if _cuda_xp is not None and isinstance(a, _cuda_xp.ndarray):
            return _cuda_xp
    return np


def is_device_array(a):
    return _cuda_xp is not None and isinstance(a, _cuda_xp.ndarray)


def device_of(a):
    """'cuda' for a device array, 'cpu' for anything else (numpy, scalars)."""
    return "cuda" if is_device_array(a) else "cpu"


def xp_for(device):
    """The array module that holds arrays on ``device``."""
    return cuda_xp() if normalize_device(device) == "cuda" else np


def to_device(a, device):
    """Return ``a`` as an array on ``device`` (no copy when already there)."""
    device = normalize_device(device)
    if device == "cuda":
        xp = cuda_xp()
        return a if isinstance(a, xp.ndarray) else xp.asarray(a)
    return to_numpy(a)


def to_numpy(a):
    """A host numpy array for ``a`` (the explicit device-to-host copy)."""
    if is_device_array(a):
        return _cuda_xp.asnumpy(a)
    return np.asarray(a)
