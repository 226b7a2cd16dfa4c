"""CPU results do not depend on the number of threads.

tinynet splits its ops over a fixed partition and runs BLAS single-threaded
inside them, so a few training steps of each seed workload must give the
SAME BITS with tn.set_num_threads(1, 2, 4) and with OPENBLAS_NUM_THREADS 1
or 2 (set before numpy loads, so each setting needs its own process).
Nothing here pins a thread count to make a test pass: the test varies them.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A worker: for each tinynet thread count, 3 steps of each seed workload from
# the same seed, saving every loss and every final parameter.
WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import tinynet as tn
    import tinynet.nn.functional as F
    from tinynet import experiments, optim

    WORKLOADS = {   # name: (model, optimizer, batch, flatten) -- the bench's seed workloads
        "seed000": (lambda: experiments.zero_pixels_mlp(),
                    lambda p: optim.RMSprop(p, lr=1e-3, rho=0.9, eps=1e-7), 32, True),
        "seed001": (lambda: experiments.first_conv_cnn(dropout=0),
                    lambda p: optim.Adam(p, lr=1e-3), 8, False),
        "seed003": (lambda: experiments.zero_kernel_cnn(zero_layer=None),
                    lambda p: optim.SGD(p, lr=1e-4), 8, False),
    }
    out = {}
    for threads in (1, 2, 4):
        tn.set_num_threads(threads)
        for name, (build, make_opt, batch, flatten) in WORKLOADS.items():
            tn.manual_seed(0)
            model = build()
            model.train()
            opt = make_opt(model.named_parameters())
            rng = np.random.default_rng(1)
            shape = (batch, 784) if flatten else (batch, 1, 28, 28)
            losses = []
            for step in range(3):
                x = tn.tensor(rng.random(shape, dtype=np.float32))
                y = tn.tensor(rng.integers(0, 10, batch))
                opt.zero_grad()
                loss = F.softmax_cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                losses.append(loss.data)
            out[f"{threads}/{name}/losses"] = np.array(losses)
            for pname, p in model.named_parameters():
                out[f"{threads}/{name}/{pname}"] = p.data
    np.savez(sys.argv[1], **out)
""")


def _run(tmp_path, blas_threads):
    path = tmp_path / f"blas{blas_threads}.npz"
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS=str(blas_threads),
               OMP_NUM_THREADS=str(blas_threads))
    env.pop("TINYNET_NUM_THREADS", None)
    subprocess.run([sys.executable, "-c", WORKER, str(path)], env=env, check=True,
                   timeout=600)
    with np.load(path) as f:
        return dict(f)


@pytest.mark.slow
def test_training_steps_are_bit_identical_for_any_thread_count(tmp_path):
    runs = {blas: _run(tmp_path, blas) for blas in (1, 2)}
    reference = {key.split("/", 1)[1]: value for key, value in runs[1].items()
                 if key.startswith("1/")}
    assert any(k.endswith("losses") for k in reference) and len(reference) > 20
    for blas, arrays in runs.items():
        for key, value in arrays.items():
            threads, rest = key.split("/", 1)
            ref = reference[rest]
            assert value.dtype == ref.dtype and value.shape == ref.shape, key
            # bitwise: compare the raw bytes, so -0.0 vs 0.0 or NaN payloads count too
            assert value.tobytes() == ref.tobytes(), (
                f"{rest} differs between OPENBLAS_NUM_THREADS=1/set_num_threads(1) and "
                f"OPENBLAS_NUM_THREADS={blas}/set_num_threads({threads}): max |diff| "
                f"{np.max(np.abs(value.astype(np.float64) - ref)):.3g}")
    # the losses really are training losses (finite, and the steps changed them)
    for name in ("seed000", "seed001", "seed003"):
        losses = reference[f"{name}/losses"]
        assert np.all(np.isfinite(losses)) and len(set(losses.tolist())) > 1, name


def test_blas_runs_one_thread_inside_ops_and_the_users_setting_is_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from tinynet.ops import _parallel
    import tinynet as tn
    controller = threadpoolctl.ThreadpoolController()
    if not controller.select(user_api="blas").lib_controllers:
        pytest.skip("numpy's BLAS is not visible to threadpoolctl")
    seen = []
    with controller.limit(limits=2, user_api="blas"):
        with _parallel.blas_one_thread():
            seen.append(controller.select(user_api="blas").info()[0]["num_threads"])
            with _parallel.blas_one_thread():          # re-entrant
                pass
            seen.append(controller.select(user_api="blas").info()[0]["num_threads"])
        seen.append(controller.select(user_api="blas").info()[0]["num_threads"])
        x = tn.tensor(np.ones((64, 300), np.float32), requires_grad=True)
        w = tn.tensor(np.ones((300, 200), np.float32), requires_grad=True)
        tn.ops.dense(x, w).sum().backward()
        seen.append(controller.select(user_api="blas").info()[0]["num_threads"])
    assert seen == [1, 1, 2, 2]


