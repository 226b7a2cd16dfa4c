"""Checking a student's Function.backward, and saying what is wrong with it.

``check_gradients`` has the student process run the student's Function
forward and backward on inputs chosen here and send back plain arrays (a
wrong return type or shape gets its own message), compares the gradients
with the right ones computed here, in the trusted process, and when they
differ words the verdict as ``tn.gradcheck`` would -- the first element where
the backward disagrees with the numerical derivative of the forward -- and
compares the whole gradient with the numerical one to name the kind of mistake:

    shape       wrong shape; transposed (the axes swapped); an extra batch axis
    transposed  a square gradient equal to the right one transposed
    sign        analytic = -numeric everywhere
    factor      analytic = c * numeric everywhere: c = N is a missing 1/N
    overlap     only the elements that several windows share are wrong
                (a col2im that assigns instead of adding)
    otherwise   how many elements are wrong, and the first one

The random upstream gradient g used for the check is the one gradcheck uses
(its ``seed``), so the numbers printed match gradcheck's.  The points depend
only on the comparison with the right gradients; what the student process
sends can only make a message less helpful, never a wrong answer right.
"""
import numpy as np

from tinynet.grade.core import (CRASH, WRONG, WRONG_TYPE, Described, Fail, describe_failure,
                                fmt, require_array, type_name, unwrap)

RTOL = 1e-4


def upstream(shape, seed=0):
    """The upstream gradient gradcheck uses for an output of ``shape``."""
    return np.random.default_rng(seed).standard_normal(shape)


def _close(a, b, scale):
    return np.allclose(a, b, rtol=RTOL, atol=1e-7 * scale + 1e-12)


def shape_problem(name, got, expected, hint=""):
    """A sentence about a gradient of the wrong shape."""
    got, expected = tuple(got), tuple(expected)
    head = f"d{name} has shape {got}, but {name} has shape {expected}"
    if len(got) == 2 and got == expected[::-1]:
        text = (f"{head}: it is transposed (the two axes are swapped). A gradient always "
                f"has the shape of the thing it is the gradient of")
    elif len(got) == len(expected) + 1 and got[1:] == expected:
        text = (f"{head}: it has an extra leading axis of length {got[0]} -- one entry per "
                f"sample. Sum over the batch axis (axis 0)")
    elif (len(got) == 4 and got[:2] == expected[:2] and got[2] > expected[2]
          and got[2] - expected[2] == got[3] - expected[3] and (got[2] - expected[2]) % 2 == 0):
        pad = (got[2] - expected[2]) // 2
        extra = "1 extra row and column" if pad == 1 else f"{pad} extra rows and columns"
        text = (f"{head}: it still includes the padding ({extra} on each side). Crop it: "
                f"dxpad[:, :, {pad}:{pad} + H, {pad}:{pad} + W]")
    elif len(got) == len(expected) and sorted(got) == sorted(expected):
        text = f"{head}: the axes are in the wrong order (transposed)"
    elif int(np.prod(got)) == int(np.prod(expected)):
        text = (f"{head}: the right number of elements in the wrong shape; reshape (or "
                f"transpose) it back to {expected}")
    else:
        text = f"{head}; the gradient must have the shape of {name}"
    return text + (f". {hint}" if hint else ".")


