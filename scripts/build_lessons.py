"""Build lesson notebooks from their Python sources, or check that they match.

    python scripts/build_lessons.py            # lessons/src/NN_name.py -> lessons/NN_name.ipynb
    python scripts/build_lessons.py --check    # exit 1 if a notebook differs from its source
    python scripts/build_lessons.py lessons/src/05_initialization_done_right.py

A source is plain Python with jupytext-style cell markers, so that a lesson
reads (and diffs) like code:

    # %% [markdown]
    # # A heading
    # Prose, one "# " prefix per line.

    # %%
    x = 1 + 1

Two more code-cell markers keep long cells out of a student's way:

    # %% [check]       the lesson's assertions: collapsed in Jupyter (and hidden by
                       Jupyter Book / nbconvert's remove-input), still executed
    # %% [solution]    a worked solution to an exercise: collapsed until the
                       student clicks it open, executed in CI like every cell

Lines before the first marker are a header for the source file only (they do
not reach the notebook).  In code cells, IPython magics are written commented
out, as jupytext does (``# %matplotlib inline``), so that the source stays
valid Python; the notebook gets them uncommented.  Blank lines at the ends of a cell are dropped.  The
notebook is written without outputs, with cell ids derived from the cell's
position, so building twice gives the same bytes and a stale notebook shows
up as a diff.
"""
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import percent_notebook  # noqa: E402  (the format and the command line, shared with homework)
from percent_notebook import KERNELSPEC, LANGUAGE_INFO, ROOT  # noqa: E402

SRC = ROOT / "lessons" / "src"
OUT = ROOT / "lessons"


def _read_marker(rest, number):
    if rest in ("", "[code]"):
        return "code", None
    if rest in ("[markdown]", "[check]", "[solution]"):
        return rest[1:-1], None
    raise ValueError(f"line {number}: unknown cell marker {('# %% ' + rest)!r}; use "
                     f"'# %%', '# %% [markdown]', '# %% [check]' or '# %% [solution]'")


def parse_cells(text):
    """[(kind, source)] from a ``# %%``-marked Python file.

    kind is "code", "markdown", "check" or "solution" (the last two are code cells
    that the notebook shows collapsed).
    """
    return [(kind, body) for kind, _, body in
            percent_notebook.split_cells(text, _read_marker, "lesson source")]


# Collapsed in Jupyter (source_hidden) and dropped from rendered pages (remove-input);
# the tag names the role so tests and tools can find these cells.
HIDDEN = {
    "check": {"jupyter": {"source_hidden": True}, "tags": ["check", "remove-input"]},
    "solution": {"jupyter": {"source_hidden": True}, "tags": ["solution", "remove-input"]},
}


def build_notebook(source_path):
    """The notebook (nbformat NotebookNode) for one source file."""
    import nbformat
    from nbformat import v4

    cells = []
    for i, (kind, body) in enumerate(parse_cells(Path(source_path).read_text(encoding="utf-8"))):
        if kind == "markdown":
            cells.append(v4.new_markdown_cell(body, id=f"cell-{i:03d}"))
        else:
            cell = v4.new_code_cell(body, id=f"cell-{i:03d}")
            if kind in HIDDEN:
                cell.metadata.update(copy.deepcopy(HIDDEN[kind]))
            cells.append(cell)
    nb = v4.new_notebook(cells=cells, metadata={"kernelspec": dict(KERNELSPEC),
                                                "language_info": dict(LANGUAGE_INFO)})
    nbformat.validate(nb)
    return nb


def notebook_text(source_path):
    import nbformat
    return nbformat.writes(build_notebook(source_path)) + "\n"


def target_for(source_path):
    return OUT / (Path(source_path).stem + ".ipynb")


def main(argv=None):
    return percent_notebook.main(argv, __doc__.splitlines()[0],
                                 ("lessons/src/*.py", lambda: sorted(SRC.glob("*.py"))),
                                 "lesson", "build_lessons.py", target_for, notebook_text)


if __name__ == "__main__":
    sys.exit(main())
