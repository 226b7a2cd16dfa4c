"""The pieces every assignment's checks are built from.

An assignment is a list of parts; a part is a check function

    check(ns, ctx) -> str

that looks the student's names up in ``ns`` (the namespace their notebook or
module ran in), exercises them, and returns a short success message -- or
raises :class:`Fail` with a message the student can act on.  Everything a
student's code can do wrong (raise, return the wrong type, be missing) is
turned into a Fail by the helpers here, so a check reads as a list of
expectations rather than a pile of try/except.
"""
import linecache
import os
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tinynet.tensor import Tensor

# Result reasons (the "reason" field of --json output).
OK = "ok"
WRONG = "wrong"                     # ran, gave a wrong answer
NOT_IMPLEMENTED = "not_implemented"
EXCEPTION = "exception"             # the student's code raised
WRONG_TYPE = "wrong_type"
MISSING = "missing"                 # a name the part needs is not defined
TIMEOUT = "timeout"
CRASH = "crash"                     # the Python process running the code died
INTERNAL = "internal"               # a bug in the grader itself


class Fail(Exception):
    """A part failed; ``str(exc)`` is the message for the student."""

    reason = WRONG

    def __init__(self, message, reason=None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class NotImplementedPart(Fail):
    reason = NOT_IMPLEMENTED


@dataclass
class Part:
    id: str
    points: int
    title: str
    check: Callable


@dataclass
class Assignment:
    id: str
    title: str
    notebook: str                     # file name of the solution notebook in lessons/homework
    parts: list = field(default_factory=list)

    @property
    def points(self):
        return sum(p.points for p in self.parts)

    def part(self, part_id):
        for p in self.parts:
            if p.id == part_id:
                return p
        raise KeyError(f"assignment {self.id} has no part {part_id!r}; its parts are "
                       f"{', '.join(p.id for p in self.parts)}")


@dataclass
class Context:
    """What a check may know besides the namespace.

    prior       -- part id -> result dict of the parts graded before this one
    cell_errors -- list of one-line descriptions of cells that failed to run
    """
    prior: dict = field(default_factory=dict)
    cell_errors: list = field(default_factory=list)
    kind: str = "notebook"

    def passed(self, part_id):
        r = self.prior.get(part_id)
        return r is not None and r.get("status") == "pass"


# --------------------------------------------------------------------------
# locating the student's code in a traceback
# --------------------------------------------------------------------------
STUDENT_FILE_PREFIX = "<code cell "


def is_student_frame(filename):
    from tinynet.grade import submission
    return filename.startswith(STUDENT_FILE_PREFIX) or filename in submission.STUDENT_FILES


def student_location(exc):
    """'code cell 4, line 7: dw = self.x @ g' for the innermost student frame, or ''."""
    tb = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(tb):
        if is_student_frame(frame.filename):
            where = frame.filename.strip("<>") if frame.filename.startswith("<") \
                else os.path.basename(frame.filename)
            line = frame.line or linecache.getline(frame.filename, frame.lineno).strip()
            text = f"{where}, line {frame.lineno}"
            if frame.name not in ("<module>",):
                text += f" (in {frame.name})"
            if line:
                text += f": {line.strip()}"
            return text
    return ""


def involves_student_code(exc):
    return any(is_student_frame(f.filename) for f in traceback.extract_tb(exc.__traceback__))


def describe_exception(what, exc):
    """A Fail for an exception raised while running ``what`` (student code)."""
    if isinstance(exc, Fail):
        return exc
    if isinstance(exc, NotImplementedError):
        return NotImplementedPart(
            f"not implemented yet: {what} raises NotImplementedError. Replace the "
            f"`raise NotImplementedError` line with your code.")
    where = student_location(exc)
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{what} raised {type(exc).__name__}" + (f": {msg}" if msg else "")
    if where:
        text += f"\n  at {where}"
    if isinstance(exc, ValueError) and "matmul" in msg:
        text += ("\n  The operands of @ do not fit: (a, b) @ (c, d) needs b == c. Write the "
                 "shape of every array next to that line -- g has the forward output's shape.")
    return Fail(text, EXCEPTION)


def call(what, fn, *args, **kwargs):
    """Run student code; any exception becomes a Fail that says what raised and where.

    Everything raised inside ``fn`` counts as the student's (a wrong number of
    arguments is raised before their first line runs); only a GradcheckError
    passes through, for the caller to explain.
    """
    from tinynet.gradcheck import GradcheckError
    try:
        return fn(*args, **kwargs)
    except (Fail, GradcheckError):
        raise
    except Exception as exc:                     # noqa: BLE001 -- that is the point
        raise describe_exception(what, exc) from None
    except SystemExit as exc:
        raise Fail(f"{what} called exit() / sys.exit({exc.code!r}); a function must "
                   f"return its result instead", EXCEPTION) from None


# --------------------------------------------------------------------------
# looking names up
# --------------------------------------------------------------------------
def lookup(ns, ctx, name, kind="callable"):
    """ns[name], or a Fail saying it is missing (and which cells failed to run)."""
    if name not in ns:
        msg = f"`{name}` is not defined in your submission."
        if ctx.cell_errors:
            what = "Cells" if ctx.kind == "notebook" else "Parts of your file"
            msg += f" {what} that did not run to the end:\n" + "\n".join(
                f"  - {e}" for e in ctx.cell_errors)
        else:
            msg += (f" Keep the name `{name}` from the assignment (and run the cell that "
                    f"defines it).")
        raise Fail(msg, MISSING)
    obj = ns[name]
    if kind == "callable" and not callable(obj):
        raise Fail(f"`{name}` should be a function, but it is a {type(obj).__name__}",
                   WRONG_TYPE)
    return obj


def lookup_function_class(ns, ctx, name):
    """A tinynet Function subclass named ``name``."""
    from tinynet.tensor import Function
    cls = lookup(ns, ctx, name)
    if not (isinstance(cls, type) and issubclass(cls, Function)):
        raise Fail(f"`{name}` must be a class that subclasses tn.Function "
                   f"(class {name}(tn.Function): ...), got {type(cls).__name__}", WRONG_TYPE)
    return cls


# --------------------------------------------------------------------------
# return values
# --------------------------------------------------------------------------
def type_name(x):
    if isinstance(x, Tensor):
        return "a tinynet Tensor"
    if x is None:
        return "None"
    if isinstance(x, np.ndarray):
        return f"a numpy array of shape {x.shape}"
    return f"a {type(x).__name__}"


def require_array(what, value, shape=None):
    """value must be a numpy array (a 0-d array or numpy scalar when shape == ())."""
    if isinstance(value, Tensor):
        raise Fail(f"{what} is a tinynet Tensor; inside a Function work on the raw numpy "
                   f"arrays and return an array (the engine wraps it in a Tensor)",
                   WRONG_TYPE)
    if shape == () and isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        hint = ""
        if isinstance(value, (float, int)):
            hint = "; wrap it: return np.asarray(value) -- a 0-d array, not a Python number"
        raise Fail(f"{what} should be a numpy array, got {type_name(value)}{hint}", WRONG_TYPE)
    if shape is not None and value.shape != tuple(shape):
        raise Fail(f"{what} has shape {value.shape}, expected {tuple(shape)}", WRONG)
    return value


def fmt(x):
    return f"{float(x):.6g}"
