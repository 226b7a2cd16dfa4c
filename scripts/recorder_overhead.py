#!/usr/bin/env python
"""What a diagnose Recorder at its default setting costs a training step.

    python scripts/recorder_overhead.py                  # seed000 and seed001, 6 reps
    python scripts/recorder_overhead.py --workloads seed000 --reps 10 --json out.json

As a function (scripts/bench.py can call it):

    from recorder_overhead import measure
    measure("seed000", reps=6) -> dict (the keys are described in ``measure``)

Workloads (the models of ``tinynet.experiments``, as in scripts/bench.py):

    seed000   zero-pixels MLP 784-512-512-10, ReLU, Dropout 0.2, RMSprop, batch 128
    seed001   first-conv CNN (first_conv_cnn(dropout=0)), Adam, batch 128

on batches of tinynet's embedded digits (black borders, like MNIST: realistic
zero features and dead units for the hooks).

Method.  The machine this runs on may be shared and loaded, so wall-clock
time alone is not trusted.  Blocks of ``steps`` training steps without and
with ``Recorder(model, opt)`` (default ``every=10``: a block of 10 steps holds
exactly one recorded step) are interleaved, in alternating order, ``reps``
times.  Per block:

* the process CPU time per step (all threads: tinynet's and BLAS's workers),
* the main thread's CPU time per step,
* the wall-clock time per step,
* with the Recorder: the main thread's CPU time spent INSIDE the Recorder's code
  -- ``Recorder.step`` and the layer forward hooks and gradient hooks, read with
  ``time.thread_time`` around each call (nested calls counted once).

The Recorder's work runs on the main thread, serially with the step, so its
share of the wall-clock step is at most ``own / main-thread CPU of a step without
it`` (a step's wall time is at least its main thread's CPU time): that is
``share_of_main_thread``, the honest upper bound this reports as the overhead.
``share_of_process_cpu`` is the same CPU time over the step's CPU time on all
threads, and ``process_cpu_ratio`` is with/without - 1 of the process CPU
(direct, but it also carries the noise of the BLAS threads' spinning).  Each
share is a median over the repetitions, with its min and max.
"""
import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


WORKLOADS = ("seed000", "seed001")
DEFAULT_STEPS = {"seed000": 20, "seed001": 10}


def make(workload, batches=4, seed=0):
    """(model, optimizer, [(x, y) Tensors]) of ``workload``."""
    import tinynet as tn
    from tinynet import data, experiments
    if workload == "seed000":
        exp = experiments.EXPERIMENTS["zero-pixels"]
        tn.manual_seed(seed)
        model = exp.build()
    elif workload == "seed001":
        exp = experiments.EXPERIMENTS["tiny-updates"]
        tn.manual_seed(seed)
        model = experiments.first_conv_cnn(dropout=0)
    else:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    opt = exp.optimizer(model.named_parameters())
    n = exp.batch_size
    x, y = data.digits(n * batches, seed=seed, flatten=exp.flatten)
    bs = [(tn.tensor(x[i:i + n]), tn.tensor(y[i:i + n])) for i in range(0, n * batches, n)]
    return model, opt, bs


def _train(model, opt, bs, rec, steps, start):
    import tinynet.nn.functional as F
    for i in range(steps):
        x, y = bs[(start + i) % len(bs)]
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if rec is not None:
            rec.step()


