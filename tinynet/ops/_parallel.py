"""tinynet's own worker pool, and BLAS held to one thread while an op runs.

Why: OpenBLAS spreads a matrix product over the cores, but everything else
an op does -- im2col copies, pooling, ReLU masks, the optimizer's element-wise
update -- runs on one core in NumPy.  tinynet therefore splits the work of
its heavy ops itself and runs the pieces on a small thread pool (NumPy
releases the GIL in copies, ufuncs and matrix products).

Determinism: the split is FIXED by the shapes alone -- the same blocks for
1, 2 or 8 threads -- and no block's result depends on another block or on
which thread ran it (every block writes its own part of the output; a
reduction over blocks, where there is one, is summed in block order).  BLAS
itself runs single-threaded inside ``blas_one_thread()``, so neither
``set_num_threads`` nor ``OPENBLAS_NUM_THREADS`` can change a bit of a CPU
result.  Outside tinynet's ops the user's BLAS thread setting is restored.

    tn.set_num_threads(n)        # n workers (1: everything in the caller's thread)
    TINYNET_NUM_THREADS=n        # the default for a new process; else the cores available
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from tinynet.ops import _memory

__all__ = ["set_num_threads", "get_num_threads", "blas_one_thread", "run_blocks",
           "block_bounds"]

_ENV = "TINYNET_NUM_THREADS"


def _default_threads():
    value = os.environ.get(_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"{_ENV} must be a positive integer, got {value!r}") from None
        if n < 1:
            raise ValueError(f"{_ENV} must be a positive integer, got {value!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_threads = None          # resolved on first use, so importing tinynet stays cheap
_pool = None
_pool_lock = threading.Lock()


def _forget_pool_after_fork():
    # a forked child has none of the parent's threads: a new pool on first use
    global _pool, _pool_lock, _blas_lock, _blas_depth, _helper_tids, _kept_off
    _pool, _pool_lock, _blas_lock, _blas_depth = None, threading.Lock(), threading.Lock(), 0
    _helper_tids, _kept_off = [], None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def get_num_threads():
    """The number of threads tinynet's ops use (results never depend on it)."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_num_threads(n):
    """Use ``n`` threads in tinynet's ops (1: no pool).  Results do not change."""
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    with _pool_lock:
        if _pool is not None and n != _threads:
            _pool.shutdown(wait=True)
            _pool = None
            _forget_helpers()
        _threads = n


def _get_pool():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, get_num_threads() - 1),
                                           thread_name_prefix="tinynet",
                                           initializer=_register_helper)
    return _pool


# --------------------------------------------------------------------------
# keeping the helpers off the calling thread's CPU
# --------------------------------------------------------------------------
# Why: measured on the benchmark machine (a 2-vCPU virtual machine), with the
# CPU of each part read by sched_getcpu: after the process sat idle for 0.1-0.5 s,
# the caller and the pool thread it woke ran on the SAME CPU while the other one
# idled -- the helper started its parts up to 2-4 ms late, taking turns with the
# caller -- until the load balancer separated them a step or two later
# (scripts/after_pause.py: 22-41 involuntary context switches in the 10 steps
# after a pause, 5 in a steady loop).  The likely cause is the guest kernel's
# wake-up placement, which avoids a vCPU that it sees as preempted by the host.
# Before it wakes the helpers, the caller therefore allows them every CPU it
# may use itself except the one it is on: 4.5-16 switches in those 10 steps
# instead of 22-42, training blocks after 0.1 s pauses 3 % (seed003, seed001)
# to 12 % (seed000) faster, back-to-back steps unchanged (scripts/ab_blocks.py
# scripts/variants/helpers_unplaced.py --pause 0.1, and without).  Only tinynet's
# own threads are placed; the caller's affinity is never touched.  The cost:
# one sched_getcpu per hand-off, system calls only when the caller has moved
# to another CPU.  Not done where the platform has no sched_getcpu /
# sched_setaffinity (then the kernel alone places the threads).
_helper_tids = []        # native thread ids of the pool's threads
_kept_off = None         # (CPU kept free, helpers placed) at the last placement


def _register_helper():
    _helper_tids.append(threading.get_native_id())


