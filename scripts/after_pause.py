#!/usr/bin/env python
"""How much slower tinynet's first training steps are after the process sat idle.

    python scripts/after_pause.py                  # seed003, tinynet's default threads
    python scripts/after_pause.py --threads 1 --workload seed001

For each pause length, 4 times: sleep, then time 10 steps one by one; prints the
median first step, the mean of steps 2-10, and the involuntary context switches
of the process over those 10 steps (getrusage).  scripts/bench.py pauses 0.1 s
before every timed block and then runs LEAD_IN untimed steps because of what
this shows on a 2-core VM: with 2 threads the first step after a pause is much
slower; the process was preempted about five to eight times as often in the
next steps until tinynet kept its pool threads off the calling thread's CPU
(ops/_parallel.py ``keep_helpers_off_my_cpu``), at most about twice as often since;
with 1 thread neither happens.
"""
import argparse
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="seed003", choices=("seed000", "seed001", "seed003"))
    p.add_argument("--threads", type=int, default=None, help="tn.set_num_threads (default: tinynet's)")
    p.add_argument("--pauses", default="0,0.1,0.5,0.1,0", help="seconds, comma-separated")
    args = p.parse_args()
    import numpy as np
    import tinynet as tn
    import bench
    if args.threads:
        tn.set_num_threads(args.threads)
    run = bench.TinynetRun(tn, args.workload, "cpu", 0)
    for _ in range(10):
        run.step()
    print(f"{args.workload}, {tn.get_num_threads()} threads")
    for pause in (float(s) for s in args.pauses.split(",")):
        firsts, rests, switches = [], [], []
        for _ in range(4):
            time.sleep(pause)
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            ts = []
            for _ in range(10):
                t0 = time.perf_counter()
                run.step()
                ts.append(1e3 * (time.perf_counter() - t0))
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            firsts.append(ts[0])
            rests.append(float(np.mean(ts[1:])))
            switches.append(r1.ru_nivcsw - r0.ru_nivcsw)
        print(f"pause {pause:g} s: first step {np.median(firsts):.1f} ms, steps 2-10 "
              f"{np.median(rests):.1f} ms, involuntary context switches in 10 steps "
              f"{np.median(switches):g}")


if __name__ == "__main__":
    main()
