"""ops/_conv_rows.py: stride-1 convolution as KH row-shifted products (Conv2D's
"rows" CPU route), and dx as the convolution of g with the flipped kernel.

Held to the definition (a direct loop, float64), to central differences, to
the other CPU routes (the whole patch matrix; col2im for dx), and to itself
under any thread count.  The route is normally taken only for a sum C·KW of at
least ROWS_MIN_K; the ``rows`` fixture lowers that so it runs on small shapes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinynet as tn
from tinynet.ops import _conv_rows, conv as conv_module
from tinynet.ops.conv import Conv2D, col2im, conv2d, im2col

from test_conv import (_second_backward_doubles_the_gradients, case_inputs, conv_cases,
                       conv_reference, expected_pads)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def finest_tiles(OH, OW, N, KH, CKW, itemsize, pooled=False):
    """The finest grid of tiles a row-route op may be given: one row (a row pair
    when pooled) by one column pair each -- every consumer of ``tiles`` must give
    the same result on any grid."""
    unit = 2 if pooled else 1
    return [(i, min(i + unit, OH), j, min(j + 2, OW))
            for i in range(0, OH, unit) for j in range(0, OW, 2)]


@pytest.fixture(params=["tiles as chosen", "finest tiles"])
def rows(request, monkeypatch):
    monkeypatch.setattr(_conv_rows, "ROWS_MIN_K", 1)
    if request.param == "finest tiles":
        monkeypatch.setattr(_conv_rows, "tiles", finest_tiles)


@SETTINGS
@given(case=conv_cases())
def test_row_route_matches_the_definition_and_gradchecks(case, rows):
    (x, w, b), pads, inputs, fn = case_inputs(case, "cpu")
    y = fn(*inputs)
    assert y.creator.route == ("rows" if case["stride"] == (1, 1) else "kept")
    np.testing.assert_allclose(y.numpy(), conv_reference(x, w, b, case["stride"], pads),
                               rtol=1e-10, atol=1e-10)
    assert tn.gradcheck(fn, inputs)


@pytest.mark.parametrize("KH,KW,padding", [
    (3, 3, 1), (3, 3, "same"), (2, 3, "same"), (3, 2, (2, 0, 0, 1)), (1, 3, 0), (4, 1, "valid")])
def test_dx_by_the_flipped_kernel_equals_col2im(KH, KW, padding, rows):
    """dx = conv(g padded by K-1-P, flipped kernel, channels swapped): exactly what
    the general route col2im(W2ᵀ @ g2) gives."""
    rng = np.random.default_rng(11)
    x = tn.tensor(rng.standard_normal((2, 3, 7, 6)), requires_grad=True)
    w = rng.standard_normal((4, 3, KH, KW))
    y = conv2d(x, tn.tensor(w), padding=padding)
    assert y.creator.route == "rows" and y.creator._dx_by_flipped_conv(y.shape)
    g = rng.standard_normal(y.shape)
    y.backward(tn.tensor(g))
    pads = padding if isinstance(padding, tuple) else expected_pads(padding, 7, 6, KH, KW,
                                                                    (1, 1))
    dcols = w.reshape(4, -1).T @ g.transpose(1, 0, 2, 3).reshape(4, -1)
    expected = col2im(dcols, x.shape, KH, KW, 1, pads)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_padding_as_large_as_the_kernel_falls_back_for_dx_and_stays_right(rows):
    """Padding >= kernel would need negative padding of g: the forward still takes
    the row route, dx another one, and both agree with central differences."""
    rng = np.random.default_rng(12)
    x = tn.tensor(rng.standard_normal((2, 2, 4, 5)), requires_grad=True)
    w = tn.tensor(rng.standard_normal((3, 2, 2, 2)), requires_grad=True)
    b = tn.tensor(rng.standard_normal(3), requires_grad=True)
    y = conv2d(x, w, b, padding=(2, 3))
    assert y.creator.route == "rows" and not y.creator._dx_by_flipped_conv(y.shape)
    np.testing.assert_allclose(
        y.numpy(), conv_reference(x.numpy(), w.numpy(), b.numpy(), (1, 1), (2, 2, 3, 3)),
        rtol=1e-10, atol=1e-10)
    assert tn.gradcheck(lambda *t: conv2d(*t, padding=(2, 3)), [x, w, b])


def _seed003_conv(N=50):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, 32, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    g = rng.standard_normal((N, 32, 14, 14)).astype(np.float32)
    return x, w, b, g


def test_the_route_follows_the_shapes():
    """Without any monkeypatching: a 32 -> 32 3x3 conv at stride 1 takes the row
    route, a one-channel first layer or a stride of 2 the whole patch matrix,
    tiles whose span stays beyond TILE_SPAN_BYTES the streamed route; CuPy arrays never
    take a CPU route."""
    op = Conv2D((1, 1), (1, 1, 1, 1))
    assert op.choose_route(np, (50, 32, 14, 14), (32, 32, 3, 3), 4) == "rows"
    assert op.choose_route(np, (50, 1, 28, 28), (32, 1, 3, 3), 4) == "kept"
    assert Conv2D((2, 2), (1, 1, 1, 1)).choose_route(np, (50, 32, 14, 14), (32, 32, 3, 3),
                                                       4) == "kept"
    assert op.choose_route(np, (4096, 32, 14, 14), (32, 32, 3, 3), 4) == "streamed"
    assert op.choose_route(object(), (50, 32, 14, 14), (32, 32, 3, 3), 4) == "device"


def test_row_route_agrees_with_the_patch_matrix_route(monkeypatch):
    """float32 at the seed-003 shape: the row route (3 products with a sum of 96)
    and the whole patch matrix (1 product with a sum of 288) add in another order,
    so they agree to rounding, not bits."""
    x, w, b, g = _seed003_conv(N=6)
    out = {}
    for min_k in (32, 1 << 30):
        monkeypatch.setattr(_conv_rows, "ROWS_MIN_K", min_k)
        ts = [tn.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = conv2d(*ts, padding=1)
        assert y.creator.route == ("rows" if min_k == 32 else "kept")
        y.backward(tn.tensor(g[:6]))
        out[min_k] = [y.numpy()] + [t.grad.numpy() for t in ts]
    for a, b_ in zip(out[32], out[1 << 30]):
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-4 * np.abs(b_).max())


def test_row_route_is_bit_identical_for_any_thread_count():
    x, w, b, g = _seed003_conv()
    before = tn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 4):
            tn.set_num_threads(threads)
            ts = [tn.tensor(a, requires_grad=True) for a in (x, w, b)]
            y = conv2d(*ts, padding="same").relu()
            assert y.creator.inputs[0].creator.route == "rows"
            y.backward(tn.tensor(g))
            results.append([y.numpy().tobytes()] + [t.grad.numpy().tobytes() for t in ts])
    finally:
        tn.set_num_threads(before)
    assert all(r == results[0] for r in results[1:])


@settings(max_examples=200, deadline=None)
@given(OH=st.integers(1, 60), OW=st.integers(1, 40), N=st.integers(1, 600), KH=st.integers(1, 7),
       CKW=st.integers(1, 800), itemsize=st.sampled_from([4, 8]), pooled=st.booleans())
def test_tiles_cover_the_output_once_within_the_span_bound(OH, OW, N, KH, CKW, itemsize,
                                                           pooled):
    """Every output pixel is in exactly one tile of a grid; column bounds are even
    (and row bounds too when pooled: whole 2x2 windows) except at the last column
    / row; a tile's span stays within TILE_SPAN_BYTES unless its row band is
    already as thin as it can be; the tiles are an even number or at least
    MIN_TILES where the output has room for bands of KH rows; longer bands come
    first; and
    pooled or not, the column bands -- and so every row's product -- are the same."""
    tiles = _conv_rows.tiles(OH, OW, N, KH, CKW, itemsize, pooled=pooled)
    seen = np.zeros((OH, OW), dtype=int)
    thinnest = 2 if pooled else 1
    for i0, i1, j0, j1 in tiles:
        assert 0 <= i0 < i1 <= OH and 0 <= j0 < j1 <= OW
        assert j0 % 2 == 0 and (j1 % 2 == 0 or j1 == OW)
        if pooled:
            assert i0 % 2 == 0 and (i1 % 2 == 0 or i1 == OH)
        seen[i0:i1, j0:j1] += 1
        span = (i1 - i0 + KH - 1) * CKW * (j1 - j0) * N * itemsize
        assert span <= _conv_rows.TILE_SPAN_BYTES or i1 - i0 <= thinnest
    assert (seen == 1).all()
    assert _conv_rows.tile_span_bytes(tiles, N, KH, CKW, itemsize) == max(
        (i1 - i0 + KH - 1) * CKW * (j1 - j0) * N * itemsize for i0, i1, j0, j1 in tiles)
    row_bands = sorted({(i0, i1) for i0, i1, _, _ in tiles})
    col_bands = sorted({(j0, j1) for _, _, j0, j1 in tiles})
    assert len(tiles) == len(row_bands) * len(col_bands)        # a grid
    assert list(tiles) == [(a, b, c, d) for a, b in row_bands for c, d in col_bands]
    for bands in (row_bands, col_bands):
        sizes = [b - a for a, b in bands]
        assert all(s >= t for s, t in zip(sizes[:-2], sizes[1:-1]))    # the last may be cut
    other = _conv_rows.tiles(OH, OW, N, KH, CKW, itemsize, pooled=not pooled)
    assert sorted({t[2:] for t in other}) == col_bands
    if len(tiles) % 2 and len(tiles) < _conv_rows.MIN_TILES:     # no room for another band
        assert len(row_bands) >= min(OH // KH, -(-OH // 2) if pooled else OH)


def test_second_backward_on_the_row_route_doubles_the_gradients(rows):
    rng = np.random.default_rng(4)
    y = conv2d(tn.tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=True),
               tn.tensor(rng.standard_normal((2, 2, 3, 3)), requires_grad=True), padding=1)
    assert y.creator.route == "rows"             # the helper's conv takes the row route
    _second_backward_doubles_the_gradients("cpu")


