"""Entry point of the sandboxed student process (started by tinynet.grade.sandbox).

The grader's requests arrive on the original stdin and replies leave on the
original stdout, both moved to private descriptors; fds 0, 1 and 2 are then
/dev/null, so whatever the student prints goes nowhere (and cannot be taken
for a reply).  The first request says what kind of submission this is.
"""
import os
import sys


def main():
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    reader = _LineReader(proto_in)

    from tinynet.grade import student, wire
    import tinynet  # noqa: F401 -- loaded before any student code runs

    first = wire.loads(reader())
    session = student.Session(kind=first.get("kind", "notebook"), path=first.get("path"))
    # From here on only student code can write to stderr: send it nowhere too, so a
    # loop that prints warnings cannot fill the disk before the time limit.
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = student._SINK
    proto_out.write(b'{"id":0,"ready":true}\n')

    def write_line(text):
        proto_out.write(text.encode("utf-8") + b"\n")

    student.serve(session, reader, write_line)
    os._exit(0)        # skip interpreter teardown: student objects may misbehave in __del__


class _LineReader:
    """Lines of at most wire.MAX_LINE bytes from a raw file."""

    def __init__(self, f):
        self.f = f
        self.buf = b""

    def __call__(self):
        from tinynet.grade.wire import MAX_LINE
        while b"\n" not in self.buf:
            chunk = self.f.read(1 << 20)
            if not chunk:
                line, self.buf = self.buf, b""
                return line.decode("utf-8", "replace")
            self.buf += chunk
            if len(self.buf) > MAX_LINE + 1:
                raise SystemExit("request too long")
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")
