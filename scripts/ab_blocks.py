#!/usr/bin/env python
"""Is a variant of tinynet faster or slower?  Blocks of training steps alternate
between the code as it is (A) and a variant (B) in one process.

    python scripts/ab_blocks.py scripts/variants/pass1_in_blocks.py --workload seed003
    python scripts/ab_blocks.py VARIANT --workload seed000 --blocks 40 --block-steps 10
    python scripts/ab_blocks.py VARIANT --pause 0.1      # each block after a pause, as in bench.py

A variant is a Python file defining ``apply()`` (switch to B: patch tinynet)
and ``revert()`` (back to A); ``scripts/variants/`` holds the ones the README
quotes.  Blocks of ``--block-steps`` steps alternate A, B then B, A, ...
``--blocks`` times each; the result is the median over the adjacent pairs of
B's ms/step over A's, with its quartiles.

Why in one process: this machine's speed drifts by 10-15 % from one minute to
the next, and separate processes (or separate benchmark runs) compared a few
seconds apart could not tell a 2 % change from that drift; adjacent blocks
of 10 steps share the machine's state.  A variant changes code only; the
model, data and optimizer are the same object throughout (the numbers the
steps compute may differ where a variant changes them).
"""
import argparse
import os
import runpy
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variant", help="a .py file defining apply() and revert()")
    p.add_argument("--workload", default="seed003", help="seed000, seed001 or seed003")
    p.add_argument("--blocks", type=int, default=40, help="blocks of each variant")
    p.add_argument("--block-steps", type=int, default=10, help="training steps per block")
    p.add_argument("--threads", type=int, default=None, help="tinynet threads (default: its own)")
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds of sleep before every block, then bench.py's LEAD_IN untimed "
                        "steps: blocks shaped like the benchmark's (default 0: back to back)")
    args = p.parse_args(argv)
    import tinynet as tn
    import bench
    if args.threads:
        tn.set_num_threads(args.threads)
    variant = runpy.run_path(args.variant)
    apply, revert = variant["apply"], variant["revert"]
    run = bench.TinynetRun(tn, args.workload, "cpu", 0)
    for _ in range(10):
        run.step()
    times = {"A": [], "B": []}
    for i in range(args.blocks):
        for which in ("AB" if i % 2 == 0 else "BA"):
            if which == "B":
                apply()
            try:
                if args.pause:
                    time.sleep(args.pause)
                    for _ in range(bench.LEAD_IN):
                        run.step()
                t0 = time.perf_counter()
                for _ in range(args.block_steps):
                    run.step()
                times[which].append((time.perf_counter() - t0) / args.block_steps * 1e3)
            finally:
                if which == "B":
                    revert()
    ratios = sorted(b / a for a, b in zip(times["A"], times["B"]))
    q = statistics.quantiles(ratios, n=4)
    name = os.path.splitext(os.path.basename(args.variant))[0]
    paused = f" after {args.pause:g} s pauses" if args.pause else ""
    print(f"{args.workload}, {tn.get_num_threads()} threads, {args.blocks} pairs of "
          f"{args.block_steps}-step blocks{paused}: A (as is) {statistics.median(times['A']):.3f} ms/step, "
          f"B ({name}) {statistics.median(times['B']):.3f} ms/step; B/A median "
          f"{statistics.median(ratios):.3f} (quartiles {q[0]:.3f} to {q[2]:.3f})")


if __name__ == "__main__":
    main()
