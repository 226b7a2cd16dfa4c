"""conv2d: forward against a direct loop, gradients against central differences.

Every test runs on numpy, through the strict CuPy stand-in (which raises on
any implicit device -> host conversion, so a passing gradcheck there proves
forward and backward never leave the device) and on real CuPy when present.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinynet as tn
from tinynet import backend
from tinynet.ops import conv as conv_module
from tinynet.ops.conv import col2im, conv2d, im2col, same_padding
from tinynet.ops.pool import max_pool2d

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def conv_reference(x, w, b, stride, pads):
    """The definition, one output pixel at a time (float64)."""
    (SH, SW), (PT, PB, PL, PR) = stride, pads
    xpad = np.pad(x, ((0, 0), (0, 0), (PT, PB), (PL, PR)))
    O, C, KH, KW = w.shape
    OH = (xpad.shape[2] - KH) // SH + 1
    OW = (xpad.shape[3] - KW) // SW + 1
    y = np.zeros((x.shape[0], O, OH, OW))
    for i in range(OH):
        for j in range(OW):
            patch = xpad[:, :, i * SH:i * SH + KH, j * SW:j * SW + KW]
            y[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    if b is not None:
        y += b[None, :, None, None]
    return y


def expected_pads(padding, H, W, KH, KW, stride):
    """(PT, PB, PL, PR) that conv2d should use, written out independently."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":           # TensorFlow: output ceil(H/S), extra pixel bottom/right
        pads = []
        for size, k, s in ((H, KH, stride[0]), (W, KW, stride[1])):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    if isinstance(padding, int):
        return (padding,) * 4
    return (padding[0], padding[0], padding[1], padding[1])


def as_input(arr, device, requires_grad=True):
    return tn.tensor(arr, requires_grad=requires_grad, dtype=np.float64, device=device)


@st.composite
def conv_cases(draw):
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.sampled_from([1, 2, (1, 2), (2, 1)]))
    padding = draw(st.sampled_from([0, 1, 2, (1, 0), "same", "valid"]))
    S = (stride, stride) if isinstance(stride, int) else stride
    P = (padding, padding) if isinstance(padding, int) else padding
    if isinstance(padding, str):
        P = (0, 0)
    if isinstance(padding, (int, tuple)) and (P[0] >= KH or P[1] >= KW):
        padding, P = 0, (0, 0)         # keep the padding smaller than the kernel
    H = draw(st.integers(max(KH - 2 * P[0], 1), 7))
    W = draw(st.integers(max(KW - 2 * P[1], 1), 7))
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)), O=draw(st.integers(1, 3)),
                H=H, W=W, KH=KH, KW=KW, stride=S, padding=padding,
                bias=draw(st.booleans()), grads=draw(st.sampled_from(["all", "no x", "no w"])),
                seed=draw(st.integers(0, 2**16)))


def case_inputs(c, device):
    """(x, w, b arrays, the expected padding, the input Tensors, the conv as a function)."""
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    w = rng.standard_normal((c["O"], c["C"], c["KH"], c["KW"]))
    b = rng.standard_normal(c["O"]) if c["bias"] else None
    pads = expected_pads(c["padding"], c["H"], c["W"], c["KH"], c["KW"], c["stride"])
    inputs = [as_input(x, device, c["grads"] != "no x"), as_input(w, device, c["grads"] != "no w")]
    if b is not None:
        inputs.append(as_input(b, device))

    def fn(*ts):
        return conv2d(*ts, stride=c["stride"], padding=c["padding"])
    return (x, w, b), pads, inputs, fn


