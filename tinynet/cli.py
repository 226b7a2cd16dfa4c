"""The ``tinynet`` command.

    tinynet info            version, array backends, and a tiny worked example
    tinynet explain [CASE]  (see `tinynet explain --help`) why parameters stop updating
    tinynet lessons [DIR]   the lesson notebooks and the student homework, into DIR
    tinynet grade ...       (see `tinynet grade --help`) grade homework, one file or a class
"""
import argparse
import sys

import numpy as np


def _backend_line():
    from tinynet import backend
    import tinynet as tn
    cuda = "available (CuPy)" if backend.cuda_available() else \
        f"not available ({backend.cuda_info().reason}); {backend.INSTALL_HINT}"
    return f"tinynet {tn.__version__}  |  numpy {np.__version__} on cpu  |  cuda: {cuda}"


def worked_example(out=print):
    """Backpropagate through y = relu(w·x + b) by hand and with tinynet."""
    import tinynet as tn
    x = tn.tensor([1.0, -2.0])
    w = tn.tensor([0.5, 0.25], requires_grad=True)
    b = tn.tensor(0.0, requires_grad=True)
    z = (w * x).sum() + b
    y = z.relu()
    y.backward()
    out("worked example: y = relu(w . x + b), x = [1, -2], w = [0.5, 0.25], b = 0")
    out(f"  forward : z = 0.5*1 + 0.25*(-2) + 0 = {z.item():g};  y = relu(z) = {y.item():g}")
    out("  backward: dy/dz = relu'(0) = 0  (tinynet takes relu'(0) = 0, as PyTorch does)")
    out(f"            dy/dw = dy/dz * x = {(w.grad.numpy() + 0.0).tolist()}   dy/db = {b.grad.item():g}")
    out("  -> a pre-activation of exactly 0 blocks every gradient behind it: nothing updates.")
    return w.grad.numpy()


def cmd_info(args):
    print(_backend_line())
    worked_example()
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinynet",
        description="A small autograd framework that shows why parameters stop updating.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    p_info = sub.add_parser("info", help="version, backends and a tiny worked example")
    p_info.set_defaults(func=cmd_info)
    try:
        from tinynet.diagnose import cli as diagnose_cli
    except ImportError:
        diagnose_cli = None
    if diagnose_cli is not None:
        diagnose_cli.add_parser(sub)
    from tinynet import lessons_cli
    lessons_cli.add_parser(sub)
    _add_grade_parser(sub)
    return parser


def _add_grade_parser(sub):
    """`tinynet grade ...` is `python -m tinynet.grade ...` (its own --help)."""
    p = sub.add_parser("grade", add_help=False, prefix_chars="\0",
                       help="grade homework: a notebook, or a class folder with --gradebook")
    p.add_argument("grade_args", nargs=argparse.REMAINDER)

    def run(args):
        from tinynet.grade.__main__ import main as grade_main
        return grade_main(args.grade_args, prog="tinynet grade")
    p.set_defaults(func=run)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import tinynet as tn
        print(f"tinynet {tn.__version__}")
        return 0
    if not getattr(args, "func", None):
        args = parser.parse_args(["info"])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
