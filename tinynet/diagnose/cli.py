"""`tinynet explain [CASE]`: run the experiments and explain why parameters froze."""
import argparse
import os
import sys
import tempfile

CHOICES = ("all", "zero-pixels", "constant-init", "zero-kernel", "tiny-updates")
#: validation images kept back from the MNIST test split when it is the only split
VAL_HOLDOUT = 2000


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explain", help="run an experiment and explain every frozen parameter",
        description="Train the experiments tinynet was built to explain, print the "
                    "step-by-step story with the measured numbers, and write the figures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("case", nargs="?", default="all", choices=CHOICES,
                   help="which experiment (all: the four of them)")
    p.add_argument("--data", default="embedded", choices=("embedded", "mnist"),
                   help="embedded offline digits or real MNIST")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--steps", type=int, default=None,
                   help="optimizer steps per experiment (None: each experiment's own)")
    p.add_argument("--out", default="tinynet-explain", help="folder for the PNG figures")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--samples", type=int, default=10000,
                   help="training images to use")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=cmd_explain)
    return p


def _load(args, say):
    from tinynet import data
    if args.data == "embedded":
        x, y = data.digits(args.samples, seed=args.seed)
        xv, yv = data.digits(2000, seed=args.seed, split="test")
        return x, y, xv, yv, f"embedded digits ({len(x):,} generated training images)"
    try:
        x, y = data.mnist("train")
        xv, yv = data.mnist("test")
        where = "MNIST training split"
    except data.DatasetError as exc:
        x, y = data.mnist("test")          # raises with the how-to-get-it message
        # The test split stands in for both: its last VAL_HOLDOUT images are kept
        # for validation and never trained on, so "held-out" accuracy is held out.
        hold = min(VAL_HOLDOUT, len(x) // 5)
        x, y, xv, yv = x[:-hold], y[:-hold], x[-hold:], y[-hold:]
        say(f"note: {str(exc).splitlines()[0]}")
        say(f"note: using the MNIST test split for training instead: its first "
            f"{len(x):,} images to train, the last {len(xv):,} (never trained on) "
            f"to validate")
        where = "MNIST test split"
    n = min(args.samples, len(x))
    return x[:n], y[:n], xv, yv, f"{where} ({n:,} images)"


def _check_out_dir(path):
    """None if PNGs can be written into ``path`` (created if missing), else why not.

    Checked before any training, so a bad --out costs nothing: the folder is
    created and a probe file written and removed in it.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        return f"--out {path!r} is an existing file, not a folder; choose a folder name"
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".tinynet-probe-"):
            pass
    except OSError as exc:
        return f"--out {path!r}: cannot write figures there ({exc.strerror or exc})"
    return None


def _check_args(args):
    """A one-line message for the first bad argument, or None."""
    if args.steps is not None and args.steps < 1:
        return f"--steps must be at least 1, got {args.steps}"
    if args.samples < 1:
        return f"--samples must be at least 1, got {args.samples}"
    if args.seed < 0:
        return f"--seed must be 0 or more, got {args.seed}"
    return _check_out_dir(args.out)


def cmd_explain(args):
    from tinynet import backend, plot
    from tinynet.data import DatasetError
    from tinynet.diagnose import cases

    say = print
    try:
        device = backend.normalize_device(args.device)
        if device == "cuda":
            backend.cuda_xp()
    except backend.DeviceError as exc:
        print(f"tinynet explain: {exc}", file=sys.stderr)
        return 2
    problem = _check_args(args)
    if problem:
        print(f"tinynet explain: {problem}", file=sys.stderr)
        return 2
    try:
        x, y, xv, yv, where = _load(args, say)
    except DatasetError as exc:
        print(f"tinynet explain: {exc}", file=sys.stderr)
        return 2
    names = cases.CASES if args.case == "all" else (args.case,)
    progress = False if args.no_progress else None
    say(f"tinynet explain: {', '.join(names)} on {where}, device {device}")
    total = 0.0
    for name in names:
        extra = {"x_val": xv, "y_val": yv} if name == "constant-init" else {}
        res = cases.run_case(name, x, y, steps=args.steps, device=device, seed=args.seed,
                             progress=progress, **extra)
        total += res.seconds
        say()
        say("=" * 78)
        say(f"{res.title}  [{name}, {res.seconds:.1f} s]")
        say("=" * 78)
        say(str(res))
        for stem, fig in res.figures.items():
            path = os.path.join(args.out, f"{stem}.png")
            try:
                plot.save(fig, path)
            except OSError as exc:      # the folder vanished or the disk filled mid-run
                print(f"tinynet explain: cannot write {path}: {exc.strerror or exc}",
                      file=sys.stderr)
                return 1
            say(f"  figure: {path}")
    say()
    say(f"done in {total:.1f} s; figures in {os.path.abspath(args.out)}")
    return 0
