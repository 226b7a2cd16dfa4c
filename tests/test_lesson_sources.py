"""Lessons written as Python sources (lessons/src/*.py) match their committed notebooks.

A lesson with a source is edited there and built with ``python
scripts/build_lessons.py``; the notebook is committed without outputs.  A
stale notebook (someone edited one side only) fails here.
"""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "lessons" / "src").glob("*.py"))


def _builder():
    spec = importlib.util.spec_from_file_location("build_lessons",
                                                  ROOT / "scripts" / "build_lessons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_matches_its_source(source):
    pytest.importorskip("nbformat")
    build = _builder()
    target = build.target_for(source)
    assert target.exists(), (f"{target.relative_to(ROOT)} is missing; run "
                             f"python scripts/build_lessons.py")
    assert target.read_text(encoding="utf-8") == build.notebook_text(source), (
        f"{target.relative_to(ROOT)} does not match {source.relative_to(ROOT)}; edit the "
        f"source and run python scripts/build_lessons.py")


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_built_notebook_has_no_outputs(source):
    nb = json.loads(_builder().target_for(source).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_parse_cells_markers_and_magics():
    build = _builder()
    text = ("# header, not in the notebook\n"
            "# %% [markdown]\n# # Title\n#\n# Some *prose*.\n\n"
            "# %%\n# %matplotlib inline\nx = 1  # a comment stays\n\n\n"
            "# %%\ny = 2\n")
    assert build.parse_cells(text) == [
        ("markdown", "# Title\n\nSome *prose*."),
        ("code", "%matplotlib inline\nx = 1  # a comment stays"),
        ("code", "y = 2"),
    ]
    with pytest.raises(ValueError, match="markdown line"):
        build.parse_cells("# %% [markdown]\nnot a comment\n")
    with pytest.raises(ValueError, match="unknown cell marker"):
        build.parse_cells("# %% [raw]\n")


def test_check_and_solution_cells_are_collapsed_code_cells(tmp_path):
    pytest.importorskip("nbformat")
    build = _builder()
    src = tmp_path / "99_x.py"
    src.write_text("# %% [markdown]\n# # T\n\n# %%\nx = 1\n\n# %% [solution]\ny = x + 1\n\n"
                   "# %% [check]\nassert y == 2\nprint('all claims hold')\n", encoding="utf-8")
    assert [k for k, _ in build.parse_cells(src.read_text())] == ["markdown", "code", "solution",
                                                                   "check"]
    cells = build.build_notebook(src).cells
    assert "jupyter" not in cells[1].metadata and "tags" not in cells[1].metadata
    for cell, role in ((cells[2], "solution"), (cells[3], "check")):
        assert cell.cell_type == "code"
        assert cell.metadata["jupyter"]["source_hidden"] is True
        assert role in cell.metadata["tags"] and "remove-input" in cell.metadata["tags"]
