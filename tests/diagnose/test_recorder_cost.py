"""The Recorder's cheaper reductions give exactly the answers of the plain ones, and
scripts/recorder_overhead.measure reports what it says it measures."""
import importlib.util
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.diagnose import probes, symmetry

SPECIALS = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, -1e-38, 1.0, -2.5])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 6), hw=st.integers(1, 4),
       dtype=st.sampled_from([np.float16, np.float32, np.float64]),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 2 ** 31))
def test_any_per_unit_on_channel_first_memory_is_exact(n, c, hw, dtype, density, seed):
    """(N, C, H, W) stored channel-outermost (as tinynet's conv outputs are): the
    bit-pattern OR says "nonzero" for a channel exactly when ``!= 0`` holds for one of
    its values -- -0.0 counts as zero, NaN and subnormals as nonzero."""
    rng = np.random.default_rng(seed)
    store = np.zeros((c, hw, hw, n), dtype=dtype)          # memory order C, H, W, N
    hit = rng.random(store.shape) < density * 0.3
    with np.errstate(over="ignore"):
        store[hit] = rng.choice(SPECIALS, size=int(hit.sum())).astype(dtype)
    a = store.transpose(3, 0, 1, 2)                         # (N, C, H, W), a view
    scratch = lambda x: np.empty(x.shape, dtype=bool)       # noqa: E731
    got = probes._any_per_unit(np, a, scratch)
    truth = np.array([bool((a[:, k] != 0).any()) for k in range(c)])
    if c > 1 and n > 1:                                     # not C-contiguous
        assert probes._unit_rows(a) is not None             # the fast path ran
    assert np.array_equal(got, truth)


def test_small_matmul_equals_one_product():
    rng = np.random.default_rng(0)
    for rows, k in ((512, 784), (3, 5), (1024, 3136)):
        a = rng.standard_normal((k, rows)).astype(np.float32).T     # a transposed view
        b = rng.standard_normal((k, symmetry.NPROJ)).astype(np.float32)
        got = symmetry._small_matmul(a, b)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        assert got.shape == ref.shape and got.dtype == np.float32
        # float32 products: each entry within a few ulps of its magnitude sum
        bound = 8 * np.finfo(np.float32).eps * (np.abs(a) @ np.abs(b))
        assert (np.abs(got - ref) <= bound).all()


def _script():
    path = Path(__file__).resolve().parents[2] / "scripts" / "recorder_overhead.py"
    spec = importlib.util.spec_from_file_location("recorder_overhead", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_measure_reports_consistent_numbers_and_restores_the_recorder():
    mod = _script()
    from tinynet.diagnose import recorder
    before = (probes.LayerProbe.__call__, probes.LayerProbe._on_grad, recorder.Recorder.step)
    res = mod.measure("seed000", reps=2, steps=2)
    assert (probes.LayerProbe.__call__, probes.LayerProbe._on_grad,
            recorder.Recorder.step) == before                # the timing wrappers are gone
    assert res["workload"] == "seed000" and res["reps"] == 2 and res["every"] == 10
    assert res["recorder_cpu_ms"] > 0 and res["step_main_cpu_ms"] > 0
    assert res["step_cpu_ms"] >= 0.5 * res["step_main_cpu_ms"]
    share = res["share_of_main_thread"]
    assert 0 < share["min"] <= share["median"] <= share["max"]
    assert "interleaved" in res["method"] and mod.line(res).startswith("seed000: ")
