"""scripts/ab_blocks.py and the variants in scripts/variants/: each variant changes
what it says and puts everything back; the script runs and prints one line.
No timing is asserted."""
import glob
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest

import tinynet as tn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = sorted(glob.glob(os.path.join(ROOT, "scripts", "variants", "*.py")))


def _steps_params(apply=None, steps=3):
    """Parameters after a few seed003-like steps of a small conv net (fused route)."""
    import tinynet.nn as nn
    import tinynet.nn.functional as F
    tn.manual_seed(0)
    model = nn.Sequential(nn.Conv2D(1, 4, 3, padding="same"), nn.ReLU(), nn.MaxPool2D(2),
                          nn.Conv2D(4, 32, 3, padding="same"), nn.ReLU(),
                          nn.Conv2D(32, 32, 3, padding="same"), nn.ReLU(),
                          nn.Flatten(), nn.Dense(32 * 7 * 7, 10))
    opt = tn.optim.SGD(model.parameters(), lr=0.1)     # differences stay as small as dW's
    rng = np.random.default_rng(0)
    x = tn.tensor(rng.random((6, 1, 14, 14), dtype=np.float32))
    y = tn.tensor(rng.integers(0, 10, 6))
    for _ in range(steps):
        opt.zero_grad()
        F.softmax_cross_entropy(model(x), y).backward()
        opt.step()
    return [p.numpy().tobytes() for p in model.parameters()]


@pytest.mark.parametrize("path", VARIANTS, ids=os.path.basename)
def test_a_variant_changes_only_speed_and_puts_everything_back(path):
    """Applied, a variant trains to the same bits (they change how the work is
    scheduled, not what is computed) -- or, where it says CHANGES_BITS (a sum
    taken in other pieces), to within float32 rounding; reverted, tinynet is the
    code as it was."""
    import importlib
    import tinynet.ops._conv_rows as rows
    import tinynet.ops._parallel as par
    import tinynet.optim as optim
    conv = importlib.import_module("tinynet.ops.conv")
    watched = [(rows, "PASS1_MIN_ELEMENTS"), (rows, "tiles"), (par._Job, "wait"),
               (optim.Optimizer, "_update_all"), (conv, "relu_into"),
               (par, "keep_helpers_off_my_cpu")]
    before = [getattr(o, n) for o, n in watched]
    reference = _steps_params()
    v = runpy.run_path(path)
    assert v["__doc__"], f"{os.path.basename(path)}: say what the variant is"
    v["apply"]()
    try:
        assert [getattr(o, n) for o, n in watched] != before, "apply() changed nothing"
        got = _steps_params()
        if v.get("CHANGES_BITS"):
            for a, b in zip(got, reference):
                np.testing.assert_allclose(np.frombuffer(a, np.float32),
                                           np.frombuffer(b, np.float32), rtol=1e-4, atol=1e-6)
        else:
            assert got == reference
    finally:
        v["revert"]()
    assert [getattr(o, n) for o, n in watched] == before


def test_ab_blocks_prints_one_line_with_the_ratio():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ab_blocks.py"),
                           os.path.join(ROOT, "scripts", "variants", "scalar_relu.py"),
                           "--workload", "seed000", "--blocks", "2", "--block-steps", "1",
                           "--threads", "1"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    line, = proc.stdout.strip().splitlines()
    assert line.startswith("seed000, 1 threads, 2 pairs of 1-step blocks: A (as is) ")
    assert "B (scalar_relu)" in line and "B/A median" in line