def diagnose(name, got, expected, batch=None, coverage=None, context=None, g_value=None):
    """What is wrong with ``got`` (a gradient) compared with ``expected`` -- in words."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    scale = scale if scale > 0 else 1.0
    if not np.all(np.isfinite(got)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        return (f"d{name} contains NaN or inf (first at element {bad}): something overflowed "
                f"or divided by zero.")
    if not got.any() and expected.any():
        return (f"your d{name} is all zeros; did you forget to compute it, or compute it "
                f"into a variable you do not return?")
    if (got.ndim == 2 and got.shape[0] == got.shape[1] and _close(got, expected.T, scale)
            and not _close(expected, expected.T, scale)):
        return (f"d{name} is transposed: your d{name}[i, j] holds the right value for "
                f"d{name}[j, i]. Check the order of the factors (for y = x @ W: "
                f"dW = xᵀ @ g, dx = g @ Wᵀ).")
    if _close(got, -expected, scale):
        return (f"the sign is off: every value of your d{name} is the negative of the right "
                f"one (analytic ≈ −numeric). Look for a subtraction written the wrong way "
                f"round, e.g. onehot - p instead of p - onehot.")
    denom = float((expected * expected).sum())
    if denom > 0:
        c = float((got * expected).sum()) / denom
        if c != 0 and _close(got, c * expected, scale):
            if batch and abs(c - batch) <= 1e-3 * batch:
                return (f"off by a factor of N = {batch} (the batch size): every value of "
                        f"your d{name} is {batch} times too large. The loss is the MEAN over "
                        f"the batch, so its gradient carries a 1/N -- it is missing.")
            if batch and abs(c * batch - 1) <= 1e-3:
                return (f"off by a factor of 1/N = 1/{batch}: every value of your d{name} "
                        f"is {batch} times too small -- you divide by the batch size (or "
                        f"average over it) where the gradient should simply sum.")
            if batch and abs(c + batch) <= 1e-3 * batch:
                return (f"off by a factor of -N = -{batch}: the sign is flipped AND the 1/N "
                        f"of the mean is missing.")
            if g_value and abs(c * g_value - 1) <= 1e-3:
                return (f"your d{name} ignores the upstream gradient g (here g = "
                        f"{g_value:.4g}): backward(g) must return the gradient of g * loss, "
                        f"so multiply by g.")
            return (f"off by a constant factor: every value of your d{name} is {c:.4g} times "
                    f"the right one.")
    wrong = ~np.isclose(got, expected, rtol=RTOL, atol=1e-7 * scale + 1e-12)
    n_wrong = int(wrong.sum())
    first = tuple(int(i) for i in np.argwhere(wrong)[0]) if n_wrong else None
    if (coverage is not None and n_wrong and bool((coverage[wrong] > 1).all())
            and not bool(wrong[coverage == 1].any())):
        cov = int(coverage[first])
        return (f"only elements that lie in SEVERAL windows are wrong ({n_wrong} of "
                f"{got.size}); every element inside a single window is right. Element "
                f"{first} lies in {cov} overlapping windows{context or ''}: its gradient is "
                f"the SUM of {cov} contributions, {fmt(expected[first])}, but yours is "
                f"{fmt(got[first])}. Accumulate with += where windows overlap instead of "
                f"assigning with =.")
    if n_wrong == 0:
        return "the values differ only slightly (check float precision)."
    return (f"{n_wrong} of {got.size} elements of d{name} are wrong; the first is {first}: "
            f"yours {fmt(got[first])}, the right value {fmt(expected[first])}.")


def gradcheck_element(analytic, numeric, atol=1e-5, rtol=1e-3):
    """tn.gradcheck's verdict: the first element where they disagree, or None."""
    bad = ~(np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric))
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def numeric_from_forwards(reply, v, eps=1e-6):
    """The numerical derivative of sum(v * f) from the student's forwards at x ± eps."""
    plus = np.asarray(unwrap_array(reply, "plus"), dtype=np.float64)
    minus = np.asarray(unwrap_array(reply, "minus"), dtype=np.float64)
    if plus.shape != minus.shape or plus.shape[1:] != v.shape:
        raise Fail("your forward's output changed shape between calls", WRONG)
    return ((plus - minus) * v).reshape(len(plus), -1).sum(axis=1) / (2 * eps)


def unwrap_array(reply, key):
    if isinstance(reply, dict) and "failure" in reply:
        raise describe_failure(reply["failure"])
    value = reply.get(key) if isinstance(reply, dict) else None
    if type(value) is not np.ndarray:
        raise Fail("the student process sent a malformed reply", CRASH)
    return value