@contextlib.contextmanager
def _own_time():
    """Count the main thread's CPU seconds inside the Recorder's code: yields a
    one-element list that the wrapped methods add to; the classes are restored after."""
    from tinynet.diagnose import probes, recorder
    spent, depth = [0.0], [0]
    patched = [(probes.LayerProbe, "__call__"), (probes.LayerProbe, "_on_grad"),
               (recorder.Recorder, "step")]
    originals = [(cls, name, cls.__dict__[name]) for cls, name in patched]

    def timed(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            if depth[0]:
                return f(*args, **kwargs)
            depth[0] += 1
            t = time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent[0] += time.thread_time() - t
                depth[0] -= 1
        return wrapper

    try:
        for cls, name, f in originals:
            setattr(cls, name, timed(f))
        yield spent
    finally:
        for cls, name, f in originals:
            setattr(cls, name, f)


def _blas_threads(threads):
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(threads)


def _stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(workload, reps=6, steps=None, every=10, threads=None):
    """Measure the Recorder's cost on ``workload`` ("seed000" or "seed001").

    reps    -- interleaved (without, with) block pairs
    steps   -- training steps per block (default 20 seed000, 10 seed001)
    every   -- the Recorder's ``every`` (10: its default)
    threads -- pin numpy's BLAS to this many threads (needs threadpoolctl); None:
               leave it as it is

    Returns a dict: workload, reps, steps, every, threads; ms per step (medians over
    blocks) ``step_cpu_ms`` / ``step_main_cpu_ms`` / ``step_wall_ms`` without the
    Recorder, ``with_cpu_ms`` / ``with_wall_ms`` with it, ``recorder_cpu_ms`` (its
    own main-thread CPU); the shares ``share_of_main_thread`` (the overhead: an
    upper bound on the wall-clock share), ``share_of_process_cpu`` and
    ``process_cpu_ratio`` as {"median", "min", "max"} over the repetitions (see the
    module docstring); and ``method``, one line saying so."""
    from tinynet.diagnose import Recorder
    steps = DEFAULT_STEPS.get(workload, 10) if steps is None else int(steps)
    if reps < 1 or steps < 1:
        raise ValueError(f"reps and steps must be at least 1, got {reps} and {steps}")
    model, opt, bs = make(workload)
    rows = {"cpu": [], "main": [], "wall": [], "wcpu": [], "wwall": [], "own": []}
    with _blas_threads(threads):
        _train(model, opt, bs, None, 3, 0)                   # warm-up: buffers, caches
        rec = Recorder(model, opt, every=every)
        rec.attach()
        _train(model, opt, bs, rec, every, 0)                # the first step watches topology
        rec.detach()
        for r in range(reps):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                c0, m0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
                if on:
                    rec.attach()
                    with _own_time() as own:
                        _train(model, opt, bs, rec, steps, r)
                    rec.detach()
                else:
                    _train(model, opt, bs, None, steps, r)
                cpu = (time.process_time() - c0) / steps
                main = (time.thread_time() - m0) / steps
                wall = (time.perf_counter() - w0) / steps
                if on:
                    rows["wcpu"].append(cpu)
                    rows["wwall"].append(wall)
                    rows["own"].append(own[0] / steps)
                else:
                    rows["cpu"].append(cpu)
                    rows["main"].append(main)
                    rows["wall"].append(wall)
    ms = lambda v: 1e3 * statistics.median(v)                # noqa: E731
    return {
        "workload": workload, "reps": reps, "steps": steps, "every": every, "threads": threads,
        "step_cpu_ms": ms(rows["cpu"]), "step_main_cpu_ms": ms(rows["main"]),
        "step_wall_ms": ms(rows["wall"]), "with_cpu_ms": ms(rows["wcpu"]),
        "with_wall_ms": ms(rows["wwall"]), "recorder_cpu_ms": ms(rows["own"]),
        "share_of_main_thread": _stats([o / m for o, m in zip(rows["own"], rows["main"])]),
        "share_of_process_cpu": _stats([o / c for o, c in zip(rows["own"], rows["cpu"])]),
        "process_cpu_ratio": _stats([w / c - 1 for w, c in zip(rows["wcpu"], rows["cpu"])]),
        "method": (f"{reps} interleaved pairs of {steps}-step blocks without / with "
                   f"Recorder(every={every}); the Recorder's own main-thread CPU (thread_time "
                   f"around Recorder.step and its hooks) over the main thread's CPU per step "
                   f"without it"),
    }


def line(res):
    """One line for a result of :func:`measure`."""
    pct = lambda s: (f"{100 * s['median']:.1f}% (min {100 * s['min']:.1f}%, "  # noqa: E731
                     f"max {100 * s['max']:.1f}%)")
    return (f"{res['workload']}: Recorder(every={res['every']}) own {res['recorder_cpu_ms']:.2f} "
            f"ms/step CPU = {pct(res['share_of_main_thread'])} of a step's main-thread CPU "
            f"({res['step_main_cpu_ms']:.1f} ms), {pct(res['share_of_process_cpu'])} of its "
            f"process CPU ({res['step_cpu_ms']:.1f} ms); process CPU with/without - 1: "
            f"{pct(res['process_cpu_ratio'])}; wall {res['step_wall_ms']:.1f} -> "
            f"{res['with_wall_ms']:.1f} ms/step")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--reps", type=int, default=6)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    results = []
    for w in args.workloads.split(","):
        res = measure(w.strip(), reps=args.reps, steps=args.steps, every=args.every,
                      threads=args.threads)
        print(line(res), flush=True)
        results.append(res)
    if args.json:
        tmp = args.json + ".part"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
