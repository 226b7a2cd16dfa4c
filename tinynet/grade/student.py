"""What runs next to the student's code: run cells, call the student's functions.

This module holds no checks, no expected values and no points.  It answers
requests from the trusted grader (tinynet.grade.runner) with plain data --
numbers, strings, numpy arrays, and *descriptions* of anything else ("a
tinynet Tensor of shape (3,)", "a float") -- so the grader can judge what
came back without ever running an object the student made.

The same :class:`Session` serves two callers:

* the sandboxed student process (``serve``, via tinynet/grade/_sandbox_main.py),
  where every reply crosses the wire as a JSON line;
* ``tinynet.grade.check(globals(), ...)`` inside a notebook (self-checking, no
  isolation), where replies are encoded and decoded the same way.

Requests are dicts {"op": name, ...}; each op is a method ``op_<name>``.
While the student's function for a part runs, tinynet's own implementation
of that exercise is replaced by one that refuses (``refuse``), so a function
that merely delegates to the library is caught -- the grader also reads the
source (tinynet.grade.delegation).
"""
import builtins
import importlib
import linecache
import sys
import traceback

import numpy as np

STUDENT_FILE_PREFIX = "<code cell "
#: Filenames of .py submissions whose frames count as student code.
STUDENT_FILES = set()
MAX_ITEMS = 64


class Delegated(BaseException):
    """Raised by a refusing stand-in for a tinynet function (BaseException: a bare
    ``except Exception`` in student code does not swallow it)."""


def is_student_frame(filename):
    return filename.startswith(STUDENT_FILE_PREFIX) or filename in STUDENT_FILES


def student_location(exc):
    """'code cell 4, line 7 (in backward): dw = self.x @ g' for the innermost student frame."""
    import os
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


def _first_line(exc):
    try:
        text = str(exc).strip()
    except BaseException:                     # noqa: BLE001 -- a hostile __str__
        return ""
    return text.splitlines()[0][:300] if text else ""


def exception_info(exc):
    """Plain data about an exception raised by student code."""
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, (int, str, type(None))) else str(exc.code)
        return {"type": "SystemExit", "exit": code, "message": "", "where": ""}
    return {"type": type(exc).__name__[:80], "message": _first_line(exc),
            "where": student_location(exc)[:400],
            "not_implemented": isinstance(exc, NotImplementedError),
            "involves_student": any(is_student_frame(f.filename)
                                    for f in traceback.extract_tb(exc.__traceback__))}


def describe(value, depth=0):
    """A value the student returned, as plain data the grader can judge.

    Arrays (subclasses included) travel as their raw bytes -- the grader gets a
    plain ndarray whatever the subclass overrides; everything else is named.
    """
    from tinynet.tensor import Tensor
    if value is None:
        return {"kind": "none"}
    if isinstance(value, Tensor):
        return {"kind": "tensor", "shape": [int(d) for d in value.shape]}
    if isinstance(value, np.generic) or isinstance(value, np.ndarray):
        arr = np.asarray(value).view(np.ndarray)
        kind = "scalar" if isinstance(value, np.generic) else "array"
        if arr.dtype.kind in "fiub" and arr.dtype.str in _WIRE_DTYPES:
            return {"kind": kind, "value": np.array(arr, copy=True)}
        if arr.dtype.kind in "fiub":
            return {"kind": kind, "value": np.array(arr, dtype=np.float64)}
        return {"kind": "other", "type": f"numpy array of dtype {arr.dtype}"}
    if isinstance(value, bool):
        return {"kind": "bool", "value": bool(int.__int__(value))}
    if isinstance(value, int):              # subclasses too, by their base value only
        v = int.__int__(value)
        return {"kind": "int", "value": v if abs(v) < 2**62 else float(v)}
    if isinstance(value, float):
        return {"kind": "float", "value": float.__float__(value)}
    if type(value) in (tuple, list) and depth < 2:
        return {"kind": type(value).__name__, "len": len(value),
                "items": [describe(v, depth + 1) for v in value[:MAX_ITEMS]]}
    return {"kind": "other", "type": type(value).__name__[:80]}