@SETTINGS
@given(case=conv_cases())
def test_conv2d_matches_reference_and_gradchecks(case, device):
    c = case
    (x, w, b), pads, inputs, fn = case_inputs(c, device)
    y = fn(*inputs)
    ref = conv_reference(x, w, b, c["stride"], pads)
    assert y.shape == ref.shape
    if c["padding"] == "same":
        assert y.shape[2:] == (-(-c["H"] // c["stride"][0]), -(-c["W"] // c["stride"][1]))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)
    assert tn.gradcheck(fn, inputs)
    for t in inputs:
        y = fn(*inputs)
        y.sum().backward()
        assert (t.grad is None) == (not t.requires_grad)
        t.grad = None


@pytest.mark.parametrize("bands", ["as chosen", "one column each"])
@pytest.mark.parametrize("stride,padding", [
    (1, 1), (1, "same"), ((2, 1), (2, 0)), (1, (2, 0, 0, 1)), ((3, 1), (0, 1, 1, 0))])
def test_dx_by_rows_equals_col2im_route(stride, padding, bands, device, monkeypatch):
    """With a horizontal stride of 1, backward takes Conv2D._dx_rows; it must
    give exactly what the general route, col2im(W2ᵀ @ g2), gives -- on the CPU
    also when every column of dx is a band of its own, built one row of g at a
    time."""
    if bands != "as chosen":
        monkeypatch.setattr(conv_module, "DX_BAND_BYTES", 1)
    rng = np.random.default_rng(9)
    x = as_input(rng.standard_normal((2, 3, 7, 6)), device)
    w = rng.standard_normal((4, 3, 3, 2))
    y = conv2d(x, as_input(w, device), stride=stride, padding=padding)
    g = rng.standard_normal(y.shape)
    y.backward(tn.tensor(g, dtype=np.float64, device=device))
    fn_stride = (stride, stride) if isinstance(stride, int) else stride
    pads = padding if isinstance(padding, tuple) and len(padding) == 4 else \
        expected_pads(padding, 7, 6, 3, 2, fn_stride)
    dcols = w.reshape(4, -1).T @ g.transpose(1, 0, 2, 3).reshape(4, -1)
    expected = col2im(dcols, x.shape, 3, 2, fn_stride, pads)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_gradcheck_first_layer_skips_dx(stride, device, monkeypatch):
    """x without requires_grad: dW and db are right, and dx is never computed
    (neither by col2im nor by the stride-1 route)."""
    rng = np.random.default_rng(0)
    x = as_input(rng.standard_normal((2, 1, 6, 6)), device, requires_grad=False)
    w = as_input(rng.standard_normal((3, 1, 3, 3)), device)
    b = as_input(rng.standard_normal(3), device)

    def boom(*args, **kwargs):
        raise AssertionError("dx was computed although the input does not require grad")
    monkeypatch.setattr(conv_module, "col2im", boom)
    monkeypatch.setattr(conv_module.Conv2D, "_dx_rows", boom)
    assert tn.gradcheck(lambda *ts: conv2d(*ts, stride=stride, padding="same"), [x, w, b])
    assert x.grad is None


@pytest.mark.parametrize("H,K,S,pads", [
    (5, 2, 1, (0, 1)),     # even kernel: the extra pixel goes bottom/right
    (7, 3, 2, (1, 1)),
    (6, 3, 2, (0, 1)),
    (6, 1, 2, (0, 0)),
    (4, 4, 1, (1, 2)),
    (28, 5, 1, (2, 2)),
])
def test_same_padding_follows_tensorflow(H, K, S, pads):
    assert same_padding(H, H, K, K, S) == pads + pads


def test_even_kernel_same_padding_against_torch(device):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    cases = [((6, 5), (2, 4), 1), ((7, 8), (4, 3), 2), ((5, 5), (2, 2), (2, 1))]
    for (H, W), (KH, KW), stride in cases:
        x, w = rng.standard_normal((2, 3, H, W)), rng.standard_normal((4, 3, KH, KW))
        b = rng.standard_normal(4)
        S = (stride, stride) if isinstance(stride, int) else stride
        PT, PB, PL, PR = expected_pads("same", H, W, KH, KW, S)
        tx = torch.tensor(x, requires_grad=True)
        tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        ty = F.conv2d(F.pad(tx, (PL, PR, PT, PB)), tw, tb, stride=S)
        g = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.tensor(g))
        X, Wt, B = as_input(x, device), as_input(w, device), as_input(b, device)
        y = conv2d(X, Wt, B, stride=stride, padding="same")
        y.backward(tn.tensor(g, dtype=np.float64, device=device))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
        for mine, theirs in ((X, tx), (Wt, tw), (B, tb)):
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10,
                                       atol=1e-10)


