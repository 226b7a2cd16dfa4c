"""Grading a submission: the trusted side.

The student's code runs in a sandboxed process (tinynet.grade.sandbox) that
never sees the checks, the expected values or the points.  This process --
the trusted grader -- reads the submission, sends its cells one by one to be
run, then runs each part's check HERE: the check asks the student process to
call a student function on inputs it chose (:class:`RemoteStudent`), gets
plain data back (tinynet.grade.wire), computes the right answer itself,
compares, and counts the points, capped at the part's maximum.

Time: each cell and each request has ``timeout`` seconds; the whole
submission has ``deadline`` seconds, which nothing the student does can
extend.  A cell that runs past its limit is skipped on a fresh process; a
request that does costs its part; a process that dies or sends garbage costs
the part being checked.  The grader itself never hangs or crashes on a
submission, and when grading ends the student process is killed with every
process it started.
"""
import queue
import threading
import time
from pathlib import Path

from tinynet.grade import assignments, delegation, submission, wire
from tinynet.grade.core import CRASH, DELEGATED, INTERNAL, OK, TIMEOUT, Context, Fail
from tinynet.grade.sandbox import StudentProcess

DEFAULT_TIMEOUT = 30.0
DEFAULT_DEADLINE = 600.0      # seconds for a whole submission
STARTUP_GRACE = 30.0          # importing numpy and tinynet in the student process
MAX_MESSAGE = 4000            # characters of a part's message kept in the report


class StudentTimeout(Exception):
    pass


class StudentGone(Exception):
    """The student process died or broke the channel."""


class LocalStudent:
    """The student's namespace in this very process (tinynet.grade.check in a notebook).

    No isolation -- the notebook IS the student's code -- but the same
    requests and the same plain-data round trip as the sandboxed process.
    """

    def __init__(self, namespace, kind="notebook"):
        from tinynet.grade.student import Session
        self.session = Session(kind=kind, namespace=namespace)

    def request(self, op, **args):
        request = wire.loads(wire.dumps(dict(args, op=op)))
        try:
            text = wire.dumps(self.session.handle(request))
        except wire.WireError as exc:
            return {"error": str(exc)}
        return wire.loads(text)


class RemoteStudent:
    """The sandboxed student process, spoken to one request at a time."""

    def __init__(self, sub, timeout, deadline_at, sandbox=None, hide=()):
        self.timeout = timeout
        self.deadline_at = deadline_at
        cpu = max(1, int(deadline_at - time.monotonic()) + 5)
        self.proc = StudentProcess(sub.path, cpu=cpu, sandbox=sandbox, hide=hide)
        self.lines = queue.Queue(maxsize=8)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.next_id = 1
        path = self.proc.copy if sub.kind == "module" else None
        self.module_file = path
        self._send({"kind": sub.kind, "path": path})
        reply = self._receive(0, STARTUP_GRACE + timeout)
        if not reply.get("ready"):
            raise StudentGone("the student process did not start")

    def _read(self):
        """Lines from the student process, each capped at wire.MAX_LINE bytes.

        Kept as a list of chunks (no quadratic re-copying); a line over the cap
        is dropped as it streams in, so the grader's memory stays bounded.
        """
        out = self.proc.proc.stdout
        parts, size, skipping = [], 0, False
        try:
            while True:
                chunk = out.read1(1 << 16) if hasattr(out, "read1") else out.read(1 << 16)
                if not chunk:
                    break
                while chunk:
                    k = chunk.find(b"\n")
                    piece = chunk if k < 0 else chunk[:k]
                    chunk = b"" if k < 0 else chunk[k + 1:]
                    if not skipping:
                        parts.append(piece)
                        size += len(piece)
                        if size > wire.MAX_LINE:
                            parts, size, skipping = [], 0, True
                            self.lines.put(("oversized", None))
                    if k >= 0:
                        if not skipping:
                            self.lines.put(("line", b"".join(parts)))
                        parts, size, skipping = [], 0, False
        except (OSError, ValueError):
            pass
        self.lines.put(("eof", None))

    def _send(self, obj):
        try:
            self.proc.proc.stdin.write(wire.dumps(obj).encode("utf-8") + b"\n")
            self.proc.proc.stdin.flush()
        except (OSError, ValueError):
            raise StudentGone("the student process closed its input") from None

    def _receive(self, want_id, limit):
        end = min(time.monotonic() + limit, self.deadline_at)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise StudentTimeout()
            try:
                kind, line = self.lines.get(timeout=left)
            except queue.Empty:
                raise StudentTimeout() from None
            if kind == "eof":
                raise StudentGone(f"the student process exited (code {self.proc.proc.poll()})")
            if kind == "oversized":
                raise StudentGone(f"the student process sent a message over "
                                  f"{wire.MAX_LINE} bytes")
            try:
                reply = wire.loads(line)
            except wire.WireError as exc:
                raise StudentGone(f"the student process sent a malformed message ({exc})") \
                    from None
            if not isinstance(reply, dict):
                raise StudentGone("the student process sent a malformed message")
            if reply.get("id") == want_id:
                return reply
            # a stale or forged line: ignore it

    def request(self, op, **args):
        rid = self.next_id
        self.next_id += 1
        self._send(dict(args, op=op, id=rid))
        return self._receive(rid, self.timeout)

    def close(self):
        self.proc.kill()
        # Unblock the reader (its queue may be full) so that the thread ends.
        for _ in range(100):
            try:
                while True:
                    self.lines.get_nowait()
            except queue.Empty:
                pass
            self.reader.join(timeout=0.05)
            if not self.reader.is_alive():
                break


