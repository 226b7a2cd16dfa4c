"""Malformed notebooks: each gives one clear report line, never a traceback."""
import json

import pytest

from grade_helpers import HOMEWORK, code_cell
from tinynet.grade import format_report, grade
from tinynet.grade import submission

HW1 = "hw1_dense_softmax.ipynb"


def _solution():
    return json.loads((HOMEWORK / HW1).read_text(encoding="utf-8"))


def _with(cells, path):
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


MALFORMED = [
    ("cells that are not dicts", lambda: [1, "print(1)"], "cell 1 is a int"),
    ("source of the wrong type", lambda: [{"cell_type": "code", "metadata": {},
                                           "source": 42}], "its source is a int"),
    ("source list of numbers", lambda: [{"cell_type": "code", "metadata": {},
                                         "source": [1, 2]}], "its source is a list"),
    ("metadata of the wrong type", lambda: [{"cell_type": "code", "metadata": ["tests"],
                                             "source": "x = 1"}], "its metadata is a list"),
    ("tags of the wrong type", lambda: [{"cell_type": "code", "metadata": {"tags": 5},
                                         "source": "x = 1"}], "its tags are a int"),
]


@pytest.mark.parametrize("what, cells, phrase", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_cells_are_one_line(tmp_path, what, cells, phrase):
    report = grade(_with(cells(), tmp_path / HW1), timeout=10)
    assert report["total"] == 0
    assert len(report["notes"]) == 1 and phrase in report["notes"][0], report["notes"]
    assert report["notes"][0].startswith("could not read the notebook")
    for p in report["parts"]:
        assert p["reason"] == "missing" and phrase in p["message"]


@pytest.mark.parametrize("text, phrase", [
    ("{ not json", "not valid JSON"),
    ('{"cells": [', "not valid JSON"),
    ("[1, 2, 3]", "no list of cells"),
    ('{"cells": {"a": 1}}', "no list of cells"),
    ("\udcff", None),
])
def test_unreadable_files_are_one_line(tmp_path, text, phrase):
    path = tmp_path / HW1
    if phrase is None:
        path.write_bytes(b"\xff\xfe\x00garbage")
        phrase = "could not read the notebook"
    else:
        path.write_text(text, encoding="utf-8")
    report = grade(path, timeout=10)
    assert report["total"] == 0 and len(report["notes"]) == 1
    assert phrase in report["notes"][0], report["notes"]


def test_a_huge_notebook_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / HW1
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"cells": [], "padding": "')
        f.write("x" * (submission.MAX_NOTEBOOK_BYTES + 1))
        f.write('"}')
    report = grade(path, timeout=10)
    assert report["total"] == 0 and "MB" in report["notes"][0]


def test_null_metadata_is_an_empty_one(tmp_path):
    nb = _solution()
    for cell in nb["cells"]:
        cell["metadata"] = None
    path = tmp_path / HW1
    path.write_text(json.dumps(nb), encoding="utf-8")
    report = grade(path, timeout=30)
    assert report["total"] == 10, format_report(report)


def test_tags_given_as_a_string_still_keep_a_tests_cell_from_running(tmp_path):
    nb = _solution()
    # A "tests" cell that would wreck the graded classes if it ran.
    nb["cells"].append(code_cell("del Dense, SoftmaxCrossEntropy", tags="tests"))
    nb["cells"].append(code_cell("del Dense", tags="demo, other"))
    path = tmp_path / HW1
    path.write_text(json.dumps(nb), encoding="utf-8")
    report = grade(path, timeout=30)
    assert report["total"] == 10, format_report(report)
    assert submission.cell_tags({"metadata": {"tags": "hidden-tests"}}) == ["hidden-tests"]


def test_nbgrader_test_cells_are_not_run_as_student_code():
    cell = {"cell_type": "code", "source": "assert False",
            "metadata": {"nbgrader": {"grade": True, "solution": False, "points": 2}}}
    assert submission.is_test_cell(cell)
    cell["metadata"]["nbgrader"]["solution"] = True
    assert not submission.is_test_cell(cell)


# --------------------------------------------------------------------------
# the static look for delegation (no process needed)
# --------------------------------------------------------------------------
def _scan(source, assignment):
    from tinynet.grade import delegation
    sub = submission.Submission("x.py", "module", [submission.Piece(0, "x", "x.py", source)])
    return delegation.scan(sub, assignment)


def test_static_look_flags_only_the_graded_definitions():
    compare = ("import tinynet.nn.functional as F\n"
               "loss = F.softmax_cross_entropy(z, y)   # comparing, outside the class\n")
    assert _scan(compare, "hw1_dense_softmax") == {}
    inside = ("import tinynet.nn.functional as F\n"
              "class SoftmaxCrossEntropy:\n"
              "    def forward(self, z):\n"
              "        return F.softmax_cross_entropy(z, self.labels).data\n")
    found = _scan(inside, "hw1_dense_softmax")
    assert set(found) == {"softmax_ce_forward", "softmax_ce_backward"}
    assert "F.softmax_cross_entropy" in found["softmax_ce_forward"]
    col = "from tinynet.ops.conv import col2im as c\ndef col2im(*a):\n    return c(*a)\n"
    assert set(_scan(col, "hw2_conv_backward")) == {"col2im"}
    in_conv = ("from tinynet.ops.conv import col2im as c\n"
               "class Conv2D:\n    def backward(self, g):\n        return c(g)\n")
    assert _scan(in_conv, "hw2_conv_backward") == {}           # col2im is given there
    grader = "import tinynet.grade.hw3 as h\n"
    assert set(_scan(grader, "hw3_freeze_detector")) == {
        "find_zero_input_rows", "frozen_rows_after_training", "effective_width"}
    sup = ("class Dense:\n    def backward(self, g):\n        return super().backward(g)\n")
    assert _scan(sup, "hw1_dense_softmax") == {}