_WIRE_DTYPES = {"<f8", "<f4", "<i8", "<i4", "|b1", "<f2", "|u1", "<i2"}


def upstream(shape, seed=0):
    """The upstream gradient used for an output of ``shape`` (as tn.gradcheck's)."""
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------
# refusing stand-ins for tinynet's own implementation of an exercise
# --------------------------------------------------------------------------
def _resolve(target):
    """'tinynet.ops.conv:col2im' or 'tinynet.tensor:Tensor.backward' -> (owner, attr, obj)."""
    module_name, _, qual = target.partition(":")
    try:
        owner = importlib.import_module(module_name)
    except Exception:                           # noqa: BLE001 -- absent in this version
        return None
    parts = qual.split(".")
    for p in parts[:-1]:
        owner = getattr(owner, p, None)
        if owner is None:
            return None
    obj = getattr(owner, parts[-1], None)
    return None if obj is None else (owner, parts[-1], obj)


class refuse:
    """Within the block, each target refuses to run and records that it was called.

    Functions get their code object swapped (so references the student took
    earlier refuse too); methods and functions with closures are replaced on
    their owner.
    """

    def __init__(self, targets):
        self.targets = list(targets or [])
        self.called = []
        self.undo = []

    def _stub(self, target):
        called = self.called

        def refused(*args, **kwargs):
            if target not in called:
                called.append(target)
            raise Delegated(target)
        return refused

    def __enter__(self):
        for target in self.targets:
            found = _resolve(target)
            if found is None:
                continue
            owner, attr, obj = found
            stub = self._stub(target)
            code = getattr(obj, "__code__", None)
            if code is not None and not code.co_freevars and not isinstance(owner, type):
                # Swap the body in place: `from tinynet.ops.conv import col2im` taken
                # before grading refuses too.  The stub's closure needs a trampoline
                # through a global, so install it as a module-level name.
                holder = f"__tinynet_refused_{abs(hash(target))}"
                obj.__globals__[holder] = stub
                tramp = _trampoline(holder, code)
                self.undo.append(lambda o=obj, c=code, g=obj.__globals__, h=holder:
                                 (setattr(o, "__code__", c), g.pop(h, None)))
                obj.__code__ = tramp
            else:
                self.undo.append(lambda o=owner, a=attr, v=owner.__dict__.get(attr, obj):
                                 setattr(o, a, v))
                setattr(owner, attr, stub)
        return self

    def __exit__(self, *exc):
        for undo in reversed(self.undo):
            undo()
        self.undo.clear()
        return False


def _trampoline(holder, like):
    """A code object with ``like``'s signature shape that calls globals()[holder]."""
    src = f"def _t(*args, **kwargs):\n    return {holder}(*args, **kwargs)\n"
    scope = {}
    exec(src, scope)
    code = scope["_t"].__code__
    return code.replace(co_name=like.co_name)


