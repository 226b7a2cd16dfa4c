"""scripts/step_timeline.py: runs, prints the median step's hand-offs and what they
lose to imbalance, and leaves tinynet's run_blocks as it found it.  No timing is
asserted."""
import os
import runpy
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "step_timeline.py")


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


def test_prints_every_handoff_of_the_median_step_with_two_threads():
    proc = _run("--workload", "seed000", "--threads", "2", "--steps", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("seed000, 2 threads: median step ")
    assert "hand-offs (ms):" in lines[0]
    n = int(lines[0].split("its ")[1].split(" hand-offs")[0])
    assert n >= 4                                     # Dense forward/backward, optimizer
    assert sum("_call" in line for line in lines[2:2 + n]) >= 3
    assert any(line.startswith("  inside hand-offs ") for line in lines)
    assert any(line.startswith("Lost to imbalance") for line in lines)


def test_one_thread_has_no_pool_column_and_nothing_lost():
    proc = _run("--workload", "seed000", "--threads", "1", "--steps", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("seed000, 1 threads: median step ")
    assert "Lost to imbalance" not in proc.stdout        # no call had two busy threads


def test_the_wrapper_restores_run_blocks_and_changes_no_result():
    import numpy as np
    import tinynet as tn
    from tinynet.ops import _parallel, conv
    timeline = runpy.run_path(SCRIPT)
    before = (_parallel.run_blocks, conv.run_blocks)
    x = tn.tensor(np.random.default_rng(0).random((8, 32, 10, 10), dtype=np.float32))
    w = tn.tensor(np.random.default_rng(1).random((16, 32, 3, 3), dtype=np.float32))
    reference = tn.ops.conv2d(x, w, padding=1).numpy()
    calls, restore = timeline["record_handoffs"](_parallel)
    try:
        got = tn.ops.conv2d(x, w, padding=1).numpy()
    finally:
        restore()
    assert got.tobytes() == reference.tobytes()
    assert calls and all(len(c) == 6 for c in calls)
    assert (_parallel.run_blocks, conv.run_blocks) == before


def test_lost_to_imbalance_is_the_wall_time_beyond_an_even_share():
    timeline = runpy.run_path(SCRIPT)
    lost = timeline["lost_to_imbalance"]
    assert lost(1.0, {"caller": 1.0, "pool": 0.6}, 2) == pytest.approx(0.2)
    assert lost(1.0, {"caller": 1.0, "pool": 1.0}, 2) == pytest.approx(0.0)


def test_gemm_rates_come_first_one_line_per_product():
    proc = _run("--workload", "seed000", "--threads", "1", "--steps", "1", "--gemm-rates")
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("OpenBLAS, one thread: (32, 288) @ (288, 700) float32 ")
    assert second.startswith("OpenBLAS, one thread: (1024, 1024) @ (1024, 1024) float32 ")
    assert first.endswith("GFLOP/s") and second.endswith("GFLOP/s")


def test_torch_profile_of_the_same_workload():
    pytest.importorskip("torch")
    proc = _run("--workload", "seed000", "--threads", "1", "--steps", "2", "--torch")
    assert proc.returncode == 0, proc.stderr
    assert "PyTorch 2." in proc.stdout and ", seed000, 2 steps" in proc.stdout
    assert "aten::" in proc.stdout
