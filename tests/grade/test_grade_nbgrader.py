"""nbgrader for real: generate_assignment and autograde on the three homework notebooks,
unchanged, give the points tinynet.grade gives -- part by part."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from grade_helpers import HOMEWORK, ROOT, released_notebook
from tinynet.grade import ASSIGNMENTS, grade

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.lesson          # runs the notebooks in Jupyter kernels


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _half_right_hw1():
    """Transposed dW and a softmax backward without its 1/N: 5 of 10."""
    nb = json.loads((HOMEWORK / "hw1_dense_softmax.ipynb").read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = (_src(cell).replace("dw = self.x.T @ g", "dw = (self.x.T @ g).T")
                          .replace("return (dz * g / n,)", "return (dz * g,)"))
    return nb


def _nbgrader(course, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force",
                             f"--CourseDirectory.root={course}"],
                            capture_output=True, text=True, timeout=600, env=env, cwd=course)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.db_url = 'sqlite:///{course}/gradebook.db'\n"
        f"c.ExecutePreprocessor.timeout = 300\n", encoding="utf-8")
    for a in ASSIGNMENTS.values():
        src = course / "source" / a.id
        src.mkdir(parents=True)
        shutil.copy(HOMEWORK / a.notebook, src / a.notebook)      # unchanged
    _nbgrader(course, "generate_assignment", "*")                 # one run for all three
    submissions = {}
    for a in ASSIGNMENTS.values():
        released = course / "release" / a.id / a.notebook
        assert released.is_file()
        # nbgrader hands out what tinynet.grade.release hands out: no solution, no
        # hidden test, the same stubs
        theirs = "\n".join(_src(c) for c in
                           json.loads(released.read_text(encoding="utf-8"))["cells"])
        ours = "\n".join(_src(c) for c in released_notebook(a.notebook)["cells"])
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "check(globals()"):
            assert marker not in theirs and marker not in ours
        assert theirs.count("raise NotImplementedError()") == \
            ours.count("raise NotImplementedError()") > 0
        subs = {"alice": json.loads((HOMEWORK / a.notebook).read_text(encoding="utf-8")),
                "bob": json.loads(released.read_text(encoding="utf-8"))}
        if a.id == "hw1_dense_softmax":
            subs["carol"] = _half_right_hw1()
        for student, nb in subs.items():
            d = course / "submitted" / student / a.id
            d.mkdir(parents=True)
            (d / a.notebook).write_text(json.dumps(nb), encoding="utf-8")
            submissions[(student, a.id)] = d / a.notebook
    _nbgrader(course, "autograde", "*")
    return course, submissions


def test_nbgrader_gives_the_points_tinynet_grade_gives(course):
    from nbgrader.api import Gradebook
    course_dir, submissions = course
    expected_totals = {"alice": 10, "bob": 0, "carol": 5}
    with Gradebook(f"sqlite:///{course_dir}/gradebook.db") as gb:
        for (student, assignment), path in submissions.items():
            sub = gb.find_submission(assignment, student)
            nbg = {g.name: g.score for g in sub.notebooks[0].grades
                   if g.name.startswith("test_")}
            report = grade(path, timeout=60)
            ours = {f"test_{p['id']}": p["points"] for p in report["parts"]}
            assert nbg == pytest.approx(ours), (student, assignment, nbg, ours)
            assert sub.max_score == report["max_total"] == 10
            assert report["total"] == expected_totals[student], (student, assignment)
