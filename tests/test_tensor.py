"""The engine's promises: accumulation, no_grad, deep graphs, freed graphs,
hooks, dtype rules and the errors a user can act on."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import tinynet as tn
from tinynet import backend


def test_reused_tensor_accumulates_gradients(device):
    x = tn.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    y = x * x + x * 3.0 + x        # x used four times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1, 2, 3]) + 4)


def test_grad_accumulates_across_backward_calls(device):
    x = tn.tensor([1.0, -1.0], requires_grad=True, device=device)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0])


def test_diamond_graph_sums_both_paths():
    a = tn.tensor(2.0, requires_grad=True)
    b = a * 3.0
    c = a * 4.0
    (b * c).backward()                # d(12 a^2)/da = 24 a
    assert a.grad.item() == pytest.approx(48.0)


def test_no_grad_records_nothing(device):
    w = tn.tensor(np.ones((3, 2)), requires_grad=True, dtype="float32", device=device)
    with tn.no_grad():
        y = (w * 2.0).sum()
    assert not y.requires_grad and y.creator is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert tn.is_grad_enabled()


def test_no_grad_as_decorator_and_enable_grad():
    w = tn.tensor([1.0], requires_grad=True)

    @tn.no_grad()
    def f():
        with tn.enable_grad():
            inner = w * 2.0
        return w * 2.0, inner
    outer, inner = f()
    assert not outer.requires_grad and inner.requires_grad


def test_ten_thousand_op_chain_backpropagates():
    x = tn.tensor(1.0, requires_grad=True, dtype="float64")
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_graph_is_freed_after_backward():
    w = tn.tensor(np.ones(4), requires_grad=True)
    loss = (w * 2.0).exp().sum()
    fn_ref = weakref.ref(loss.creator)
    loss.backward()
    del loss
    gc.collect()
    assert fn_ref() is None


def test_memory_does_not_grow_over_training_steps():
    rng = np.random.default_rng(0)
    w = tn.tensor(rng.standard_normal((64, 32)), requires_grad=True, dtype="float32")
    b = tn.tensor(np.zeros(32), requires_grad=True, dtype="float32")
    x = tn.tensor(rng.standard_normal((16, 64)), dtype="float32")

    def step():
        loss = ((x @ w + b).relu() ** 2).mean()
        loss.backward()
        with tn.no_grad():
            w.data -= 0.01 * w.grad.data
            b.data -= 0.01 * b.grad.data
        w.grad = b.grad = None

    for _ in range(50):
        step()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(1000):
        step()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 64 * 1024, f"memory grew by {after - before} bytes"


def test_backward_twice_through_freed_graph_raises():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_backward_on_non_scalar_needs_gradient():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    with pytest.raises(RuntimeError, match=r"shape \(2,\).*t.backward\(grad\)"):
        y.backward()
    y.backward(tn.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 30.0])


def test_backward_gradient_of_wrong_shape_raises():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\), expected .*\(2,\)"):
        (x * 2.0).backward(np.ones(3, dtype=np.float32))


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point.*int64"):
        tn.tensor([1, 2, 3], requires_grad=True)


def test_shapes_that_do_not_broadcast_raise_clear_error():
    a, b = tn.tensor(np.ones((2, 3))), tn.tensor(np.ones((4,)))
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) do not broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4,\) do not align"):
        a @ b


def test_mixing_float_dtypes_is_refused():
    a = tn.tensor(np.ones(3, dtype=np.float32))
    b = tn.tensor(np.ones(3, dtype=np.float64))
    with pytest.raises(TypeError, match="float32 and float64.*astype"):
        a * b


def test_float64_scalars_do_not_promote_float32(device):
    x = tn.tensor([1.0, 2.0], device=device)
    assert x.dtype == np.float32
    for y in (x * np.float64(2.5), np.float64(2.5) * x, x + 0.1, 1.0 / (x + 1.0), x ** 2.0,
              2.0 ** x, x - np.float64(1), x.mean(), x.exp().log()):
        assert y.dtype == np.float32
        assert y.device == device


def test_integer_operand_takes_float_dtype():
    x = tn.tensor([1.0, 2.0])
    mask = tn.tensor([1, 0])
    assert (x * mask).dtype == np.float32


def test_tensor_defaults():
    assert tn.tensor(1.5).dtype == np.float32
    assert tn.tensor([1, 2]).dtype == np.int64
    assert tn.tensor(np.ones(2)).dtype == np.float64          # arrays keep their dtype
    assert tn.tensor(np.ones(2), dtype="float32").dtype == np.float32
    src = np.zeros(3, dtype=np.float32)
    t = tn.tensor(src)
    src[0] = 5
    assert t.numpy()[0] == 0                                   # data is copied


def test_device_mismatch_names_both_devices(strict_device):
    a = tn.tensor([1.0, 2.0], device="cpu")
    b = tn.tensor([1.0, 2.0], device=strict_device)
    with pytest.raises(tn.DeviceError, match="different devices.*cpu.*cuda"):
        a + b


def test_to_device_round_trip_is_differentiable(strict_device):
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(strict_device)
    assert y.device == "cuda" and backend.is_device_array(y.data)
    z = (y * y).sum()
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    assert y.to("cpu").device == "cpu"


def test_cuda_without_gpu_says_how_to_install():
    with backend.install_cuda(None):
        with pytest.raises(tn.DeviceError, match=r'pip install "tinynet\[gpu\]".*'
                                                  r'pip install -e "\.\[gpu\]"'):
            tn.tensor([1.0], device="cuda")
    with pytest.raises(tn.DeviceError, match="unknown device 'tpu'"):
        tn.tensor([1.0], device="tpu")


def test_hooks_see_and_can_replace_gradients():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy()))
    handle = x.register_hook(lambda g: g * 0.0 + 7.0)
    h.sum().backward()
    np.testing.assert_array_equal(seen[0], [1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])
    handle.remove()
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_retain_grad_keeps_intermediate_gradient():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 2.0).retain_grad()
    assert h.retains_grad and not x.retains_grad
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [4.0, 8.0])


def test_retains_grad_is_public_state_and_the_old_name_still_works():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    h.retains_grad = True                     # what diagnose.trace sets and restores
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [4.0, 8.0])
    g = x * 3.0
    g._retain_grad = True                     # the pre-0.2 private name is an alias
    assert g.retains_grad
    g.retains_grad = False
    assert not g._retain_grad
    g.sum().backward()
    assert g.grad is None


def test_backward_loop_stays_short():
    """The algorithm itself reads in one screen beside micrograd's (issue: ~20 lines)."""
    import inspect
    src = inspect.getsource(tn.Tensor.backward)
    body = [line for line in src.split('"""')[-1].splitlines()
            if line.strip() and not line.strip().startswith("#")]
    assert len(body) <= 20, "\n".join(body)


def test_manual_seed_repeats_bit_for_bit():
    from tinynet.random import host_rng
    tn.manual_seed(7)
    a = host_rng().standard_normal(5)
    tn.manual_seed(7)
    b = host_rng().standard_normal(5)
    np.testing.assert_array_equal(a, b)


def test_item_numpy_detach_repr():
    x = tn.tensor([[1.0, 2.0]], requires_grad=True)
    assert (x.sum()).item() == 3.0
    assert isinstance(x.numpy(), np.ndarray)
    d = x.detach()
    assert not d.requires_grad and d.creator is None
    assert "requires_grad=True" in repr(x)
    with pytest.raises(ValueError, match="one element"):
        x.item()
