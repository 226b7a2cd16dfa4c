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


# ---- PyTorch in its own process ------------------------------------------------
def _torch_importable():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


needs_torch = pytest.mark.skipif(not _torch_importable(),
                                 reason="torch is not installed (it is never a tinynet "
                                        "dependency): the worker has nothing to time")


@needs_torch
def test_quick_run_times_pytorch_in_a_worker_process(tmp_path):
    """End to end: the PyTorch column comes from the worker subprocess, and
    the main process (tinynet's) never imports torch."""
    out = tmp_path / "bench.json"
    proc = run_bench("--quick", "--workloads", "seed003,recorder", "--no-memory",
                     "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "PyTorch stopped" not in proc.stderr
    data = json.loads(out.read_text())
    env = data["environment"]
    assert env["torch"] and env["torch_threads"] == 1
    assert env["torch_pid"] not in (None, env["tinynet_pid"])
    assert env["torch_in_main_process"] is False
    entry = data["workloads"]["seed003"]
    assert entry["torch_median_s"] > 0
    assert entry["ratio"] == pytest.approx(entry["tinynet_median_s"] / entry["torch_median_s"])
    # the processes took turns: the tinynet process sat blocked on the pipe while
    # PyTorch's block ran (CPU time, so load from other processes does not enter)
    iso = entry["isolation"]
    assert len(iso["main_cpu_s_during_torch_blocks"]) == 1
    assert len(iso["torch_worker_cpu_s_between_blocks"]) == 1
    assert 0 <= iso["main_cpu_s_during_torch_blocks"][0] < 0.05
    assert "Isolation: while PyTorch timed a block" in proc.stdout
    assert "PyTorch columns" not in proc.stdout


@needs_torch
def test_worker_protocol_builds_the_same_network_and_times_blocks(monkeypatch):
    """Driven directly: the worker's mirror of seed001 gives tinynet's loss on
    the same first batch (same weights, same data), times a block in 10-step
    groups, and answers a bad command with an error instead of dying."""
    bench = _bench_module()
    args = bench.parse_args(["--threads", "1", "--quick"])
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    worker = bench.TorchWorker.start(args)
    try:
        assert worker.info["threads"] == 1 and worker.info["pid"] != os.getpid()
        worker.request(cmd="build", key="a", workload="seed001", warmup=0)
        torch_loss = worker.request(cmd="loss", key="a")["loss"]
        run = bench.TinynetRun(tn, "seed001", "cpu", args.seed)
        run.model.eval()
        with tn.no_grad():
            x, y = run.batches[0]
            tn_loss = float(run.F.softmax_cross_entropy(run.model(x), y).item())
        assert torch_loss == pytest.approx(tn_loss, rel=1e-5)
        worker.request(cmd="build", key="b", workload="seed000", warmup=1)
        times = worker.request(cmd="time", key="b", steps=12)["times"]
        assert len(times) == 2 and all(t > 0 for t in times)      # groups of 10: 10 + 2
        with pytest.raises(bench.WorkerError, match="KeyError"):
            worker.request(cmd="time", key="nope", steps=1)
        assert worker.request(cmd="drop", key="b")["ok"]
    finally:
        worker.close()
    assert worker.proc.returncode == 0


def _fake_torch(tmp_path, body):
    pkg = tmp_path / "torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(body)
    return str(tmp_path)


def _run_with_path(extra, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [extra, ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, SCRIPT, *args, "--threads", "1"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


def test_torch_missing_is_one_line_and_tinynet_goes_on(tmp_path):
    path = _fake_torch(tmp_path, "raise ImportError('planted: no torch here')\n")
    proc = _run_with_path(path, "--quick", "--workloads", "seed003", "--no-memory")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if "PyTorch not timed" in ln]
    assert len(notes) == 1 and "planted: no torch here" in notes[0]
    assert "seed003 CNN" in proc.stdout and "PyTorch columns empty" in proc.stdout


def test_worker_dying_mid_run_is_one_line_and_tinynet_goes_on(tmp_path):
    """A worker that starts but dies on its first build (exit code 7): one
    line, no traceback, every workload still timed in tinynet, no PyTorch
    numbers and no PyTorch memory probe."""
    path = _fake_torch(tmp_path, (
        "import os\n__version__ = 'planted'\n"
        "class cuda:\n    is_available = staticmethod(lambda: False)\n"
        "def set_num_threads(n): pass\ndef get_num_threads(): return 1\n"
        "def device(name): os._exit(7)\n"))
    out = tmp_path / "bench.json"
    proc = _run_with_path(path, "--quick", "--workloads", "seed003,seed000",
                          "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stops = [ln for ln in proc.stderr.splitlines() if "PyTorch stopped" in ln]
    assert len(stops) == 1 and "exited (code 7)" in stops[0]
    data = json.loads(out.read_text())
    for name in ("seed000", "seed003"):
        entry = data["workloads"][name]
        assert entry["tinynet_median_s"] > 0 and "torch_median_s" not in entry
        assert set(entry["memory"]) == {"tinynet"}
    assert "PyTorch columns partly empty" in proc.stdout


# ---- the Recorder overhead, paired --------------------------------------------
class _Clock:
    """A fake perf_counter the fake runs advance."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class _DriftingRun:
    """A step costs ``cost`` x (1 + drift x elapsed time): a machine that keeps
    slowing down, as a shared VM does over a minute."""

    def __init__(self, clock, cost, drift):
        self.clock, self.cost, self.drift = clock, cost, drift

    def sync(self):
        pass

    def step(self):
        self.clock.t += self.cost * (1.0 + self.drift * self.clock.t)


def test_paired_overhead_sees_through_a_drift_that_fools_a_ratio_of_medians():
    """True overhead 5 %; the machine slows by about 50 % over the run.
    Separate blocks (the old method) report the drift as overhead; the
    alternating pairs recover 5 %."""
    bench = _bench_module()
    drift = 0.5 / 800
    clock = _Clock()
    plain, rec = _DriftingRun(clock, 1.0, drift), _DriftingRun(clock, 1.05, drift)
    without = bench.time_block(plain, 400, clock)
    with_ = bench.time_block(rec, 400, clock)
    blocks_pct = 100 * (bench.median(with_) / bench.median(without) - 1)
    assert blocks_pct > 20                       # the drift, counted as overhead

    clock.t = 0.0
    pairs = bench.time_pairs(plain, rec, 40, 10, clock=clock)
    assert len(pairs) == 40
    got = bench.paired_overhead(pairs)
    assert got["overhead_pct"] == pytest.approx(5.0, abs=0.2)
    assert got["overhead_min_pct"] < got["overhead_q1_pct"] <= got["overhead_pct"]
    assert got["overhead_pct"] <= got["overhead_q3_pct"] < got["overhead_max_pct"]
    assert got["pairs"] == 40
    # one order alone would be biased by the drift: the alternation is what cancels it
    firsts = [100 * (w / wo - 1) for wo, w in pairs]
    assert min(firsts[0::2]) > 5.0 > max(firsts[1::2])     # plain first: rec group later, slower


def test_paired_overhead_ignores_a_burst_and_matches_numpy_quantiles():
    bench = _bench_module()
    pairs = [(1.0, 1.05)] * 9 + [(1.0, 3.0)]        # a burst of load hits one Recorder group
    got = bench.paired_overhead(pairs)
    assert got["overhead_pct"] == pytest.approx(5.0)
    assert got["overhead_max_pct"] == pytest.approx(200.0)
    xs = [3.0, -1.0, 7.5, 2.0, 0.5, 4.0]
    for q in (0.25, 0.5, 0.75):
        assert bench.quantile(xs, q) == pytest.approx(float(np.quantile(xs, q)))


def test_pairs_alternate_which_run_goes_first():
    bench = _bench_module()
    order = []

    class Run:
        def __init__(self, name):
            self.name = name

        def sync(self):
            pass

        def step(self):
            order.append(self.name)

    bench.time_pairs(Run("plain"), Run("rec"), 3, 2, first=1)
    lead_in = ["plain", "rec"] * bench.LEAD_IN                 # untimed, after the pause
    assert order == lead_in + ["rec"] * 2 + ["plain"] * 4 + ["rec"] * 4 + ["plain"] * 2


def test_a_block_starts_with_untimed_steps():
    """The first step after the pause between blocks is not timed (see LEAD_IN):
    a slow first step changes no group's time."""
    bench = _bench_module()
    assert bench.LEAD_IN >= 1
    clock = _Clock()

    class Run:
        steps = 0

        def sync(self):
            pass

        def step(self):
            Run.steps += 1
            clock.t += 1.0 if Run.steps == 1 else 0.01

    groups = bench.time_block(Run(), 20, clock)
    assert Run.steps == 20 + bench.LEAD_IN
    assert groups == [pytest.approx(0.01)] * 2


def test_a_run_disturbed_by_other_load_is_flagged():
    bench = _bench_module()
    calm = {"tinynet_s_per_step": [0.010, 0.011, 0.012], "torch_s_per_step": [0.008, 0.009]}
    busy = {"tinynet_s_per_step": [0.010, 0.011], "torch_s_per_step": [0.008, 0.33, 0.009]}
    env = {"loadavg_end": [3.1, 2.2, 1.5]}
    assert bench.load_warnings({"workloads": {"seed003": calm}}, env) == []
    lines = bench.load_warnings({"workloads": {"seed000": busy, "seed003": calm}}, env)
    assert len(lines) == 1
    assert "PyTorch" in lines[0] and "seed000" in lines[0] and "41.2x" in lines[0]


def test_handoff_cost_script_counts_the_pool_calls_of_a_step_and_puts_them_back():
    """scripts/handoff_cost.py runs and reports every measurement; timing a step
    counts its run_blocks calls and leaves no timing wrapper behind."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "handoff_cost.py"),
                          "--threads", "2"], capture_output=True, text=True, timeout=300,
                         env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("wake a sleeping thread and be woken back: ")
    assert lines[1].startswith("run_blocks, 4 empty parts: ")
    assert lines[2].startswith("seed003, 2 threads: step ") and "run_blocks calls per step" in lines[2]

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import handoff_cost
    finally:
        sys.path.pop(0)
    from tinynet.ops import _parallel
    _, counted = handoff_cost.step_hand_offs("seed003", steps=2)
    assert counted["calls"] > 10 and counted["work"] > 0
    wrapped = [m.__name__ for m in list(sys.modules.values())
               if getattr(m, "__name__", "").startswith("tinynet")
               and callable(getattr(m, "run_blocks", None))
               and m.run_blocks is not _parallel.run_blocks]
    assert wrapped == []                                     # the timing wrapper is gone


def test_repetition_ratios_pair_each_tinynet_block_with_the_pytorch_block_beside_it():
    bench = _bench_module()
    # 3 repetitions of 2 groups each; the machine is twice as slow in the second one
    tinynet = [1.2, 1.2, 2.4, 2.6, 1.1, 1.3]
    torch = [1.0, 1.0, 2.0, 2.0, 1.0, 1.0]
    got = bench.repetition_ratios(tinynet, torch, 2)
    assert got == pytest.approx([1.2, 1.25, 1.2])
    # a PyTorch list cut short (a worker that died) pairs only the repetitions both have
    assert bench.repetition_ratios(tinynet, torch[:4], 2) == pytest.approx([1.2, 1.25])