# --------------------------------------------------------------------------
# the session
# --------------------------------------------------------------------------
class Session:
    """The student's namespace and the operations the grader may ask for."""

    def __init__(self, kind="notebook", path=None, namespace=None):
        if namespace is None:
            namespace = {"__name__": "__main__" if kind == "notebook" else "submission",
                         "__builtins__": builtins, "display": lambda *a, **k: None}
        self.ns = namespace
        self.kind = kind
        if kind == "module" and path:
            STUDENT_FILES.add(path)

    def handle(self, request):
        op = request.get("op") if isinstance(request, dict) else None
        method = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if method is None:
            return {"error": f"unknown request {op!r}"}
        return method(**{k: v for k, v in request.items() if k not in ("op", "id")})

    # ---- cells ------------------------------------------------------------
    def op_run(self, label, filename, source):
        if filename.startswith("<"):
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as e:
            text = (e.text or "").strip()
            where = f" at line {e.lineno}" if e.lineno else ""
            return {"error": f"{label} has a {type(e).__name__}{where}: {e.msg}"
                             + (f" -- `{text[:120]}`" if text else "") + " (nothing in it ran)"}
        try:
            exec(code, self.ns)
        except NotImplementedError:
            return {"error": f"{label} stopped at NotImplementedError (not implemented yet)"}
        except SystemExit as e:
            return {"error": f"{label} called exit({e.code!r}); the rest of it did not run"[:300]}
        except BaseException as e:           # noqa: BLE001 -- report anything
            where = student_location(e)
            msg = _first_line(e)
            return {"error": f"{label} raised {type(e).__name__}" + (f": {msg}" if msg else "")
                             + (f" (at {where})" if where else "")}
        return {"error": None}

    # ---- names --------------------------------------------------------------
    def op_lookup(self, name):
        """What ``name`` is in the student's namespace."""
        from tinynet.tensor import Function
        if name not in self.ns:
            return {"defined": False}
        obj = self.ns[name]
        return {"defined": True, "callable": callable(obj),
                "function_class": isinstance(obj, type) and issubclass(obj, Function),
                "type": type(obj).__name__[:80]}

    # ---- calling ----------------------------------------------------------
    def _guarded(self, what, refused, fn, *args, **kwargs):
        """(value, None) or (None, failure dict) -- whatever the student's code does."""
        with refuse(refused) as r:
            try:
                value = fn(*args, **kwargs)
            except Delegated as d:
                return None, {"what": what, "delegated": str(d)}
            except BaseException as exc:         # noqa: BLE001 -- that is the point
                if r.called:
                    return None, {"what": what, "delegated": r.called[0]}
                return None, {"what": what, "raised": exception_info(exc)}
        if r.called:
            return None, {"what": what, "delegated": r.called[0]}
        return value, None

    def op_call(self, name, args=(), kwargs=None, refused=()):
        """ns[name](*args, **kwargs) -> {"value": described} or {"failure": ...}."""
        args = [tuple(a) if isinstance(a, list) else a for a in args]   # shapes as tuples
        value, failure = self._guarded(name, refused, self.ns[name], *args, **(kwargs or {}))
        if failure:
            return {"failure": failure}
        return {"value": describe(value)}

    def op_function(self, cls, init=(), arrays=(), wrt=(), label=None, seed=0, refused=(),
                    substitute=None, forward_only=False):
        """Forward then backward of the student's tn.Function subclass ``cls``.

        Returns {"y": described forward output, "g": the upstream gradient used,
        "grads": described backward result} or {"failure": ...}.
        """
        from tinynet.tensor import Tensor
        label = label or f"{cls}.backward"
        saved = self._substitute(substitute)
        try:
            tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=(i in wrt))
                       for i, a in enumerate(arrays)]
            fn, failure = self._guarded(f"{cls}(...)", refused, self.ns[cls], *init)
            if failure:
                return {"failure": failure}
            out, failure = self._guarded(f"{cls}.forward", refused, fn, *tensors)
            if failure:
                return {"failure": failure}
            y = getattr(out, "data", out)
            if isinstance(y, np.generic):
                y = np.asarray(y)
            if forward_only or not isinstance(y, np.ndarray):
                return {"y": describe(y)}
            g = upstream(y.shape, seed).astype(y.dtype)
            grads, failure = self._guarded(label, refused, fn.backward, g)
            if failure:
                return {"failure": failure}
            return {"y": describe(y), "g": g, "grads": describe(grads)}
        finally:
            self._restore(saved)

    def op_forwards(self, cls, init=(), arrays=(), index=0, eps=1e-6, substitute=None,
                    seed=0):
        """The student's forward at x ± eps e_j for every element j of arrays[index].

        For the grader's message only (the numerical derivative of YOUR forward):
        {"plus": (n, *out), "minus": (n, *out)} or {"failure": ...}.
        """
        from tinynet.tensor import Tensor, no_grad
        saved = self._substitute(substitute)
        try:
            xs = [Tensor(np.array(a, dtype=np.float64)) for a in arrays]
            target = xs[index].data
            plus, minus = [], []

            def f():
                with no_grad():
                    out = self.ns[cls](*init)(*xs)
                return np.asarray(getattr(out, "data", out), dtype=np.float64)
            for idx in np.ndindex(*target.shape):
                orig = target[idx]
                target[idx] = orig + eps
                fp, failure = self._guarded(f"{cls}.forward", (), f)
                target[idx] = orig - eps
                fm, failure2 = self._guarded(f"{cls}.forward", (), f)
                target[idx] = orig
                if failure or failure2:
                    return {"failure": failure or failure2}
                plus.append(fp)
                minus.append(fm)
            return {"plus": np.stack(plus), "minus": np.stack(minus)}
        finally:
            self._restore(saved)

    def _substitute(self, substitute):
        """Put tinynet's own col2im in place of the student's (their col2im failed)."""
        if not substitute:
            return None
        from tinynet.ops.conv import col2im
        missing = object()
        saved = {name: self.ns.get(name, missing) for name in substitute}
        for name in substitute:
            self.ns[name] = col2im
        return saved, missing

    def _restore(self, saved):
        if saved is None:
            return
        values, missing = saved
        for name, value in values.items():
            if value is missing:
                self.ns.pop(name, None)
            else:
                self.ns[name] = value

    def op_call_model(self, name, model, data, args=(), kwargs=None, refused=()):
        """ns[name](the model built from ``model`` -- or its layers number model["layer"]
        -- , data, *args) on a fresh model.

        Returns {"value": described, "state": the model's state_dict afterwards}.
        """
        from tinynet.tensor import Tensor
        built = build_model(model)
        x = Tensor(data["array"]) if data.get("tensor") else data["array"]
        layers = model.get("layer")
        targets = [built] if layers is None else [built[int(i)] for i in layers]
        value, failure = self._guarded(name, refused, self.ns[name], *targets,
                                       *([x] if x is not None else []), *args,
                                       **(kwargs or {}))
        state = {k: np.asarray(p.numpy()) for k, p in built.named_parameters()}
        if failure:
            return {"failure": failure, "state": state}
        return {"value": describe(value), "state": state}


