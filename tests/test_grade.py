"""The homework autograder (python -m tinynet.grade).

The solution notebooks score full marks and run top to bottom; the released
(student) versions score zero without crashing the grader; planted wrong
solutions (tests/fixtures/homework/) each get their specific message; an
infinite loop is stopped by the time limit; a syntax error is reported.
"""
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinynet.grade import ASSIGNMENTS, assignments, format_report, grade, submission
from tinynet.grade.gradients import diagnose, shape_problem

ROOT = Path(__file__).resolve().parents[1]
HOMEWORK = ROOT / "lessons" / "homework"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "homework"
SOLUTIONS = sorted(HOMEWORK.glob("hw*.ipynb"))


def _release_module():
    spec = importlib.util.spec_from_file_location("release_homework",
                                                  ROOT / "scripts" / "release_homework.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _part(report, part_id):
    return next(p for p in report["parts"] if p["id"] == part_id)


def _cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "tinynet.grade", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


# --------------------------------------------------------------------------
# the solutions and the released versions
# --------------------------------------------------------------------------
def test_every_assignment_has_a_solution_notebook():
    assert sorted(a.notebook for a in ASSIGNMENTS.values()) == [p.name for p in SOLUTIONS]
    assert len(ASSIGNMENTS) >= 3
    for a in ASSIGNMENTS.values():
        assert a.points == 10


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_scores_full_marks(path):
    report = grade(path, timeout=60)
    assert report["total"] == report["max_total"] == 10, format_report(report)
    assert all(p["status"] == "pass" for p in report["parts"])
    assert report["notes"] == [], report["notes"]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("released")
    _release_module().release(HOMEWORK, out, log=lambda *a: None)
    return out


@pytest.mark.parametrize("name", [p.name for p in SOLUTIONS])
def test_released_version_scores_zero_without_crashing(released, name):
    report = grade(released / name, timeout=60)
    assert report["total"] == 0, format_report(report)
    for p in report["parts"]:
        assert p["reason"] == "not_implemented", format_report(report)
        assert p["message"].startswith("not implemented yet"), p["message"]
    assert "Total: 0/10" in format_report(report).splitlines()[-1]


@pytest.mark.lesson
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_notebook_runs_top_to_bottom(path):
    """Runs every cell, the hidden tests (tinynet.grade.check) included."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ["MPLBACKEND"] = "Agg"
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(HOMEWORK)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --------------------------------------------------------------------------
# planted wrong solutions: each gets its specific message
# --------------------------------------------------------------------------
PLANTED = [
    ("hw1_transposed_dw.py", "dense_dw",
     ["transposed", "dW has shape (3, 4), but W has shape (4, 3)"]),
    ("hw1_missing_1_over_n.py", "softmax_ce_backward",
     ["off by a factor of N = 5", "1/N", "gradcheck: at element (0, 0) of z",
      "the numerical derivative is", "relative error"]),
    ("hw1_sign_error.py", "softmax_ce_backward",
     ["the sign is off", "analytic ≈ −numeric", "gradcheck: at element"]),
    ("hw2_col2im_drops_overlaps.py", "col2im",
     ["at element (0, 0, 0, 1) of x your backward gives", "the numerical derivative is",
      "lies in 2 overlapping windows", "stride only 1", "+="]),
]


@pytest.mark.parametrize("fixture, failing, phrases", PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_mistake_gets_its_specific_message(fixture, failing, phrases):
    result = _cli(FIXTURES / fixture, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for p in report["parts"]:
        if p["id"] == failing:
            assert p["status"] == "fail" and p["points"] == 0
            for phrase in phrases:
                assert phrase in p["message"], p["message"]
        else:                         # the planted bug costs only its own part
            assert p["status"] == "pass", p


def test_hw3_common_mistakes_get_their_messages():
    report = grade(FIXTURES / "hw3_common_mistakes.py", timeout=60)
    assert report["total"] == 0
    assert "a ReLU" in _part(report, "find_zero_input_rows")["message"]
    assert "instead of a copy" in _part(report, "frozen_rows_after_training")["message"]
    assert "You ignored the bias" in _part(report, "effective_width")["message"]


def test_text_report_and_exit_code():
    result = _cli(FIXTURES / "hw1_sign_error.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "Total: 7/10"
    assert any(line.startswith("FAIL  softmax_ce_backward") and "0/3" in line for line in lines)
    assert any(line.startswith("PASS  dense_dx") and "2/2" in line for line in lines)


# --------------------------------------------------------------------------
# broken submissions never crash the grader
# --------------------------------------------------------------------------
def test_infinite_loop_is_stopped_by_the_time_limit():
    start = time.monotonic()
    report = grade(FIXTURES / "hw1_infinite_loop.py", timeout=2)
    assert time.monotonic() - start < 60
    for part_id in ("dense_dx", "dense_dw", "dense_db"):
        p = _part(report, part_id)
        assert p["reason"] == "timeout" and "time limit" in p["message"]
    assert _part(report, "softmax_ce_forward")["status"] == "pass"
    assert _part(report, "softmax_ce_backward")["status"] == "pass"
    assert report["total"] == 5


def _solution_cells(name):
    return json.loads((HOMEWORK / name).read_text(encoding="utf-8"))


def _write_nb(nb, path):
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_a_cell_that_loops_forever_is_skipped(tmp_path):
    nb = _solution_cells("hw1_dense_softmax.ipynb")
    loop = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": "while True:\n    pass"}
    nb["cells"].insert(2, loop)
    report = grade(_write_nb(nb, tmp_path / "hw1_dense_softmax.ipynb"), timeout=2)
    assert report["total"] == 10, format_report(report)
    assert any("was stopped after 2 s" in n and "while True" in n for n in report["notes"])


def test_syntax_error_in_a_module_is_reported():
    report = grade(FIXTURES / "hw2_syntax_error.py", timeout=30)
    assert report["total"] == 0
    assert any("SyntaxError at line 12" in n for n in report["notes"])
    for p in report["parts"]:
        assert "SyntaxError at line 12" in p["message"], p


def test_syntax_error_in_one_cell_costs_only_that_part(tmp_path):
    nb = _solution_cells("hw2_conv_backward.ipynb")
    cell = next(c for c in nb["cells"] if "def col2im" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]).replace("dxpad = np.zeros(", "dxpad = np.zeros((")
    report = grade(_write_nb(nb, tmp_path / "hw2_conv_backward.ipynb"), timeout=30)
    col2im = _part(report, "col2im")
    assert col2im["reason"] == "missing" and "SyntaxError" in col2im["message"]
    assert "def col2im" in col2im["message"]               # the cell is named by its first line
    for part_id in ("conv_dw", "conv_db", "conv_dx"):       # dx: graded with a correct col2im
        assert _part(report, part_id)["status"] == "pass", format_report(report)
    assert report["total"] == 7


HW1_TEMPLATE = '''
import numpy as np
import tinynet as tn


class Dense(tn.Function):
    def forward(self, x, w, b):
        self.x, self.w = x, w
        return x @ w + b

    def backward(self, g):
        {dense_backward}


class SoftmaxCrossEntropy(tn.Function):
    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def forward(self, z):
        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.p = np.exp(log_p)
        {sce_return}

    def backward(self, g):
        dz = self.p.copy()
        dz[np.arange(len(dz)), self.labels] -= 1
        {sce_backward_return}
'''
RIGHT = {"dense_backward": "return g @ self.w.T, self.x.T @ g, g.sum(axis=0)",
         "sce_return": "return np.asarray(-log_p[np.arange(len(z)), self.labels].mean())",
         "sce_backward_return": "return (dz * g / len(dz),)"}
BROKEN = [
    ("dense_backward", "return g @ self.w.T, self.x.T @ g", "dense_dx",
     ["returned 2 gradients for 3 inputs", "(dx, dW, db)"]),
    ("dense_backward", "return tn.tensor(g @ self.w.T), self.x.T @ g, g.sum(axis=0)",
     "dense_dx", ["is a tinynet Tensor"]),
    ("dense_backward", "return g @ self.w.T, self.x @ g, g.sum(axis=0)", "dense_dw",
     ["Dense.backward raised ValueError", "hw1_variant.py, line 12 (in backward)",
      "self.x @ g"]),
    ("dense_backward", "return g @ self.w.T, self.x.T @ g, g", "dense_db",
     ["extra leading axis", "Sum over the batch axis"]),
    ("sce_return", "return float(-log_p[np.arange(len(z)), self.labels].mean())",
     "softmax_ce_forward", ["should be a numpy array, got a float", "np.asarray"]),
    ("sce_return", "return np.asarray(-log_p[np.arange(len(z)), self.labels].sum())",
     "softmax_ce_forward", ["N = 5 times too large", "mean"]),
    ("sce_backward_return", "return dz * g / len(dz)", "softmax_ce_backward",
     ["return (dz,)", "the comma"]),
    ("sce_backward_return", "return (dz / len(dz),)", "softmax_ce_backward",
     ["ignores the upstream gradient g"]),
]


@pytest.mark.parametrize("slot, code, failing, phrases", BROKEN,
                         ids=[f"{b[2]}-{i}" for i, b in enumerate(BROKEN)])
def test_wrong_return_types_and_exceptions_are_reported(tmp_path, slot, code, failing,
                                                        phrases):
    source = HW1_TEMPLATE.format(**dict(RIGHT, **{slot: code}))
    path = tmp_path / "hw1_variant.py"
    path.write_text(source, encoding="utf-8")
    report = grade(path, timeout=60)
    p = _part(report, failing)
    assert p["status"] == "fail" and p["reason"] != "internal", format_report(report)
    for phrase in phrases:
        assert phrase in p["message"], p["message"]


def test_exit_and_unreadable_notebook_do_not_crash_the_grader(tmp_path):
    bad = tmp_path / "hw1_broken.ipynb"
    bad.write_text("{ not json", encoding="utf-8")
    report = grade(bad, timeout=30)
    assert report["total"] == 0
    assert all("could not read the notebook" in p["message"] for p in report["parts"])

    path = tmp_path / "hw1_exits.py"
    path.write_text("import sys\nsys.exit(3)\nx = 1\n", encoding="utf-8")
    report = grade(path, timeout=30)
    assert report["total"] == 0
    assert any("called exit(3)" in n for n in report["notes"])
    assert all(p["reason"] == "missing" for p in report["parts"])


# --------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------
def test_cli_misuse_exits_nonzero(tmp_path):
    result = _cli(tmp_path / "no_such_notebook.ipynb")
    assert result.returncode == 2 and "no such file" in result.stderr
    odd = tmp_path / "essay.py"
    odd.write_text("x = 1\n", encoding="utf-8")
    result = _cli(odd)
    assert result.returncode == 2 and "--assignment" in result.stderr
    result = _cli("--list")
    assert result.returncode == 0
    for a in ASSIGNMENTS.values():
        assert a.id in result.stdout
        for p in a.parts:
            assert p.id in result.stdout


def test_which_assignment_a_file_is(tmp_path):
    nb = tmp_path / "my_work.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {"tinynet": {"assignment":
                                                                    "hw2_conv_backward"}}}))
    sub = submission.read(nb)
    assert assignments.resolve(nb, hint=sub.assignment_hint).id == "hw2_conv_backward"
    assert assignments.resolve(tmp_path / "hw3-alice.py").id == "hw3_freeze_detector"
    assert assignments.resolve(tmp_path / "x.py", explicit="hw1_dense_softmax").id \
        == "hw1_dense_softmax"
    mod = tmp_path / "mine.py"
    mod.write_text('ASSIGNMENT = "hw1_dense_softmax"\n')
    assert assignments.resolve(mod, hint=submission.read(mod).assignment_hint).id \
        == "hw1_dense_softmax"
    with pytest.raises(assignments.GraderUsageError):
        assignments.resolve(tmp_path / "essay.py")


def test_module_is_split_into_statements_and_magics_are_skipped(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text("import numpy as np; a = 1\n\n@staticmethod\ndef f():\n    return 2\n")
    pieces = submission.read(mod).pieces
    assert [p.label for p in pieces] == ["line 1 of m.py", "lines 3-5 of m.py"]
    assert pieces[1].source.startswith("\n\n@staticmethod")       # line numbers kept
    assert submission.strip_magics("%matplotlib inline\n  !ls\nx = 1") == \
        "pass  # IPython magic skipped by the grader\n  pass  # IPython magic skipped by " \
        "the grader\nx = 1"


# --------------------------------------------------------------------------
# the diagnosis of a wrong gradient, directly
# --------------------------------------------------------------------------
def test_diagnose_names_the_kind_of_mistake():
    rng = np.random.default_rng(0)
    right = rng.standard_normal((4, 4))
    assert "transposed" in diagnose("W", right.T, right)
    assert "sign is off" in diagnose("W", -right, right)
    assert "factor of N = 8" in diagnose("W", 8 * right, right, batch=8)
    assert "1/N = 1/8" in diagnose("W", right / 8, right, batch=8)
    assert "constant factor" in diagnose("W", 2.5 * right, right, batch=8)
    assert "all zeros" in diagnose("W", np.zeros_like(right), right)
    assert "NaN" in diagnose("W", np.full_like(right, np.nan), right)
    wrong = right.copy()
    wrong[2, 1] += 1
    msg = diagnose("W", wrong, right)
    assert "1 of 16 elements" in msg and "(2, 1)" in msg


def test_shape_problem_wording():
    assert "transposed" in shape_problem("W", (3, 4), (4, 3))
    assert "extra leading axis" in shape_problem("b", (5, 3), (3,))
    assert "padding" in shape_problem("x", (2, 3, 7, 7), (2, 3, 5, 5))
    assert "reshape" in shape_problem("W", (4, 27), (4, 3, 3, 3))
