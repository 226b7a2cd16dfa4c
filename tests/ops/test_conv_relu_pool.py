"""ops/conv_relu_pool.py: Conv2D -> ReLU -> 2x2 max pool as one op.

Held to the truth three ways: the same bits as the three ops run one after
the other (float32, with ties: all-zero and all-negative windows, equal
maxima; both CPU routes), its readable twin ``conv2d_relu_maxpool_simple`` (float64, values and
gradients), and float64 central differences (gradcheck) -- on both CPU routes
of the conv (patch matrix kept, stride-1 row route, or streamed in chunks) and for any thread
count.  On the GPU (strict stand-in) the op runs as the three ops."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinynet as tn
import tinynet.nn.functional as F
from tinynet.ops import _conv_rows, _im2col, conv as conv_module
from tinynet.ops.conv_relu_pool import Conv2DReLUPool, conv2d_relu_maxpool

from test_conv_rows import finest_tiles

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["kept", "rows", "rows-finest-tiles", "streamed-parts-of-rows",
                        "streamed-rows"])
def route(request, monkeypatch):
    if request.param.startswith("rows"):  # the stride-1 row route on these small shapes
        monkeypatch.setattr(_conv_rows, "ROWS_MIN_K", 1)
        if request.param == "rows-finest-tiles":  # pooled: row pairs; conv alone: single rows
            monkeypatch.setattr(_conv_rows, "tiles", finest_tiles)
    elif request.param.startswith("streamed"):
        monkeypatch.setattr(conv_module, "STREAM_MIN_BYTES", 0)
        monkeypatch.setattr(_im2col, "CHUNK_BYTES",
                            64 if request.param.endswith("parts-of-rows") else 4000)
    return request.param


cases = st.fixed_dictionaries(dict(
    N=st.integers(1, 3), C=st.integers(1, 3), O=st.integers(1, 4),
    H=st.integers(2, 9), W=st.integers(2, 9), K=st.integers(1, 3),
    stride=st.sampled_from([1, 2, (1, 2)]), padding=st.sampled_from([0, 1, "same"]),
    bias=st.booleans(), ties=st.sampled_from(["none", "quantized", "dead"]),
    seed=st.integers(0, 2**16)))


def _arrays(c, dtype):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["N"], c["C"], c["H"], c["W"]))
    w = rng.standard_normal((c["O"], c["C"], c["K"], c["K"]))
    b = rng.standard_normal(c["O"]) if c["bias"] else None
    if c["ties"] == "quantized":          # few distinct values: equal maxima in windows
        x, w = np.round(x), np.round(w)
        b = None if b is None else np.round(b)
    elif c["ties"] == "dead":             # channel 0 never > 0: all-zero windows after ReLU
        b = np.zeros(c["O"]) if b is None else b
        b[0] = -1e3
    return [a.astype(dtype) for a in (x, w) + ((b,) if b is not None else ())]


def _fits(c):
    stride = (c["stride"],) * 2 if isinstance(c["stride"], int) else c["stride"]
    pad = c["padding"]
    if pad == "same":
        oh, ow = -(-c["H"] // stride[0]), -(-c["W"] // stride[1])
    else:
        oh = (c["H"] + 2 * pad - c["K"]) // stride[0] + 1
        ow = (c["W"] + 2 * pad - c["K"]) // stride[1] + 1
    return oh >= 2 and ow >= 2           # a 2x2 window fits (else both routes raise alike)


def _run(fn, arrays, g_seed):
    ts = [tn.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    g = np.random.default_rng(g_seed).standard_normal(y.shape).astype(arrays[0].dtype)
    y.backward(tn.tensor(g))
    return y, [y.numpy()] + [t.grad.numpy() for t in ts]


@SETTINGS
@given(c=cases)
def test_the_same_bits_as_conv_relu_pool_one_by_one(c, route):
    if not _fits(c):
        return
    arrays = _arrays(c, np.float32)
    kw = dict(stride=c["stride"], padding=c["padding"])
    y = conv2d_relu_maxpool(*[tn.tensor(a, requires_grad=True) for a in arrays], **kw)
    if type(y.creator) is Conv2DReLUPool:   # the route the fixture asked for really runs
        stride_1 = c["stride"] in (1, (1, 1))
        expected = {"kept": "kept", "rows": "rows" if stride_1 else "kept",
                    "rows-finest-tiles": "rows" if stride_1 else "kept"}.get(route, "streamed")
        assert y.creator.route == expected
    _, fused = _run(lambda *t: conv2d_relu_maxpool(*t, **kw), arrays, c["seed"])
    _, plain = _run(lambda *t: F.max_pool2d(F.relu(F.conv2d(*t, **kw)), 2), arrays, c["seed"])
    for a, b in zip(fused, plain):
        # both routes cut the output pixels into the same chunks (ops/_im2col.py) or
        # the same column bands of tiles (ops/_conv_rows.py), so every matrix product
        # is the same call: the same bits on any BLAS
        assert a.shape == b.shape and a.tobytes() == b.tobytes()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=cases)
def test_twin_and_gradcheck(c, route):
    if not _fits(c):
        return
    arrays = _arrays(c, np.float64)
    kw = dict(stride=c["stride"], padding=c["padding"])
    _, fast = _run(lambda *t: conv2d_relu_maxpool(*t, **kw), arrays, c["seed"])
    _, simple = _run(lambda *t: F.conv2d_relu_maxpool_simple(*t, **kw), arrays, c["seed"])
    for a, b in zip(fast, simple):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    if c["ties"] == "none":               # central differences need no ties at the max
        ts = [tn.tensor(a, requires_grad=True) for a in arrays]
        assert tn.gradcheck(lambda *t: conv2d_relu_maxpool(*t, **kw), ts)


def test_the_fused_op_really_runs_and_odd_sizes_fall_back():
    rng = np.random.default_rng(0)
    w = tn.tensor(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), requires_grad=True)
    even = conv2d_relu_maxpool(tn.tensor(rng.standard_normal((1, 1, 6, 6)).astype(np.float32)),
                               w, padding=1)
    odd = conv2d_relu_maxpool(tn.tensor(rng.standard_normal((1, 1, 5, 5)).astype(np.float32)),
                              w, padding=1)
    assert type(even.creator) is Conv2DReLUPool and even.shape == (1, 2, 3, 3)
    assert type(odd.creator) is not Conv2DReLUPool and odd.shape == (1, 2, 2, 2)


def test_on_the_gpu_stand_in_it_is_the_three_ops(strict_device):
    rng = np.random.default_rng(1)
    x = tn.tensor(rng.standard_normal((2, 2, 4, 4)), device=strict_device, requires_grad=True)
    w = tn.tensor(rng.standard_normal((3, 2, 3, 3)), device=strict_device, requires_grad=True)
    y = conv2d_relu_maxpool(x, w, padding=1)
    assert type(y.creator) is not Conv2DReLUPool
    assert tn.gradcheck(lambda *t: conv2d_relu_maxpool(*t, padding=1), [x, w])


def test_any_thread_count_gives_the_same_bits(monkeypatch):
    monkeypatch.setattr(conv_module, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(_im2col, "CHUNK_BYTES", 3000)
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((5, 3, 12, 12)).astype(np.float32),
              rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
              rng.standard_normal(4).astype(np.float32)]
    before = tn.get_num_threads()
    out = []
    try:
        for threads in (1, 2, 3):
            tn.set_num_threads(threads)
            out.append([a.tobytes() for a in _run(
                lambda *t: conv2d_relu_maxpool(*t, padding=1), arrays, 0)[1]])
    finally:
        tn.set_num_threads(before)
    assert out[0] == out[1] == out[2]


def test_seed001_second_conv_fused_is_the_three_ops_bit_for_bit():
    """The seed-001 second conv as the benchmark runs it (no monkeypatching): the
    fused op pools tiles of row pairs (8 + 6 rows), the conv alone cuts its tiles
    in 7 + 7 rows -- the same column bands, so the same products: the same bits,
    forward and backward, at 1 and 2 threads."""
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((128, 32, 14, 14)).astype(np.float32),
              (rng.standard_normal((64, 32, 5, 5)) * 0.05).astype(np.float32),
              (rng.standard_normal(64) * 0.1).astype(np.float32)]
    fused_tiles = _conv_rows.tiles(14, 14, 128, 5, 32 * 5, 4, pooled=True)
    plain_tiles = _conv_rows.tiles(14, 14, 128, 5, 32 * 5, 4)
    assert sorted({t[:2] for t in fused_tiles}) != sorted({t[:2] for t in plain_tiles})
    before = tn.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            tn.set_num_threads(threads)
            y = conv2d_relu_maxpool(*[tn.tensor(a, requires_grad=True) for a in arrays],
                                    padding="same")
            assert type(y.creator) is Conv2DReLUPool and y.creator.route == "rows"
            _, fused = _run(lambda *t: conv2d_relu_maxpool(*t, padding="same"), arrays, 6)
            _, plain = _run(lambda *t: F.max_pool2d(F.relu(F.conv2d(*t, padding="same")), 2),
                            arrays, 6)
            results.append([a.tobytes() for a in fused])
            assert results[-1] == [a.tobytes() for a in plain]
    finally:
        tn.set_num_threads(before)
    assert results[0] == results[1]
