"""hw1_dense_softmax: Dense backward and softmax cross-entropy, forward and backward.

The student's notebook defines two tinynet Functions:

    class Dense(tn.Function)                    forward(x, w, b) = x @ w + b (given)
                                                backward(g) -> (dx, dW, db)   (to write)
    class SoftmaxCrossEntropy(tn.Function)      __init__(self, labels) (given)
                                                forward(z) -> mean loss, backward(g) -> (dz,)

Parts (10 points):

    dense_dx            2   dx = g @ Wᵀ
    dense_dw            2   dW = xᵀ @ g
    dense_db            1   db = sum of g over the batch
    softmax_ce_forward  2   mean of -log softmax(z)[label], stable for large logits
    softmax_ce_backward 3   dz = g * (softmax(z) - onehot) / N
"""
import numpy as np

from tinynet.grade.core import (WRONG, Assignment, Fail, Part, fmt, lookup_function_class,
                                require_array, unwrap)
from tinynet.grade.gradients import check_gradients

ID = "hw1_dense_softmax"

# (N, IN, OUT): a plain case, a square W (a transposed dW has the right shape
# there), and a batch of one.
DENSE_CASES = [(5, 4, 3), (6, 3, 3), (1, 6, 2)]
DENSE_NAMES = ["x", "W", "b"]


def _dense_arrays(n, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, n_in)), rng.standard_normal((n_in, n_out)),
            rng.standard_normal(n_out)]


def _dense_reference(arrays, g):
    x, w, _ = arrays
    return [g @ w.T, x.T @ g, g.sum(axis=0)]


#: tinynet's own implementations a student's Dense / SoftmaxCrossEntropy must not call
#: while graded (tinynet.grade.student.refuse); tinynet.grade.delegation reads the source.
DENSE_REFUSED = ["tinynet.tensor:Tensor.backward", "tinynet.ops.dense:Dense.backward",
                 "tinynet.ops.dense:dense", "tinynet.ops.matmul:MatMul.backward"]
SCE_REFUSED = ["tinynet.tensor:Tensor.backward", "tinynet.ops.loss:SoftmaxCrossEntropy.forward",
               "tinynet.ops.loss:SoftmaxCrossEntropy.backward",
               "tinynet.ops.loss:softmax_cross_entropy", "tinynet.ops.loss:nll_loss"]


def _check_dense(st, ctx, which):
    Dense = lookup_function_class(st, ctx, "Dense")
    for k, (n, n_in, n_out) in enumerate(DENSE_CASES):
        arrays = _dense_arrays(n, n_in, n_out, seed=10 + k)
        case = f"x {arrays[0].shape}, W {arrays[1].shape}, b {arrays[2].shape}"
        check_gradients(st, "Dense.backward", Dense, [], arrays, DENSE_NAMES, [which],
                        case=case, batch=n if n > 1 else None, reference=_dense_reference,
                        refused=DENSE_REFUSED)
    name = DENSE_NAMES[which]
    return (f"d{name} passes gradcheck for x @ W + b with {len(DENSE_CASES)} shapes "
            f"(a square W and a batch of one included).")


def check_dense_dx(st, ctx):
    return _check_dense(st, ctx, 0)


def check_dense_dw(st, ctx):
    return _check_dense(st, ctx, 1)


def check_dense_db(st, ctx):
    return _check_dense(st, ctx, 2)


# --------------------------------------------------------------------------
# softmax cross-entropy
# --------------------------------------------------------------------------
def _sce_cases():
    """(logits, labels, description): ordinary logits, then logits around 1000."""
    rng = np.random.default_rng(7)
    cases = []
    for n, c in ((5, 4), (8, 3)):
        z = rng.standard_normal((n, c)) * 2
        cases.append((z, rng.integers(0, c, n), f"logits of shape {(n, c)}"))
    z = rng.standard_normal((4, 5)) * 3 + 1000.0
    z[1] -= 2000.0                                   # one row around -1000
    cases.append((z, rng.integers(0, 5, 4),
                  "large logits, around +1000 and -1000 (exp overflows there)"))
    return cases


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _sce_loss(z, labels):
    return -_log_softmax(z)[np.arange(len(z)), labels].mean()