def test_float32_stays_float32_and_on_device(device):
    rng = np.random.default_rng(2)
    x = tn.tensor(rng.standard_normal((4, 2, 9, 9)).astype(np.float32), device=device,
                  requires_grad=True)
    w = tn.tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), device=device,
                  requires_grad=True)
    b = tn.tensor(np.zeros(3, np.float32), device=device, requires_grad=True)
    y = conv2d(x, w, b, stride=2, padding="same")
    assert y.dtype == np.float32 and y.device == device
    (y * y).sum().backward()
    for t in (x, w, b):
        assert t.grad.dtype == np.float32 and t.grad.device == device
    ref = conv_reference(x.numpy().astype(np.float64), w.numpy().astype(np.float64), None,
                         (2, 2), expected_pads("same", 9, 9, 3, 3, (2, 2)))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_backward_never_leaves_the_device(strict_device):
    """On the strict stand-in any implicit host conversion raises, so this
    passing proves forward and backward stay on the device; gradients are
    device arrays."""
    rng = np.random.default_rng(3)
    x = tn.tensor(rng.standard_normal((2, 2, 5, 6)), device=strict_device, requires_grad=True)
    w = tn.tensor(rng.standard_normal((3, 2, 2, 3)), device=strict_device, requires_grad=True)
    b = tn.tensor(rng.standard_normal(3), device=strict_device, requires_grad=True)
    assert tn.gradcheck(lambda *ts: conv2d(*ts, stride=(2, 1), padding=(1, 0)), [x, w, b])
    y = conv2d(x, w, b, padding="same")
    y.sum().backward()
    assert all(backend.is_device_array(t.grad.data) for t in (x, w, b))


def test_second_backward_with_retain_graph_rebuilds_cols(device):
    _second_backward_doubles_the_gradients(device)


def _second_backward_doubles_the_gradients(device):
    rng = np.random.default_rng(4)
    x = as_input(rng.standard_normal((2, 2, 5, 5)), device)
    w = as_input(rng.standard_normal((2, 2, 3, 3)), device)
    y = conv2d(x, w, padding=1)
    y.sum().backward(retain_graph=True)
    gx, gw = x.grad.numpy(), w.grad.numpy()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * gx)
    np.testing.assert_allclose(w.grad.numpy(), 2 * gw)


def test_repeated_and_interleaved_steps_give_identical_gradients(device):
    """The im2col buffers are recycled between steps (conv.workspace): two
    graphs alive at once must not share one, and a step repeated must give
    bit-identical gradients."""
    rng = np.random.default_rng(6)
    xs = [tn.tensor(rng.standard_normal((3, 2, 6, 6)).astype(np.float32), device=device,
                    requires_grad=True) for _ in range(2)]
    w = tn.tensor(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), device=device,
                  requires_grad=True)

    def grads(x):
        x.grad = w.grad = None
        (conv2d(x, w, padding="same") ** 2).sum().backward()
        return x.grad.numpy(), w.grad.numpy()

    alone = [grads(x) for x in xs]
    assert all(np.array_equal(a, b) for a, b in zip(alone[0], grads(xs[0])))
    for x in xs:
        x.grad = None
    w.grad = None
    ys = [(conv2d(x, w, padding="same") ** 2).sum() for x in xs]   # both graphs alive
    ys[1].backward()
    ys[0].backward()
    for x, (gx, _) in zip(xs, alone):
        np.testing.assert_array_equal(x.grad.numpy(), gx)
    np.testing.assert_allclose(w.grad.numpy(), alone[0][1] + alone[1][1], rtol=1e-5)


def test_workspace_reuses_buffers_and_respects_its_limit():
    ws = conv_module.Workspace(max_bytes=3 * 800)
    a = ws.empty(np, (10, 20), np.float32)                  # 800 bytes
    ws.give_back(a)
    assert ws.bytes == 800 and ws.empty(np, (10, 20), np.float32) is a and ws.bytes == 0
    ws.give_back(a[:5])                                     # a view: never kept
    ws.give_back(np.empty((20, 10), np.float32).T)          # not C-contiguous: not kept
    assert ws.bytes == 0
    bufs = [np.empty((10, 20), np.float32) for _ in range(4)]
    for b in bufs:
        ws.give_back(b)
    assert ws.bytes == 3 * 800                              # the oldest was evicted
    assert ws.empty(np, (10, 20), np.float32) is bufs[3]
    ws.clear()
    assert ws.bytes == 0 and ws.empty(np, (10, 20), np.float32) is not bufs[2]


