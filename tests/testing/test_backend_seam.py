"""backend.install_cuda: the one place that decides what stands behind "cuda"."""
import subprocess
import sys

import numpy as np
import pytest

import tinynet as tn
from tinynet import backend
from tinynet.testing import strict_cupy


def test_strict_standin_inside_with_and_the_previous_choice_after():
    before = backend.cuda_info()
    with backend.install_cuda("strict") as token:
        assert isinstance(token, backend.CudaInstall)
        assert backend.cuda_info() == ("strict", True, None)
        x = tn.tensor([1.0, 2.0], device="cuda")
        assert type(x.data) is strict_cupy.ndarray and x.device == "cuda"
    assert backend.cuda_info() == before


def test_none_means_no_cuda_with_the_install_hint():
    with backend.install_cuda(None):
        info = backend.cuda_info()
        assert info.source is None and not info.available and "install_cuda(None)" in info.reason
        assert not tn.cuda_available()
        with pytest.raises(tn.DeviceError, match="not available.*pip install"):
            tn.tensor([1.0], device="cuda")


def test_nested_choices_unwind_in_order_and_restore_works_without_with():
    outer = backend.install_cuda("strict")
    try:
        inner = backend.install_cuda(None)
        assert not backend.cuda_available()
        inner.restore()
        assert backend.cuda_info().source == "strict"
    finally:
        outer.restore()
    assert backend.cuda_info().source == "cupy"


def test_a_module_object_with_cupys_api_can_be_installed():
    with backend.install_cuda(strict_cupy):
        assert backend.cuda_info().source == "tinynet.testing.strict_cupy"
        assert backend.xp_for("cuda") is strict_cupy


def test_anything_else_is_refused_before_changing_anything():
    before = backend.cuda_info()
    with pytest.raises(ValueError, match="install_cuda: expected 'cupy', 'strict', None"):
        backend.install_cuda("torch")
    with pytest.raises(ValueError, match="install_cuda"):
        backend.install_cuda(np.linalg)           # a module without ndarray/asnumpy
    assert backend.cuda_info() == before


def test_may_share_memory_is_false_across_devices(strict_device):
    host = np.arange(4.0)
    dev = strict_cupy.asarray(host)
    assert not backend.may_share_memory(host, dev)
    assert backend.may_share_memory(dev, dev[1:]) and not backend.may_share_memory(dev, dev + 0)
    assert backend.may_share_memory(host, host[::2]) and not backend.may_share_memory(host, host.copy())


def test_importing_the_product_does_not_import_the_test_helpers():
    code = ("import sys, tinynet as tn; from tinynet import nn, optim, init, train, diagnose; "
            "import tinynet.nn.functional; tn.tensor([1.0]) * 2.0; "
            "print('tinynet.testing' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
