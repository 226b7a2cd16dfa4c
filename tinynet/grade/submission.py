"""Reading a submission -- a notebook or a .py module -- into runnable pieces.

A notebook becomes its code cells, minus the cells tagged "tests",
"hidden-tests" or "demo", nbgrader's autograded test cells, and any cell
holding a ``### BEGIN HIDDEN TESTS`` block: the grader runs its own checks, a visible test that fails must not
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


MAX_NOTEBOOK_BYTES = 20 * 1024 ** 2      # a homework notebook is well under 1 MB
MAX_CELL_CHARS = 1024 ** 2


class Malformed(ValueError):
    """A notebook whose structure is not nbformat's (the message says where)."""


def cell_source(cell):
    """The cell's code as one string; Malformed unless it is a string or a list of strings."""
    src = cell.get("source", "")
    if isinstance(src, list) and all(isinstance(s, str) for s in src):
        return "".join(src)
    if isinstance(src, str):
        return src
    raise Malformed(f"its source is a {type(src).__name__}, not text")


def cell_tags(cell):
    """The cell's tags as a list of strings; a single string counts as one tag (or a
    comma/space-separated list), so a "tests" cell is never run by mistake."""
    meta = cell.get("metadata")
    if meta is None:
        return []
    if not isinstance(meta, dict):
        raise Malformed(f"its metadata is a {type(meta).__name__}, not a mapping")
    tags = meta.get("tags")
    if tags is None:
        return []
    if isinstance(tags, str):
        return [t for t in re.split(r"[,\s]+", tags) if t]
    if isinstance(tags, (list, tuple)):
        return [str(t) for t in tags]
    raise Malformed(f"its tags are a {type(tags).__name__}, not a list")


def _nbgrader_test(cell):
    meta = cell.get("metadata")
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return isinstance(nbg, dict) and bool(nbg.get("grade")) and not nbg.get("solution")


def is_test_cell(cell):
    tags = cell_tags(cell)
    return (any(t in SKIP_TAGS for t in tags) or HIDDEN_BEGIN in cell_source(cell)
            or _nbgrader_test(cell))


_MAGIC = re.compile(r"^(\s*)[%!]")


def strip_magics(source):
    """IPython-only lines become ``pass`` (keeping indentation and line numbers)."""
    lines = source.split("\n")
    out = []
    for line in lines:
        m = _MAGIC.match(line)
        out.append(f"{m.group(1)}pass  # IPython magic skipped by the grader" if m else line)
    return "\n".join(out)


def _unreadable(path, why):
    return Submission(str(path), "notebook", [],
                      problem=f"could not read the notebook {path.name}: {why}")


def read_notebook(path):
    """A notebook's code cells as pieces, or a Submission whose ``problem`` says why not.

    Never raises on a bad notebook: invalid JSON, a huge file, cells that are
    not mappings, a source or metadata of the wrong type -- each is one line.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            return _unreadable(path, f"it is {size / 1024 ** 2:.0f} MB; a homework notebook "
                                     f"is at most {MAX_NOTEBOOK_BYTES // 1024 ** 2} MB (clear "
                                     f"the outputs: Kernel > Restart & Clear Output)")
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return _unreadable(path, exc)
    except (ValueError, RecursionError) as exc:
        return _unreadable(path, f"it is not valid JSON ({str(exc)[:120]}); was it saved "
                                 f"completely?")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return _unreadable(path, "it has no list of cells (is it a Jupyter notebook?)")
    meta = nb.get("metadata")
    tn_meta = meta.get("tinynet") if isinstance(meta, dict) else None
    hint = tn_meta.get("assignment") if isinstance(tn_meta, dict) else None
    hint = hint if isinstance(hint, str) else None
    pieces = []
    number = 0
    for k, cell in enumerate(nb["cells"], 1):
        if not isinstance(cell, dict):
            return _unreadable(path, f"cell {k} is a {type(cell).__name__}, not a cell")
        if cell.get("cell_type") != "code":
            continue
        number += 1
        try:
            if is_test_cell(cell):
                continue
            source = cell_source(cell)
        except Malformed as exc:
            return _unreadable(path, f"code cell {number}: {exc}")
        if len(source) > MAX_CELL_CHARS:
            return _unreadable(path, f"code cell {number} holds {len(source)} characters "
                                     f"(at most {MAX_CELL_CHARS})")
        source = strip_magics(source)
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
        if path.stat().st_size > MAX_CELL_CHARS * 4:
            return Submission(str(path), "module", [],
                              problem=f"could not read {path.name}: it is over "
                                      f"{MAX_CELL_CHARS * 4 // 1024 ** 2} MB")
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