def test_training_steps_do_not_grow_the_workspace():
    """The row matrices go back to the workspace after backward (and dx's is carved
    out of the forward's): steps after the first keep the same bytes."""
    x, w, b, g = _seed003_conv(N=8)
    ts = [tn.tensor(a, requires_grad=True) for a in (x, w, b)]
    sizes = []
    for _ in range(4):
        y = conv2d(*ts, padding=1)
        assert y.creator.route == "rows"
        y.backward(tn.tensor(g[:8]))
        sizes.append(conv_module.workspace.bytes)
    assert sizes[1] == sizes[2] == sizes[3]


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 6), W=st.integers(1, 6),
       KW=st.integers(1, 4), pads=st.tuples(*[st.integers(0, 4)] * 4),
       batch_last=st.booleans(), seed=st.integers(0, 2**16))
def test_fill_rows_is_the_w_patches_of_the_padded_input(N, C, H, W, KW, pads, batch_last,
                                                        seed):
    """rows[h, (c, kw), (j, n)] = xpad[n, c, h, j + kw], against np.pad, for any
    padding (also wider than the kernel) and any memory order of x."""
    PT, PB, PL, PR = pads
    if W + PL + PR < KW:
        return
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    if batch_last:
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    out = np.full(_conv_rows.rows_shape(x.shape, KW, pads), np.nan)
    _conv_rows.fill_rows(x, KW, pads, out)
    np.testing.assert_array_equal(out, w_patches(x, KW, pads))


