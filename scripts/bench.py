#!/usr/bin/env python
"""Benchmark tinynet against PyTorch on the seeds' three training workloads.

    python scripts/bench.py                       # CPU, 2 threads, 5 repetitions
    python scripts/bench.py --threads 1 --json bench.json
    python scripts/bench.py --quick               # a smoke run: 1 repetition of 2 steps
    python scripts/bench.py --workloads seed001 --profile   # where tinynet's time goes
    python scripts/bench.py --device cuda         # tinynet on CuPy (and PyTorch CUDA)

Workloads (the models come from ``tinynet.experiments``, so the benchmark
measures the same networks as the lessons; PyTorch gets a layer-by-layer
mirror of each, with the same initial weights and the same optimizer and
hyperparameters, in NCHW):

    seed000   zero-pixels MLP 784-512-512-10, ReLU, Dropout 0.2, RMSprop, batch 128:
              seconds per 60,000-sample epoch = (median seconds per step) x 469
              -- the steps are timed on a fixed pool of random batches and scaled
              to 469 steps; data loading is not part of either framework's time
    seed001   first-conv CNN without dropout (first_conv_cnn(dropout=0)), Adam,
              batch 128: ms per training step
    seed003   zero-kernel CNN with a healthy init (zero_kernel_cnn(zero_layer=None)),
              SGD lr 1e-4, batch 50: ms per training step
    recorder  tinynet.diagnose.Recorder(model, optimizer=opt, every=10) attached
              during the seed000 and seed001 loops: extra % of step time

A training step is: zero_grad, forward, softmax cross-entropy, backward,
optimizer step -- the same five calls in both frameworks.

Timing method.  Each framework runs in its own process: tinynet in this one,
which never imports torch, and PyTorch in a worker subprocess
(``bench.py --torch-worker``) that builds the same mirror model with the same
initial weights (it imports tinynet only to build them).  In one process
the two disturbed each other -- PyTorch's OpenMP threads and allocator state
next to tinynet's thread pool and glibc malloc -- so a ratio measured there
depended on how they coexist (OMP_WAIT_POLICY=PASSIVE alone moved the three
ratios from about 1.0/1.3/1.7 to 0.70/1.19/1.45), not on either framework.
tinynet stays in the main process because that is how a student runs it (one
plain Python process); the worker is what a PyTorch user runs, with
PyTorch's own defaults.  Both are pinned to the same number of threads
(``--threads``, default 2): tinynet through tn.set_num_threads and numpy's
BLAS through threadpoolctl, PyTorch through torch.set_num_threads, and the
OMP/OPENBLAS/MKL_NUM_THREADS variables are set before either process imports
numpy or torch.  OMP_WAIT_POLICY is never set by the benchmark (a value the
user set is inherited by both processes and printed in the header).

The two processes take turns and never run at once: the main process sends
the worker one JSON command per line on its stdin ("build" a workload and
warm it up, "time" a block of k steps) and blocks reading its one-line JSON
answer; the worker blocks reading its stdin while tinynet's block runs.
Before each block the benchmark sleeps 0.1 s, so that threads of the
framework that just ran which spin for a while before sleeping (OpenMP's,
OpenBLAS's) are asleep when the other starts; then each framework runs one
untimed step (LEAD_IN), because the first step after an idle pause measures
the operating system waking threads more than the framework.  Each framework times itself,
in its own process, with time.perf_counter: the pipe is not in the times.
The isolation is checked, not assumed: the JSON's "isolation" holds, per
PyTorch block, the CPU seconds the tinynet process used while the block ran
and the CPU seconds the worker's threads used between its blocks, and the
report prints their medians (both should be near 0; PyTorch's OpenMP threads
were measured spinning about 7 ms after each block, inside the pause).
After a warm-up, each repetition times a block of steps of every framework in
turn (tinynet, PyTorch, then the Recorder pairs below; the order reversed on
every other repetition), so that load from other processes on a shared
machine hits all of them alike.  Each block is timed in groups of 10
consecutive steps (fewer with --steps < 10); the reported time is the median
over all groups of all repetitions of the mean step time in the group --
short groups and a median keep a burst of load from skewing the result.  The
ratio is tinynet / PyTorch (below 1: tinynet is faster).  The report also
prints the ratio of each repetition's two adjacent blocks: this machine's
speed changes from minute to minute, and not by the same factor for both
frameworks, so a run's ratio has a spread of its own -- seen there, not
hidden in the median.

The Recorder overhead is measured in pairs, because this kind of machine
drifts in speed by +-15 % within a minute and a ratio of the medians of
separate blocks would count that drift as overhead.  Two model copies are
built -- a plain one and one with Recorder(every=10) attached, so the
Recorder's hooks never touch the plain run -- and 10-step groups of the two
are alternated (plain then Recorder, then Recorder then plain, ...: a linear
drift biases the two orders in opposite directions).  Every 10-step group of
the Recorder run holds exactly one recording step.  The overhead is the
median over pairs of (with / without) - 1, reported with its quartiles and
min/max over pairs; each repetition holds max(steps / 10, 3) pairs.

Memory method.  Each (framework, workload) pair runs once more in a fresh
subprocess that imports only that framework: it builds the model and the
data, then records the resident set size (VmRSS), resets the kernel's
high-water mark (writes 5 to /proc/self/clear_refs), runs the warm-up plus a
few steps and reads the high-water mark (VmHWM).  "peak MB" is VmHWM minus
that baseline: the extra memory a training step needs (activations,
gradients, optimizer state, scratch buffers, allocator slack) on top of the
parameters and the data, measured the same way for both frameworks.  The
JSON also has tinynet's tracemalloc peak (numpy reports its buffers to
tracemalloc; PyTorch does not, so that number has no PyTorch counterpart).
On CUDA the peaks are the device memory pools' (CuPy: bytes in use, sampled
after forward and after backward; PyTorch: max_memory_allocated).

For a fair CPU measurement leave OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset in the benchmark's command (they force an older, slower OpenBLAS
kernel); the header prints the kernel numpy actually runs.  Leave
OMP_WAIT_POLICY unset too, to time PyTorch as its users get it: with the
processes taking turns, its OpenMP threads' spinning after a block no
longer lands in tinynet's time, but on a machine whose other processes keep
the cores busy it still slows PyTorch's own steps far more than tinynet's
(seed000's PyTorch step, 5.4-5.7 ms in calmer minutes, was measured at
330 ms while another program kept a core busy).  The report warns when a
framework's slowest 10-step group took over 2x its fastest: rerun such a run
on a quiet machine.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

EPOCH_SAMPLES = 60_000

# name -> what the row measures; steps per timed block on the CPU
WORKLOADS = {
    "seed000": dict(title="seed000 MLP, s / 60k-sample epoch (469 steps of 128)",
                    experiment="zero-pixels", build_kwargs={}, batch=128, flatten=True,
                    steps=80, warmup=10, unit="s/epoch"),
    "seed001": dict(title="seed001 CNN, ms / step (batch 128, Adam)",
                    experiment="tiny-updates", build_kwargs={"dropout": 0}, batch=128,
                    flatten=False, steps=10, warmup=3, unit="ms/step"),
    "seed003": dict(title="seed003 CNN, ms / step (batch 50, SGD)",
                    experiment="zero-kernel", build_kwargs={"zero_layer": None}, batch=50,
                    flatten=False, steps=20, warmup=5, unit="ms/step"),
}
RECORDER_ON = ("seed000", "seed001")
TARGETS = {"seed000": 1.0, "seed001": 1.2, "seed003": 1.3}
RECORDER_TARGET = 10.0          # percent of step time
POOL = 4                        # distinct random batches cycled through


# --------------------------------------------------------------------------
# command line (parsed before numpy is imported, so the thread count sticks)
# --------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time tinynet and PyTorch on the seeds' training workloads.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=2,
                   help="BLAS/OpenMP threads for both frameworks (default 2)")
    p.add_argument("--reps", type=int, default=None,
                   help="timed repetitions per framework (default 5; median reported)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per timed block (default: 80 seed000, 10 seed001, 20 seed003)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    p.add_argument("--workloads", default="seed000,seed001,seed003,recorder",
                   help="comma-separated subset of seed000, seed001, seed003, recorder")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 repetition of 2 steps, 1 warm-up step")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--no-torch", action="store_true", help="time tinynet only")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--scaling", action="store_true",
                   help="also time seed001 and seed003 at batch 32, 128, 512 and at image "
                        "size 56 (slow: minutes)")
    p.add_argument("--profile", action="store_true",
                   help="instead of the table: cProfile tinynet on each workload")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-probe", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"),
                   help=argparse.SUPPRESS)
    # internal: the PyTorch side of the timing, one JSON command per stdin line
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    # tests only: "cuda" backed by tinynet's strict CuPy stand-in (numpy underneath),
    # so the --device cuda code path runs on a machine without a GPU
    p.add_argument("--standin", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in names if w not in WORKLOADS and w != "recorder"]
    if bad or not names:
        p.error(f"--workloads: unknown {bad or names}; choose from "
                f"{', '.join(list(WORKLOADS) + ['recorder'])}")
    args.names = names
    if args.quick:
        args.reps = args.reps or 1
        args.steps = args.steps or 2
        args.warmup = 1 if args.warmup is None else args.warmup
    args.reps = args.reps or 5
    if args.reps < 1 or (args.steps is not None and args.steps < 1):
        p.error("--reps and --steps must be at least 1")
    return args


def pin_threads_env(n):
    """Thread counts for the BLAS and OpenMP pools, before they are created."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


