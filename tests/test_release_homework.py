"""scripts/release_homework.py: the student versions of the homework notebooks."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOMEWORK = ROOT / "lessons" / "homework"
SCRIPT = ROOT / "scripts" / "release_homework.py"


def _load():
    spec = importlib.util.spec_from_file_location("release_homework", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rh = _load()


def _src(cell):
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def _cell(cell_type, source, tags=None, outputs=None):
    cell = {"cell_type": cell_type, "metadata": {}, "source": source}
    if tags:
        cell["metadata"]["tags"] = tags
    if cell_type == "code":
        cell["execution_count"] = 7
        cell["outputs"] = outputs if outputs is not None else []
    return cell


def _notebook(cells):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"tinynet": {"assignment": "hw1"}},
            "cells": cells}


def _write(path, nb):
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


SOLUTION_CELL = '''class F(tn.Function):
    def backward(self, g):
        """Docstring stays."""
        n = len(g)          # before the markers: stays
        ### BEGIN SOLUTION
        dz = g / n
        ### END SOLUTION
        return (dz,)        # after the markers: stays'''

RELEASED_CELL = '''class F(tn.Function):
    def backward(self, g):
        """Docstring stays."""
        n = len(g)          # before the markers: stays
        # YOUR CODE HERE
        raise NotImplementedError()
        return (dz,)        # after the markers: stays'''


def test_release_of_a_small_notebook(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    output = [{"output_type": "stream", "name": "stdout", "text": "secret answer 42\n"}]
    _write(src / "hw1.ipynb", _notebook([
        _cell("markdown", "# Title"),
        _cell("code", SOLUTION_CELL, tags=["solution"], outputs=output),
        _cell("code", "assert F is not None\n### BEGIN HIDDEN TESTS\nassert secret()\n"
                      "### END HIDDEN TESTS\nprint('visible')"),
        _cell("code", "### BEGIN HIDDEN TESTS\nassert secret()\n### END HIDDEN TESTS"),
        _cell("code", "check(globals())", tags=["hidden-tests"]),
        _cell("markdown", "Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
    ]))
    written = rh.release(src, tmp_path / "out", log=lambda *a: None)
    assert written == [tmp_path / "out" / "hw1.ipynb"]
    nb = json.loads(written[0].read_text(encoding="utf-8"))
    sources = [_src(c) for c in nb["cells"]]
    assert sources == ["# Title", RELEASED_CELL, "assert F is not None\nprint('visible')",
                       "Why?\nYOUR ANSWER HERE"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "secret" not in written[0].read_text(encoding="utf-8")
    assert nb["metadata"]["tinynet"] == {"assignment": "hw1"}
    assert code[0]["metadata"]["tags"] == ["solution"]


def test_release_of_the_real_homework(tmp_path):
    out = tmp_path / "student"
    written = rh.release(HOMEWORK, out, log=lambda *a: None)
    sources = sorted(HOMEWORK.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in sources]
    for src_path, out_path in zip(sources, written):
        src = json.loads(src_path.read_text(encoding="utf-8"))
        nb = json.loads(out_path.read_text(encoding="utf-8"))
        text = out_path.read_text(encoding="utf-8")
        for marker in rh.MARKERS:
            assert marker not in text, (out_path.name, marker)
        hidden = [c for c in src["cells"] if "hidden-tests" in c["metadata"].get("tags", [])]
        assert hidden, f"{src_path.name} has no hidden tests"
        assert len(nb["cells"]) == len(src["cells"]) - len(hidden)
        assert "tinynet.grade import check" not in text
        assert nb["metadata"]["tinynet"] == src["metadata"]["tinynet"]
        n_raise = sum(_src(c).count("raise NotImplementedError()") for c in nb["cells"]
                      if c["cell_type"] == "code")
        n_solution = sum(_src(c).count(rh.BEGIN_SOLUTION) for c in src["cells"]
                         if c["cell_type"] == "code")
        assert n_raise == n_solution > 0
        # The code around each solution block is kept, at the block's indentation.
        kept = [c for c in nb["cells"]
                if c["cell_type"] == "code" and "raise NotImplementedError()" in _src(c)]
        for cell in kept:
            lines = _src(cell).splitlines()
            k = next(i for i, ln in enumerate(lines) if "raise NotImplementedError()" in ln)
            assert lines[k - 1].strip() == "# YOUR CODE HERE"
            indent = len(lines[k]) - len(lines[k].lstrip())
            assert lines[k - 1].startswith(" " * indent)
    nbformat = pytest.importorskip("nbformat")
    for path in written:
        nbformat.validate(nbformat.read(path, as_version=4))


def test_solutions_and_hidden_tests_really_are_gone(tmp_path):
    written = rh.release(HOMEWORK / "hw1_dense_softmax.ipynb", tmp_path, log=lambda *a: None)
    text = written[0].read_text(encoding="utf-8")
    assert "dw = self.x.T @ g" not in text                 # the solution line
    assert "exactly zero, on every step. RMSprop" not in text   # the written answer
    assert "YOUR ANSWER HERE" in text
    assert "class Dense(tn.Function)" in text and "return dx, dw, db" in text


def test_refuses_to_overwrite_the_source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    path = _write(src / "hw1.ipynb", _notebook([_cell("code", SOLUTION_CELL)]))
    before = path.read_bytes()
    result = subprocess.run([sys.executable, str(SCRIPT), str(src), str(src)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "overwrite" in result.stderr
    assert path.read_bytes() == before
    link = tmp_path / "alias"
    link.symlink_to(src, target_is_directory=True)
    with pytest.raises(rh.UsageError):
        rh.release(src, link, log=lambda *a: None)
    with pytest.raises(rh.UsageError):
        rh.release(path, src, log=lambda *a: None)
    assert path.read_bytes() == before


@pytest.mark.parametrize("source, complaint", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION",
     "inside an open"),
    ("### BEGIN HIDDEN TESTS\nassert 1\n### END SOLUTION", "without a matching"),
])
def test_unbalanced_markers_stop_the_release(tmp_path, source, complaint):
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "a_fine.ipynb", _notebook([_cell("code", SOLUTION_CELL)]))
    _write(src / "b_broken.ipynb", _notebook([_cell("code", source)]))
    out = tmp_path / "out"
    with pytest.raises(rh.ReleaseError, match=complaint):
        rh.release(src, out, log=lambda *a: None)
    assert not out.exists() or not any(out.iterdir())     # nothing half-written
    result = subprocess.run([sys.executable, str(SCRIPT), str(src), str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "b_broken.ipynb, cell 1" in result.stderr


def test_writes_are_atomic(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "hw1.ipynb", _notebook([_cell("code", SOLUTION_CELL)]))
    out = tmp_path / "out"
    out.mkdir()
    old = out / "hw1.ipynb"
    old.write_text("previous release", encoding="utf-8")

    def failing_replace(a, b):
        raise OSError("disk full")

    import tinynet.files
    monkeypatch.setattr(tinynet.files.os, "replace", failing_replace)
    with pytest.raises(OSError):
        rh.release(src, out, log=lambda *a: None)
    assert old.read_text(encoding="utf-8") == "previous release"
    assert sorted(p.name for p in out.iterdir()) == ["hw1.ipynb"]   # no temp file left
    monkeypatch.undo()
    rh.release(src, out, log=lambda *a: None)
    assert "raise NotImplementedError()" in old.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["hw1.ipynb"]


def test_command_line(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(HOMEWORK), str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "solution blocks replaced" in result.stdout
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == \
        sorted(p.name for p in HOMEWORK.glob("*.ipynb"))
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "missing"),
                             str(tmp_path / "o2")], capture_output=True, text=True)
    assert result.returncode == 2 and "no such file" in result.stderr


def test_release_notebook_file_is_the_packaged_entry_point(tmp_path):
    """tinynet.grade.release.release_notebook_file(src, dst): one notebook, atomically."""
    from tinynet.grade.release import ReleaseError, UsageError, release_notebook_file
    src = HOMEWORK / "hw2_conv_backward.ipynb"
    dst = tmp_path / "out" / "hw2.ipynb"
    summary = release_notebook_file(src, dst)
    assert summary["solutions"] >= 2 and summary["hidden"] >= 1
    text = dst.read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text
    assert json.loads(text)["cells"]
    with pytest.raises(UsageError):
        release_notebook_file(src, src)
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "metadata": {},
                                                         "source": "### BEGIN SOLUTION\n"}]}))
    with pytest.raises(ReleaseError):
        release_notebook_file(bad, tmp_path / "never.ipynb")
    assert not (tmp_path / "never.ipynb").exists()
    for cells in ([1], [{"cell_type": "code", "metadata": [], "source": ""}]):
        bad.write_text(json.dumps({"nbformat": 4, "cells": cells}))
        with pytest.raises(ReleaseError):
            release_notebook_file(bad, tmp_path / "never.ipynb")


def test_homework_notebooks_are_built_from_their_sources():
    """lessons/homework/src/*.py -> lessons/homework/*.ipynb (scripts/build_homework.py)."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_homework.py"),
                             "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    sources = sorted(p.stem for p in (HOMEWORK / "src").glob("hw*.py"))
    assert sources == sorted(p.stem for p in HOMEWORK.glob("hw*.ipynb"))


def test_built_notebooks_carry_nbgrader_metadata_matching_the_grader():
    from tinynet.grade import ASSIGNMENTS
    for a in ASSIGNMENTS.values():
        nb = json.loads((HOMEWORK / a.notebook).read_text(encoding="utf-8"))
        meta = [c["metadata"]["nbgrader"] for c in nb["cells"]]
        tests = {m["grade_id"]: m["points"] for m in meta if m["grade"] and not m["solution"]}
        assert tests == {f"test_{p.id}": p.points for p in a.parts}
        solutions = [c for c in nb["cells"] if c["metadata"]["nbgrader"]["solution"]]
        assert solutions and all("BEGIN SOLUTION" in "".join(c["source"]) for c in solutions)
        for c in nb["cells"]:
            m = c["metadata"]["nbgrader"]
            if not m["solution"]:
                assert m["locked"], c["source"][:2]
