"""The subprocess that runs a submission: ``python -m tinynet.grade.worker JOB.json``.

It runs the submission's pieces (cells or statements) one by one in one
namespace, catching whatever each raises, then the requested parts' checks,
and reports progress as JSON lines on the stdout it was started with:

    {"event": "piece", "index": i}             about to run piece i
    {"event": "piece_done", "index": i, "error": "..." | null}
    {"event": "part", "id": "dense_dx"}        about to check a part
    {"event": "result", "id": ..., "status": "pass" | "fail", "reason": ...,
     "points": ..., "message": ...}
    {"event": "done"}

Each line starts with the job's nonce, so nothing the student prints can pass
for a result; the student's own output goes nowhere anyway (file descriptors
1 and 2 point at /dev/null, the protocol uses a duplicate of the original
stdout; stderr is silenced only after the worker's own imports, so a broken
installation still shows its traceback to the parent).  The parent
(tinynet.grade.runner) enforces the time limits by killing this process.
"""
import builtins
import io
import json
import linecache
import os
import sys
import traceback


class _Sink(io.TextIOBase):
    """Swallows the student's prints (keeps the last few hundred characters)."""

    def __init__(self):
        self.tail = ""

    def writable(self):
        return True

    def write(self, s):
        self.tail = (self.tail + s)[-500:]
        return len(s)


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def run_piece(piece, ns):
    """Run one cell/statement; return None or a one-line description of what went wrong."""
    from tinynet.grade.core import student_location
    label, filename, source = piece["label"], piece["filename"], piece["source"]
    if filename.startswith("<"):
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as e:
        text = (e.text or "").strip()
        where = f" at line {e.lineno}" if e.lineno else ""
        return (f"{label} has a {type(e).__name__}{where}: {e.msg}"
                + (f" -- `{text}`" if text else "") + " (nothing in it ran)")
    try:
        exec(code, ns)
    except NotImplementedError:
        return f"{label} stopped at NotImplementedError (not implemented yet)"
    except SystemExit as e:
        return f"{label} called exit({e.code!r}); the rest of it did not run"
    except BaseException as e:           # noqa: BLE001 -- report anything
        where = student_location(e)
        msg = _first_line(e)
        return (f"{label} raised {type(e).__name__}" + (f": {msg}" if msg else "")
                + (f" (at {where})" if where else ""))
    return None


def run_part(part, ns, ctx):
    from tinynet.grade.core import (INTERNAL, OK, Fail, describe_exception,
                                    involves_student_code)
    try:
        message = part.check(ns, ctx)
        return {"status": "pass", "reason": OK, "points": part.points, "message": message}
    except Fail as f:
        return {"status": "fail", "reason": f.reason, "points": 0, "message": str(f)}
    except BaseException as exc:         # noqa: BLE001
        if isinstance(exc, (NotImplementedError, SystemExit)) or involves_student_code(exc):
            if isinstance(exc, SystemExit):
                exc = RuntimeError(f"exit({exc.code!r}) was called")
            f = describe_exception(f"your code (while checking {part.id})", exc)
            return {"status": "fail", "reason": f.reason, "points": 0, "message": str(f)}
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return {"status": "fail", "reason": INTERNAL, "points": 0,
                "message": "internal grader error (not your fault; please report it):\n"
                           + "".join(tb[-3:]).rstrip()}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        job = json.load(f)
    marker = job["nonce"]

    # The protocol keeps the real stdout; the student's output goes nowhere.
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sink = _Sink()
    sys.stdout = sink

    def send(**event):
        proto.write(marker + json.dumps(event) + "\n")
        proto.flush()

    from tinynet.grade import assignments, submission
    from tinynet.grade.core import Context

    assignment = assignments.get(job["assignment"])
    # From here on only student code can write to stderr: send it nowhere too, so
    # a loop that prints warnings cannot fill the disk before the time limit.
    os.dup2(devnull, 2)
    sys.stderr = sink
    if job["kind"] == "module":
        submission.STUDENT_FILES.add(job["path"])
    ns = {"__name__": "__main__" if job["kind"] == "notebook" else "submission",
          "__builtins__": builtins, "display": lambda *a, **k: None}
    errors = list(job["piece_errors"])
    skip = set(job["skip"])
    for piece in job["pieces"]:
        if piece["index"] in skip:
            continue
        send(event="piece", index=piece["index"])
        error = run_piece(piece, ns)
        if error:
            errors.append(error)
        send(event="piece_done", index=piece["index"], error=error)
        sys.stdout = sys.stderr = sink          # in case the student replaced them

    ctx = Context(prior=dict(job["prior"]), cell_errors=errors, kind=job["kind"])
    for part_id in job["parts"]:
        part = assignment.part(part_id)
        send(event="part", id=part_id)
        result = run_part(part, ns, ctx)
        sys.stdout = sys.stderr = sink
        ctx.prior[part_id] = result
        send(event="result", id=part_id, **result)
    send(event="done")
    proto.close()
    os._exit(0)        # skip interpreter teardown: student objects may misbehave in __del__


if __name__ == "__main__":
    main()
