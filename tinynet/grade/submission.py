"""Reading a submission -- a notebook or a .py module -- into runnable pieces.

A notebook becomes its code cells, minus the cells tagged "tests",
"hidden-tests" or "demo" and any cell holding a ``### BEGIN HIDDEN TESTS``
block: the grader runs its own checks, a visible test that fails must not
stop the rest, and a demonstration only costs time.
IPython magics (``%matplotlib inline``, ``!pip ...``) are skipped.

A module becomes its top-level statements (statements sharing a line stay
together), so an exception in one does not stop the others -- as in a
notebook.  A module that does not parse stays one piece; running it reports
the SyntaxError with its line.

Nothing here runs student code; the sandboxed student process does (tinynet.grade.sandbox).
"""
import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tinynet.grade.student import STUDENT_FILE_PREFIX

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
#: Cells with these tags are not run by the grader: visible tests, hidden tests,
#: and demonstrations that only use what the graded cells define.
SKIP_TAGS = ("tests", "hidden-tests", "demo")

#: Filenames of .py submissions whose frames count as student code (set in the worker).
STUDENT_FILES = set()


@dataclass
class Piece:
    index: int
    label: str          # "code cell 4" or "lines 10-14 of hw1.py"
    filename: str       # what tracebacks show: "<code cell 4>" or the module path
    source: str         # for a module: padded with blank lines so line numbers match


@dataclass
class Submission:
    path: str
    kind: str           # "notebook" or "module"
    pieces: list
    assignment_hint: str = None
    problem: str = None  # set when the file could not be read at all


def cell_source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_test_cell(cell):
    tags = cell.get("metadata", {}).get("tags", []) or []
    return any(t in SKIP_TAGS for t in tags) or HIDDEN_BEGIN in cell_source(cell)


_MAGIC = re.compile(r"^(\s*)[%!]")


def strip_magics(source):
    """IPython-only lines become ``pass`` (keeping indentation and line numbers)."""
    lines = source.split("\n")
    out = []
    for line in lines:
        m = _MAGIC.match(line)
        out.append(f"{m.group(1)}pass  # IPython magic skipped by the grader" if m else line)
    return "\n".join(out)


def read_notebook(path):
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Submission(str(path), "notebook", [],
                          problem=f"could not read the notebook {path.name}: {exc}")
    hint = (nb.get("metadata", {}).get("tinynet", {}) or {}).get("assignment")
    pieces = []
    number = 0
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        number += 1
        if is_test_cell(cell):
            continue
        source = strip_magics(cell_source(cell))
        if not source.strip():
            continue
        first = next((ln.strip() for ln in source.splitlines()
                      if ln.strip() and not ln.strip().startswith("#")), "")
        label = f"code cell {number}" + (f" (`{first[:50]}`)" if first else "")
        pieces.append(Piece(len(pieces), label, f"{STUDENT_FILE_PREFIX}{number}>", source))
    return Submission(str(path), "notebook", pieces, assignment_hint=hint)


_ASSIGNMENT_LINE = re.compile(r"""^ASSIGNMENT\s*=\s*["']([\w-]+)["']""", re.M)


def read_module(path):
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Submission(str(path), "module", [], problem=f"could not read {path.name}: {exc}")
    m = _ASSIGNMENT_LINE.search(text)
    hint = m.group(1) if m else None
    filename = str(path.resolve())
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError:
        return Submission(str(path), "module",
                          [Piece(0, path.name, filename, text)], assignment_hint=hint)
    lines = text.split("\n")
    chunks = []                                   # [start, end] line ranges, 1-based
    for node in tree.body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        end = node.end_lineno
        if chunks and start <= chunks[-1][1]:
            chunks[-1][1] = max(chunks[-1][1], end)
        else:
            chunks.append([start, end])
    pieces = []
    for start, end in chunks:
        source = "\n" * (start - 1) + "\n".join(lines[start - 1:end])
        label = (f"line {start} of {path.name}" if start == end
                 else f"lines {start}-{end} of {path.name}")
        pieces.append(Piece(len(pieces), label, filename, source))
    return Submission(str(path), "module", pieces, assignment_hint=hint)


def read(path):
    if str(path).endswith(".ipynb"):
        return read_notebook(path)
    return read_module(path)
