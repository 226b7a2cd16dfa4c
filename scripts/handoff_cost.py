#!/usr/bin/env python
"""What handing work to tinynet's thread pool costs on this machine.

    python scripts/handoff_cost.py                 # seed003, tinynet's default threads
    python scripts/handoff_cost.py --workload seed001

Prints three measurements:

1. the round trip of waking a sleeping thread and being woken back
   (threading.Event ping-pong: what every hand-off to a pool thread pays
   twice, once to start it and once to learn it finished);
2. ``run_blocks`` with 4 parts that do nothing, with the pool and without;
3. one training step of the workload, every ``run_blocks`` call in it timed:
   calls per step, their wall time, the work done inside their parts (both
   threads together), and the median delay before the pool thread starts its
   first part.  2 x wall - work is the thread time spent waiting.

The ratio to PyTorch of a small step (seed003) is set largely by this: a
CNN step of tinynet hands work to the pool about 20 times.
"""
import argparse
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def event_round_trip(n=3000):
    ping, pong = threading.Event(), threading.Event()

    def other():
        for _ in range(n):
            ping.wait()
            ping.clear()
            pong.set()
    t = threading.Thread(target=other)
    t.start()
    start = time.perf_counter()
    for _ in range(n):
        ping.set()
        pong.wait()
        pong.clear()
    elapsed = (time.perf_counter() - start) / n
    t.join()
    return elapsed


def empty_run_blocks(n=2000):
    from tinynet.ops._parallel import run_blocks
    run_blocks(lambda part: None, range(4))
    start = time.perf_counter()
    for _ in range(n):
        run_blocks(lambda part: None, range(4))
    return (time.perf_counter() - start) / n


def step_hand_offs(workload, steps=20):
    import tinynet as tn
    import bench
    from step_timeline import record_handoffs
    from tinynet.ops import _parallel
    run = bench.TinynetRun(tn, workload, "cpu", 0)
    for _ in range(5):
        run.step()
    calls, restore = record_handoffs(_parallel)
    try:
        start = time.perf_counter()
        for _ in range(steps):
            run.step()
        step = (time.perf_counter() - start) / steps
    finally:
        restore()
    totals = {"calls": len(calls) / steps,
              "wall": sum(wall for _, _, wall, _, _, _ in calls) / steps,
              "work": sum(sum(busy.values()) for _, _, _, busy, _, _ in calls) / steps,
              "delays": [first for *_, first, _ in calls if first is not None]}
    return step, totals


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="seed003", choices=("seed000", "seed001", "seed003"))
    p.add_argument("--threads", type=int, default=None, help="tn.set_num_threads (default: tinynet's)")
    args = p.parse_args()
    import tinynet as tn
    if args.threads:
        tn.set_num_threads(args.threads)
    threads = tn.get_num_threads()
    print(f"wake a sleeping thread and be woken back: {event_round_trip() * 1e6:.0f} us round trip")
    tn.set_num_threads(1)
    alone = empty_run_blocks()
    tn.set_num_threads(max(2, threads))
    pooled = empty_run_blocks()
    tn.set_num_threads(threads)
    print(f"run_blocks, 4 empty parts: {alone * 1e6:.0f} us on 1 thread, "
          f"{pooled * 1e6:.0f} us with the pool ({max(2, threads)} threads)")
    step, t = step_hand_offs(args.workload)
    start = (f"the pool thread starts its first part {statistics.median(t['delays']) * 1e6:.0f} "
             f"us after the call (median)" if t["delays"] else "no pool thread ran a part")
    print(f"{args.workload}, {threads} thread{'s' if threads > 1 else ''}: step "
          f"{step * 1e3:.1f} ms; {t['calls']:.0f} run_blocks calls per step, "
          f"{t['wall'] * 1e3:.1f} ms inside them, {t['work'] * 1e3:.1f} ms of work in their "
          f"parts (all threads), waiting {(threads * t['wall'] - t['work']) * 1e3:.1f} "
          f"thread-ms; {start}")


if __name__ == "__main__":
    main()
