"""Smoke test of scripts/bench.py: it runs, prints the table and writes JSON.

No timing is asserted (the numbers depend on the machine and its load);
the benchmark itself is run by hand, see README.md.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinynet as tn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "bench.py")
HEADER = "| workload | tinynet | PyTorch | ratio | target | peak MB tinynet | peak MB torch |"


def run_bench(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # one BLAS thread: pytest -n auto already runs a worker per core
    args = args if "--threads" in args else (*args, "--threads", "1")
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_quick_run_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_bench("--quick", "--threads", "1", "--json", str(out))   # torch rows if installed
    assert proc.returncode == 0, proc.stderr
    assert HEADER in proc.stdout
    for title in ("seed000 MLP", "seed001 CNN", "seed003 CNN", "Recorder(every=10)"):
        assert title in proc.stdout, f"no {title!r} row in:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr
    data = json.loads(out.read_text())
    assert set(data["workloads"]) >= {"seed000", "seed001", "seed003"}
    for name in ("seed000", "seed001", "seed003"):
        entry = data["workloads"][name]
        assert entry["tinynet_median_s"] > 0
        assert entry["memory"]["tinynet"]["peak_mb"] >= 0
    assert data["environment"]["threads"] == 1
    assert data["table"].startswith(HEADER)


def test_workload_subset_without_torch_or_memory():
    proc = run_bench("--quick", "--workloads", "seed003", "--no-torch", "--no-memory")
    assert proc.returncode == 0, proc.stderr
    assert "seed003 CNN" in proc.stdout and "seed000 MLP" not in proc.stdout
    assert "--no-torch given" in proc.stdout


def test_unknown_workload_is_a_usage_error():
    proc = run_bench("--workloads", "seed002")
    assert proc.returncode == 2
    assert "seed002" in proc.stderr and "Traceback" not in proc.stderr


def test_cuda_code_path_through_the_strict_standin():
    """--device cuda on tinynet's strict CuPy stand-in: the GPU code path of the
    benchmark makes no host round trip and prints the table."""
    proc = run_bench("--device", "cuda", "--standin", "--quick", "--no-torch", "--no-memory",
                     "--workloads", "seed003,recorder")
    assert proc.returncode == 0, proc.stderr
    assert HEADER in proc.stdout and "seed003 CNN" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(tn.cuda_available(), reason="a GPU is present: --device cuda would run")
def test_cuda_without_a_gpu_fails_with_a_message():
    proc = run_bench("--device", "cuda", "--quick")
    assert proc.returncode == 2
    assert "--device cuda needs" in proc.stderr
    assert "Traceback" not in proc.stderr


def _bench_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("tinynet_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gemm_floor_counts_the_products_of_the_im2col_formulation():
    """seed001 at batch 128, derived by hand: conv5x5 1->32 same on 28x28
    (K = 25, L = 128·28·28; no dx for the images), conv5x5 32->64 same on 14x14
    (K = 800, L = 128·14·14), Dense 3136->1024, Dense 1024->10."""
    bench = _bench_module()
    model, _ = bench.build_tinynet(tn, "seed001", 0)
    shapes = bench.gemm_shapes(tn, model, (128, 1, 28, 28))
    L1, L2 = 128 * 28 * 28, 128 * 14 * 14
    assert shapes == [(32, 25, L1), (25, L1, 32),
                      (64, 800, L2), (800, L2, 64), (800, 64, L2),
                      (128, 3136, 1024), (3136, 128, 1024), (128, 1024, 3136),
                      (128, 1024, 10), (1024, 128, 10), (128, 10, 1024)]


def test_image_size_56_rebuilds_the_first_dense():
    bench = _bench_module()
    model, opt = bench.build_tinynet(tn, "seed003", 0, image=56)
    x = tn.tensor(np.zeros(bench.input_shape("seed003", 2, 56), np.float32))
    assert model(x).shape == (2, 10)
    dense = [m for m in model.children() if type(m).__name__ == "Dense"][0]
    assert dense.in_features == 28 * 28 * 32        # pool2 halves 56 -> 28, 32 channels


@pytest.mark.skipif(tn.cuda_available(), reason="a GPU is present: gpu_check.sh would run")
def test_gpu_check_without_a_gpu_says_so_in_one_line():
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no usable GPU" in proc.stderr