# --------------------------------------------------------------------------
# the frameworks (imported after the thread variables are set)
# --------------------------------------------------------------------------
def import_tinynet():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import tinynet
    return tinynet


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


class Threads:
    """Pin numpy's BLAS (threadpoolctl, optional) and torch to n threads."""

    def __init__(self, n):
        self.n, self.limiter, self.info = n, None, []
        try:
            import threadpoolctl
        except ImportError:
            self.note = ("threadpoolctl not installed: BLAS threads set only through "
                         "OPENBLAS/OMP/MKL_NUM_THREADS")
            return
        import numpy  # noqa: F401  (load the BLAS so threadpoolctl sees it)
        self.limiter = threadpoolctl.threadpool_limits(limits=n)
        self.info = threadpoolctl.threadpool_info()
        self.note = ""

    def pin_torch(self, torch):
        if torch is not None:
            torch.set_num_threads(self.n)

    def blas(self):
        """e.g. 'openblas 0.3.31 SkylakeX, 2 threads'."""
        for lib in self.info:
            if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
                return (f"{lib.get('internal_api')} {lib.get('version')} "
                        f"{lib.get('architecture') or ''}, {lib.get('num_threads')} threads")
        for lib in self.info:
            if lib.get("user_api") == "blas":
                return (f"{lib.get('internal_api')} {lib.get('version')} "
                        f"{lib.get('architecture') or ''}, {lib.get('num_threads')} threads")
        return "unknown (install threadpoolctl to see it)"


# ---- the models, at any batch size and image size -----------------------------
def input_shape(name, batch, image=28):
    return (batch, image * image) if WORKLOADS[name]["flatten"] else (batch, 1, image, image)


def build_tinynet(tn, name, seed, image=28):
    """The workload's model and optimizer from tinynet.experiments.  For an
    image size other than 28 the first Dense after Flatten gets the matching
    number of inputs (the rest of the network is unchanged)."""
    from tinynet import experiments, nn
    import numpy as np
    spec = WORKLOADS[name]
    exp = experiments.EXPERIMENTS[spec["experiment"]]
    tn.manual_seed(seed)
    model = exp.build(**spec["build_kwargs"])
    if image != 28:
        layers = list(model.children())
        if spec["flatten"]:
            first = layers[0]
            layers[0] = nn.Dense(image * image, first.out_features)
        else:
            cut = next(i for i, m in enumerate(layers) if isinstance(m, nn.Flatten))
            with tn.no_grad():
                h = tn.tensor(np.zeros((1, 1, image, image), np.float32))
                for m in layers[:cut + 1]:
                    h = m(h)
            dense = layers[cut + 1]
            layers[cut + 1] = nn.Dense(h.shape[1], dense.out_features)
        model = nn.Sequential(*layers)
    return model, exp.optimizer(model.named_parameters())


def gemm_shapes(tn, model, shape):
    """The (M, K, N) matrix products of one training step of ``model`` on a
    batch of ``shape``, in the im2col formulation: per Conv2D/Dense the
    forward product, dW, and dx (except for the first layer: the images need
    no gradient)."""
    from tinynet import nn
    import numpy as np
    shapes, first = [], True
    with tn.no_grad():
        h = tn.tensor(np.zeros(shape, np.float32))
        for m in model.children():
            out = m(h)
            if isinstance(m, nn.Conv2D):
                N, O, OH, OW = out.shape
                K, L = h.shape[1] * m.weight.shape[2] * m.weight.shape[3], N * OH * OW
                shapes += [(O, K, L), (K, L, O)] + ([] if first else [(K, O, L)])
                first = False
            elif isinstance(m, nn.Dense):
                (N, IN), OUT = h.shape, out.shape[1]
                shapes += [(N, IN, OUT), (IN, N, OUT)] + ([] if first else [(N, OUT, IN)])
                first = False
            h = out
    return shapes


