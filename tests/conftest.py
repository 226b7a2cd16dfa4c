"""Shared fixtures: every device test runs on numpy, through the strict CuPy
stand-in, and on real CuPy when a GPU is present (skipped otherwise, with
the reason)."""
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tinynet import backend

# The device fixture only selects an array module; it holds no per-example
# state, so sharing it across hypothesis examples is safe.
settings.register_profile(
    "tinynet", deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile("tinynet")

REPO = Path(__file__).resolve().parents[1]


def _real_cuda_skip_reason():
    info = backend.cuda_info()
    if info.source != "cupy":
        return f"'cuda' is backed by {info.source!r}, not CuPy; real-CuPy runs are skipped"
    return None if info.available else (
        f"no GPU with CuPy here ({info.reason}); real-CuPy runs are skipped")


@pytest.fixture(params=["cpu", "strict", "cuda"])
def device(request):
    """'cpu' (numpy), 'strict' (the strict CuPy stand-in as "cuda"), or real 'cuda'."""
    kind = request.param
    if kind == "cpu":
        yield "cpu"
    elif kind == "strict":
        with backend.install_cuda("strict"):
            yield "cuda"
    else:
        reason = _real_cuda_skip_reason()
        if reason:
            pytest.skip(reason)
        yield "cuda"


@pytest.fixture
def strict_device():
    """The strict stand-in as "cuda", for tests that are only about device rules."""
    with backend.install_cuda("strict"):
        yield "cuda"


@pytest.fixture
def mnist_dir():
    """The folder with the real MNIST test split, or skip."""
    env = os.environ.get("TINYNET_MNIST_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "mnist")
    for c in candidates:
        if (c / "t10k-images-idx3-ubyte.gz").exists() or (c / "t10k-images-idx3-ubyte").exists():
            return c
    pytest.skip("real MNIST test split not found (set TINYNET_MNIST_DIR)")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# Skips summarized by reason, one line each (tests/_skip_summary.py).
from _skip_summary import pytest_terminal_summary  # noqa: E402,F401
