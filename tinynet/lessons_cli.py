"""`tinynet lessons [DIR]`: copy the lesson notebooks and the student homework into DIR.

An installed wheel carries them as package data in ``tinynet/_lessons/`` (the
build hook in setup.py writes the lessons and the *student* versions of the
homework there; the solution notebooks never enter the wheel).  A source
checkout has no ``_lessons/``: the lessons are read from ``lessons/`` and the
student versions are made on the fly by the same release logic.

Nothing is overwritten without ``--force``, and every file is written
atomically, so an interrupted copy leaves no half-written notebook.
"""
import json
import sys
from pathlib import Path

from tinynet.files import atomic_write

PACKAGE_DIR = Path(__file__).resolve().parent / "_lessons"
CHECKOUT_DIR = Path(__file__).resolve().parent.parent / "lessons"
DEFAULT_DIR = "tinynet-lessons"
# Text that must never reach a student copy (nbgrader's solution / hidden-test markers).
FORBIDDEN = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS")


class LessonsError(Exception):
    """The lessons cannot be copied (one line for the user)."""


def _checkout_release():
    """release_notebook_file(src, dst): the student version of one homework notebook."""
    from tinynet.grade.release import release_notebook_file
    return release_notebook_file


def plan(dest):
    """[(how, source, target)]: how is "copy" or "release" (make the student version)."""
    dest = Path(dest)
    if PACKAGE_DIR.is_dir():
        lessons = sorted(PACKAGE_DIR.glob("*.ipynb"))
        homework = [("copy", p) for p in sorted((PACKAGE_DIR / "homework").glob("*.ipynb"))]
    elif CHECKOUT_DIR.is_dir():
        lessons = sorted(CHECKOUT_DIR.glob("*.ipynb"))
        homework = [("release", p) for p in sorted((CHECKOUT_DIR / "homework").glob("*.ipynb"))]
    else:
        raise LessonsError(f"no lessons found: neither {PACKAGE_DIR} (installed package) nor "
                           f"{CHECKOUT_DIR} (source checkout) exists")
    if not lessons:
        raise LessonsError(f"no lesson notebooks in {PACKAGE_DIR if PACKAGE_DIR.is_dir() else CHECKOUT_DIR}")
    return ([("copy", p, dest / p.name) for p in lessons]
            + [(how, p, dest / "homework" / p.name) for how, p in homework])


def _check_student(path):
    text = Path(path).read_text(encoding="utf-8")
    for marker in FORBIDDEN:
        if marker in text:
            raise LessonsError(f"{path} still holds {marker!r}: refusing to hand out a "
                               f"solution; please report this")
    nb = json.loads(text)
    if any("hidden-tests" in (c.get("metadata", {}).get("tags") or []) for c in nb["cells"]):
        raise LessonsError(f"{path} still holds a hidden-tests cell; please report this")


def copy_lessons(dest=DEFAULT_DIR, force=False, log=print):
    """Write the lessons and the student homework into ``dest``; returns the written paths."""
    dest = Path(dest)
    steps = plan(dest)
    if dest.exists() and not dest.is_dir():
        raise LessonsError(f"{dest} exists and is not a folder")
    existing = [str(t) for _, _, t in steps if t.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise LessonsError(f"{existing[0]}{more} already exists; use --force to overwrite, "
                           f"or choose another folder")
    release = None
    written = []
    try:
        (dest / "homework").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LessonsError(f"cannot create {dest / 'homework'}: {exc.strerror or exc}") from None
    for how, src, target in steps:
        try:
            if how == "copy":
                data = src.read_bytes()
                with atomic_write(target) as f:
                    f.write(data)
            else:
                release = release or _checkout_release()
                release(src, target)
        except OSError as exc:
            raise LessonsError(f"cannot write {target}: {exc.strerror or exc}") from None
        if target.parent.name == "homework":
            _check_student(target)
        written.append(target)
    n_hw = sum(1 for p in written if p.parent.name == "homework")
    log(f"wrote {len(written) - n_hw} lessons and {n_hw} homework notebooks (student "
        f"versions) to {dest}/")
    for p in written:
        log(f"  {p}")
    log(f"next: jupyter lab {dest}    (grade your homework: python -m tinynet.grade "
        f"{dest / 'homework' / 'hw1_dense_softmax.ipynb'})")
    return written


def add_parser(subparsers):
    p = subparsers.add_parser(
        "lessons", help="copy the lesson notebooks and the homework into a folder",
        description="Copy the lesson notebooks and the student versions of the homework "
                    "out of the installed package, then open them with `jupyter lab DIR`.",
        formatter_class=_formatter())
    p.add_argument("dir", nargs="?", default=DEFAULT_DIR, help="folder to write into")
    p.add_argument("--force", action="store_true",
                   help="overwrite notebooks that are already there")
    p.set_defaults(func=cmd_lessons)
    return p


def _formatter():
    import argparse
    return argparse.ArgumentDefaultsHelpFormatter


def cmd_lessons(args):
    try:
        copy_lessons(args.dir, force=args.force)
    except LessonsError as exc:
        print(f"tinynet lessons: error: {exc}", file=sys.stderr)
        return 2
    return 0
