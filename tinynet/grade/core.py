"""The pieces every assignment's checks are built from.

An assignment is a list of parts; a part is a check function

    check(st, ctx) -> str

that runs in the TRUSTED grader process.  ``st`` is the student: an object
whose ``request(op, **args)`` asks the student process (or, inside a
notebook, the student's namespace) to call one of their functions on inputs
the check chose, and returns plain data only (tinynet.grade.student,
tinynet.grade.wire).  The check computes the expected values itself,
compares, and returns a short success message -- or raises :class:`Fail`
with a message the student can act on.  Everything a student's code can do
wrong (raise, return the wrong type, be missing, delegate to tinynet) is
turned into a Fail by the helpers here, so a check reads as a list of
expectations rather than a pile of try/except.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


# Result reasons (the "reason" field of --json output).
OK = "ok"
WRONG = "wrong"                     # ran, gave a wrong answer
NOT_IMPLEMENTED = "not_implemented"
EXCEPTION = "exception"             # the student's code raised
WRONG_TYPE = "wrong_type"
MISSING = "missing"                 # a name the part needs is not defined
TIMEOUT = "timeout"
CRASH = "crash"                     # the Python process running the code died or misbehaved
DELEGATED = "delegated"             # the code calls tinynet's own implementation of the exercise
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
    sources     -- the submission's code (cells or statements), for the static look
    """
    prior: dict = field(default_factory=dict)
    cell_errors: list = field(default_factory=list)
    kind: str = "notebook"
    sources: list = field(default_factory=list)

    def passed(self, part_id):
        r = self.prior.get(part_id)
        return r is not None and r.get("status") == "pass"


# --------------------------------------------------------------------------
# what came back from the student process
# --------------------------------------------------------------------------
class Described:
    """Something the student returned that is not plain data: only its description."""

    def __init__(self, kind, type_text, shape=None):
        self.kind, self.type_text, self.shape = kind, type_text, shape

    def __repr__(self):
        return f"<{self.type_text}>"


def received(desc):
    """A description from tinynet.grade.student.describe -> a trusted stand-in.

    Arrays and numbers become plain numpy / Python values (rebuilt from raw
    bytes by tinynet.grade.wire); a Tensor or any other object becomes a
    :class:`Described` that only names it.
    """
    if not isinstance(desc, dict) or not isinstance(desc.get("kind"), str):
        raise Fail("the student process sent a malformed value", CRASH)
    kind = desc["kind"]
    value = desc.get("value")
    if kind == "none":
        return None
    if kind in ("array", "scalar"):
        if type(value) is not np.ndarray:
            raise Fail("the student process sent a malformed array", CRASH)
        return value[()] if kind == "scalar" else value
    if kind == "bool" and type(value) is bool:
        return value
    if kind == "int" and type(value) in (int, float):
        return value
    if kind == "float" and type(value) is float:
        return value
    if kind == "tensor":
        shape = desc.get("shape")
        return Described("tensor", "a tinynet Tensor",
                         tuple(shape) if isinstance(shape, list) else None)
    if kind in ("tuple", "list") and isinstance(desc.get("items"), list):
        items = [received(d) for d in desc["items"]]
        n = desc.get("len")
        if type(n) is int and n > len(items):
            items += [Described("other", "an item not sent")] * min(n - len(items), 1000)
        return tuple(items) if kind == "tuple" else items
    if kind == "other":
        return Described("other", f"a {str(desc.get('type', 'object'))[:80]}")
    raise Fail("the student process sent a malformed value", CRASH)


def describe_failure(failure):
    """A Fail from a failure dict sent by the student process."""
    if not isinstance(failure, dict):
        return Fail("the student process sent a malformed reply", CRASH)
    what = str(failure.get("what", "your code"))[:200]
    if "delegated" in failure:
        return delegation_fail(what, str(failure["delegated"])[:200])
    info = failure.get("raised")
    if not isinstance(info, dict):
        return Fail("the student process sent a malformed reply", CRASH)
    typ = str(info.get("type", "Exception"))[:80]
    if typ == "SystemExit":
        return Fail(f"{what} called exit() / sys.exit({info.get('exit')!r}); a function must "
                    f"return its result instead", EXCEPTION)
    if info.get("not_implemented") is True:
        return NotImplementedPart(
            f"not implemented yet: {what} raises NotImplementedError. Replace the "
            f"`raise NotImplementedError` line with your code.")
    msg = str(info.get("message", ""))[:300]
    where = str(info.get("where", ""))[:400]
    text = f"{what} raised {typ}" + (f": {msg}" if msg else "")
    if where:
        text += f"\n  at {where}"
    if typ == "ValueError" and "matmul" in msg:
        text += ("\n  The operands of @ do not fit: (a, b) @ (c, d) needs b == c. Write the "
                 "shape of every array next to that line -- g has the forward output's shape.")
    return Fail(text, EXCEPTION)


def delegation_fail(what, target):
    name = target.replace(":", ".")
    return Fail(f"{what} calls tinynet's own {name}: this exercise is to write it yourself, "
                f"so this part gets 0 points. Compute the result with numpy.", DELEGATED)


def unwrap(reply, key="value"):
    """reply[key] as a trusted stand-in, or the Fail the reply describes."""
    if not isinstance(reply, dict):
        raise Fail("the student process sent a malformed reply", CRASH)
    if "failure" in reply:
        raise describe_failure(reply["failure"])
    if "error" in reply or key not in reply:
        raise Fail(f"the student process could not answer: "
                   f"{str(reply.get('error', 'no ' + key))[:300]}", CRASH)
    return received(reply[key])


# --------------------------------------------------------------------------
# looking names up
# --------------------------------------------------------------------------
def lookup(st, ctx, name, kind="callable"):
    """Fail unless the submission defines ``name`` (a function by default)."""
    info = st.request("lookup", name=name)
    if not isinstance(info, dict) or info.get("defined") is not True:
        msg = f"`{name}` is not defined in your submission."
        if ctx.cell_errors:
            what = "Cells" if ctx.kind == "notebook" else "Parts of your file"
            msg += f" {what} that did not run to the end:\n" + "\n".join(
                f"  - {e}" for e in ctx.cell_errors)
        else:
            msg += (f" Keep the name `{name}` from the assignment (and run the cell that "
                    f"defines it).")
        raise Fail(msg, MISSING)
    if kind == "callable" and info.get("callable") is not True:
        raise Fail(f"`{name}` should be a function, but it is a {str(info.get('type'))[:80]}",
                   WRONG_TYPE)
    if kind == "function_class" and info.get("function_class") is not True:
        raise Fail(f"`{name}` must be a class that subclasses tn.Function "
                   f"(class {name}(tn.Function): ...), got {str(info.get('type'))[:80]}",
                   WRONG_TYPE)
    return name


def lookup_function_class(st, ctx, name):
    return lookup(st, ctx, name, kind="function_class")


# --------------------------------------------------------------------------
# return values
# --------------------------------------------------------------------------
def type_name(x):
    if isinstance(x, Described):
        return x.type_text
    if x is None:
        return "None"
    if isinstance(x, np.ndarray):
        return f"a numpy array of shape {x.shape}"
    return f"a {type(x).__name__}"


def require_array(what, value, shape=None):
    """value must be a numpy array (a 0-d array or numpy scalar when shape == ())."""
    if isinstance(value, Described) and value.kind == "tensor":
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
