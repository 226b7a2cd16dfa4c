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
import argparse
import copy
import sys
from pathlib import Path

from tinynet.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "lessons" / "src"
OUT = ROOT / "lessons"

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}


def parse_cells(text):
    """[(kind, source)] from a ``# %%``-marked Python file.

    kind is "code", "markdown", "check" or "solution" (the last two are code cells
    that the notebook shows collapsed).
    """
    cells, kind, lines = [], None, []

    def close():
        if kind is None:
            return
        body = list(lines)
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        if kind == "markdown":
            body = [_uncomment(line) for line in body]
        else:
            body = [_unmagic(line) for line in body]
        cells.append((kind, "\n".join(body)))

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("# %%"):
            close()
            rest = stripped[4:].strip()
            if rest in ("", "[code]"):
                kind = "code"
            elif rest in ("[markdown]", "[check]", "[solution]"):
                kind = rest[1:-1]
            else:
                raise ValueError(f"line {number}: unknown cell marker {stripped!r}; use "
                                 f"'# %%', '# %% [markdown]', '# %% [check]' or "
                                 f"'# %% [solution]'")
            lines = []
        elif kind is not None:
            lines.append(line)
    close()
    return cells


def _unmagic(line):
    """``# %matplotlib inline`` -> ``%matplotlib inline`` (a commented-out magic)."""
    if line.startswith("# %") and not line.startswith("# %%"):
        return line[2:]
    return line


def _uncomment(line):
    if line.startswith("# "):
        return line[2:]
    if line.rstrip() == "#":
        return ""
    raise ValueError(f"a markdown line must start with '# ' (or be '#'), got {line!r}")


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


def _write_atomic(path, text):
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def stale(sources):
    """Sources whose notebook is missing or differs from what the source builds."""
    out = []
    for src in sources:
        target = target_for(src)
        if not target.exists() or target.read_text(encoding="utf-8") != notebook_text(src):
            out.append(src)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path,
                        help="lesson sources (default: every lessons/src/*.py)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook is stale")
    args = parser.parse_args(argv)
    sources = args.sources or sorted(SRC.glob("*.py"))
    if args.check:
        bad = stale(sources)
        for src in bad:
            print(f"stale: {target_for(src).relative_to(ROOT)} does not match "
                  f"{Path(src).resolve().relative_to(ROOT)}; run python scripts/build_lessons.py")
        return 1 if bad else 0
    for src in sources:
        target = target_for(src)
        _write_atomic(target, notebook_text(src))
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
