"""Grading a whole class: every notebook / module in a folder, in parallel, one gradebook.

    python -m tinynet.grade FOLDER --gradebook grades.csv [-j N] [--timeout S]

Student id = file stem ("alice.ipynb" -> alice).  Each submission is graded
by :func:`tinynet.grade.runner.grade` in its own sandboxed process; the
gradebook CSV (student, assignment, one column per part, total, max, status,
error) and a JSON report per student (with every message) are written
atomically -- a crash never leaves half a gradebook.  A submission that cannot
be graded (unreadable notebook, unknown assignment) is a row whose status is
"error", never a crash.
"""
import csv
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinynet.files import atomic_write
from tinynet.grade import assignments
from tinynet.grade.runner import DEFAULT_DEADLINE, DEFAULT_TIMEOUT, grade

GRADED = "graded"
ERROR = "error"


def submissions(folder, exclude=()):
    """The .ipynb and .py files directly in ``folder`` (sorted; hidden files skipped)."""
    skip = {Path(e).resolve() for e in exclude}
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix in (".ipynb", ".py") and p.is_file()
                  and not p.name.startswith(".") and p.resolve() not in skip)


def _student_ids(paths):
    """File stems, made unique ("alice" and "alice.py" -> alice, alice.py)."""
    stems = [p.stem for p in paths]
    return [p.stem if stems.count(p.stem) == 1 else p.name for p in paths]


def _grade_one(path, student, assignment, timeout, deadline, sandbox, hide):
    try:
        report = grade(path, assignment=assignment, timeout=timeout, deadline=deadline,
                       sandbox=sandbox, hide=hide)
    except assignments.GraderUsageError as exc:
        return {"student": student, "submission": str(path), "status": ERROR,
                "error": str(exc), "parts": [], "total": 0, "max_total": None}
    except Exception as exc:                  # noqa: BLE001 -- one bad file, not the class
        return {"student": student, "submission": str(path), "status": ERROR,
                "error": f"internal grader error: {type(exc).__name__}: {exc}",
                "parts": [], "total": 0, "max_total": None}
    report["student"] = student
    unreadable = any(n.startswith("could not read") for n in report["notes"])
    internal = any(p["reason"] == "internal" for p in report["parts"])
    report["status"] = ERROR if unreadable or internal else GRADED
    report["error"] = (report["notes"][0] if unreadable else
                       "internal grader error" if internal else "")
    return report


def grade_folder(folder, gradebook, jobs=None, timeout=DEFAULT_TIMEOUT, deadline=None,
                 assignment=None, reports=None, sandbox=None, log=None):
    """Grade every submission in ``folder``; write ``gradebook`` (CSV) and the reports.

    jobs    -- submissions graded at once (default: the number of CPUs)
    reports -- folder for the per-student JSON reports (default: next to the
               gradebook, "<gradebook stem>_reports")
    Returns the list of per-student reports (each has "student" and "status").
    """
    folder, gradebook = Path(folder), Path(gradebook)
    if not folder.is_dir():
        raise assignments.GraderUsageError(f"no such folder: {folder}")
    reports = Path(reports) if reports else gradebook.with_name(gradebook.stem + "_reports")
    paths = submissions(folder, exclude=[gradebook])
    if not paths:
        raise assignments.GraderUsageError(f"{folder} holds no notebooks (.ipynb) or "
                                           f"modules (.py) to grade")
    ids = _student_ids(paths)
    jobs = max(1, int(jobs or os.cpu_count() or 1))
    # the student processes must not see where the grades go either
    hide = sorted({str(gradebook.resolve().parent), str(reports.resolve().parent)})
    deadline = DEFAULT_DEADLINE if deadline is None else deadline
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_grade_one, p, s, assignment, timeout, deadline, sandbox, hide)
                   for p, s in zip(paths, ids)]
        results = []
        for f in futures:
            r = f.result()
            results.append(r)
            if log:
                log(f"{r['student']}: " + (f"{r['total']}/{r['max_total']}"
                                           if r["status"] == GRADED else
                                           f"not graded ({r['error'].splitlines()[0]})"))
    for r in results:
        with atomic_write(reports / f"{r['student']}.json", "w", encoding="utf-8") as f:
            json.dump(r, f, indent=2)
    with atomic_write(gradebook, "w", encoding="utf-8", newline="") as f:
        f.write(gradebook_csv(results))
    return results


def gradebook_csv(results):
    """The CSV text: student, assignment, one column per part, total, max, status, error."""
    part_ids = []
    for a in assignments.ASSIGNMENTS.values():
        if any(r.get("assignment") == a.id for r in results):
            part_ids += [p.id for p in a.parts if p.id not in part_ids]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["student", "assignment", *part_ids, "total", "max_total", "status", "error"])
    for r in results:
        points = {p["id"]: p["points"] for p in r.get("parts", [])}
        w.writerow([r["student"], r.get("assignment", ""),
                    *[points.get(pid, "") for pid in part_ids],
                    r.get("total", 0), r.get("max_total") or "", r["status"],
                    (r.get("error") or "").splitlines()[0][:300] if r.get("error") else ""])
    return out.getvalue()