def test_training_steps_do_not_grow_the_workspace(device):
    rng = np.random.default_rng(7)
    x = tn.tensor(rng.standard_normal((4, 3, 10, 10)).astype(np.float32), device=device)
    w1 = tn.tensor(rng.standard_normal((5, 3, 3, 3)).astype(np.float32), device=device,
                   requires_grad=True)
    w2 = tn.tensor(rng.standard_normal((2, 5, 5, 5)).astype(np.float32), device=device,
                   requires_grad=True)
    sizes = []
    for _ in range(4):
        h = max_pool2d(conv2d(x, w1, padding="same").relu(), 2)
        conv2d(h, w2, padding="same").sum().backward()
        sizes.append(conv_module.workspace.bytes)
    assert sizes[1] == sizes[2] == sizes[3]


def test_stacked_layers_gradcheck(device):
    """conv -> relu -> pool -> conv: the output of conv2d is a transposed view,
    and the next ops must take any memory layout."""
    rng = np.random.default_rng(5)
    x = as_input(rng.standard_normal((2, 1, 8, 8)), device, requires_grad=False)
    w1 = as_input(rng.standard_normal((3, 1, 3, 3)), device)
    w2 = as_input(rng.standard_normal((2, 3, 2, 2)), device)
    b2 = as_input(rng.standard_normal(2), device)

    def net(x, w1, w2, b2):
        h = max_pool2d(conv2d(x, w1, padding="same").relu(), 2)
        return conv2d(h, w2, b2, padding="same")
    assert tn.gradcheck(net, [x, w1, w2, b2])


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(3, 7), W=st.integers(3, 7),
       KH=st.integers(1, 3), KW=st.integers(1, 3), SH=st.integers(1, 3), SW=st.integers(1, 3),
       pad=st.tuples(*[st.integers(0, 2)] * 4), seed=st.integers(0, 2**16))
def test_col2im_is_the_adjoint_of_im2col(N, C, H, W, KH, KW, SH, SW, pad, seed):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: col2im sums overlaps exactly."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    cols = im2col(x, KH, KW, (SH, SW), pad)
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, KH, KW, (SH, SW), pad)
    assert back.shape == x.shape
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-10)


def test_im2col_layout():
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float64).reshape(2, 1, 3, 3)
    cols = im2col(x, 2, 2, 1, 0)
    assert cols.shape == (4, 2 * 2 * 2)       # rows (c, kh, kw); columns (n, oh, ow)
    np.testing.assert_array_equal(cols[:, 0], [0, 1, 3, 4])
    np.testing.assert_array_equal(cols[:, 5], [10, 11, 13, 14])
    np.testing.assert_array_equal(cols[0], [0, 1, 3, 4, 9, 10, 12, 13])


# ---------------------------------------------------------------- errors
def _t(shape, dtype=np.float32, device="cpu"):
    return tn.tensor(np.zeros(shape, dtype), device=device)


def test_error_input_not_4d_mentions_nchw_and_mnist():
    with pytest.raises(ValueError, match=r"conv2d: input must be 4-D .*NCHW.*got shape "
                                         r"\(8, 784\).*\(N, 1, 28, 28\)"):
        conv2d(_t((8, 784)), _t((4, 1, 3, 3)))


def test_error_weight_not_4d():
    with pytest.raises(ValueError, match=r"conv2d: weight must be 4-D \(O, C, KH, KW\), "
                                         r"got shape \(4, 3, 3\)"):
        conv2d(_t((2, 1, 5, 5)), _t((4, 3, 3)))


def test_error_channel_mismatch():
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but the weight "
                                         r"expects 1 \(weight shape \(O, C, KH, KW\) = "
                                         r"\(4, 1, 3, 3\)"):
        conv2d(_t((2, 3, 5, 5)), _t((4, 1, 3, 3)))


def test_error_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel 5x5 is larger than the padded "
                                         r"input 3x3"):
        conv2d(_t((1, 1, 3, 3)), _t((2, 1, 5, 5)))
    conv2d(_t((1, 1, 3, 3)), _t((2, 1, 5, 5)), padding=1)      # 5x5 padded: fits


def test_error_bias_shape():
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(O,\) = \(4,\).*"
                                         r"got shape \(1, 4\)"):
        conv2d(_t((1, 1, 5, 5)), _t((4, 1, 3, 3)), _t((1, 4)))