def _forget_helpers():
    global _helper_tids, _kept_off
    _helper_tids, _kept_off = [], None


def _load_getcpu():
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        import ctypes
        fn = ctypes.CDLL(None).sched_getcpu
        fn.restype, fn.argtypes = ctypes.c_int, []
        return fn if fn() >= 0 else None
    except Exception:    # no such libc symbol (not glibc/musl): leave placement to the kernel
        return None


_getcpu = False          # sched_getcpu, looked up at the first placement (None: none here)


def keep_helpers_off_my_cpu():
    """Allow the pool's threads every CPU the calling thread may use except the
    one it is on (all of them when it may use only that one).  Returns that
    CPU, or None when nothing was done: no helpers yet, or the same CPU and
    the same helpers as at the last call."""
    global _kept_off, _getcpu
    if not _helper_tids:
        return None
    if _getcpu is False:
        _getcpu = _load_getcpu()
    if _getcpu is None:
        return None
    cpu = _getcpu()
    if _kept_off == (cpu, len(_helper_tids)):
        return None
    helpers = list(_helper_tids)
    _kept_off = (cpu, len(helpers))
    allowed = os.sched_getaffinity(0)
    others = (allowed - {cpu}) or allowed
    for tid in helpers:
        try:
            os.sched_setaffinity(tid, others)
        except OSError:      # a thread that has exited: nothing to place
            pass
    return cpu


