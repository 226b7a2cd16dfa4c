"""Grading a whole class folder: one command, one gradebook, a row per student."""
import csv
import json
import os
import subprocess
import sys

import pytest

from grade_helpers import HOMEWORK, ROOT, released_notebook, snapshot
from tinynet.grade.classroom import grade_folder

HW1 = "hw1_dense_softmax.ipynb"


def _half_right():
    """The solution with a transposed dW and a softmax backward missing its 1/N:
    dense_dx 2 + dense_db 1 + softmax_ce_forward 2 = 5 of 10."""
    nb = json.loads((HOMEWORK / HW1).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if "class Dense(tn.Function)" in src:
            assert "dw = self.x.T @ g" in src
            src = src.replace("dw = self.x.T @ g", "dw = (self.x.T @ g).T")
        if "class SoftmaxCrossEntropy(tn.Function)" in src:
            assert "return (dz * g / n,)" in src
            src = src.replace("return (dz * g / n,)", "return (dz * g,)")
        cell["source"] = src
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    (folder / "alice.ipynb").write_bytes((HOMEWORK / HW1).read_bytes())
    (folder / "bob.ipynb").write_text(json.dumps(released_notebook(HW1)), encoding="utf-8")
    (folder / "carol.ipynb").write_text(json.dumps(_half_right()), encoding="utf-8")
    (folder / "dave.ipynb").write_text('{"cells": [', encoding="utf-8")
    (folder / "notes.txt").write_text("not a submission", encoding="utf-8")
    before = snapshot(folder)
    out = tmp_path_factory.mktemp("grades")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "tinynet.grade", str(folder), "--gradebook",
         str(out / "grades.csv"), "-j", "2", "--assignment", "hw1_dense_softmax",
         "--timeout", "30"], capture_output=True, text=True, timeout=300, env=env)
    assert snapshot(folder) == before
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return result, rows, out


def test_the_gradebook_has_the_right_points(graded):
    result, rows, _ = graded
    assert sorted(rows) == ["alice", "bob", "carol", "dave"]
    assert rows["alice"]["total"] == "10" and rows["alice"]["status"] == "graded"
    assert rows["bob"]["total"] == "0" and rows["bob"]["status"] == "graded"
    carol = rows["carol"]
    assert carol["status"] == "graded", carol
    assert (carol["dense_dx"], carol["dense_dw"], carol["dense_db"],
            carol["softmax_ce_forward"], carol["softmax_ce_backward"]) == ("2", "0", "1", "2",
                                                                            "0"), carol
    assert carol["total"] == "5"
    assert rows["dave"]["status"] == "error" and "not valid JSON" in rows["dave"]["error"]
    # exit code 4: not every submission could be graded
    assert result.returncode == 4, result.stdout + result.stderr
    assert "graded 3 of 4" in result.stdout


def test_a_json_report_per_student_with_the_messages(graded):
    _, _, out = graded
    reports = sorted(p.name for p in (out / "grades_reports").iterdir())
    assert reports == ["alice.json", "bob.json", "carol.json", "dave.json"]
    carol = json.loads((out / "grades_reports" / "carol.json").read_text(encoding="utf-8"))
    dw = next(p for p in carol["parts"] if p["id"] == "dense_dw")
    assert "transposed" in dw["message"]
    sce = next(p for p in carol["parts"] if p["id"] == "softmax_ce_backward")
    assert "factor of N" in sce["message"]


def test_all_graded_exits_zero_and_the_cli_subcommand(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "erin.py").write_text('ASSIGNMENT = "hw1_dense_softmax"\nx = 1\n',
                                    encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from tinynet.cli import main; sys.exit(main())",
         "grade", str(folder), "--gradebook", str(tmp_path / "g.csv"), "--json"],
        capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["student"] == "erin" and row["total"] == 0 and row["status"] == "graded"
    assert (tmp_path / "g.csv").read_text().splitlines()[1].startswith("erin,hw1_dense_softmax")


def test_folder_misuse_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "tinynet.grade", str(tmp_path),
                             "--gradebook", str(tmp_path / "g.csv")],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("tinynet.grade: error:") and \
        "holds no notebooks" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(Exception):
        grade_folder(tmp_path / "missing", tmp_path / "g.csv")


def test_a_student_cannot_touch_other_submissions_or_the_gradebook(tmp_path):
    from tinynet.grade.sandbox import containment
    if containment() not in ("bwrap", "unshare", "nobody"):
        pytest.skip(f"needs the student process to run as another user or in namespaces; "
                    f"this machine gives {containment()!r}")
    folder, out = tmp_path / "class", tmp_path / "grades"
    folder.mkdir()
    out.mkdir()
    bob = folder / "bob.ipynb"
    bob.write_bytes((HOMEWORK / HW1).read_bytes())
    gradebook = out / "grades.csv"
    gradebook.write_text("student,total\nmallory,10\n", encoding="utf-8")   # last term's
    nb = released_notebook(HW1)
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [],
                        "execution_count": None, "source": f'''
import os
for path in ({str(bob)!r}, {str(gradebook)!r}):
    for attempt in (lambda: open(path, "w").write("student,total\\nmallory,10\\n"),
                    lambda: os.remove(path), lambda: os.rename(path, path + ".old")):
        try:
            attempt()
        except OSError:
            pass
'''})
    (folder / "mallory.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    bob_before = bob.read_bytes()
    results = grade_folder(folder, gradebook, jobs=2, timeout=30,
                           assignment="hw1_dense_softmax")
    assert bob.read_bytes() == bob_before
    with open(gradebook, newline="", encoding="utf-8") as f:
        rows = {r["student"]: r["total"] for r in csv.DictReader(f)}
    assert rows == {"bob": "10", "mallory": "0"}, rows
    assert {r["student"]: r["status"] for r in results} == {"bob": "graded",
                                                            "mallory": "graded"}