def gemm_floor(shapes, threads, reps=5):
    """Seconds the step's matrix products need at best: numpy's BLAS on one
    thread, on contiguous operands, divided by ``threads`` (perfect scaling).
    No im2col framework with this BLAS kernel can go under it.  Measured
    single-threaded because a multi-threaded OpenBLAS spins while it waits
    and, on a busy machine, would report its waiting as arithmetic.  The
    minimum of ``reps`` (a floor: load from other processes only adds time)."""
    import numpy as np
    rng = np.random.default_rng(0)
    ops = [(rng.random((M, K), dtype=np.float32), rng.random((K, N), dtype=np.float32),
            np.empty((M, N), np.float32)) for M, K, N in shapes]
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        limit = None
    try:
        times = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            for a, b, out in ops:
                np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
    finally:
        if limit is not None:
            limit.restore_original_limits()
    return min(times[1:]) / threads


# ---- tinynet ----------------------------------------------------------------
class TinynetRun:
    """One workload in tinynet: model, optimizer, a pool of batches, step()."""

    framework = "tinynet"

    def __init__(self, tn, name, device, seed, batch=None, image=28):
        import tinynet.nn.functional as F
        import numpy as np
        spec = WORKLOADS[name]
        batch = batch or spec["batch"]
        self.tn, self.F, self.device = tn, F, device
        self.model, self.opt = build_tinynet(tn, name, seed, image)
        if device != "cpu":
            self.model.to(device)
        self.model.train()
        rng = np.random.default_rng(seed)
        self.shape = shape = input_shape(name, batch, image)
        self.batches = [
            (tn.tensor(rng.random(shape, dtype=np.float32), device=device),
             tn.tensor(rng.integers(0, 10, batch), device=device))
            for _ in range(POOL)]
        self.i = 0
        self.recorder = None
        self.sync = _cuda_sync if device == "cuda" else (lambda: None)

    def step(self):
        x, y = self.batches[self.i % POOL]
        self.i += 1
        self.opt.zero_grad()
        loss = self.F.softmax_cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        if self.recorder is not None:
            self.recorder.step(x)

    def attach_recorder(self, every=10):
        from tinynet.diagnose import Recorder
        self.recorder = Recorder(self.model, optimizer=self.opt, every=every)
        self.recorder.attach()

    def detach_recorder(self):
        if self.recorder is not None:
            self.recorder.detach()
            self.recorder = None


def _cuda_sync():
    """Wait for the GPU (timings of asynchronous kernels need it)."""
    from tinynet import backend
    cuda = getattr(backend.cuda_xp(), "cuda", None)      # the stand-in has none
    if cuda is not None:
        cuda.Device().synchronize()


def recorder_available():
    """(True, "") or (False, why) -- the Recorder is optional for the benchmark."""
    try:
        from tinynet.diagnose import Recorder  # noqa: F401
    except Exception as exc:                  # ImportError, or a half-written module
        return False, f"tinynet.diagnose.Recorder not importable ({type(exc).__name__}: {exc})"
    return True, ""


# ---- PyTorch mirror -------------------------------------------------------------
def torch_mirror(torch, tn_model):
    """A torch.nn.Sequential with tinynet's layers, shapes and initial weights."""
    from tinynet import nn as tnn
    tnn_layers = list(tn_model.children())
    layers = []
    for m in tnn_layers:
        if isinstance(m, tnn.Dense):
            lin = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(m.weight.numpy().T.copy()))
                if m.bias is not None:
                    lin.bias.copy_(torch.from_numpy(m.bias.numpy()))
            layers.append(lin)
        elif isinstance(m, tnn.Conv2D):
            kh, kw = m.kernel_size
            if m.padding == "same":
                if m.stride != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                    raise NotImplementedError("mirror: 'same' only for stride 1, odd kernels")
                pad = (kh // 2, kw // 2)
            elif m.padding == "valid":
                pad = (0, 0)
            else:
                pad = m.padding
            conv = torch.nn.Conv2d(m.in_channels, m.out_channels, (kh, kw), stride=m.stride,
                                   padding=pad, bias=m.bias is not None)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(m.weight.numpy()))
                if m.bias is not None:
                    conv.bias.copy_(torch.from_numpy(m.bias.numpy()))
            layers.append(conv)
        elif isinstance(m, tnn.ReLU):
            layers.append(torch.nn.ReLU())
        elif isinstance(m, tnn.MaxPool2D):
            layers.append(torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding))
        elif isinstance(m, tnn.Flatten):
            layers.append(torch.nn.Flatten())
        elif isinstance(m, tnn.Dropout):
            layers.append(torch.nn.Dropout(m.p))
        else:
            raise NotImplementedError(f"mirror: no PyTorch layer for {type(m).__name__}")
    return torch.nn.Sequential(*layers)