def test_error_dtype_mismatch_is_never_promoted():
    with pytest.raises(TypeError, match=r"conv2d: input has dtype float64 but the weight "
                                        r"has float32"):
        conv2d(_t((1, 1, 5, 5), np.float64), _t((4, 1, 3, 3)))
    with pytest.raises(TypeError, match=r"conv2d: bias has dtype float64"):
        conv2d(_t((1, 1, 5, 5)), _t((4, 1, 3, 3)), _t((4,), np.float64))


def test_integer_images_are_cast_to_the_weight_dtype():
    x = tn.tensor(np.full((1, 1, 4, 4), 2, np.uint8))
    y = conv2d(x, tn.tensor(np.ones((1, 1, 2, 2), np.float32)))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), np.full((1, 1, 3, 3), 8.0))


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(padding="full"), r"conv2d: padding must be .*'same' or 'valid', got 'full'"),
    (dict(padding=-1), r"conv2d: padding must not be negative"),
    (dict(padding=(1, 2, 3)), r"conv2d: padding must be"),
    (dict(stride=0), r"conv2d: stride must be an integer >= 1 or a pair of them, got 0"),
    (dict(stride=(1, 2, 3)), r"conv2d: stride must be"),
])
def test_error_bad_stride_or_padding(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        conv2d(_t((1, 1, 5, 5)), _t((2, 1, 3, 3)), **kwargs)


def test_error_device_mismatch(strict_device):
    with pytest.raises(tn.DeviceError, match=r"Conv2D: operands are on different devices"):
        conv2d(_t((1, 1, 5, 5), device=strict_device), _t((2, 1, 3, 3)))


# --------------------------------------------------------------------------
# the streamed CPU path: a patch matrix larger than the caches is never written
# out whole (ops/_im2col.py: pair_chunks, fill_chunk).  The tests force it on
# small shapes, with chunks that cut rows as well as chunks of whole rows.
# --------------------------------------------------------------------------
from tinynet.ops import _im2col as im2col_module  # noqa: E402


@pytest.fixture(params=[64, 700, 1 << 20], ids=["parts-of-rows", "rows", "one-chunk"])
def streamed(request, monkeypatch):
    monkeypatch.setattr(conv_module, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(im2col_module, "CHUNK_BYTES", request.param)
    return request.param


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_cases())
def test_streamed_conv2d_matches_reference_and_gradchecks(case, streamed):
    (x, w, b), pads, inputs, fn = case_inputs(case, "cpu")
    c = case
    y = fn(*inputs)
    assert y.creator.streamed
    np.testing.assert_allclose(y.numpy(), conv_reference(x, w, b, c["stride"], pads),
                               rtol=1e-10, atol=1e-10)
    assert tn.gradcheck(fn, inputs)


def test_streamed_and_kept_patch_matrix_give_the_same_gradients(monkeypatch):
    """float32, a conv of the seed-001 kind (shrunk): both CPU routes agree to
    rounding (they sum dW in different groupings) and give the same forward."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4, 5, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    g = rng.standard_normal((6, 5, 9, 9)).astype(np.float32)
    out = {}
    for stream in (False, True):
        monkeypatch.setattr(conv_module, "STREAM_MIN_BYTES", 0 if stream else 1 << 40)
        monkeypatch.setattr(im2col_module, "CHUNK_BYTES", 2000)
        ts = [tn.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = conv2d(*ts, padding="same")
        assert y.creator.streamed is stream
        y.backward(tn.tensor(g))
        out[stream] = [y.numpy()] + [t.grad.numpy() for t in ts]
    for kept, streamed_ in zip(out[False], out[True]):
        np.testing.assert_allclose(streamed_, kept, rtol=2e-5, atol=2e-5)


def test_streamed_conv_is_bit_identical_for_any_thread_count(monkeypatch):
    monkeypatch.setattr(conv_module, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(im2col_module, "CHUNK_BYTES", 3000)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    before = tn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            tn.set_num_threads(threads)
            ts = [tn.tensor(x, requires_grad=True), tn.tensor(w, requires_grad=True)]
            y = conv2d(*ts, padding=1)
            (y * y).sum().backward()
            results.append([y.numpy().tobytes()] + [t.grad.numpy().tobytes() for t in ts])
    finally:
        tn.set_num_threads(before)
    assert results[0] == results[1] == results[2]


def test_streamed_second_backward_rebuilds_from_the_input(streamed):
    _second_backward_doubles_the_gradients("cpu")
