"""``python -m tinynet.grade SUBMISSION|FOLDER [options]`` (also ``tinynet grade``)."""
import argparse
import json
import sys
from pathlib import Path

from tinynet.grade import (ASSIGNMENTS, DEFAULT_DEADLINE, DEFAULT_TIMEOUT, GraderUsageError,
                           format_report, grade)

EXIT_OK, EXIT_USAGE, EXIT_INTERNAL, EXIT_NOT_ALL_GRADED = 0, 2, 3, 4


def _listing():
    lines = []
    for a in ASSIGNMENTS.values():
        lines.append(f"{a.id:<22} {a.points:>3} points  {a.title}   ({a.notebook})")
        for p in a.parts:
            lines.append(f"    {p.id:<28} {p.points:>2}  {p.title}")
    return "\n".join(lines)


def build_parser(prog="python -m tinynet.grade"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Grade tinynet homework offline: one notebook (.ipynb) or module (.py), "
                    "or a whole class folder with --gradebook. Student code runs in a "
                    "sandboxed process; the checks and the points stay in this one.",
        epilog="Exit code 0 when every submission was graded (even if parts fail), 2 for "
               "misuse, 3 if the grader itself failed, 4 when some submission of a folder "
               "could not be graded (its row in the gradebook says why).")
    parser.add_argument("submission", nargs="?",
                        help="the notebook or module to grade, or a folder of them")
    parser.add_argument("--gradebook", metavar="CSV",
                        help="grade every submission in the FOLDER and write this CSV")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="submissions graded at once (folder mode; default: CPUs)")
    parser.add_argument("--reports", metavar="DIR",
                        help="folder for the per-student JSON reports (default: next to "
                             "the gradebook, <name>_reports)")
    parser.add_argument("--json", action="store_true",
                        help="print the report (folder mode: all reports) as JSON")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per cell and per check (default "
                             f"{DEFAULT_TIMEOUT:g})")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE,
                        help=f"seconds allowed for a whole submission (default "
                             f"{DEFAULT_DEADLINE:g})")
    parser.add_argument("--assignment", choices=sorted(ASSIGNMENTS),
                        help="which assignment (default: from the notebook or file name)")
    parser.add_argument("--list", action="store_true",
                        help="list the assignments, their parts and points, and exit")
    return parser


def main(argv=None, prog="python -m tinynet.grade"):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.list:
        print(_listing())
        return EXIT_OK
    if not args.submission:
        parser.error("give the notebook or module to grade, a folder with --gradebook, "
                     "or --list")
    if not args.timeout > 0 or not args.deadline > 0:
        parser.error("--timeout and --deadline must be positive numbers of seconds")
    if args.jobs is not None and args.jobs < 1:
        parser.error("-j must be at least 1")
    target = Path(args.submission)
    try:
        if target.is_dir() or args.gradebook:
            return _folder(args, target)
        report = grade(target, assignment=args.assignment, timeout=args.timeout,
                       deadline=args.deadline)
    except GraderUsageError as exc:
        print(f"tinynet.grade: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return EXIT_INTERNAL if any(p["reason"] == "internal" for p in report["parts"]) \
        else EXIT_OK


def _folder(args, folder):
    from tinynet.grade.classroom import GRADED, grade_folder
    if not folder.is_dir():
        raise GraderUsageError(f"--gradebook grades a folder; {folder} is not one")
    if not args.gradebook:
        raise GraderUsageError(f"{folder} is a folder: give --gradebook grades.csv to grade "
                               f"every submission in it")
    log = None if args.json else (lambda line: print(line, flush=True))
    results = grade_folder(folder, args.gradebook, jobs=args.jobs, timeout=args.timeout,
                           deadline=args.deadline, assignment=args.assignment,
                           reports=args.reports, log=log)
    graded = sum(r["status"] == GRADED for r in results)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"graded {graded} of {len(results)} submissions -> {args.gradebook}")
    return EXIT_OK if graded == len(results) else EXIT_NOT_ALL_GRADED


if __name__ == "__main__":
    sys.exit(main())
