"""The narrow channel between the trusted grader and the student process.

Only plain data crosses it, as one JSON object per line:

    None, bool, int, float, str, lists, dicts with str keys, and
    numpy arrays as {"$array": [dtype, shape, base64 of the raw bytes]}

An array is rebuilt from its raw bytes with a dtype from a short allow-list
and a shape whose size must match the byte count, so what arrives is always
a plain ``numpy.ndarray`` -- never a subclass, never an object the sender
chose (nothing is unpickled).  ``decode`` rejects anything else with
:class:`WireError`; the grader turns that into a failed part, never a crash.
Lines longer than MAX_LINE bytes are refused before they are parsed, so the
grader's memory stays bounded whatever the student process writes.
"""
import base64
import json
import math

import numpy as np

MAX_LINE = 16 * 1024 * 1024         # bytes per message (the 784-512-512-10 MLP's weights fit)
MAX_DEPTH = 12
MAX_STR = 20000                     # characters per string (messages are capped again later)
DTYPES = {"<f8": np.float64, "<f4": np.float32, "<i8": np.int64, "<i4": np.int32,
          "|b1": np.bool_, "<f2": np.float16, "|u1": np.uint8, "<i2": np.int16}


class WireError(ValueError):
    """A message that is not valid plain data."""


def encode(value, _depth=0):
    """Plain data -> JSON-able; numpy arrays and numpy scalars are encoded as arrays."""
    if _depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and type(value) in (int,):
        return value
    if isinstance(value, float) and type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.array(value, copy=True, order="C")    # (ascontiguousarray makes 0-d 1-d)
        key = arr.dtype.str
        if key not in DTYPES:
            raise WireError(f"arrays of dtype {arr.dtype} are not sent")
        return {"$array": [key, list(arr.shape), base64.b64encode(arr.tobytes()).decode()]}
    if isinstance(value, (list, tuple)):
        return [encode(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v, _depth + 1) for k, v in value.items()}
    raise WireError(f"cannot send a {type(value).__name__}")


def dumps(value):
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=False)


def decode(obj, _depth=0):
    """JSON-parsed data -> plain Python values and plain numpy arrays (validated)."""
    if _depth > MAX_DEPTH:
        raise WireError("message nested too deeply")
    if obj is None or type(obj) in (bool, int):
        return obj
    if type(obj) is float:
        return obj
    if type(obj) is str:
        if len(obj) > MAX_STR:
            raise WireError(f"a string of {len(obj)} characters (at most {MAX_STR})")
        return obj
    if type(obj) is list:
        return [decode(v, _depth + 1) for v in obj]
    if type(obj) is dict:
        if set(obj) == {"$float"}:
            if obj["$float"] not in ("nan", "inf", "-inf"):
                raise WireError("bad special float")
            return float(obj["$float"])
        if set(obj) == {"$array"}:
            return _array(obj["$array"])
        return {k: decode(v, _depth + 1) for k, v in obj.items()}
    raise WireError(f"unexpected {type(obj).__name__}")


def _array(spec):
    if not (type(spec) is list and len(spec) == 3 and type(spec[0]) is str
            and type(spec[1]) is list and type(spec[2]) is str):
        raise WireError("malformed array")
    dtype = DTYPES.get(spec[0])
    if dtype is None:
        raise WireError(f"array dtype {spec[0]!r} is not allowed")
    shape = spec[1]
    if len(shape) > 8 or not all(type(d) is int and 0 <= d <= 10**8 for d in shape):
        raise WireError("malformed array shape")
    try:
        raw = base64.b64decode(spec[2].encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise WireError("array data is not base64") from None
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if n * np.dtype(dtype).itemsize != len(raw):
        raise WireError(f"array of shape {tuple(shape)} and dtype {spec[0]} does not have "
                        f"{len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape)).copy()


def loads(line):
    """One received line -> plain data.  Raises WireError."""
    if len(line) > MAX_LINE:
        raise WireError(f"message of {len(line)} bytes (at most {MAX_LINE})")
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not JSON: {str(exc)[:80]}") from None
    return decode(obj)