def build_model(spec):
    """A tinynet Sequential from {"layers": [["Dense", in, out, bias], ["ReLU"], ...],
    "state": {name: array}, "dtype": "float32"}."""
    from tinynet import nn
    layers = []
    for item in spec["layers"]:
        kind = item[0]
        if kind == "Dense":
            layers.append(nn.Dense(int(item[1]), int(item[2]), bias=bool(item[3])))
        elif kind == "ReLU":
            layers.append(nn.ReLU())
        elif kind == "Flatten":
            layers.append(nn.Flatten())
        elif kind == "Dropout":
            layers.append(nn.Dropout(float(item[1])))
        else:
            raise ValueError(f"unknown layer {kind!r}")
    model = nn.Sequential(*layers)
    params = dict(model.named_parameters())
    for k, v in spec["state"].items():
        params[k].data = np.array(v)           # keeps the exact values and dtype
    return model


def serve(session, read_line, write_line):
    """Answer requests until the grader closes the channel."""
    from tinynet.grade import wire
    while True:
        line = read_line()
        if not line:
            return
        try:
            request = wire.loads(line)
            reply = session.handle(request)
        except Exception as exc:                # noqa: BLE001 -- report, keep serving
            reply = {"error": f"{type(exc).__name__}: {_first_line(exc)}"}
        reply["id"] = request.get("id") if isinstance(request, dict) else None
        try:
            text = wire.dumps(reply)
        except wire.WireError as exc:
            text = wire.dumps({"id": reply["id"], "error": str(exc)})
        sys.stdout = sys.stderr = _SINK
        write_line(text)


class _Sink:
    def write(self, s):
        return len(s)

    def flush(self):
        pass


_SINK = _Sink()
