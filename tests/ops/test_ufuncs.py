"""ops/_ufuncs.py: the fast forms give exactly the bits of the plain NumPy call."""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tinynet.ops._ufuncs import relu_into

SPECIAL = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.0, -1.0]


@settings(max_examples=60, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=9),
       dtype=st.sampled_from([np.float32, np.float64, np.float16]),
       order=st.permutations(range(4)), step=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_relu_into_is_maximum_with_zero_bit_for_bit_on_any_layout(shape, dtype, order, step,
                                                                   seed):
    """Random values with the special ones mixed in (NaNs, both zeros, infinities,
    subnormals), in any memory order and with strided views: relu_into(x, out)
    and relu_into(x) equal np.maximum(x, 0) bit for bit, and x is not changed."""
    rng = np.random.default_rng(seed)
    order = [k for k in order if k < len(shape)]
    base = rng.standard_normal([n * step for n in shape]).astype(dtype)
    flat = base.reshape(-1)
    picks = rng.integers(0, flat.size, size=min(flat.size, 12))
    flat[picks] = rng.choice(np.array(SPECIAL, dtype=dtype), size=picks.size)
    base = np.ascontiguousarray(base.transpose(order)).transpose(np.argsort(order))  # any order
    x = base[tuple(slice(None, None, step) for _ in shape)]          # strided when step = 2
    before = x.copy()
    want = np.maximum(x, 0)
    got = relu_into(x)
    assert got.tobytes() == want.tobytes()
    layout = [d for d, n in zip(np.empty_like(x).strides, x.shape) if n > 1]
    assert [d for d, n in zip(got.strides, x.shape) if n > 1] == layout   # x's memory order
    out = np.empty_like(x)
    assert relu_into(x, out) is out and out.tobytes() == want.tobytes()
    assert x.tobytes() == before.tobytes()
    relu_into(x, x)                                        # in place, as the ops use it
    assert x.tobytes() == want.tobytes()


def test_relu_into_on_a_strided_tile_view_and_in_place():
    """The conv's use: a tile's rows of y3 (O, OH, OW·N), relu'd in place."""
    rng = np.random.default_rng(0)
    y3 = rng.standard_normal((32, 14, 700)).astype(np.float32)
    y3[0, 0, :4] = [-0.0, np.nan, -np.inf, 0.0]
    want = y3.copy()
    np.maximum(want[:, 3:9], 0, out=want[:, 3:9])
    relu_into(y3[:, 3:9], y3[:, 3:9])
    assert y3.tobytes() == want.tobytes()