def run_backward(st, label, cls, init, arrays, names, wrt, *, seed=0, refused=(),
                 substitute=None):
    """The student's forward and backward on ``arrays``, called in the student process.

    Returns (forward output, list of gradients) as trusted plain arrays.
    Raises Fail for exceptions, delegation, wrong return types and wrong shapes
    of the gradients in ``wrt``.
    """
    reply = st.request("function", cls=cls, init=list(init), arrays=list(arrays),
                       wrt=list(wrt), label=label, seed=seed, refused=list(refused),
                       substitute=substitute)
    y = unwrap(reply, "y")
    if isinstance(y, np.generic):
        y = np.asarray(y)
    require_array(f"{cls}.forward's result", y)
    grads = unwrap(reply, "grads")
    n = len(arrays)
    listing = ", ".join(f"d{nm}" for nm in names)
    if isinstance(grads, np.ndarray) or (isinstance(grads, Described)
                                         and grads.kind == "tensor"):
        if n == 1:
            raise Fail(f"{label} must return a tuple with one gradient per input: write "
                       f"`return (d{names[0]},)` -- note the comma -- not `return d{names[0]}`",
                       WRONG_TYPE)
        raise Fail(f"{label} returned a single array; it must return a tuple with one "
                   f"gradient per input of forward: ({listing})", WRONG_TYPE)
    if not isinstance(grads, (tuple, list)):
        raise Fail(f"{label} must return a tuple ({listing}), got {type_name(grads)}",
                   WRONG_TYPE)
    if len(grads) != n:
        raise Fail(f"{label} returned {len(grads)} gradients for {n} inputs; return one per "
                   f"input of forward, in the same order: ({listing})", WRONG_TYPE)
    grads = list(grads)
    for i in wrt:
        g = grads[i]
        if g is None:
            raise Fail(f"{label} returned None for d{names[i]}, but {names[i]} needs a "
                       f"gradient here", WRONG_TYPE)
        g = require_array(f"d{names[i]} (returned by {label})", g)
        if g.shape != tuple(np.shape(arrays[i])):
            raise Fail(f"{label}: " + shape_problem(names[i], g.shape, np.shape(arrays[i])),
                       WRONG)
        grads[i] = np.asarray(g, dtype=np.float64)
    return y, grads


def check_gradients(st, label, cls, init, arrays, names, wrt, *, reference, case="",
                    batch=None, coverage=None, context=None, seed=0, refused=(),
                    substitute=None, numeric=None):
    """Fail unless the student's backward gives the right gradients for ``wrt``.

    Runs in the trusted process; the student process only computes forward and
    backward (``run_backward``).

    st        -- the student (tinynet.grade.runner.RemoteStudent or LocalStudent)
    label     -- "Dense.backward", used in messages
    cls, init -- the student's Function class name and its constructor arguments
    arrays    -- the forward's inputs (numpy, float64)
    names     -- their names ("x", "W", "b")
    wrt       -- indices of the inputs whose gradients are checked (only these
                 require grad, so a gradient for another input is never used)
    reference -- (arrays, g) -> list of the right gradients, computed here
    case      -- words describing the inputs, added to the message
    batch     -- N, to recognise a missing (or doubled) 1/N
    coverage  -- {input index: array of how many windows hold each element}
    numeric   -- (i, g) -> the numerical derivative of the forward, when the
                 forward is tinynet's (else the student's forward is asked for
                 its values at x ± eps, only to word the message)
    """
    y, grads = run_backward(st, label, cls, init, arrays, names, wrt, seed=seed,
                            refused=refused, substitute=substitute)
    v = upstream(y.shape, seed)
    right = reference(arrays, v)
    where = f" ({case})" if case else ""
    for i in wrt:
        scale = float(np.abs(right[i]).max()) or 1.0
        got = grads[i]
        if _close(got, right[i], scale):
            continue
        name = names[i]
        if numeric is not None:
            num = numeric(i, v)
        else:
            reply = st.request("forwards", cls=cls, init=list(init), arrays=list(arrays),
                               index=i, substitute=substitute)
            num = numeric_from_forwards(reply, v).reshape(np.shape(arrays[i]))
        element = gradcheck_element(got, num)
        if element is None:
            diff = ~np.isclose(got, right[i], rtol=RTOL, atol=1e-7 * scale)
            first = tuple(int(k) for k in np.argwhere(diff)[0])
            raise Fail(
                f"{label}: d{name} agrees with the derivative of YOUR forward, but "
                f"your forward computes the wrong function{where}, so d{name} is "
                f"wrong too: at element {first} yours is {fmt(got[first])}, the "
                f"right value {fmt(right[i][first])}. Fix forward first.", WRONG)
        a, n = float(got[element]), float(num[element])
        rel = abs(a - n) / max(abs(n), 1e-12)
        hint = diagnose(name, got, num, batch=batch, coverage=(coverage or {}).get(i),
                        context=context, g_value=float(v) if v.size == 1 else None)
        raise Fail(
            f"{label}: the gradient with respect to {name} is wrong{where}.\n"
            f"gradcheck: at element {element} of {name} your backward gives "
            f"{fmt(a)}, the numerical derivative is {fmt(n)} "
            f"(relative error {rel:.3g}).\n{hint}", WRONG)
    return True
