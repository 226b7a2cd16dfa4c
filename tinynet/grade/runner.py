"""Grading a submission from outside: start the worker, enforce time limits, collect results.

One worker subprocess normally runs everything (the submission once, then
every part).  The time limit applies to each piece of the submission and to
each part separately.  When one runs past it, or the worker dies, the worker
is killed and a fresh one started that skips the piece that hung (or goes
on with the parts not graded yet) -- so an infinite loop costs one part, not
the whole grade, and the grader itself never hangs or crashes.
"""
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tinynet.grade import assignments, submission
from tinynet.grade.core import CRASH, INTERNAL, TIMEOUT

DEFAULT_TIMEOUT = 30.0
STARTUP_GRACE = 30.0          # importing numpy and tinynet in the worker


def _package_root():
    return str(Path(__file__).resolve().parents[2])


def _kill(proc):
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _reader(stream, marker, q):
    for raw in stream:
        line = raw.decode("utf-8", errors="replace")
        k = line.find(marker)
        if k >= 0:
            try:
                q.put(json.loads(line[k + len(marker):]))
            except ValueError:
                pass
    q.put(None)


class _Worker:
    def __init__(self, job, workdir, cwd):
        self.marker = job["nonce"]
        job_path = Path(workdir) / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        self.err_path = Path(workdir) / "stderr.txt"
        env = dict(os.environ)
        env["MPLBACKEND"] = "Agg"
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_package_root(), env.get("PYTHONPATH")) if p)
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tinynet.grade.worker", str(job_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, cwd=cwd,
                env=env, start_new_session=(os.name == "posix"))
        self.events = queue.Queue()
        self.thread = threading.Thread(target=_reader, args=(self.proc.stdout, self.marker,
                                                             self.events), daemon=True)
        self.thread.start()

    def stderr_tail(self, n=1500):
        try:
            return self.err_path.read_text(encoding="utf-8", errors="replace")[-n:].strip()
        except OSError:
            return ""

    def stop(self):
        _kill(self.proc)
        self.thread.join(timeout=5)
        self.proc.stdout.close()


def grade(path, assignment=None, timeout=DEFAULT_TIMEOUT):
    """Grade the notebook or module at ``path``; return the report as a dict.

    assignment -- an assignment id, or None to read it from the notebook's
                  metadata or the file name
    timeout    -- seconds allowed for each cell (or top-level statement) and
                  for each part's checks

    Raises GraderUsageError for a missing file or an unknown assignment.
    """
    path = Path(path)
    if not path.is_file():
        raise assignments.GraderUsageError(f"no such file: {path}")
    if path.suffix not in (".ipynb", ".py"):
        raise assignments.GraderUsageError(
            f"{path.name}: the grader takes a notebook (.ipynb) or a Python module (.py)")
    sub = submission.read(path)
    chosen = assignments.resolve(path, assignment, sub.assignment_hint)
    report = {"assignment": chosen.id, "title": chosen.title, "submission": str(path),
              "timeout": timeout, "notes": [], "parts": []}
    results = {}
    piece_errors = {}
    if sub.problem:
        piece_errors[-1] = sub.problem
        for p in chosen.parts:
            results[p.id] = {"status": "fail", "reason": "missing", "points": 0,
                             "message": f"nothing could be graded: {sub.problem}"}
    else:
        _run(sub, chosen, timeout, results, piece_errors)
    report["notes"] = [piece_errors[k] for k in sorted(piece_errors)]
    for p in chosen.parts:
        r = results[p.id]
        report["parts"].append({"id": p.id, "title": p.title, "status": r["status"],
                                "reason": r["reason"], "points": r["points"],
                                "max_points": p.points, "message": r["message"]})
    report["total"] = sum(r["points"] for r in report["parts"])
    report["max_total"] = chosen.points
    return report