def test_set_num_threads_validates_and_round_trips():
    import tinynet as tn
    before = tn.get_num_threads()
    try:
        tn.set_num_threads(3)
        assert tn.get_num_threads() == 3
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="set_num_threads"):
                tn.set_num_threads(bad)
    finally:
        tn.set_num_threads(before)


def test_env_variable_sets_the_default(tmp_path):
    code = "import tinynet as tn; print(tn.get_num_threads())"
    env = dict(os.environ, PYTHONPATH=ROOT, TINYNET_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "3"
    env["TINYNET_NUM_THREADS"] = "zero"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "TINYNET_NUM_THREADS must be a positive integer" in bad.stderr


def test_block_partition_ignores_the_thread_count():
    from tinynet.ops import _parallel
    import tinynet as tn
    before = tn.get_num_threads()
    try:
        parts = []
        for n in (1, 2, 8):
            tn.set_num_threads(n)
            parts.append((_parallel.block_bounds(100, _parallel.gemm_blocks(64, 800, 25088)),
                          _parallel.split_along(np.empty((32, 14, 14, 128)))))
        assert parts[0] == parts[1] == parts[2]
        assert len(parts[0][0]) > 1            # a big product really is split
    finally:
        tn.set_num_threads(before)


@pytest.mark.parametrize("shape", [(25, 20000, 32), (9, 39203, 32), (64, 300, 2000), (2000, 300, 64)])
def test_blocked_gemm_gives_the_same_bits_for_any_thread_count(shape):
    """Each way gemm cuts a product -- by columns, by rows, and along the sum
    (tiny output, long K: partial products added in block order)."""
    from tinynet.ops import _parallel
    import tinynet as tn
    M, K, N = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32).T        # a transposed operand
    before = tn.get_num_threads()
    try:
        results = []
        for n in (1, 2, 4):
            tn.set_num_threads(n)
            results.append(_parallel.gemm(a, b).tobytes())
    finally:
        tn.set_num_threads(before)
    assert results[0] == results[1] == results[2]
    np.testing.assert_allclose(np.frombuffer(results[0], np.float32).reshape(M, N),
                               a.astype(np.float64) @ b, rtol=1e-3, atol=1e-3 * np.sqrt(K))