def block_bounds(n, blocks):
    """[(start, stop)] cutting range(n) into ``min(blocks, n)`` near-equal parts.

    Depends on n and blocks only -- never on the thread count.
    """
    blocks = max(1, min(blocks, n))
    return [(n * i // blocks, n * (i + 1) // blocks) for i in range(blocks)]


def run_blocks(fn, parts):
    """Call ``fn(part)`` for every part; on the pool when it has several threads.

    Each call must write only its own part of the output, so which thread
    runs which part, and in what order they finish, changes nothing.  The
    calling thread works too (the pool holds n - 1 threads): it and the
    helpers take the next part from a shared counter until none is left.
    The caller then waits only for the parts a helper has started: a helper
    that is still waking up when the parts run out (tens of microseconds on
    a virtual machine's idle core) finds nothing to do and is not waited for,
    so a hand-off too small to share costs the caller no wake-up.
    Exceptions propagate; after one, no further part is started.
    """
    if _memory._done is False:      # once: reuse freed memory between steps (ops/_memory.py)
        _memory.keep_freed_memory()
    parts = list(parts)
    if threading.current_thread().name.startswith("tinynet"):   # nested: already split
        for part in parts:
            fn(part)
        return
    with blas_one_thread():
        helpers = min(get_num_threads(), len(parts)) - 1
        if helpers < 1:
            for part in parts:
                fn(part)
            return
        job = _Job(fn, parts)
        pool = _get_pool()
        keep_helpers_off_my_cpu()
        for _ in range(helpers):
            pool.submit(job.drain)
        try:
            job.drain(keep_errors=False)
        except BaseException:
            job.stop()
            raise
        finally:
            job.wait()          # BLAS must stay at one thread until those parts are done
        job.raise_first_error()


class _Job:
    """The parts of one ``run_blocks`` call, taken one at a time by whichever
    thread asks next, and a count of the parts being run right now."""

    def __init__(self, fn, parts):
        self.fn, self.parts = fn, iter(parts)
        self.cond = threading.Condition(threading.Lock())
        self.running = 0
        self.errors = []

    def drain(self, keep_errors=True):
        while True:
            with self.cond:
                part = next(self.parts, _DONE)
                if part is _DONE:
                    return
                self.running += 1
            try:
                self.fn(part)
            except BaseException as error:
                if not keep_errors:
                    raise
                self.errors.append(error)
                self.stop()
            finally:
                with self.cond:
                    self.running -= 1
                    if not self.running:
                        self.cond.notify_all()

    def stop(self):
        with self.cond:
            self.parts = iter(())

    def wait(self):
        with self.cond:
            while self.running:
                self.cond.wait()

    def raise_first_error(self):
        if self.errors:
            raise self.errors[0]


_DONE = object()


# --------------------------------------------------------------------------
# BLAS: one thread inside tinynet's ops, the user's setting outside
# --------------------------------------------------------------------------
_blas_libs = None        # threadpoolctl's controllers of the BLAS libraries loaded
_blas_depth = 0
_blas_saved = ()
_blas_lock = threading.Lock()


def _blas_controllers():
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas_libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:        # threadpoolctl missing or unable to inspect: nothing to limit
            _blas_libs = []
    return _blas_libs


class _BlasOneThread:
    """Re-entrant: only the outermost ``with`` reads, limits and restores, so
    nesting (an op inside a fused op, a block inside an op) costs a counter.
    The counter is shared by the user's threads (BLAS's setting is global)."""

    def __enter__(self):
        global _blas_depth, _blas_saved
        with _blas_lock:
            if _blas_depth == 0:
                saved = []
                for lib in _blas_controllers():
                    n = lib.get_num_threads()
                    saved.append(n)
                    if n != 1:
                        lib.set_num_threads(1)
                _blas_saved = saved
            _blas_depth += 1
        return self

    def __exit__(self, *exc):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for lib, n in zip(_blas_libs, _blas_saved):
                    if n != 1:
                        lib.set_num_threads(n)
        return False


_BLAS_ONE = _BlasOneThread()


def blas_one_thread():
    """Context: BLAS runs single-threaded inside, as the user had it outside."""
    return _BLAS_ONE


# --------------------------------------------------------------------------
# the fixed partitions the ops use
# --------------------------------------------------------------------------
#: Blocks a large op is cut into.  A constant, NOT the thread count: the
#: partition -- and so every bit of the result -- is the same on any machine.
#: 4 keeps up to 4 cores busy; more blocks would cost packing overhead on 2.
BLOCKS = 4
_MIN_GEMM_FLOPS = 1 << 22       # below ~4 M multiply-adds one block: splitting costs more
_MIN_ELEMENTS = 1 << 15         # likewise for copies and element-wise work
_K_PIECE = 2048                 # the longest sum per block when a product is cut along K
_MATMUL_GIL_OUTPUT = 500        # np.matmul holds the GIL for outputs this small or smaller


def copy_blocks(size, min_elements=None):
    """How many blocks copy-like work over ``size`` elements is cut into (size only):
    work that streams through memory -- fills, masks, transposes -- at a few
    gigabytes a second, where a hand-off to the pool costs more than it saves
    below ``min_elements`` (default ``_MIN_ELEMENTS``) per block."""
    return max(1, min(BLOCKS, size // (min_elements or _MIN_ELEMENTS)))


def gemm_blocks(M, K, N):
    """How many blocks an (M, K) @ (K, N) product is cut into (shapes only)."""
    return max(1, min(BLOCKS, (M * K * N) // _MIN_GEMM_FLOPS))


def gemm(a, b, out=None):
    """a @ b for 2-D arrays (any strides), single-threaded BLAS per block.

    The product is cut along the longer side of the output -- rows of ``a``
    or columns of ``b`` -- into ``gemm_blocks`` parts, each an independent
    smaller product (no sum across blocks); a tiny output of a long sum is
    cut along the sum instead, and the parts are added in a fixed order.  ``out`` (M, N) if given.
    Non-numpy arrays (CuPy) go to their own matmul in one piece.
    """
    (out,) = gemms([(a, b, out)])
    return out


def gemms(products):
    """[a @ b for (a, b, out) in products]: each product cut as ``gemm`` cuts it
    (the same bits), and the blocks of all of them handed to the pool at once --
    one hand-off for, say, a Dense layer's dx and dW instead of two."""
    outs, tasks, finishes, cut = [], [], [], False
    for a, b, out in products:
        out, parts, finish = _gemm_parts(a, b, out)
        outs.append(out)
        tasks.extend(parts)
        cut = cut or len(parts) > 1
        if finish is not None:
            finishes.append(finish)
    if cut:
        run_blocks(_call, tasks)
    elif tasks:                  # small products only: a hand-off would cost more
        with blas_one_thread():
            for task in tasks:
                task()
    for finish in finishes:
        finish()
    return outs


def _call(task):
    task()


def _gemm_parts(a, b, out):
    """(out, [tasks], finish or None) of the product a @ b as ``gemm`` cuts it."""
    import numpy as np
    if type(a) is not np.ndarray:
        from tinynet.backend import array_module
        return array_module(a).matmul(a, b, out=out), [], None
    (M, K), N = a.shape, b.shape[1]
    if out is None:
        out = np.empty((M, N), dtype=np.result_type(a, b))
    blocks = gemm_blocks(M, K, N)
    if blocks == 1:
        return out, [lambda: np.matmul(a, b, out=out)], None
    if M * N <= 4096 and K >= 16384:
        # a small output from a long sum (the dW of a first conv layer: M, N
        # of a few dozen, K = every pixel of the batch): cutting M or N would
        # read all of a and b once per block, so cut K instead, into pieces of
        # at most _K_PIECE (OpenBLAS multiplies a (32, 4096) by a (4096, 9)
        # three times slower per element than a (32, 2048) by a (2048, 9) on
        # the benchmark machine), ``blocks`` runs of pieces on the pool (a piece
        # is too short a job to hand to another thread); the partial products
        # are added in piece order, the same for any thread count
        pieces = block_bounds(K, max(blocks, -(-K // _K_PIECE)))
        partial = np.empty((len(pieces), M, N), dtype=out.dtype)

        def run(first, stop):
            for i in range(first, stop):
                s = slice(*pieces[i])
                np.matmul(a[:, s], b[s], out=partial[i])

        def add_pieces():
            out[...] = partial[0]
            for p in partial[1:]:
                np.add(out, p, out=out)
        # NumPy's matmul keeps the GIL through a product of at most 500 output
        # values (seed-003's first-layer dW, (9, 1960) @ (1960, 32), took 0.65 ms
        # on two threads and 0.45 ms on one): the pieces of such a product run
        # on the calling thread
        runs = block_bounds(len(pieces), blocks if M * N > _MATMUL_GIL_OUTPUT else 1)
        return out, [lambda r=r: run(*r) for r in runs], add_pieces
    if N >= M:
        def columns(lo, hi):
            np.matmul(a, b[:, lo:hi], out=out[:, lo:hi])
        return out, [lambda r=r: columns(*r) for r in block_bounds(N, blocks)], None

    def rows(lo, hi):
        np.matmul(a[lo:hi], b, out=out[lo:hi])
    return out, [lambda r=r: rows(*r) for r in block_bounds(M, blocks)], None


def row_sums(a):
    """a.sum(axis=1) of a 2-D array, blocks of rows on the pool.

    Each row is summed by the same NumPy reduction as in ``a.sum(axis=1)``,
    so the result is that one bit for bit, for any thread count.  Non-numpy
    arrays (CuPy) are summed by their own module."""
    import numpy as np
    if type(a) is not np.ndarray:
        return a.sum(axis=1)
    out = np.empty(a.shape[0], dtype=a.dtype)

    def part(rows):
        s = slice(*rows)
        np.sum(a[s], axis=1, out=out[s])
    run_blocks(part, block_bounds(a.shape[0], copy_blocks(a.size)))
    return out


def outer_axis(a):
    """The axis of ``a`` with the largest stride: cutting along it gives
    blocks that are contiguous runs of memory (for any memory order)."""
    if a.ndim == 0:
        return None
    return max(range(a.ndim), key=lambda i: abs(a.strides[i]) if a.shape[i] > 1 else -1)


def split_along(a, axis=None, min_elements=_MIN_ELEMENTS):
    """Fixed [(slice tuple)] cutting ``a`` along ``axis`` (default: outermost in
    memory) into at most BLOCKS parts, fewer for small arrays."""
    if a.ndim == 0 or type(a).__module__ != "numpy":
        return [(Ellipsis,)]
    axis = outer_axis(a) if axis is None else axis
    blocks = max(1, min(BLOCKS, a.size // min_elements))
    return [(slice(None),) * axis + (slice(lo, hi),)
            for lo, hi in block_bounds(a.shape[axis], blocks)]