def _sce_reference(labels):
    def reference(arrays, g):
        z, = arrays
        p = np.exp(_log_softmax(z))
        p[np.arange(len(z)), labels] -= 1
        return [p * g / len(z)]
    return reference


def check_softmax_ce_forward(st, ctx):
    SCE = lookup_function_class(st, ctx, "SoftmaxCrossEntropy")
    for z, labels, case in _sce_cases():
        reply = st.request("function", cls=SCE, init=[labels], arrays=[z], wrt=[],
                           forward_only=True, refused=SCE_REFUSED)
        value = unwrap(reply, "y")
        if isinstance(value, np.generic):
            value = np.asarray(value)
        value = require_array("SoftmaxCrossEntropy.forward's result", value)
        n = len(z)
        if value.shape == (n,):
            raise Fail(f"SoftmaxCrossEntropy.forward returns one loss per sample (shape "
                       f"{value.shape}); return their MEAN, a scalar (shape ())", WRONG)
        if value.shape != ():
            raise Fail(f"SoftmaxCrossEntropy.forward returns shape {value.shape}; the loss "
                       f"is one number, the mean over the batch (shape ())", WRONG)
        want = _sce_loss(z, labels)
        got = float(value)
        if not np.isfinite(got):
            hint = ""
            if "large" in case:
                hint = (" exp(1000) overflows to inf. Subtract each row's maximum before "
                        "exp -- softmax(z) = softmax(z - max z) -- and compute log p as "
                        "(z - max) - log(sum(exp(z - max))).")
            raise Fail(f"SoftmaxCrossEntropy.forward gives {got} for {case}; the right loss "
                       f"is {fmt(want)}.{hint}", WRONG)
        if np.isclose(got, want, rtol=1e-6, atol=1e-9):
            continue
        if np.isclose(got, n * want, rtol=1e-6):
            hint = f"it is N = {n} times too large: return the mean over the batch, not the sum."
        elif np.isclose(got, -want, rtol=1e-6):
            hint = "the sign is off: the loss is MINUS the log-probability of the right class."
        else:
            hint = ("check that you pick log p at each sample's own label "
                    "(p[np.arange(N), labels]) and take the mean.")
        raise Fail(f"SoftmaxCrossEntropy.forward gives {fmt(got)} for {case}; the right loss "
                   f"is {fmt(want)}: {hint}", WRONG)
    return "the loss matches -mean(log softmax(z)[label]), also for logits around ±1000."


def check_softmax_ce_backward(st, ctx):
    SCE = lookup_function_class(st, ctx, "SoftmaxCrossEntropy")
    for z, labels, case in _sce_cases():
        check_gradients(st, "SoftmaxCrossEntropy.backward", SCE, [labels], [z], ["z"], [0],
                        case=case, batch=len(z), reference=_sce_reference(labels),
                        refused=SCE_REFUSED)
    return "dz = g (softmax(z) - onehot) / N passes gradcheck, also for logits around ±1000."


ASSIGNMENT = Assignment(
    ID, "Dense and softmax cross-entropy backward", "hw1_dense_softmax.ipynb", [
        Part("dense_dx", 2, "Dense.backward: dx", check_dense_dx),
        Part("dense_dw", 2, "Dense.backward: dW", check_dense_dw),
        Part("dense_db", 1, "Dense.backward: db", check_dense_db),
        Part("softmax_ce_forward", 2, "SoftmaxCrossEntropy.forward", check_softmax_ce_forward),
        Part("softmax_ce_backward", 3, "SoftmaxCrossEntropy.backward",
             check_softmax_ce_backward),
    ])
