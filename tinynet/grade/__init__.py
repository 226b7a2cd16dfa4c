"""An offline autograder for tinynet's homework (lessons/homework/*.ipynb).

    python -m tinynet.grade SUBMISSION [--json] [--timeout S] [--deadline S] [--assignment ID]
    python -m tinynet.grade FOLDER --gradebook grades.csv [-j N] [--reports DIR]
    python -m tinynet.grade --list                  (also: tinynet grade ...)

SUBMISSION is a notebook (.ipynb) or a Python module (.py).  The student's
code runs in a sandboxed process (tinynet.grade.sandbox) -- cell by cell (a
module: statement by statement), so one broken cell does not hide the rest.
The checks run in THIS process (trusted): they ask the student process to
call the student's functions on inputs they choose, receive plain data only
(tinynet.grade.wire), compute the right answers themselves and count the
points (runner.py).  Per part the report gives PASS/FAIL, the points, and a
message a student can act on: which gradient is wrong, at which element and
by how much (worded as ``tn.gradcheck`` would), and when it can tell, the
kind of mistake -- wrong shape, transposed, sign flipped, off by a factor of
N (a missing 1/N), overlapping windows not accumulated, delegating to
tinynet's own implementation.  The last line is ``Total: earned/possible``.

Nothing a submission does crashes the grader or raises its score:
exceptions, syntax errors, ``raise NotImplementedError``, wrong return types,
``exit()``, infinite loops (each cell and each check has --timeout, default
30 s; each submission --deadline, default 600 s), forged messages, patched
builtins -- each costs at most the parts it touches.  Exit code 0 whenever a
report was printed; 2 for misuse; 3 when the grader itself failed; in folder
mode 4 when some submission could not be graded.

Which assignment a file is: --assignment, else the notebook's
``metadata.tinynet.assignment`` (the released notebooks carry it), else a
module's ``ASSIGNMENT = "..."`` line, else the file name's start
("hw1_....ipynb", "hw2-alice.py").

Assignments and points
----------------------
hw1_dense_softmax     Dense and softmax cross-entropy backward          10
    dense_dx 2, dense_dw 2, dense_db 1, softmax_ce_forward 2, softmax_ce_backward 3
hw2_conv_backward     Conv2D backward with im2col / col2im              10
    col2im 3, conv_dw 2, conv_db 1, conv_dx 4
hw3_freeze_detector   A detector for frozen weights                     10
    find_zero_input_rows 4, frozen_rows_after_training 3, effective_width 3

The checks live in ``tinynet/grade/hw1.py`` ... ``hw3.py``; the solution
notebooks' hidden-test cells (and nbgrader's autograde) call :func:`check`,
which runs the same checks against the notebook's own namespace -- no
isolation, for feedback; grades come from ``python -m tinynet.grade``.
"""


def check(namespace, assignment, part=None):
    """Run an assignment's checks in this process on ``namespace`` (e.g. ``globals()``).

    For notebooks (the hidden-test cells call it) and nbgrader: prints one
    line per part and raises AssertionError with the messages of the parts
    that fail.  No time limit and no isolation -- the notebook IS the
    student's code; use ``python -m tinynet.grade`` for that.  The checks
    talk to the namespace through the same plain-data requests as to the
    sandboxed process.  Returns the number of points earned.
    """
    from tinynet.grade import assignments
    from tinynet.grade.core import Context, Fail, OK
    from tinynet.grade.runner import LocalStudent
    a = assignments.get(assignment)
    parts = a.parts if part is None else [a.part(part)]
    st = LocalStudent(namespace)
    ctx = Context()
    failures, earned = [], 0
    for p in parts:
        try:
            result = {"status": "pass", "reason": OK, "points": p.points,
                      "message": p.check(st, ctx)}
        except Fail as f:
            result = {"status": "fail", "reason": f.reason, "points": 0, "message": str(f)}
        ctx.prior[p.id] = result
        earned += result["points"]
        status = "PASS" if result["status"] == "pass" else "FAIL"
        print(f"{status}  {p.id}  {result['points']}/{p.points}  "
              f"{result['message'].splitlines()[0]}")
        if result["status"] != "pass":
            failures.append(f"{p.id}: {result['message']}")
    if failures:
        raise AssertionError("\n\n".join(failures))
    return earned


_LAZY = {"grade": "runner", "format_report": "runner", "DEFAULT_TIMEOUT": "runner",
         "DEFAULT_DEADLINE": "runner", "ASSIGNMENTS": "assignments",
         "GraderUsageError": "assignments", "Fail": "core", "Context": "core",
         "grade_folder": "classroom"}


def __getattr__(name):
    # Lazy, so that the sandboxed student process can import tinynet.grade.student
    # without loading (or, under bubblewrap, even seeing) the checks.
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"tinynet.grade.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tinynet.grade' has no attribute {name!r}")


__all__ = ["grade", "grade_folder", "check", "format_report", "ASSIGNMENTS",
           "GraderUsageError", "DEFAULT_TIMEOUT", "DEFAULT_DEADLINE", "Fail"]
