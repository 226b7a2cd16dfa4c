"""``python -m tinynet.grade SUBMISSION [--json] [--timeout S] [--assignment ID]``."""
import argparse
import json
import sys

from tinynet.grade import ASSIGNMENTS, DEFAULT_TIMEOUT, GraderUsageError, format_report, grade


def _listing():
    lines = []
    for a in ASSIGNMENTS.values():
        lines.append(f"{a.id:<22} {a.points:>3} points  {a.title}   ({a.notebook})")
        for p in a.parts:
            lines.append(f"    {p.id:<28} {p.points:>2}  {p.title}")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m tinynet.grade",
        description="Grade a tinynet homework notebook (.ipynb) or module (.py) offline.",
        epilog="Exit code 0 when a report was printed (even if parts fail), 2 for misuse, "
               "3 if the grader itself failed.")
    parser.add_argument("submission", nargs="?", help="the notebook or module to grade")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per cell and per part (default "
                             f"{DEFAULT_TIMEOUT:g})")
    parser.add_argument("--assignment", choices=sorted(ASSIGNMENTS),
                        help="which assignment (default: from the notebook or file name)")
    parser.add_argument("--list", action="store_true",
                        help="list the assignments, their parts and points, and exit")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(_listing())
        return 0
    if not args.submission:
        parser.error("give the notebook or module to grade (or --list)")
    if not args.timeout > 0:
        parser.error("--timeout must be a positive number of seconds")
    try:
        report = grade(args.submission, assignment=args.assignment, timeout=args.timeout)
    except GraderUsageError as exc:
        print(f"tinynet.grade: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 3 if any(p["reason"] == "internal" for p in report["parts"]) else 0


if __name__ == "__main__":
    sys.exit(main())
