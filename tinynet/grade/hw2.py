"""hw2_conv_backward: Conv2D backward with im2col / col2im.

The student's notebook defines (given) ``conv_output_size`` and ``im2col``,
and writes

    col2im(cols, x_shape, KH, KW, stride=1, pad=0) -> dx     the adjoint of im2col
    class Conv2D(tn.Function)   __init__(self, stride=1, pad=0), forward (given),
                                backward(g) -> (dx, dW, db)

im2col's layout is tinynet's: cols (C·KH·KW, N·OH·OW), rows ordered
(c, kh, kw), columns (n, i, j); stride and pad are ints.

Parts (10 points):

    col2im    3   the adjoint of im2col: overlapping windows add up, padding is cropped
    conv_dw   2   dW = g2 @ colsᵀ, reshaped to (O, C, KH, KW)
    conv_db   1   db = g summed over N, OH, OW
    conv_dx   4   dx = col2im(W2ᵀ @ g2)   (graded with a correct col2im if yours failed)
"""
import numpy as np

from tinynet.grade.core import (NOT_IMPLEMENTED, WRONG, Assignment, Fail, Part, lookup,
                                lookup_function_class, require_array, unwrap)
from tinynet.grade.gradients import gradcheck_element, diagnose, shape_problem, upstream
from tinynet.grade.gradients import check_gradients
from tinynet.grade.core import fmt
from tinynet.ops.conv import col2im as _ref_col2im
from tinynet.ops.conv import conv2d
from tinynet.ops.conv import im2col as _ref_im2col
from tinynet.tensor import Tensor

ID = "hw2_conv_backward"

# (x shape, KH, KW, stride, pad), simplest first: windows side by side, then
# overlapping windows, stride with padding, a rectangular kernel.
COL2IM_CASES = [
    ((2, 2, 4, 4), 2, 2, 2, 0),
    ((2, 2, 5, 5), 3, 3, 1, 0),
    ((1, 3, 7, 7), 3, 3, 2, 1),
    ((2, 1, 5, 6), 2, 3, 1, 1),
]

# (x shape, W shape, stride, pad)
CONV_CASES = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0),
    ((2, 2, 7, 7), (3, 2, 3, 3), 2, 1),
    ((1, 2, 5, 6), (2, 2, 2, 3), 1, 1),
]
CONV_NAMES = ["x", "W", "b"]


def _describe(x_shape, kh, kw, stride, pad):
    return f"x {x_shape}, kernel {kh}x{kw}, stride {stride}, padding {pad}"


#: tinynet's own implementations the student's code must not call while graded.
COL2IM_REFUSED = ["tinynet.ops.conv:col2im"]
CONV_REFUSED = ["tinynet.tensor:Tensor.backward", "tinynet.ops.conv:Conv2D.backward",
                "tinynet.ops.conv:conv2d"]


def check_col2im(st, ctx):
    """col2im is the backward of im2col: col2im(g) must be the gradient of sum(g * im2col(x)).

    im2col is tinynet's and runs here, so its numerical derivative is exactly
    tinynet's col2im: the message reads as gradcheck's would.
    """
    col2im = lookup(st, ctx, "col2im")
    for k, (x_shape, kh, kw, stride, pad) in enumerate(COL2IM_CASES):
        x = np.random.default_rng(20 + k).standard_normal(x_shape)
        cols_shape = _ref_im2col(x, kh, kw, stride, pad).shape
        coverage = _ref_col2im(np.ones(cols_shape), x_shape, kh, kw, stride, pad)
        overlap = (f" (the kernel is {kh}x{kw} but the stride only {stride}, so neighbouring "
                   f"windows overlap)")
        g = upstream(cols_shape, 0)
        reply = st.request("call", name=col2im, args=[g, list(x_shape), kh, kw, stride, pad],
                           refused=COL2IM_REFUSED)
        got = require_array("col2im's result", unwrap(reply))
        case = _describe(x_shape, kh, kw, stride, pad)
        if got.shape != tuple(x_shape):
            raise Fail("col2im: " + shape_problem("x", got.shape, x_shape), WRONG)
        got = np.asarray(got, dtype=np.float64)
        right = _ref_col2im(g, x_shape, kh, kw, stride, pad)
        scale = float(np.abs(right).max()) or 1.0
        if np.allclose(got, right, rtol=1e-4, atol=1e-7 * scale + 1e-12):
            continue
        element = gradcheck_element(got, right) or tuple(
            int(i) for i in np.argwhere(~np.isclose(got, right))[0])
        a, n = float(got[element]), float(right[element])
        rel = abs(a - n) / max(abs(n), 1e-12)
        hint = diagnose("x", got, right, coverage=coverage, context=overlap)
        raise Fail(f"col2im: the gradient with respect to x is wrong ({case}).\n"
                   f"gradcheck: at element {element} of x your backward gives {fmt(a)}, "
                   f"the numerical derivative is {fmt(n)} (relative error {rel:.3g}).\n"
                   f"{hint}", WRONG)
    return ("col2im is the adjoint of im2col: windows side by side, overlapping windows, "
            "stride 2 with padding, and a 2x3 kernel.")


