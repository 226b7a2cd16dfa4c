#!/usr/bin/env python
"""Where one training step's time goes: every hand-off to tinynet's thread pool.

    python scripts/step_timeline.py                      # seed003, tinynet's default threads
    python scripts/step_timeline.py --workload seed000 --threads 2 --steps 60
    python scripts/step_timeline.py --torch              # also PyTorch's profiler, same workload
    python scripts/step_timeline.py --gemm-rates         # OpenBLAS on one thread: conv-sized vs large

Times ``--steps`` training steps of a workload of scripts/bench.py and prints,
for the median step, each ``run_blocks`` call (a hand-off: the op's function,
when it started in the step, how long it took, its parts, each thread's busy
time in it and how long after the call the first pool thread started a part),
then, over all the steps, the time the hand-offs lose to imbalance and to the
pool thread's late start: per call, its wall time minus half the work its two
threads did in it (with more threads, minus the work over the threads).

``--torch`` runs ``torch.profiler`` over the same number of steps of the
PyTorch mirror (scripts/bench.py's) in this process afterwards and prints
its table of operators by their own CPU time.

``--gemm-rates`` first times, on one BLAS thread, the product one output row
of seed-003's 32->32 conv is on the row route -- (32, 288) @ (288, 700) -- and
a 1024 x 1024 x 1024 product, and prints their GFLOP/s (median of 50 / 10).

Measurement only: the parts are wrapped with a timer (a few microseconds each);
nothing tinynet computes changes.
"""
import argparse
import collections
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def record_handoffs(parallel):
    """Wrap ``run_blocks`` wherever tinynet imported it; returns (calls, restore).
    ``calls`` receives (name, start, wall, {thread: busy s}, first helper start or
    None, parts) per hand-off."""
    calls = []
    original = parallel.run_blocks
    lock = threading.Lock()          # several pool threads add to the same total

    def run_blocks(fn, parts):
        parts = list(parts)
        t0 = time.perf_counter()
        busy, helper_starts = collections.Counter(), []

        def timed(part):
            s = time.perf_counter()
            name = "caller" if threading.current_thread() is caller else "pool"
            if name == "pool":
                helper_starts.append(s - t0)
            fn(part)
            with lock:
                busy[name] += time.perf_counter() - s
        caller = threading.current_thread()
        original(timed, parts)
        calls.append((fn.__qualname__, t0, time.perf_counter() - t0, dict(busy),
                      min(helper_starts) if helper_starts else None, len(parts)))
    patched = [m for name, m in list(sys.modules.items())
               if name.startswith("tinynet") and getattr(m, "run_blocks", None) is original]
    for m in patched:
        m.run_blocks = run_blocks

    def restore():
        for m in patched:
            m.run_blocks = original
    return calls, restore


def lost_to_imbalance(wall, busy, threads):
    """A hand-off's wall time beyond its work shared out evenly over its threads."""
    return wall - sum(busy.values()) / max(1, min(threads, len(busy) or 1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="seed003", choices=("seed000", "seed001", "seed003"))
    p.add_argument("--threads", type=int, default=None, help="tinynet threads (default: its own)")
    p.add_argument("--steps", type=int, default=30, help="timed steps (after 10 warm-up steps)")
    p.add_argument("--torch", action="store_true", help="also torch.profiler on the PyTorch mirror")
    p.add_argument("--gemm-rates", action="store_true",
                   help="first time a conv-row-sized and a 1024^3 product on one BLAS thread")
    args = p.parse_args(argv)
    import tinynet as tn
    from tinynet.ops import _parallel
    import bench
    if args.gemm_rates:
        gemm_rates()
    if args.threads:
        tn.set_num_threads(args.threads)
    threads = tn.get_num_threads()
    run = bench.TinynetRun(tn, args.workload, "cpu", 0)
    for _ in range(10):
        run.step()
    calls, restore = record_handoffs(_parallel)
    steps = []
    try:
        for _ in range(args.steps):
            calls.clear()
            t0 = time.perf_counter()
            run.step()
            steps.append((time.perf_counter() - t0, t0, list(calls)))
    finally:
        restore()
    wall, t0, median_calls = sorted(steps, key=lambda s: s[0])[len(steps) // 2]
    print(f"{args.workload}, {threads} threads: median step {1e3 * wall:.2f} ms of {len(steps)}; "
          f"its {len(median_calls)} hand-offs (ms):")
    print(f"  {'at':>6s} {'wall':>6s}  {'parts':>5s}  {'caller':>6s} {'pool':>6s} {'pool starts':>11s}  op")
    inside = 0.0
    for name, start, w, busy, first, parts in median_calls:
        inside += w
        print(f"  {1e3 * (start - t0):6.2f} {1e3 * w:6.2f}  {parts:5d}  "
              f"{1e3 * busy.get('caller', 0):6.2f} {1e3 * busy.get('pool', 0):6.2f} "
              f"{'' if first is None else f'{1e3 * first:8.3f}':>11s}  {name}")
    print(f"  inside hand-offs {1e3 * inside:.2f} ms, outside {1e3 * (wall - inside):.2f} ms "
          f"(the calling thread alone: Python, small ops)")
    lost = collections.defaultdict(float)
    for _, _, step_calls in steps:
        for name, _, w, busy, _, _ in step_calls:
            if len(busy) > 1:
                lost[name] += lost_to_imbalance(w, busy, threads) / len(steps)
    if lost:
        print(f"Lost to imbalance and the pool thread's late start, per step (all {len(steps)} "
              f"steps): {1e3 * sum(lost.values()):.2f} ms")
        for name, v in sorted(lost.items(), key=lambda kv: -kv[1]):
            print(f"  {1e3 * v:6.3f} ms  {name}")
    if args.torch:
        torch_profile(tn, args)
    return 0


def gemm_rates():
    import numpy as np
    from tinynet.ops._parallel import blas_one_thread
    rng = np.random.default_rng(0)
    with blas_one_thread():
        for (m, k, n), reps in (((32, 288, 700), 50), ((1024, 1024, 1024), 10)):
            a = rng.random((m, k), dtype=np.float32)
            b = rng.random((k, n), dtype=np.float32)
            out = a @ b
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                np.matmul(a, b, out=out)
                times.append(time.perf_counter() - t0)
            t = statistics.median(times)
            print(f"OpenBLAS, one thread: ({m}, {k}) @ ({k}, {n}) float32 {1e3 * t:.3f} ms, "
                  f"{2 * m * k * n / t / 1e9:.0f} GFLOP/s")


def torch_profile(tn, args):
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        print("PyTorch profile skipped: torch is not installed (pip install torch==2.13.0)")
        return
    import bench
    torch.set_num_threads(args.threads or tn.get_num_threads())
    run = bench.TorchRun(torch, tn, args.workload, "cpu", 0)
    for _ in range(5):
        run.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            run.step()
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {args.workload}, "
          f"{args.steps} steps (self CPU time; divide by {args.steps} for per step):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    sys.exit(main())