def grade(path, assignment=None, timeout=DEFAULT_TIMEOUT, deadline=None, sandbox=None,
          hide=()):
    """Grade the notebook or module at ``path``; return the report as a dict.

    assignment -- an assignment id, or None to read it from the notebook's
                  metadata or the file name
    timeout    -- seconds allowed for each cell (or top-level statement) and
                  for each request while a part is checked
    deadline   -- seconds for the whole submission (default: DEFAULT_DEADLINE)
    sandbox    -- force a weaker containment ('unshare', 'nobody', 'process');
                  default: the strongest this machine has
    hide       -- more folders the student process must not see (where it can)

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
    deadline = DEFAULT_DEADLINE if deadline is None else float(deadline)
    report = {"assignment": chosen.id, "title": chosen.title, "submission": str(path),
              "timeout": timeout, "deadline": deadline, "notes": [], "parts": []}
    results = {}
    piece_errors = {}
    if sub.problem:
        piece_errors[-1] = sub.problem
        for p in chosen.parts:
            results[p.id] = {"status": "fail", "reason": "missing", "points": 0,
                             "message": f"nothing could be graded: {sub.problem}"}
    else:
        _Grading(sub, chosen, timeout, deadline, sandbox, results, piece_errors, hide).run()
    report["notes"] = [str(piece_errors[k])[:MAX_MESSAGE] for k in sorted(piece_errors)]
    for p in chosen.parts:
        r = results[p.id]
        points = r["points"] if r["status"] == "pass" else 0
        report["parts"].append({"id": p.id, "title": p.title, "status": r["status"],
                                "reason": r["reason"],
                                "points": max(0, min(int(points), p.points)),
                                "max_points": p.points,
                                "message": _cap(str(r["message"]))})
    report["total"] = sum(r["points"] for r in report["parts"])
    report["max_total"] = chosen.points
    report["sandbox"] = _sandbox_name(sandbox)
    return report


def _sandbox_name(sandbox):
    from tinynet.grade.sandbox import containment
    return containment(sandbox)


def _cap(text):
    lines = [ln[:1000] for ln in text.splitlines()[:40]]
    return "\n".join(lines)[:MAX_MESSAGE]


class _Grading:
    """Runs the cells, then each part's check; restarts the student process as needed."""

    def __init__(self, sub, chosen, timeout, deadline, sandbox, results, piece_errors, hide):
        self.hide = hide
        self.sub, self.chosen, self.timeout = sub, chosen, timeout
        self.deadline_at = time.monotonic() + deadline
        self.deadline = deadline
        self.sandbox = sandbox
        self.results, self.piece_errors = results, piece_errors
        self.skip = set()
        self.student = None
        self.static = delegation.scan(sub, chosen.id)

    def run(self):
        try:
            for p in self.chosen.parts:
                self.results[p.id] = self._part(p)
        finally:
            self._stop()

    def _stop(self):
        if self.student is not None:
            self.student.close()
            self.student = None

    def _out_of_time(self):
        return time.monotonic() >= self.deadline_at

    def _deadline_result(self):
        return {"status": "fail", "reason": TIMEOUT, "points": 0,
                "message": f"not checked: grading this submission took longer than its "
                           f"overall limit of {self.deadline:g} s."}

    def _ensure_student(self):
        """A live student process that has run every cell not known to hang or kill it."""
        while self.student is None:
            if self._out_of_time():
                return None
            try:
                st = RemoteStudent(self.sub, self.timeout, self.deadline_at, self.sandbox,
                                   self.hide)
            except (StudentTimeout, StudentGone) as exc:
                self.piece_errors.setdefault(-2, f"the process running your code could not "
                                                 f"start: {exc}")
                return None
            ok = True
            for piece in self.sub.pieces:
                if piece.index in self.skip:
                    continue
                filename = st.module_file if self.sub.kind == "module" else piece.filename
                try:
                    reply = st.request("run", label=piece.label, filename=filename,
                                       source=piece.source)
                except (StudentTimeout, StudentGone) as exc:
                    st.close()
                    self.skip.add(piece.index)
                    if isinstance(exc, StudentTimeout) and not self._out_of_time():
                        self.piece_errors[piece.index] = (
                            f"{piece.label} was stopped after {self.timeout:g} s (the time "
                            f"limit): an infinite loop, or far slower than it needs to be? "
                            f"The grader skipped it.")
                    elif isinstance(exc, StudentTimeout):
                        self.piece_errors[piece.index] = (
                            f"{piece.label} was stopped: the submission's overall time "
                            f"limit ({self.deadline:g} s) ran out")
                    else:
                        self.piece_errors[piece.index] = (
                            f"{piece.label} crashed the Python process running it ({exc}); "
                            f"the grader skipped it")
                    ok = False
                    break
                error = reply.get("error") if isinstance(reply, dict) else "malformed reply"
                if error:
                    self.piece_errors.setdefault(piece.index, str(error)[:1000])
            if ok:
                self.student = st
        return self.student

    def _part(self, part):
        if part.id in self.static:
            return {"status": "fail", "reason": DELEGATED, "points": 0,
                    "message": self.static[part.id]}
        st = self._ensure_student()
        if st is None:
            if self._out_of_time():
                return self._deadline_result()
            return {"status": "fail", "reason": INTERNAL, "points": 0,
                    "message": "internal grader error (not your fault): the process running "
                               "your code could not start: "
                               + str(self.piece_errors.get(-2, ""))}
        ctx = Context(prior=dict(self.results), kind=self.sub.kind,
                      cell_errors=[self.piece_errors[k] for k in sorted(self.piece_errors)
                                   if k >= 0],
                      sources=[p.source for p in self.sub.pieces])
        try:
            message = part.check(st, ctx)
            return {"status": "pass", "reason": OK, "points": part.points,
                    "message": str(message)}
        except Fail as f:
            return {"status": "fail", "reason": f.reason, "points": 0, "message": str(f)}
        except StudentTimeout:
            self._stop()
            if self._out_of_time():
                return self._deadline_result()
            return {"status": "fail", "reason": TIMEOUT, "points": 0,
                    "message": f"time limit: checking this part took longer than "
                               f"{self.timeout:g} s and was stopped. Look for an infinite "
                               f"loop (a `while` whose condition never becomes false) or a "
                               f"loop over every element where one array operation would do."}
        except StudentGone as exc:
            self._stop()
            return {"status": "fail", "reason": CRASH, "points": 0,
                    "message": f"your code crashed or broke the Python process running it "
                               f"while this part was being checked ({exc}; e.g. os._exit, "
                               f"or running out of memory)."}
        except Exception as exc:              # noqa: BLE001 -- a bug in the checks
            import traceback
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            return {"status": "fail", "reason": INTERNAL, "points": 0,
                    "message": "internal grader error (not your fault; please report it):\n"
                               + "".join(tb[-3:]).rstrip()}


# --------------------------------------------------------------------------
# the report as text
# --------------------------------------------------------------------------
def format_report(report):
    lines = [f"tinynet.grade  {report['assignment']} -- {report['title']}",
             f"submission: {report['submission']}   (time limit {report['timeout']:g} s per "
             f"cell and per check, {report.get('deadline', DEFAULT_DEADLINE):g} s in all; "
             f"sandbox: {report.get('sandbox', '?')})"]
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
