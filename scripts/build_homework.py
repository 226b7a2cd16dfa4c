#!/usr/bin/env python
"""Build the homework notebooks from their Python sources, with nbgrader metadata.

    python scripts/build_homework.py            # lessons/homework/src/hwN_*.py -> lessons/homework/hwN_*.ipynb
    python scripts/build_homework.py --check    # exit 1 if a notebook differs from its source

A source is plain Python in the percent format the lessons use, with the
cell's tags on its marker line (as jupytext writes them):

    # %% [markdown]
    # ## Part 1 -- col2im (3 points)

    # %% tags=["solution"]
    def col2im(...):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

    # %% tags=["hidden-tests"]
    ### BEGIN HIDDEN TESTS
    from tinynet.grade import check
    earned = check(globals(), "hw2_conv_backward", "col2im")
    ### END HIDDEN TESTS

The nbgrader metadata is derived, so it can never disagree with the grader:

    tag "solution"              autograded answer (solution, not locked)
    tag "hidden-tests"          autograder test cell, locked, worth the points of the
                                ONE part it checks (from tinynet.grade's registry)
    markdown with a solution    manually graded answer worth 0 points (a question
                                tinynet.grade does not grade either)
    everything else             read-only (locked)

so ``nbgrader generate_assignment`` / ``autograde`` work on the notebooks as
they are and give the points ``python -m tinynet.grade`` gives.  Notebooks are
written without outputs and with position-derived cell ids: building twice
gives the same bytes.
"""
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import percent_notebook  # noqa: E402  (the format and the command line, shared with lessons)
from percent_notebook import KERNELSPEC, LANGUAGE_INFO, ROOT  # noqa: E402

SRC = ROOT / "lessons" / "homework" / "src"
OUT = ROOT / "lessons" / "homework"
_MARKER = re.compile(r"(?:\[(markdown|code)\])?\s*(?:tags=(\[.*\]))?")
_CHECK = re.compile(r"""check\(globals\(\),\s*["'](\w+)["'],\s*["'](\w+)["']\)""")


def parse_cells(text, where="source"):
    """[(kind, tags, source)] from a percent-format file."""
    def read_marker(rest, number):
        m = _MARKER.fullmatch(rest)
        if not m:
            raise ValueError(f"{where}, line {number}: bad cell marker {('# %% ' + rest)!r}; "
                             f"use '# %%', '# %% [markdown]', optionally with tags=[...]")
        return m.group(1) or "code", json.loads(m.group(2)) if m.group(2) else []
    return percent_notebook.split_cells(text, read_marker, where)


def nbgrader_metadata(kind, tags, source, assignment, index):
    """The nbgrader cell metadata (schema 3) for one cell."""
    from tinynet.grade.assignments import get
    meta = {"grade": False, "solution": False, "locked": True, "schema_version": 3,
            "grade_id": f"cell-{index:03d}"}
    if "hidden-tests" in tags:
        parts = {m.group(2) for m in _CHECK.finditer(source) if m.group(1) == assignment}
        if len(parts) != 1:
            raise ValueError(f"{assignment}, cell {index}: a hidden-tests cell checks exactly "
                             f"one part (found {sorted(parts) or 'none'})")
        part = get(assignment).part(parts.pop())
        meta.update(grade=True, points=part.points, grade_id=f"test_{part.id}")
    elif "### BEGIN SOLUTION" in source:
        if kind == "markdown":
            meta.update(grade=True, solution=True, locked=False, points=0,
                        grade_id=f"answer-{index:03d}")
        else:
            meta.update(solution=True, locked=False, grade_id=f"solution-{index:03d}")
    return meta


def build_notebook(source_path):
    """The notebook (a dict in nbformat 4) for one homework source."""
    import nbformat
    from nbformat import v4
    source_path = Path(source_path)
    assignment = source_path.stem
    cells = []
    for i, (kind, tags, body) in enumerate(parse_cells(source_path.read_text(encoding="utf-8"),
                                                       source_path.name)):
        make = v4.new_markdown_cell if kind == "markdown" else v4.new_code_cell
        cell = make(body, id=f"cell-{i:03d}")
        if tags:
            cell.metadata["tags"] = list(tags)
        cell.metadata["nbgrader"] = nbgrader_metadata(kind, tags, body, assignment, i)
        cells.append(cell)
    nb = v4.new_notebook(cells=cells, metadata={
        "kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO),
        "tinynet": {"assignment": assignment}})
    nbformat.validate(nb)
    return nb


def notebook_text(source_path):
    import nbformat
    return nbformat.writes(build_notebook(source_path)) + "\n"


def target_for(source_path):
    return OUT / (Path(source_path).stem + ".ipynb")


def main(argv=None):
    return percent_notebook.main(argv, __doc__.splitlines()[0],
                                 ("lessons/homework/src/hw*.py",
                                  lambda: sorted(SRC.glob("hw*.py"))),
                                 "homework", "build_homework.py", target_for, notebook_text)


if __name__ == "__main__":
    sys.exit(main())