def test_a_product_with_a_tiny_output_is_cut_along_the_sum_but_stays_on_the_calling_thread(
        monkeypatch):
    """NumPy's matmul keeps the GIL through a product of at most 500 output values,
    so handing the pieces of such a product (seed-003's first-layer dW, 9 x 32) to
    other threads only adds waiting: they all run on the calling thread, in the same
    pieces, with the same bits as before.  A larger output (25 x 32) still goes
    to the pool in several runs (gemm_blocks of them)."""
    import threading
    from tinynet.ops import _parallel
    import tinynet as tn
    rng = np.random.default_rng(2)
    calls = []
    real = np.matmul

    def spy(*args, **kwargs):
        calls.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)
    before = tn.get_num_threads()
    try:
        tn.set_num_threads(2)
        for (M, K, N), runs in (((9, 39200, 32), 1), ((25, 40000, 32), 4)):
            a = rng.standard_normal((M, K)).astype(np.float32)
            b = rng.standard_normal((N, K)).astype(np.float32).T
            out, tasks, finish = _parallel._gemm_parts(a, b, None)
            assert finish is not None and len(tasks) == runs     # cut along K either way
            if runs == 1:
                calls.clear()
                monkeypatch.setattr(np, "matmul", spy)
                got = _parallel.gemm(a, b)
                monkeypatch.setattr(np, "matmul", real)
                assert len(calls) == -(-K // _parallel._K_PIECE) and all(calls)
                tn.set_num_threads(1)
                assert got.tobytes() == _parallel.gemm(a, b).tobytes()
                tn.set_num_threads(2)
    finally:
        tn.set_num_threads(before)


def test_the_caller_does_not_wait_for_a_helper_that_has_not_started():
    """run_blocks waits only for the parts a helper has started: with the pool's one
    worker held up elsewhere, the calling thread runs every part itself and returns
    (before, it waited for the held-up worker to start and find nothing left)."""
    import threading
    from tinynet.ops import _parallel
    import tinynet as tn
    before = tn.get_num_threads()
    release = threading.Event()
    try:
        tn.set_num_threads(2)
        held = _parallel._get_pool().submit(release.wait, 30)
        ran = []
        finished = threading.Event()

        def call():
            _parallel.run_blocks(ran.append, range(6))
            finished.set()
        caller = threading.Thread(target=call)
        caller.start()
        assert finished.wait(20), "run_blocks waited for a helper that never started"
        assert sorted(ran) == list(range(6))
        release.set()
        held.result(20)
        caller.join(20)
    finally:
        release.set()
        tn.set_num_threads(before)


def test_an_error_in_a_part_propagates_and_stops_the_parts_not_yet_started():
    from tinynet.ops import _parallel
    import tinynet as tn
    import time
    before = tn.get_num_threads()
    try:
        for threads in (1, 2):
            tn.set_num_threads(threads)
            ran = []

            def part(i):
                if i == 0:
                    raise ValueError("part 0 failed")
                time.sleep(0.002)
                ran.append(i)
            with pytest.raises(ValueError, match="part 0 failed"):
                _parallel.run_blocks(part, range(200))
            if threads == 2:       # the other thread may have run a few parts, not all
                assert len(ran) < 199
    finally:
        tn.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_ops_still_run_in_a_forked_child_after_the_pool_started():
    """A forked child has none of the parent's pool threads; tinynet must not
    wait for them forever."""
    import tinynet as tn
    before = tn.get_num_threads()
    tn.set_num_threads(2)
    try:
        x = tn.tensor(np.ones((64, 32, 8, 8), np.float32))
        tn.ops.relu(x)                               # starts the pool here
        pid = os.fork()
        if pid == 0:                                 # child: must finish, then exit at once
            ok = float(tn.ops.relu(x).numpy().sum()) == 64 * 32 * 8 * 8
            os._exit(0 if ok else 1)
        deadline_ok = False
        import time
        for _ in range(300):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                deadline_ok = True
                break
            time.sleep(0.1)
        if not deadline_ok:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert deadline_ok, "the forked child hung waiting for the parent's pool threads"
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        tn.set_num_threads(before)


def test_gemms_hands_several_products_to_the_pool_at_once_with_gemms_bits():
    """gemms([...]) cuts each product as gemm does (by columns, by rows, along the sum,
    or not at all) and runs all the blocks in one hand-off: the same bits as one
    gemm call per product, for any thread count."""
    from tinynet.ops import _parallel
    import tinynet as tn
    rng = np.random.default_rng(1)
    shapes = [(25, 20000, 32), (64, 300, 2000), (2000, 300, 64), (3, 4, 5)]
    pairs = [(rng.standard_normal((M, K)).astype(np.float32),
              rng.standard_normal((K, N)).astype(np.float32)) for M, K, N in shapes]
    alone = [_parallel.gemm(a, b).tobytes() for a, b in pairs]
    before = tn.get_num_threads()
    try:
        for n in (1, 2, 4):
            tn.set_num_threads(n)
            together = _parallel.gemms([(a, b, None) for a, b in pairs])
            assert [t.tobytes() for t in together] == alone
    finally:
        tn.set_num_threads(before)


PLACEMENT = textwrap.dedent("""
    import json, os, sys, threading
    import tinynet as tn
    from tinynet.ops import _parallel as par
    tn.set_num_threads(int(sys.argv[1]))
    if sys.argv[2] == "one-cpu":             # the caller may use the CPU it is on only
        os.sched_setaffinity(0, {par._load_getcpu()()})
    mine = os.sched_getaffinity(0)
    import time
    for _ in range(50):                      # until every pool thread has started
        par.run_blocks(lambda i: time.sleep(0.005), range(8))
        if len(par._helper_tids) == tn.get_num_threads() - 1:
            break
    par._kept_off = None                     # place them again, and see where
    cpu = par.keep_helpers_off_my_cpu()
    again = par.keep_helpers_off_my_cpu()    # same CPU, same helpers: nothing to do
    helpers = {tid: sorted(os.sched_getaffinity(tid)) for tid in par._helper_tids}
    mask_kept = os.sched_getaffinity(0) == mine
    tn.set_num_threads(1)                    # the pool goes, and its threads with it
    print(json.dumps({"cpu": cpu, "again": again, "mine": sorted(mine), "helpers": helpers,
                      "mask_kept": mask_kept, "forgotten": par._helper_tids == []}))
""")


def _placement(threads, mode):
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", PLACEMENT, str(threads), mode], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json
    return json.loads(out.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux CPU affinity and at least two CPUs")
def test_helpers_are_kept_off_the_callers_cpu_and_the_callers_own_mask_is_untouched():
    """After a pause the kernel was seen waking the pool thread on its caller's CPU
    (the two took turns while the other CPU idled); tinynet allows its helpers
    every CPU the caller may use but the caller's own.  Where the caller may use
    one CPU only, the helpers get that one (never a CPU the caller may not use)."""
    from tinynet.ops import _parallel
    if _parallel._load_getcpu() is None:
        pytest.skip("no sched_getcpu on this platform")
    got = _placement(3, "all")
    assert got["cpu"] in got["mine"] and got["again"] is None
    assert len(got["helpers"]) == 2
    for mask in got["helpers"].values():
        assert mask == sorted(set(got["mine"]) - {got["cpu"]})
    assert got["mask_kept"] and got["forgotten"]

    one = _placement(2, "one-cpu")
    assert one["mine"] == [one["cpu"]]
    assert list(one["helpers"].values()) == [[one["cpu"]]]
    assert one["mask_kept"]