def torch_optimizer(torch, tn_opt, params):
    """The PyTorch optimizer with tinynet's optimizer's hyperparameters."""
    kind = type(tn_opt).__name__
    h = tn_opt.hyperparameters
    if kind == "SGD":
        return torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"],
                               weight_decay=h["weight_decay"], nesterov=h["nesterov"])
    if kind == "RMSprop":        # Keras 2 RMSprop == torch RMSprop(alpha=rho), see tinynet.optim
        return torch.optim.RMSprop(params, lr=h["lr"], alpha=h["rho"], eps=h["eps"])
    if kind == "Adam":
        return torch.optim.Adam(params, lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"])
    raise NotImplementedError(f"no PyTorch optimizer for {kind}")


class TorchRun:
    framework = "torch"

    def __init__(self, torch, tn, name, device, seed, batch=None, image=28):
        import numpy as np
        spec = WORKLOADS[name]
        batch = batch or spec["batch"]
        tn_model, tn_opt = build_tinynet(tn, name, seed, image)     # same initial weights
        self.torch = torch
        dev = torch.device(device)
        self.model = torch_mirror(torch, tn_model).to(dev)
        self.model.train()
        del tn_model
        self.opt = torch_optimizer(torch, tn_opt, self.model.parameters())
        self.loss_fn = torch.nn.CrossEntropyLoss()
        rng = np.random.default_rng(seed)
        shape = input_shape(name, batch, image)
        self.batches = [
            (torch.from_numpy(rng.random(shape, dtype=np.float32)).to(dev),
             torch.from_numpy(rng.integers(0, 10, batch)).to(dev))
            for _ in range(POOL)]
        self.i = 0
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step(self):
        x, y = self.batches[self.i % POOL]
        self.i += 1
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.opt.step()

    def first_loss(self):
        """Loss on the first batch in eval mode (no dropout), without a step."""
        x, y = self.batches[0]
        self.model.eval()
        with self.torch.no_grad():
            loss = float(self.loss_fn(self.model(x), y))
        self.model.train()
        return loss


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def steps_for(args, name):
    return args.steps or WORKLOADS[name]["steps"]


def warmup_for(args, name):
    return WORKLOADS[name]["warmup"] if args.warmup is None else args.warmup


GROUP = 10     # steps per timed group: every group holds exactly one Recorder(every=10) record
SETTLE_S = 0.1     # pause before each block: spinning OpenMP/OpenBLAS threads go to sleep
#: untimed steps at the start of each block, after the pause.  The first step after
#: an idle pause is slow for a reason that is not the step itself: on this 2-core VM
#: tinynet's seed-003 step with 2 threads took 38-44 ms right after a 0.1-0.5 s pause
#: instead of 25 ms, with 67-97 involuntary context switches in 10 steps instead of 5,
#: and nothing of the kind with 1 thread (scripts/after_pause.py): the woken pool
#: thread ran on its waker's CPU until the scheduler spread them -- tinynet now keeps
#: it off that CPU (ops/_parallel.py), which cuts those switches to about a third, but both threads
#: still compute slower in the first step after a pause (29-40 ms).  Both
#: frameworks get the same lead-in, so each block times the steady state of a loop.
LEAD_IN = 1
RECORDER_MIN_PAIRS = 3     # (plain, Recorder) group pairs per repetition, at least


def group_size(steps):
    return min(GROUP, steps)


def pairs_for(args, name):
    """(plain, Recorder) group pairs per repetition: as many groups as a block
    holds, at least RECORDER_MIN_PAIRS (1 with --quick)."""
    steps = steps_for(args, name)
    return max(-(-steps // group_size(steps)), 1 if args.quick else RECORDER_MIN_PAIRS)


def time_group(run, g, clock=time.perf_counter):
    """Mean seconds per step of ``g`` consecutive steps of ``run``."""
    run.sync()
    t0 = clock()
    for _ in range(g):
        run.step()
    run.sync()
    return (clock() - t0) / g


def time_block(run, steps, clock=time.perf_counter):
    """One block of ``steps`` steps -> the mean seconds per step of each group of
    ``group_size(steps)`` consecutive steps in it (steps is rounded up to whole groups),
    after LEAD_IN untimed steps."""
    g = group_size(steps)
    for _ in range(LEAD_IN):
        run.step()
    return [time_group(run, g, clock) for _ in range(-(-steps // g))]


def time_pairs(plain, rec, n_pairs, g, first=0, clock=time.perf_counter):
    """``n_pairs`` back-to-back pairs of ``g``-step groups of ``plain`` and ``rec``
    (two model copies, the Recorder attached to ``rec`` only) -> list of
    (seconds/step without, seconds/step with).  Pair number ``first + i`` runs
    the Recorder group first when it is odd: alternating the order makes a
    steady drift of machine speed bias half the pairs up and half down, so it
    cancels in their median instead of landing in the overhead.  LEAD_IN untimed
    steps of each copy come first (see LEAD_IN)."""
    for _ in range(LEAD_IN):
        plain.step()
        rec.step()
    out = []
    for i in range(n_pairs):
        if (first + i) % 2:
            with_s = time_group(rec, g, clock)
            without_s = time_group(plain, g, clock)
        else:
            without_s = time_group(plain, g, clock)
            with_s = time_group(rec, g, clock)
        out.append((without_s, with_s))
    return out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def quantile(xs, q):
    """Linear-interpolated quantile (numpy's default) of a non-empty list."""
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def paired_overhead(pairs):
    """[(seconds without, seconds with), ...] of adjacent groups -> the
    Recorder overhead in percent: the median over pairs of with/without - 1,
    its quartiles and its extremes.  A pair's ratio sees only the drift
    within one pair (seconds), not the drift between blocks (a minute)."""
    pct = [100.0 * (w / wo - 1.0) for wo, w in pairs]
    return {"overhead_pct": median(pct),
            "overhead_q1_pct": quantile(pct, 0.25), "overhead_q3_pct": quantile(pct, 0.75),
            "overhead_min_pct": min(pct), "overhead_max_pct": max(pct),
            "pairs": len(pct)}


def repetition_ratios(tinynet_groups, torch_groups, groups_per_block):
    """tinynet / PyTorch of each repetition's two adjacent blocks (median step of
    each block's groups), in repetition order: the spread of the ratio within one
    run, which the ratio of the overall medians does not show.  Both lists hold
    ``groups_per_block`` groups per repetition, in repetition order."""
    k = groups_per_block
    reps = min(len(tinynet_groups), len(torch_groups)) // k
    return [median(tinynet_groups[i * k:(i + 1) * k]) / median(torch_groups[i * k:(i + 1) * k])
            for i in range(reps)]


def bench_workload(args, tn, worker, name, with_recorder, log, with_torch=True):
    """Interleaved timing of one workload -> dict of per-step second lists
    ("tinynet", "torch" when the worker answered throughout) and, with the
    Recorder, "recorder_pairs": [(without, with), ...]."""
    steps, warm = steps_for(args, name), warmup_for(args, name)
    runs = {"tinynet": TinynetRun(tn, name, args.device, args.seed)}
    if with_recorder:
        rec_run = TinynetRun(tn, name, args.device, args.seed)
        rec_run.attach_recorder(every=10)
        runs["tinynet+recorder"] = rec_run
    for run in runs.values():
        for _ in range(warm):
            run.step()
        run.sync()
    segments = ["tinynet"]
    if with_torch and worker is not None and worker.call(
            log, cmd="build", key=name, workload=name, warmup=warm) is not None:
        segments.append("torch")
    if with_recorder:
        segments.append("recorder")
    times = {"tinynet": [], "torch": [], "recorder_pairs": [],
             "main_cpu_during_torch_s": [], "torch_cpu_between_blocks_s": []}
    g = group_size(steps)
    for rep in range(args.reps):
        order = segments if rep % 2 == 0 else segments[::-1]
        block = {}
        for seg in order:
            time.sleep(SETTLE_S)
            if seg == "tinynet":
                block[seg] = time_block(runs["tinynet"], steps)
            elif seg == "torch" and worker.alive:
                cpu0 = time.process_time()
                reply = worker.call(log, cmd="time", key=name, steps=steps)
                if reply is not None:
                    block[seg] = reply["times"]
                    # the isolation check: both should be ~0 (see "Timing method")
                    times["main_cpu_during_torch_s"].append(time.process_time() - cpu0)
                    times["torch_cpu_between_blocks_s"].append(reply["idle_cpu_s"])
            elif seg == "recorder":
                pairs = time_pairs(runs["tinynet"], runs["tinynet+recorder"],
                                   pairs_for(args, name), g, first=len(times["recorder_pairs"]))
                times["recorder_pairs"] += pairs
                block["tinynet+recorder"] = [w for _, w in pairs]
        for key in ("tinynet", "torch"):
            times[key] += block.get(key, [])
        log(f"  {name} rep {rep + 1}/{args.reps}: " + ", ".join(
            f"{k} {1e3 * median(v):.2f} ms/step" for k, v in block.items()))
    if with_recorder:
        runs["tinynet+recorder"].detach_recorder()
    if "torch" in segments and worker.alive:
        worker.call(log, cmd="drop", key=name)
    else:
        del times["torch"]           # none, or from a worker that died part-way: not comparable
    return times


# --------------------------------------------------------------------------
# the PyTorch worker: its own process, driven one JSON line at a time
# --------------------------------------------------------------------------
class WorkerError(RuntimeError):
    """The PyTorch worker is gone, or did not answer, or answered an error."""


class TorchWorker:
    """The main process's end of the PyTorch worker.

    ``cmd`` is the worker's command line (tests pass others).  The worker's
    first line says whether it is ready; afterwards ``request(cmd=...)``
    sends one JSON line and blocks until the one-line JSON answer comes.
    The worker's stderr goes to a temporary file, so a crash shows as its
    last line, not as a traceback in the benchmark's output."""

    def __init__(self, cmd, timeout=600):
        import tempfile
        self.timeout, self.alive, self.why = timeout, False, ""
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1,
                                     env=dict(os.environ))
        self.alive = True
        try:
            self.info = self._read()        # {"ok", "torch", "threads", "pid"}
        except WorkerError:
            self.close()
            raise

    @classmethod
    def start(cls, args):
        cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker",
               "--threads", str(args.threads), "--device", args.device,
               "--seed", str(args.seed)]
        return cls(cmd)

    def _last_stderr(self):
        self.stderr.seek(0)
        lines = [ln.strip() for ln in self.stderr.read().splitlines() if ln.strip()]
        return lines[-1] if lines else "no message"

    def _read(self):
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            self.close()
            raise WorkerError(f"the PyTorch worker did not answer within {self.timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            why = self._last_stderr()
            self.close()
            raise WorkerError(f"the PyTorch worker exited (code {code}): {why}")
        try:
            reply = json.loads(line)
        except ValueError:
            self.close()
            raise WorkerError(f"the PyTorch worker answered {line.strip()[:80]!r}, not JSON")
        if not reply.get("ok"):
            raise WorkerError(reply.get("error", "the PyTorch worker reported an error"))
        return reply

    def request(self, **msg):
        if not self.alive:
            raise WorkerError(self.why or "the PyTorch worker is not running")
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            code = self.proc.wait()
            why = self._last_stderr()
            self.close()
            raise WorkerError(f"the PyTorch worker exited (code {code}): {why}")
        return self._read()

    def call(self, log, **msg):
        """request(), but a failure stops the worker and is logged in one line:
        the benchmark then goes on with tinynet alone.  -> the reply or None."""
        try:
            return self.request(**msg)
        except WorkerError as exc:
            self.fail(str(exc), log)
            return None

    def fail(self, why, log):
        if self.why:
            return
        self.why = why
        log(f"PyTorch stopped: {why}. Timing tinynet only from here.")
        self.close()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.alive = False


def torch_worker(args):
    """Runs in the worker process (``--torch-worker``): PyTorch's side of the
    timing.  Reads one JSON command per stdin line and answers one JSON line:

        {"cmd": "build", "key": K, "workload": W, "warmup": n[, "batch": b, "image": i]}
            builds TorchRun(W) (tinynet's initial weights) and runs n warm-up steps
        {"cmd": "time", "key": K, "steps": k}  ->  {"ok": true, "times": [s/step per group],
                                                    "idle_cpu_s": CPU s used since the
                                                    previous answer (should be ~0)}
        {"cmd": "loss", "key": K}  ->  {"ok": true, "loss": L}  loss on the first batch,
                                                eval mode, no step (the tests compare it
                                                with tinynet's on the same batch)
        {"cmd": "drop", "key": K}               frees the workload
        {"cmd": "quit"} or end of input         exits

    Every answer has "ok"; a failed command answers {"ok": false, "error": ...}.
    The first line, before any command, says whether PyTorch is ready."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)        # anything else printed (Python or C) goes to stderr, not the protocol

    idle_since = [time.process_time()]

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()
        idle_since[0] = time.process_time()      # CPU of all its threads, from here on idle

    tn = import_tinynet()            # only to build the models' initial weights
    threads = Threads(args.threads)  # numpy's BLAS first, then torch: as the memory probe does
    try:
        import torch
    except ImportError as exc:
        send({"ok": False, "error": f"torch is not importable ({exc})"})
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        send({"ok": False, "error": f"this PyTorch ({torch.__version__}) has no CUDA"})
        return 0
    threads.pin_torch(torch)
    send({"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
          "pid": os.getpid()})
    runs = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            cmd = msg["cmd"]
            if cmd == "quit":
                break
            if cmd == "build":
                run = TorchRun(torch, tn, msg["workload"], args.device, args.seed,
                               msg.get("batch"), msg.get("image", 28))
                for _ in range(msg.get("warmup", 0)):
                    run.step()
                run.sync()
                runs[msg["key"]] = run
                send({"ok": True})
            elif cmd == "time":
                # the CPU its threads used since its last answer, i.e. while tinynet
                # ran: threads spinning after the previous block would show here
                idle_cpu = time.process_time() - idle_since[0]
                send({"ok": True, "times": time_block(runs[msg["key"]], msg["steps"]),
                      "idle_cpu_s": idle_cpu})
            elif cmd == "loss":      # tests: the same network and data as tinynet's?
                send({"ok": True, "loss": runs[msg["key"]].first_loss()})
            elif cmd == "drop":
                runs.pop(msg["key"], None)
                send({"ok": True})
            else:
                send({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception as exc:          # answered, so the main process can carry on
            send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0


# --------------------------------------------------------------------------
# memory: one fresh subprocess per (framework, workload)
# --------------------------------------------------------------------------
def _proc_status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_probe(args, framework, name):
    """Runs in the subprocess: prints one JSON line with the peak increase."""
    import gc
    tn = import_tinynet()
    threads = Threads(args.threads)
    torch = None
    if framework == "torch":
        torch = import_torch()
        threads.pin_torch(torch)
        run = TorchRun(torch, tn, name, args.device, args.seed)
    else:
        run = TinynetRun(tn, name, args.device, args.seed)
    steps = warmup_for(args, name) + min(steps_for(args, name), 5)
    out = {"framework": framework, "workload": name, "steps": steps}
    if args.device == "cuda":
        out.update(_cuda_peak(run, torch, steps))
    else:
        gc.collect()
        base = _proc_status_kb("VmRSS")
        reset = _reset_hwm()
        for _ in range(steps):
            run.step()
        peak = _proc_status_kb("VmHWM")
        if base is None or peak is None:
            out["error"] = "no /proc/self/status (not Linux?)"
        else:
            out["baseline_mb"] = base / 1024
            out["peak_mb"] = max(peak - base, 0) / 1024
            out["method"] = "VmHWM - VmRSS" + ("" if reset else " (clear_refs refused: "
                                                "VmHWM includes the setup)")
        if framework == "tinynet":           # a second, exact view of numpy's buffers
            import tracemalloc
            from tinynet.ops import conv
            del run
            conv.workspace.clear()           # its im2col buffers count, as in the RSS run
            gc.collect()
            run = TinynetRun(tn, name, args.device, args.seed)
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(min(steps, 3)):
                run.step()
            out["tracemalloc_peak_mb"] = (tracemalloc.get_traced_memory()[1] - before) / 2**20
            tracemalloc.stop()
    print("MEMORY " + json.dumps(out))


def _cuda_peak(run, torch, steps):
    if torch is not None:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(steps):
            run.step()
        torch.cuda.synchronize()
        return {"peak_mb": (torch.cuda.max_memory_allocated() - base) / 2**20,
                "method": "torch.cuda.max_memory_allocated - memory_allocated"}
    from tinynet import backend
    pool = getattr(backend.cuda_xp(), "get_default_memory_pool", lambda: None)()
    if pool is None:
        return {"error": "no CuPy memory pool (the stand-in)"}
    base, peak = pool.used_bytes(), 0
    for _ in range(steps):
        run.step()
        peak = max(peak, pool.used_bytes())
    # the largest live set is right after forward; sample it too
    x, y = run.batches[0]
    run.opt.zero_grad()
    loss = run.F.softmax_cross_entropy(run.model(x), y)
    peak = max(peak, pool.used_bytes())
    loss.backward()
    peak = max(peak, pool.used_bytes())
    return {"peak_mb": (peak - base) / 2**20,
            "method": "cupy default pool used_bytes, sampled (approximate)"}


def measure_memory(args, framework, name, log):
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe", framework, name,
           "--threads", str(args.threads), "--device", args.device, "--reps", "1",
           "--seed", str(args.seed)]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.warmup is not None:
        cmd += ["--warmup", str(args.warmup)]
    if args.standin:
        cmd += ["--standin"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ))
    except subprocess.TimeoutExpired:
        log(f"  memory probe {framework} {name}: timed out")
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY "):
            return json.loads(line[len("MEMORY "):])
    log(f"  memory probe {framework} {name} failed (exit {proc.returncode}): "
        f"{proc.stderr.strip().splitlines()[-1:] or ''}")
    return None


# --------------------------------------------------------------------------
# profile mode
# --------------------------------------------------------------------------
def profile(args, tn, names):
    import cProfile
    import pstats
    for name in names:
        if name == "recorder":
            continue
        run = TinynetRun(tn, name, args.device, args.seed)
        for _ in range(warmup_for(args, name)):
            run.step()
        steps = steps_for(args, name)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            run.step()
        prof.disable()
        print(f"\n### {name}: tinynet, {steps} steps, top functions by own time\n")
        st = pstats.Stats(prof, stream=sys.stdout)
        st.sort_stats("tottime").print_stats(18)


# --------------------------------------------------------------------------
# GEMM floor and scaling with batch and image size
# --------------------------------------------------------------------------
SCALING = [(name, batch, 28) for name in ("seed001", "seed003") for batch in (32, 128, 512)] + \
    [(name, WORKLOADS[name]["batch"], 56) for name in ("seed001", "seed003")]


def floor_entry(tn, name, threads, batch=None, image=28):
    """The GEMM floor of one step of a workload (seconds)."""
    batch = batch or WORKLOADS[name]["batch"]
    model, _ = build_tinynet(tn, name, 0, image)
    return gemm_floor(gemm_shapes(tn, model, input_shape(name, batch, image)), threads)


def bench_scaling(args, tn, worker, log):
    """Interleaved timing of seed001/seed003 over SCALING: a list of row dicts."""
    rows = []
    for name, batch, image in SCALING:
        run = TinynetRun(tn, name, args.device, args.seed, batch, image)
        run.step()
        run.sync()
        key = f"{name}-{batch}-{image}"
        segments = ["tinynet"]
        if worker is not None and worker.call(log, cmd="build", key=key, workload=name,
                                              batch=batch, image=image, warmup=1) is not None:
            segments.append("torch")
        steps = 2 if batch >= 512 or image > 28 else 3
        times = {"tinynet": [], "torch": []}
        for rep in range(args.reps):
            for seg in (segments if rep % 2 == 0 else segments[::-1]):
                time.sleep(SETTLE_S)
                if seg == "tinynet":
                    times["tinynet"] += time_block(run, steps)
                elif worker.alive:
                    reply = worker.call(log, cmd="time", key=key, steps=steps)
                    times["torch"] += reply["times"] if reply is not None else []
        has_torch = "torch" in segments and worker.alive
        if has_torch:
            worker.call(log, cmd="drop", key=key)
        row = {"workload": name, "batch": batch, "image": image,
               "tinynet_median_s": median(times["tinynet"]),
               "tinynet_spread_s": [min(times["tinynet"]), max(times["tinynet"])],
               "gemm_floor_s": floor_entry(tn, name, args.threads, batch, image)}
        if has_torch:
            row["torch_median_s"] = median(times["torch"])
            row["torch_spread_s"] = [min(times["torch"]), max(times["torch"])]
            row["ratio"] = row["tinynet_median_s"] / row["torch_median_s"]
        log(f"  scaling {name} batch {batch} image {image}: tinynet "
            f"{1e3 * row['tinynet_median_s']:.1f} ms/step"
            + (f", torch {1e3 * row['torch_median_s']:.1f} ms/step" if "torch_median_s" in row
               else ""))
        rows.append(row)
        del run
    return rows


def scaling_table(rows):
    head = ["workload", "batch", "image", "tinynet ms (min–max)", "PyTorch ms (min–max)",
            "ratio", "GEMM floor ms", "floor / tinynet", "floor / PyTorch"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        tn_ms = 1e3 * r["tinynet_median_s"]
        lo, hi = (1e3 * v for v in r["tinynet_spread_s"])
        cells = [r["workload"], r["batch"], r["image"], f"{tn_ms:.1f} ({lo:.1f}–{hi:.1f})"]
        if "torch_median_s" in r:
            pt_ms = 1e3 * r["torch_median_s"]
            plo, phi = (1e3 * v for v in r["torch_spread_s"])
            cells += [f"{pt_ms:.1f} ({plo:.1f}–{phi:.1f})", f"{r['ratio']:.2f}"]
        else:
            cells += ["—", "—"]
        floor = 1e3 * r["gemm_floor_s"]
        cells += [f"{floor:.1f}", f"{floor / tn_ms:.0%}",
                  f"{floor / pt_ms:.0%}" if "torch_median_s" in r else "—"]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def fmt_time(name, sec_per_step):
    if sec_per_step is None:
        return "—"
    if WORKLOADS[name]["unit"] == "s/epoch":
        return f"{sec_per_step * EPOCH_SAMPLES / WORKLOADS[name]['batch']:.3f} s"
    return f"{1e3 * sec_per_step:.1f} ms"


def fmt_mb(entry):
    if not entry or "peak_mb" not in entry:
        return "—"
    return f"{entry['peak_mb']:.0f}"


def build_rows(results):
    rows = []
    for name, r in results["workloads"].items():
        if name == "recorder":
            continue
        tn_s, pt_s = r["tinynet_median_s"], r.get("torch_median_s")
        ratio = tn_s / pt_s if pt_s else None
        target = TARGETS[name]
        verdict = "" if ratio is None else (" ok" if ratio <= target else " MISSED")
        rows.append([WORKLOADS[name]["title"], fmt_time(name, tn_s), fmt_time(name, pt_s),
                     "—" if ratio is None else f"{ratio:.2f}{verdict}", f"≤ {target:.1f}",
                     fmt_mb(r.get("memory", {}).get("tinynet")),
                     fmt_mb(r.get("memory", {}).get("torch"))])
    rec = results["workloads"].get("recorder")
    if rec is not None:
        if rec.get("skipped"):
            rows.append(["Recorder(every=10) overhead", "skipped", "—", "—",
                         f"< {RECORDER_TARGET:.0f} %", "—", "—"])
        for name, r in rec.get("per_workload", {}).items():
            pct = r["overhead_pct"]
            verdict = " ok" if pct < RECORDER_TARGET else " MISSED"
            rows.append([f"Recorder(every=10) on {name}, % of step time",
                         f"{fmt_time(name, r['with_median_s'])} ({pct:+.1f} %, quartiles "
                         f"{r['overhead_q1_pct']:+.1f} to {r['overhead_q3_pct']:+.1f} %)",
                         "—", f"{1 + pct / 100:.3f} vs. no recorder{verdict}",
                         f"< {RECORDER_TARGET:.0f} %", "—", "—"])
    return rows


def markdown_table(rows):
    head = ["workload", "tinynet", "PyTorch", "ratio", "target",
            "peak MB tinynet", "peak MB torch"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def environment(args, threads, torch_info):
    import numpy as np
    env = {
        "command": "python " + " ".join([os.path.relpath(os.path.abspath(__file__), ROOT)]
                                        + sys.argv[1:]),
        "device": args.device, "threads": args.threads, "reps": args.reps,
        "python": platform.python_version(), "numpy": np.__version__,
        "blas": threads.blas(), "cpu": _cpu_name(), "cores": os.cpu_count(),
        "torch": (torch_info or {}).get("torch"),
        "torch_threads": (torch_info or {}).get("threads"),
        "torch_process": ("a worker subprocess (bench.py --torch-worker), tinynet in the "
                          "main process" if torch_info else None),
        "tinynet_pid": os.getpid(), "torch_pid": (torch_info or {}).get("pid"),
        # the point of the worker: True would mean both frameworks shared this process
        "torch_in_main_process": "torch" in sys.modules,
        "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                         if k in os.environ},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "loadavg_start": _loadavg(),
    }
    return env


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    pin_threads_env(args.threads)
    if args.torch_worker:
        return torch_worker(args)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    tn = import_tinynet()
    tn.set_num_threads(args.threads)        # tinynet's own pool (its BLAS runs 1 thread per block)
    if args.standin:
        tn.backend.install_cuda("strict")
    if args.device == "cuda" and not tn.cuda_available():
        print("bench.py: --device cuda needs an NVIDIA GPU with CuPy installed "
              "(pip install 'tinynet[gpu]', i.e. cupy-cuda12x); tinynet.cuda_available() "
              "is False on this machine. Run without --device cuda to benchmark the CPU.",
              file=sys.stderr)
        return 2
    threads = Threads(args.threads)

    if args.memory_probe:
        memory_probe(args, *args.memory_probe)
        return 0
    if args.profile:
        profile(args, tn, args.names)
        return 0

    # PyTorch times itself in its own process (see "Timing method"); this one never imports it
    worker, no_torch_why = None, "--no-torch given."
    if not args.no_torch:
        try:
            worker = TorchWorker.start(args)
        except WorkerError as exc:
            no_torch_why = f"{exc}."
            log(f"note: PyTorch not timed: {exc}. Timing tinynet only.")
    try:
        return run_benchmark(args, tn, threads, worker, no_torch_why, log)
    finally:
        if worker is not None:
            worker.close()


def run_benchmark(args, tn, threads, worker, no_torch_why, log):
    """The timed runs, the memory probes and the report."""
    env = environment(args, threads, worker.info if worker is not None else None)
    if env["openblas_env"]:
        log(f"warning: {' and '.join(env['openblas_env'])} set: numpy runs an older OpenBLAS "
            f"kernel; unset both in the benchmark's command for a fair measurement")
    if threads.note:
        log("note: " + threads.note)
    log(f"bench: {env['device']}, {args.threads} threads, BLAS {env['blas']}, "
        f"torch {env['torch'] or 'not used'}, load average {env['loadavg_start']}")

    results = {"environment": env, "workloads": {}}
    rec_ok, rec_note = recorder_available()
    want_recorder = "recorder" in args.names
    for name in WORKLOADS:
        with_rec = want_recorder and rec_ok and name in RECORDER_ON
        if name not in args.names and not with_rec:
            continue
        # --workloads recorder alone: the Recorder pairs only, no PyTorch row to fill
        times = bench_workload(args, tn, worker, name, with_rec, log,
                               with_torch=name in args.names)
        if name in args.names:
            entry = {"steps_per_block": steps_for(args, name),
                     "steps_per_group": group_size(steps_for(args, name)),
                     "warmup": warmup_for(args, name),
                     "tinynet_s_per_step": times["tinynet"],
                     "tinynet_median_s": median(times["tinynet"])}
            if "torch" in times:
                entry["torch_s_per_step"] = times["torch"]
                entry["torch_median_s"] = median(times["torch"])
                entry["ratio"] = entry["tinynet_median_s"] / entry["torch_median_s"]
                entry["repetition_ratios"] = repetition_ratios(
                    times["tinynet"], times["torch"],
                    -(-steps_for(args, name) // group_size(steps_for(args, name))))
                # per block: CPU seconds the idle side used while the other side ran
                entry["isolation"] = {
                    "main_cpu_s_during_torch_blocks": times["main_cpu_during_torch_s"],
                    "torch_worker_cpu_s_between_blocks": times["torch_cpu_between_blocks_s"]}
            if WORKLOADS[name]["unit"] == "s/epoch":
                entry["epoch_steps"] = EPOCH_SAMPLES // WORKLOADS[name]["batch"] + 1
                entry["note"] = (f"{len(times['tinynet']) * group_size(steps_for(args, name))} "
                                 f"steps timed on random batches (not a real epoch); "
                                 f"s/epoch = median s/step x "
                                 f"{EPOCH_SAMPLES}/{WORKLOADS[name]['batch']}")
            results["workloads"][name] = entry
        if with_rec:
            rec = results["workloads"].setdefault("recorder", {"per_workload": {}})
            # adjacent (plain, Recorder) 10-step groups, each Recorder group holding one record
            pairs = times["recorder_pairs"]
            rec["per_workload"][name] = {
                "method": "paired: median over adjacent (plain, Recorder) groups of "
                          "with/without - 1, order alternating",
                "steps_per_group": group_size(steps_for(args, name)),
                "pairs_s_per_step": [list(p) for p in pairs],
                "with_s_per_step": [w for _, w in pairs],
                "without_s_per_step": [wo for wo, _ in pairs],
                "with_median_s": median([w for _, w in pairs]),
                "without_median_s": median([wo for wo, _ in pairs]),
                **paired_overhead(pairs)}
    if want_recorder and not rec_ok:
        results["workloads"]["recorder"] = {"skipped": True, "note": rec_note}
    if args.device == "cpu":
        for name, entry in results["workloads"].items():
            if name in WORKLOADS:
                entry["gemm_floor_s"] = floor_entry(tn, name, args.threads)
    if args.scaling:
        results["scaling"] = bench_scaling(args, tn, worker, log)

    torch_ok = worker is not None and worker.alive
    if not args.no_memory:
        for name in results["workloads"]:
            if name == "recorder":
                continue
            mem = {}
            for fw in ("tinynet", "torch") if torch_ok else ("tinynet",):
                log(f"  memory: {fw} {name}")
                mem[fw] = measure_memory(args, fw, name, log)
            results["workloads"][name]["memory"] = mem
    env["loadavg_end"] = _loadavg()
    env["torch_in_main_process"] = "torch" in sys.modules

    rows = build_rows(results)
    print(f"Benchmark: {env['cpu']} ({env['cores']} cores), {args.device}, "
          f"{args.threads} threads for both frameworks; numpy {env['numpy']} with "
          f"{env['blas']}; torch {env['torch'] or 'not used'}.")
    print(f"Medians of {args.reps} interleaved repetitions"
          + (", each framework in its own process (PyTorch in a worker subprocess)"
             if env["torch_pid"] else "") + "; load average "
          f"{_fmt_load(env['loadavg_start'])} at start, {_fmt_load(env['loadavg_end'])} at end; "
          f"OMP_WAIT_POLICY {env['omp_wait_policy']}.")
    print()
    print(markdown_table(rows))
    print()
    floors = [(n, e) for n, e in results["workloads"].items() if "gemm_floor_s" in e]
    if floors:
        print("GEMM floor (the step's matrix products alone: numpy BLAS on one thread "
              f"/ {args.threads}) as a share of the step: " + "; ".join(
                  f"{n} {1e3 * e['gemm_floor_s']:.1f} ms = "
                  f"{e['gemm_floor_s'] / e['tinynet_median_s']:.0%}"
                  f" of tinynet" + (f", {e['gemm_floor_s'] / e['torch_median_s']:.0%} of PyTorch"
                                   if "torch_median_s" in e else "")
                  for n, e in floors) + ".")
        for n, e in floors:
            lo, hi = min(e["tinynet_s_per_step"]), max(e["tinynet_s_per_step"])
            line = f"{n} spread over all groups: tinynet {fmt_time(n, lo)}–{fmt_time(n, hi)}"
            if "torch_s_per_step" in e:
                line += (f", PyTorch {fmt_time(n, min(e['torch_s_per_step']))}–"
                         f"{fmt_time(n, max(e['torch_s_per_step']))}")
            print(line)
        for n, e in floors:
            reps = e.get("repetition_ratios")
            if reps and len(reps) > 1:
                print(f"{n} ratio per repetition (tinynet block / the PyTorch block beside "
                      f"it): " + ", ".join(f"{r:.2f}" for r in reps)
                      + f" -- median {median(reps):.2f}, range {min(reps):.2f}–{max(reps):.2f}")
    if results.get("scaling"):
        print()
        print("Scaling with batch and image size (ms per training step, median and range "
              "of interleaved groups):")
        print()
        print(scaling_table(results["scaling"]))
    iso = [e["isolation"] for e in results["workloads"].values() if "isolation" in e]
    if iso:
        main_cpu = [c for i in iso for c in i["main_cpu_s_during_torch_blocks"]]
        idle_cpu = [c for i in iso for c in i["torch_worker_cpu_s_between_blocks"][1:]]
        print(f"Isolation: while PyTorch timed a block, the tinynet process used "
              f"{1e3 * median(main_cpu):.1f} ms of CPU per block (median; max "
              f"{1e3 * max(main_cpu):.1f} ms); between its blocks the PyTorch worker used "
              + (f"{1e3 * median(idle_cpu):.1f} ms (median; max {1e3 * max(idle_cpu):.1f} ms)"
                 if idle_cpu else "—") + ", all its threads together.")
    for line in load_warnings(results, env):
        print(line)
    if "seed000" in results["workloads"]:
        print("seed000: " + results["workloads"]["seed000"]["note"] + ".")
    for n, r in results["workloads"].get("recorder", {}).get("per_workload", {}).items():
        print(f"Recorder on {n}: median over {r['pairs']} adjacent pairs of "
              f"{r['steps_per_group']}-step groups (plain, Recorder; order alternating) of "
              f"with/without - 1 = {r['overhead_pct']:+.1f} %; quartiles "
              f"{r['overhead_q1_pct']:+.1f} to {r['overhead_q3_pct']:+.1f} %, range "
              f"{r['overhead_min_pct']:+.1f} to {r['overhead_max_pct']:+.1f} %.")
    what = ("peak resident memory (RSS)" if args.device == "cpu" else
            "peak device memory (see the JSON for the method)")
    print(f"ratio = tinynet / PyTorch (lower is better); peak MB = {what} above the "
          f"post-setup baseline during warm-up + up to 5 steps, one fresh process per "
          f"framework and workload.")
    if results["workloads"].get("recorder", {}).get("skipped"):
        print("Recorder row skipped: " + results["workloads"]["recorder"]["note"])
    if worker is None:
        print("PyTorch columns empty: " + no_torch_why)
    elif not worker.alive:
        print("PyTorch columns partly empty: " + worker.why + ".")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**results, "table": markdown_table(rows)}, f, indent=2)
    return 0


SPREAD_WARN = 2.0      # slowest / fastest group of one framework on one workload


def load_warnings(results, env):
    """Lines warning that other processes competed for the cores: a
    framework whose slowest 10-step group took over SPREAD_WARN x its fastest
    on the same workload.  (PyTorch's OpenMP threads spin while they wait, so
    with more runnable threads than cores its steps slow down far more than
    tinynet's: such a run's ratios say more about the load than the code.)"""
    out = []
    for name, e in results["workloads"].items():
        for fw, key in (("tinynet", "tinynet_s_per_step"), ("PyTorch", "torch_s_per_step")):
            xs = e.get(key)
            if xs and min(xs) > 0 and max(xs) / min(xs) > SPREAD_WARN:
                out.append(f"warning: {fw}'s slowest group on {name} took "
                           f"{max(xs) / min(xs):.1f}x its fastest: other processes competed "
                           f"for the cores (load average {_fmt_load(env.get('loadavg_end'))} "
                           f"at the end); rerun on a quiet machine before trusting its ratio.")
    return out


def _fmt_load(load):
    return "?" if load is None else "/".join(f"{v:.1f}" for v in load)


if __name__ == "__main__":
    sys.exit(main())