def w_patches(x, KW, pads):
    """The row array by its definition: rows[h, (c, kw), (j, n)] = xpad[n, c, h, j + kw]."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = pads
    xpad = np.pad(x, ((0, 0), (0, 0), (PT, PB), (PL, PR)))
    OW = W + PL + PR - KW + 1
    patches = np.stack([xpad[:, :, :, kw:kw + OW] for kw in range(KW)], axis=2)
    return patches.transpose(3, 1, 2, 4, 0).reshape(H + PT + PB, C * KW, OW * N)


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 3), O=st.integers(1, 4), H=st.integers(1, 6),
       W=st.integers(1, 6), KH=st.integers(1, 4), KW=st.integers(1, 4),
       pads=st.tuples(*[st.integers(0, 4)] * 4), batch_last=st.booleans(), data=st.data())
def test_a_tile_of_rows_and_the_products_under_the_kernel_follow_the_definition(
        N, C, O, H, W, KH, KW, pads, batch_last, data):
    """fill_rows over padded rows [h0, h1) and output columns [c0, c1) is exactly
    that part of the whole row array (by its definition); under_kernel gives, for
    any tile of the output, the patch-matrix columns of its pixels; span_product
    is the convolution on them -- against im2col's patch matrix and the sum
    written out."""
    PT, PB, PL, PR = pads
    Hp, OW = H + PT + PB, W + PL + PR - KW + 1
    if OW < 1 or Hp < KH:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((N, C, H, W))
    if batch_last:
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    h0 = data.draw(st.integers(0, Hp - 1))
    h1 = data.draw(st.integers(h0 + 1, Hp))
    c0 = data.draw(st.integers(0, OW - 1))
    c1 = data.draw(st.integers(c0 + 1, OW))
    span = np.full((h1 - h0, C * KW, (c1 - c0) * N), np.nan)
    _conv_rows.fill_rows(x, KW, pads, span, prows=(h0, h1), pcols=(c0, c1))
    whole = w_patches(x, KW, pads).reshape(Hp, C * KW, OW, N)
    np.testing.assert_array_equal(span, whole[h0:h1, :, c0:c1].reshape(span.shape))

    OH = Hp - KH + 1
    cols = im2col(x, KH, KW, 1, pads, batch_last=True)          # (C·KH·KW, (i, j, n))
    kh_first = cols.reshape(C, KH, KW, -1).transpose(1, 0, 2, 3).reshape(C * KH * KW, -1)
    i0 = data.draw(st.integers(0, OH - 1))
    tile = (i0, data.draw(st.integers(i0 + 1, OH)), c0, c1)
    pieces = list(_conv_rows.under_kernel(x, KW, pads, KH, tile))
    assert [i for i, _ in pieces] == list(range(tile[0], tile[1]))      # every row, in order
    for i, m in pieces:
        np.testing.assert_array_equal(m, kh_first[:, (i * OW + c0) * N:(i * OW + c1) * N])
    w = rng.standard_normal((O, C, KH, KW))
    out = np.full((O, OH, OW * N), np.nan)
    region = _conv_rows.tile_region(out, tile, N)
    got = _conv_rows.span_product(x, KW, pads, _conv_rows.kernel_matrix(w), tile, region)
    assert got is region
    expected = (w.reshape(O, -1) @ cols).reshape(O, OH, OW * N)
    np.testing.assert_allclose(got, _conv_rows.tile_region(expected, tile, N),
                               rtol=1e-12, atol=1e-12)
    outside = np.ones(out.shape, dtype=bool)
    outside[:, tile[0]:tile[1], c0 * N:c1 * N] = False
    assert np.isnan(out[outside]).all()                          # nothing else written


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 4), O=st.integers(1, 5), H=st.integers(3, 7),
       W=st.integers(3, 7), KH=st.integers(1, 3), KW=st.integers(1, 3),
       pad_parts=st.tuples(*[st.integers(0, 2)] * 4),
       fuse_relu=st.booleans(), observe=st.booleans(), bias=st.booleans(),
       batch_last_g=st.booleans(), finest=st.booleans(), seed=st.integers(0, 2**16))
def test_two_pass_backward_is_the_op_by_op_backward_bit_for_bit(
        N, C, O, H, W, KH, KW, pad_parts, fuse_relu, observe, bias, batch_last_g, finest, seed):
    """Backward on the row route in two passes over the pool (_conv_rows.backward)
    gives exactly the bits of the op-by-op path -- ReLU mask, dW, dx by the flipped
    kernel, db -- and the same per-channel "gradient nonzero" the Recorder sees."""
    rng = np.random.default_rng(seed)
    # any padding the flipped-kernel dx takes: 0 .. K-1 on each side
    pads = tuple(p % k for p, k in zip(pad_parts, (KH, KH, KW, KW)))
    OH, OW = H + pads[0] + pads[1] - KH + 1, W + pads[2] + pads[3] - KW + 1
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C, KH, KW)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    g = rng.standard_normal((N, O, OH, OW)).astype(np.float32)
    g[:, :, ::2] = 0                       # channels and rows where the gradient vanishes
    if batch_last_g:
        g = np.ascontiguousarray(g.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    results = []
    for two_pass in (True, False):
        seen = []
        op = Conv2D((1, 1), pads, fuse_relu=fuse_relu,
                    observe=(lambda kind, v: seen.append((kind, v.copy()))) if observe else None)
        ts = [tn.tensor(a, requires_grad=True) for a in ((x, w, b) if bias else (x, w))]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_conv_rows, "ROWS_MIN_K", 1)
            mp.setattr(_conv_rows, "TWO_PASS_BACKWARD", two_pass)
            if finest:
                mp.setattr(_conv_rows, "tiles", finest_tiles)
            op(*ts)
            assert op.route == "rows" and op._dx_by_flipped_conv(g.shape)
            grads = op.backward(g)
        results.append(([a.tobytes() for a in grads],
                        [(k, v.tobytes()) for k, v in seen]))
    assert results[0] == results[1]