def _run(sub, chosen, timeout, results, piece_errors):
    pieces = [{"index": p.index, "label": p.label, "filename": p.filename,
               "source": p.source} for p in sub.pieces]
    labels = {p.index: p.label for p in sub.pieces}
    remaining = [p.id for p in chosen.parts]
    skip = set()
    cwd = str(Path(sub.path).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="tinynet-grade-") as workdir:
        while remaining:
            job = {"nonce": f"@@tinynet-grade-{secrets.token_hex(8)}@@",
                   "assignment": chosen.id, "kind": sub.kind,
                   "path": str(Path(sub.path).resolve()), "pieces": pieces,
                   "skip": sorted(skip), "parts": list(remaining), "prior": dict(results),
                   "piece_errors": [piece_errors[i] for i in sorted(skip)]}
            worker = _Worker(job, workdir, cwd)
            phase, current = "start", None
            deadline = time.monotonic() + timeout + STARTUP_GRACE
            try:
                while True:
                    try:
                        event = worker.events.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        event = "timeout"
                    if event == "timeout" or event is None:
                        _stop_or_crash(event, worker, phase, current, timeout, labels, skip,
                                       piece_errors, results, remaining)
                        break
                    kind = event.get("event")
                    if kind == "piece":
                        phase, current = "piece", event["index"]
                    elif kind == "piece_done":
                        if event.get("error"):
                            piece_errors.setdefault(event["index"], event["error"])
                        phase, current = "between", None
                    elif kind == "part":
                        phase, current = "part", event["id"]
                    elif kind == "result":
                        results[event["id"]] = {k: event[k] for k in
                                                ("status", "reason", "points", "message")}
                        if event["id"] in remaining:
                            remaining.remove(event["id"])
                        phase, current = "between", None
                    elif kind == "done":
                        phase = "done"
                    deadline = time.monotonic() + timeout
            finally:
                worker.stop()


def _stop_or_crash(event, worker, phase, current, timeout, labels, skip, piece_errors,
                   results, remaining):
    """The worker hung (event == "timeout") or exited early (None): record why."""
    timed_out = event == "timeout"
    if timed_out:
        worker.stop()
    rc = worker.proc.wait()
    died = f"crashed the Python process running it (exit code {rc})"
    if phase == "piece":
        skip.add(current)
        piece_errors[current] = (
            f"{labels[current]} was stopped after {timeout:g} s (the time limit): an "
            f"infinite loop, or far slower than it needs to be? The grader skipped it."
            if timed_out else f"{labels[current]} {died}; the grader skipped it")
    elif phase == "part":
        if timed_out:
            message = (f"time limit: checking this part took longer than {timeout:g} s and "
                       f"was stopped. Look for an infinite loop (a `while` whose condition "
                       f"never becomes false) or a loop over every element where one array "
                       f"operation would do.")
            reason = TIMEOUT
        else:
            message = (f"your code {died} while this part was being checked (e.g. "
                       f"os._exit, or running out of memory).")
            reason = CRASH
        results[current] = {"status": "fail", "reason": reason, "points": 0,
                            "message": message}
        remaining.remove(current)
    elif phase == "done":
        remaining.clear()
    else:
        # The worker failed outside student code (it could not even start, or
        # died between steps): a problem with the grader's installation.
        tail = worker.stderr_tail()
        for part_id in list(remaining):
            results[part_id] = {"status": "fail", "reason": INTERNAL, "points": 0,
                                "message": "internal grader error (not your fault): the "
                                           "grading process "
                                           + ("did not respond" if timed_out else
                                              f"exited with code {rc}")
                                           + (f":\n{tail}" if tail else "")}
        remaining.clear()


# --------------------------------------------------------------------------
# the report as text
# --------------------------------------------------------------------------
def format_report(report):
    lines = [f"tinynet.grade  {report['assignment']} -- {report['title']}",
             f"submission: {report['submission']}   (time limit {report['timeout']:g} s per "
             f"cell and per part)"]
    if report["notes"]:
        lines.append("")
        lines.append("While running your code:")
        lines += [f"  - {n}" for n in report["notes"]]
    lines.append("")
    width = max(len(p["id"]) for p in report["parts"])
    for p in report["parts"]:
        head = (f"{'PASS' if p['status'] == 'pass' else 'FAIL'}  {p['id']:<{width}}  "
                f"{p['points']}/{p['max_points']}  ")
        msg_lines = str(p["message"]).splitlines() or [""]
        lines.append(head + msg_lines[0])
        lines += [" " * len(head) + m for m in msg_lines[1:]]
    lines.append("")
    lines.append(f"Total: {report['total']}/{report['max_total']}")
    return "\n".join(lines)
