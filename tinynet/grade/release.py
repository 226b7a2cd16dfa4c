"""The student version of a homework notebook (used by scripts/release_homework.py,
``tinynet lessons`` and the wheel build).

    release_notebook_file(src_path, dst_path)   one notebook, written atomically
    release(src, out_dir)                        a folder (or one file) of notebooks

In the student version:

* code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (the nbgrader
  markers, each on a line of its own) becomes ``# YOUR CODE HERE`` +
  ``raise NotImplementedError()`` at the indentation of the BEGIN line; the
  code before and after the markers stays.  In a markdown cell the block
  becomes ``YOUR ANSWER HERE``;
* hidden tests go: a ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``
  block is cut out of its cell, a cell left empty by that is dropped, and so
  is every cell tagged ``hidden-tests``;
* outputs and execution counts are cleared; nbgrader cell metadata stays, so
  the released notebook is also a valid nbgrader student version.

Every notebook is processed before anything is written, so a notebook with
unbalanced markers stops the release with nothing half-written.  Each file is
written to a temporary file next to its target and renamed into place.  Only
the standard library (and tinynet.files) is needed.
"""
import argparse
import json
import sys
from pathlib import Path

from tinynet.files import atomic_write

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
HIDDEN_TAG = "hidden-tests"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)


class ReleaseError(Exception):
    """A notebook cannot be released (unbalanced markers, unreadable file)."""


class UsageError(Exception):
    """The command was called wrongly (exit code 2)."""


def _source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _marker(line):
    stripped = line.strip()
    for m in MARKERS:
        if stripped.startswith(m):
            return m
    return None


def strip_cell(source, cell_type, where):
    """(new source, number of solution blocks replaced, number of hidden blocks removed)."""
    out, state, n_solution, n_hidden = [], None, 0, 0
    for lineno, line in enumerate(source.splitlines(keepends=True), 1):
        marker = _marker(line)
        at = f"{where}, line {lineno}"
        if marker == BEGIN_SOLUTION:
            if state:
                raise ReleaseError(f"{at}: {BEGIN_SOLUTION} inside an open {state} block")
            state, n_solution = BEGIN_SOLUTION, n_solution + 1
            indent = line[:len(line) - len(line.lstrip())]
            newline = "\n" if line.endswith("\n") else ""
            if cell_type == "code":
                out.append(f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()"
                           + newline)
            else:
                out.append("YOUR ANSWER HERE" + newline)
        elif marker == BEGIN_HIDDEN:
            if state:
                raise ReleaseError(f"{at}: {BEGIN_HIDDEN} inside an open {state} block")
            state, n_hidden = BEGIN_HIDDEN, n_hidden + 1
        elif marker in (END_SOLUTION, END_HIDDEN):
            opener = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if state != opener:
                raise ReleaseError(f"{at}: {marker} without a matching {opener}")
            state = None
        elif state is None:
            out.append(line)
    if state:
        raise ReleaseError(f"{where}: {state} is never closed (no matching END line)")
    text = "".join(out)
    if out and not source.endswith("\n"):
        text = text.rstrip("\n")
    return text, n_solution, n_hidden


def _cells(nb, name):
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise ReleaseError(f"{name}: not a notebook (no list of cells)")
    for k, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or not isinstance(cell.get("metadata", {}), dict) \
                or not isinstance(cell.get("source", ""), (str, list)):
            raise ReleaseError(f"{name}, cell {k}: malformed cell")
    return cells


def release_notebook(nb, name):
    """The student version of a notebook (a dict in nbformat 4); returns (nb, summary)."""
    cells, n_solution, n_hidden = [], 0, 0
    for k, cell in enumerate(_cells(nb, name), 1):
        tags = cell.get("metadata", {}).get("tags", []) or []
        if isinstance(tags, list) and HIDDEN_TAG in tags:
            n_hidden += 1
            continue
        source = _source(cell)
        new, s, h = strip_cell(source, cell.get("cell_type"), f"{name}, cell {k}")
        n_solution += s
        n_hidden += h
        if h and not new.strip():
            continue                          # the cell held only hidden tests
        cell = dict(cell)
        cell["source"] = new
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cells.append(cell)
    for k, cell in enumerate(cells, 1):        # belt and braces: nothing may survive
        for line in _source(cell).splitlines():
            if _marker(line):
                raise ReleaseError(f"{name}: a marker survived the release: {line.strip()!r}")
    out = dict(nb)
    out["cells"] = cells
    return out, {"solutions": n_solution, "hidden": n_hidden}


def _write_atomic(path, text):
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _read(path):
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read {path}: {exc}") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4:
        raise ReleaseError(f"{Path(path).name}: only nbformat 4 notebooks are supported")
    return nb


def _dumps(nb):
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def release_notebook_file(src_path, dst_path):
    """Write the student version of the notebook ``src_path`` to ``dst_path`` (atomically).

    Raises ReleaseError (unreadable notebook, unbalanced markers) with nothing
    written, UsageError when ``dst_path`` is ``src_path``.  Returns the summary
    {"solutions": blocks replaced, "hidden": hidden-test blocks removed}.
    """
    src_path, dst_path = Path(src_path), Path(dst_path)
    if dst_path.exists() and dst_path.resolve() == src_path.resolve():
        raise UsageError(f"{dst_path} is the source notebook; refusing to overwrite it")
    student, summary = release_notebook(_read(src_path), src_path.name)
    _write_atomic(dst_path, _dumps(student))
    return summary


def release(src, out_dir, log=print):
    """Release every notebook of ``src`` (a folder or one .ipynb) into ``out_dir``.

    Returns the list of written paths.  Raises UsageError or ReleaseError.
    """
    src, out_dir = Path(src), Path(out_dir)
    if not src.exists():
        raise UsageError(f"no such file or folder: {src}")
    sources = [src] if src.is_file() else sorted(src.glob("*.ipynb"))
    if not sources:
        raise UsageError(f"{src} holds no notebooks (*.ipynb)")
    src_dir = src.parent if src.is_file() else src
    if out_dir.exists() and out_dir.resolve() == src_dir.resolve():
        raise UsageError(f"OUT_DIR is the source folder {src_dir}: releasing there would "
                         f"overwrite the solutions; choose another folder")
    source_files = {p.resolve() for p in sources}
    planned = []
    for path in sources:
        student, summary = release_notebook(_read(path), path.name)
        target = out_dir / path.name
        if target.exists() and target.resolve() in source_files:
            raise UsageError(f"{target} is a source notebook; refusing to overwrite it")
        planned.append((path, target, student, summary))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, target, student, summary in planned:
        _write_atomic(target, _dumps(student))
        written.append(target)
        log(f"{path.name}: {summary['solutions']} solution blocks replaced, "
            f"{summary['hidden']} hidden-test blocks removed -> {target}")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="release_homework",
        description="Write the student versions of the homework notebooks: solutions "
                    "replaced by `raise NotImplementedError()`, hidden tests removed, "
                    "outputs cleared.")
    parser.add_argument("src", help="folder of solution notebooks (or one .ipynb)")
    parser.add_argument("out_dir", help="where to write the student versions")
    args = parser.parse_args(argv)
    try:
        release(args.src, args.out_dir)
    except UsageError as exc:
        print(f"release_homework: error: {exc}", file=sys.stderr)
        return 2
    except ReleaseError as exc:
        print(f"release_homework: error: {exc}; nothing was written", file=sys.stderr)
        return 1
    return 0

