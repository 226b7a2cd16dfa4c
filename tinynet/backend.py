"""Array backends: NumPy on "cpu", CuPy on "cuda".

Every op is written once against an array module ``xp`` that it gets from
its operands with :func:`array_module`; this is the only module in tinynet
that imports cupy.

What stands behind "cuda" is chosen in ONE place, :func:`install_cuda`:
real CuPy by default (imported on first use), the strict stand-in
(:mod:`tinynet.testing.strict_cupy`, which refuses host/device mixing the way
CuPy does) in the test suite on machines without a GPU, or nothing at all
(to test the "no GPU here" path)::

    with backend.install_cuda("strict"):
        x = tn.tensor([1.0], device="cuda")      # a strict_cupy array
"""
import collections

import numpy as np

_cuda_source = "cupy"    # what install_cuda() was last given
_cuda_xp = None          # the module behind "cuda", once loaded
_cupy_failure = None     # why "cuda" has no module (for error messages)

# Quoted: an unquoted .[gpu] is a glob pattern in zsh.
INSTALL_HINT = (
    'install the GPU extra with `pip install "tinynet[gpu]"` (in a checkout: '
    '`pip install -e ".[gpu]"`; it brings CuPy for CUDA 12, cupy-cuda12x) on a machine '
    'with an NVIDIA GPU'
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


# --------------------------------------------------------------------------
# the one injection point for "cuda"
# --------------------------------------------------------------------------
class CudaInstall:
    """What :func:`install_cuda` returns: restores the previous choice.

    Use it as a context manager (``with install_cuda("strict"): ...``) or
    call ``.restore()``; either way the choice made before is put back.
    """

    def __init__(self, previous):
        self._previous = previous

    def restore(self):
        global _cuda_source, _cuda_xp, _cupy_failure
        _cuda_source, _cuda_xp, _cupy_failure = self._previous

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()
        return False


def install_cuda(module="cupy"):
    """Choose the array module behind the "cuda" device.

    ``module``:
      * ``"cupy"`` -- real CuPy, imported on first use (the default);
      * ``"strict"`` -- the strict stand-in :mod:`tinynet.testing.strict_cupy`
        (numpy underneath, CuPy's rules on top), for tests without a GPU;
      * ``None`` -- no "cuda" at all, as on a machine without a GPU;
      * a module object with CuPy's API (``ndarray``, ``asnumpy``, ...).

    Returns a :class:`CudaInstall` that puts the previous choice back.
    Arrays made under one choice are not converted by the next.
    """
    global _cuda_source, _cuda_xp, _cupy_failure
    token = CudaInstall((_cuda_source, _cuda_xp, _cupy_failure))
    if module == "cupy":
        _cuda_source, _cuda_xp, _cupy_failure = "cupy", None, None
    elif module == "strict":
        from tinynet.testing import strict_cupy
        _cuda_source, _cuda_xp, _cupy_failure = "strict", strict_cupy, None
    elif module is None:
        _cuda_source, _cuda_xp = None, None
        _cupy_failure = "disabled with backend.install_cuda(None)"
    elif hasattr(module, "ndarray") and hasattr(module, "asnumpy"):
        _cuda_source, _cuda_xp, _cupy_failure = module.__name__, module, None
    else:
        raise ValueError(f"install_cuda: expected 'cupy', 'strict', None or a module with "
                         f"CuPy's API (ndarray, asnumpy), got {module!r}")
    return token


CudaInfo = collections.namedtuple("CudaInfo", "source available reason")
CudaInfo.__doc__ = """What backs "cuda": ``source`` ("cupy", "strict", None or a module
name, as given to install_cuda), ``available`` (bool) and ``reason`` (why
not, or None)."""


def cuda_info():
    """A :data:`CudaInfo` for the "cuda" device (loads CuPy if it is the source)."""
    available = cuda_available()
    return CudaInfo(_cuda_source, available, None if available else _cupy_failure)


def cuda_xp():
    """The array module behind "cuda"; raises DeviceError if there is none."""
    global _cuda_xp
    if _cuda_xp is None and _cuda_source == "cupy":
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


# --------------------------------------------------------------------------
# devices and arrays
# --------------------------------------------------------------------------
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


def is_array(a):
    """True for a numpy array or an array of the "cuda" module."""
    return isinstance(a, np.ndarray) or is_device_array(a)



def may_share_memory(a, b):
    """True if arrays ``a`` and ``b`` might overlap (a bounds check, no scan of values).

    Arrays on different devices never do.
    """
    if is_device_array(a) != is_device_array(b):
        return False
    return bool(array_module(a).may_share_memory(a, b))