def _conv_reference(stride, pad):
    """The right (dx, dW, db) for upstream gradient g, from tinynet's own conv2d."""
    def reference(arrays, g):
        xs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
        conv2d(*xs, stride=stride, padding=pad).backward(np.array(g, dtype=np.float64))
        return [t.grad.numpy() for t in xs]
    return reference


def _check_conv_with(st, ctx, which, substitute=None):
    Conv2D = lookup_function_class(st, ctx, "Conv2D")
    for k, (x_shape, w_shape, stride, pad) in enumerate(CONV_CASES):
        rng = np.random.default_rng(30 + k)
        arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape),
                  rng.standard_normal(w_shape[0])]
        case = (f"x {x_shape}, W {w_shape}, stride {stride}, padding {pad}")
        check_gradients(st, "Conv2D.backward", Conv2D, [stride, pad], arrays, CONV_NAMES,
                        [which], case=case, reference=_conv_reference(stride, pad),
                        refused=CONV_REFUSED, substitute=substitute)
    return (f"d{CONV_NAMES[which]} passes gradcheck with stride 1 and 2, padding 0 and 1, "
            f"square and rectangular kernels.")


def _col2im_passed(st, ctx):
    if "col2im" in ctx.prior:
        return ctx.passed("col2im")
    try:                        # graded on its own (tinynet.grade.check with one part)
        check_col2im(st, ctx)
        return True
    except Fail:
        return False


def _check_conv(st, ctx, which):
    """Conv2D.backward's gradient number ``which``.

    Backward calls col2im (for dx, and usually also when only dW is asked
    for). If col2im failed its own part -- wrong, missing, raising or looping
    forever -- grade Conv2D.backward with a correct col2im in its place (the
    student process puts tinynet's in the student's namespace for that call),
    so one bug is not charged twice.
    """
    if _col2im_passed(st, ctx):
        return _check_conv_with(st, ctx, which)
    note = "(Checked with a correct col2im in place of yours, which failed its own part"
    try:
        message = _check_conv_with(st, ctx, which, substitute=["col2im"])
    except Fail as exc:
        if exc.reason == NOT_IMPLEMENTED:
            raise
        raise Fail(f"{exc}\n{note}.)", exc.reason) from None
    return f"{message} {note}: fix col2im and this part stays right.)"


def check_conv_dw(st, ctx):
    return _check_conv(st, ctx, 1)


def check_conv_db(st, ctx):
    return _check_conv(st, ctx, 2)


def check_conv_dx(st, ctx):
    return _check_conv(st, ctx, 0)


ASSIGNMENT = Assignment(
    ID, "Conv2D backward with im2col / col2im", "hw2_conv_backward.ipynb", [
        Part("col2im", 3, "col2im, the adjoint of im2col", check_col2im),
        Part("conv_dw", 2, "Conv2D.backward: dW", check_conv_dw),
        Part("conv_db", 1, "Conv2D.backward: db", check_conv_db),
        Part("conv_dx", 4, "Conv2D.backward: dx", check_conv_dx),
    ])
