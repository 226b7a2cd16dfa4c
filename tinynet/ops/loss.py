"""Classification losses: softmax cross-entropy (fused, stable) and nll_loss.

Notation: N samples, C classes; z = logits (N, C).  Labels are either class
ids y (N,) -- integers in 0..C-1 -- or target rows t (N, C): one-hot or
probabilities.

    log p   = z - logsumexp(z)       computed as (z - max z) - log sum exp(z - max z),
                                     so exp never overflows
    loss_i  = -log p[i, y_i]         (class ids)
            = -sum_c t[i, c] log p[i, c]      (target rows)
    loss    = mean over i  (reduction="mean", the default), the sum, or the (N,) vector

    dz      = (softmax(z) - onehot(y)) / N                 (mean of class ids)
            = (softmax(z) * sum_c t[i, c] - t) / N         (target rows; sum_c t = 1
                                                            for one-hot or probabilities)

Labels are constants: no gradient flows into them.  They may be a Tensor, a
numpy or cupy array, or a list; host labels are moved to the logits' device.

A loss that is NaN or infinite stops training with a FloatingPointError that
says what blew up (``on_nonfinite="warn"`` warns instead, ``"ignore"`` skips
the check; :func:`set_on_nonfinite` changes the default for every call).  The
check reads one scalar back from the device -- once per call, together with
the range check of class ids that live on the device.
"""
import warnings

import numpy as np

from tinynet import backend
from tinynet.backend import array_module
from tinynet.tensor import Function, Tensor, as_tensor

NONFINITE_MODES = ("raise", "warn", "ignore")
REDUCTIONS = ("mean", "sum", "none")
_on_nonfinite = "raise"


class NonFiniteLossWarning(UserWarning):
    """The loss is NaN or infinite (issued when on_nonfinite="warn")."""


def set_on_nonfinite(mode):
    """Set what a NaN/Inf loss does by default: "raise", "warn" or "ignore".

    Returns the previous mode, so a caller can put it back.
    """
    global _on_nonfinite
    _check_mode(mode)
    previous, _on_nonfinite = _on_nonfinite, mode
    return previous


def get_on_nonfinite():
    return _on_nonfinite


def _check_mode(mode):
    if mode not in NONFINITE_MODES:
        raise ValueError(f"on_nonfinite must be one of {NONFINITE_MODES}, got {mode!r}")


# --------------------------------------------------------------------------
# the fused op
# --------------------------------------------------------------------------
class SoftmaxCrossEntropy(Function):
    """loss = reduce(-log softmax(z)[labels]);  dz = (softmax(z) - onehot) * g / N.

    ``labels``: int class ids (N,) or float target rows (N, C), already on z's
    device and checked by the wrapper.
    """

    def __init__(self, labels, reduction="mean"):
        self.labels = labels
        self.ids = labels.ndim == 1
        self.reduction = reduction

    def forward(self, z):
        xp = array_module(z)
        n = z.shape[0]
        # Non-finite logits are reported by the wrapper, in words, not as numpy warnings.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            shifted = z - z.max(axis=1, keepdims=True)        # (N, C), max 0 per row
            e = xp.exp(shifted)
            s = e.sum(axis=1, keepdims=True)                  # (N, 1), in [1, C]
            log_s = xp.log(s)[:, 0]
            if self.ids:
                self.rows = xp.arange(n)
                losses = log_s - shifted[self.rows, self.labels]
            else:
                t = self.labels
                losses = log_s * t.sum(axis=1) - (t * shifted).sum(axis=1)
            e /= s
        self.p = e                                            # softmax(z), for backward
        self.n = n
        if self.reduction == "mean":
            return xp.asarray(losses.mean())
        if self.reduction == "sum":
            return xp.asarray(losses.sum())
        return losses

    def backward(self, g):
        if self.ids:
            dz = self.p.copy()
            dz[self.rows, self.labels] -= 1
        else:
            t = self.labels
            dz = self.p * t.sum(axis=1, keepdims=True) - t
        if self.reduction == "mean":
            dz *= g / self.n
        elif self.reduction == "sum":
            dz *= g
        else:
            dz *= g[:, None]
        return (dz,)


# --------------------------------------------------------------------------
# checking the arguments
# --------------------------------------------------------------------------
def _check_logits(where, z, what="logits"):
    if z.ndim != 2:
        hint = ""
        if z.ndim == 1:
            hint = f"; for a single sample use {what}.reshape(1, -1)"
        elif z.ndim > 2:
            hint = "; flatten them to (N, C) first"
        raise ValueError(f"{where}: expected {what} of shape (N, C), got {z.shape}{hint}")
    if not np.issubdtype(np.dtype(z.dtype), np.floating):
        raise TypeError(f"{where}: {what} must be float32 or float64, got {z.dtype}")
    if z.shape[0] == 0:
        raise ValueError(f"{where}: the batch is empty ({what} of shape {z.shape})")


def _prepare_labels(where, z, labels):
    """labels as an array on z's device: int ids (N,) or target rows (N, C) in z's dtype.

    Returns (array, ids_on_device): ids that still need their range checked
    (host ids are checked here, for free).
    """
    if isinstance(labels, Tensor):
        labels = labels.data
    if not (isinstance(labels, np.ndarray) or backend.is_device_array(labels)):
        labels = np.asarray(labels)
    n, c = z.shape
    on_device = backend.is_device_array(labels)
    if on_device and z.device == "cpu":
        raise backend.DeviceError(f"{where}: the labels are on cuda but the logits are on "
                                  f"cpu; move one of them with .to(...)")
    dtype = np.dtype(labels.dtype)
    is_int = np.issubdtype(dtype, np.integer)
    if labels.ndim == 1:
        if not is_int:
            raise TypeError(
                f"{where}: labels of shape ({labels.shape[0]},) must be integer class ids, "
                f"got {dtype}; convert them with labels.astype('int64'), or pass one-hot / "
                f"probability rows of shape (N, {c})")
        if labels.shape[0] != n:
            raise ValueError(f"{where}: got {labels.shape[0]} labels for a batch of {n} "
                             f"(logits of shape {z.shape}); expected one label per sample")
        if not on_device:
            _check_id_range(where, labels, c)
        labels = backend.to_device(labels, z.device)
        return labels, on_device
    if labels.ndim == 2:
        if labels.shape[0] != n:
            raise ValueError(f"{where}: got {labels.shape[0]} label rows for a batch of {n} "
                             f"(logits of shape {z.shape}); expected one label per sample")
        if labels.shape[1] != c:
            hint = (f"; class ids of shape ({n}, 1) should be passed as labels.reshape(-1)"
                    if labels.shape[1] == 1 and is_int else "")
            raise ValueError(f"{where}: expected one-hot or probability rows of shape "
                             f"{(n, c)}, got {labels.shape}{hint}")
        if not (is_int or dtype == np.bool_ or np.issubdtype(dtype, np.floating)):
            raise TypeError(f"{where}: labels must be numbers, got {dtype}")
        labels = backend.to_device(labels, z.device).astype(z.dtype, copy=False)
        _check_probability_rows(where, labels)
        return labels, False
    raise ValueError(f"{where}: expected labels of shape (N,) (class ids) or (N, C) (one-hot "
                     f"rows) for logits of shape {z.shape}, got {labels.shape}")


#: how far from 1 a row of soft labels may sum (float32 rounding of a normalized row)
ROW_SUM_TOL = 1e-3


def _check_probability_rows(where, rows):
    """Each row of one-hot / soft labels (N, C) must be non-negative and sum to 1.

    One reduction per row on the rows' device; only two scalars and, on a
    failure, one row come back to the host.
    """
    xp = array_module(rows)
    sums, mins = rows.sum(axis=1), rows.min(axis=1)
    # rows with NaN or inf are left to the non-finite loss check (and its on_nonfinite mode)
    bad = ((xp.abs(sums - 1) > ROW_SUM_TOL) | (mins < 0)) & xp.isfinite(sums)
    if not bool(backend.to_numpy(bad.any())):
        return
    i = int(backend.to_numpy(xp.flatnonzero(bad)[:1])[0])
    row_sum, row_min = float(backend.to_numpy(sums[i])), float(backend.to_numpy(mins[i]))
    raise ValueError(f"{where}: label row {i} is not a probability row: it sums to "
                     f"{row_sum:.6g} and its smallest entry is {row_min:.6g}; one-hot or soft "
                     f"labels must be non-negative and sum to 1 in every row (within "
                     f"{ROW_SUM_TOL:g}), e.g. rows / rows.sum(axis=1, keepdims=True)")


def _out_of_range(where, bad, c, position=None):
    at = f" at position {position}" if position is not None else ""
    return ValueError(f"{where}: label {bad}{at} is out of range for {c} classes; class ids "
                      f"must be in 0..{c - 1} (the logits have {c} columns)")


def _check_id_range(where, labels, c):
    bad = (labels < 0) | (labels >= c)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _out_of_range(where, int(labels[i]), c, i)


def _nonfinite_message(where, value, step, z, labels):
    xp = array_module(z.data)
    at = f" at step {step}" if step is not None else ""
    msg = f"{where}: the loss is {value}{at}. "
    n_nan, n_inf = int(xp.isnan(z.data).sum()), int(xp.isinf(z.data).sum())
    if n_nan or n_inf:
        msg += (f"The logits contain {n_nan} NaN and {n_inf} infinite values (of {z.size}): "
                f"the network blew up before the loss. Usual causes: a learning rate that is "
                f"too high (try 10x smaller), inputs that are not scaled (divide pixels by "
                f"255), or NaN in the data.")
    elif labels.ndim == 2 and not bool(xp.isfinite(labels).all()):
        msg += "The logits are finite; the label rows contain NaN or infinite values."
    else:
        big = float(xp.abs(z.data).max())
        msg += (f"The logits are finite but so far apart (largest |logit| {big:.3g}) that "
                f"{z.dtype} overflows; the weights have grown too large -- lower the "
                f"learning rate.")
    return msg


def _after_forward(where, out, z, labels, ids_on_device, step, mode):
    """The one device read per call: range of device class ids and finiteness of the loss."""
    mode = _on_nonfinite if mode is None else mode
    _check_mode(mode)
    check_finite = mode != "ignore"
    if not (check_finite or ids_on_device):
        return
    xp = array_module(out.data)
    parts = []
    if check_finite:
        loss = out.data
        parts.append(loss if loss.ndim == 0 else xp.isfinite(loss).all())
    if ids_on_device:
        parts += [labels.min(), labels.max()]
    host = backend.to_numpy(xp.stack([xp.asarray(p, dtype=xp.float64) for p in parts]))
    if ids_on_device:
        lo, hi = int(host[-2]), int(host[-1])
        if lo < 0 or hi >= z.shape[1]:
            raise _out_of_range(where, lo if lo < 0 else hi, z.shape[1])
    if not check_finite:
        return
    finite = host[0] != 0 if out.ndim == 1 else np.isfinite(host[0])
    if not finite:
        value = "not finite for some samples" if out.ndim == 1 else str(float(host[0]))
        msg = _nonfinite_message(where, value, step, z, labels)
        if mode == "raise":
            raise FloatingPointError(msg)
        warnings.warn(msg, NonFiniteLossWarning, stacklevel=3)


# --------------------------------------------------------------------------
# the functions
# --------------------------------------------------------------------------
def softmax_cross_entropy(logits, labels, reduction="mean", step=None, on_nonfinite=None):
    """Cross-entropy of softmax(logits) against labels, as one stable op.

    logits        (N, C) float Tensor
    labels        (N,) int class ids, or (N, C) one-hot / probability rows;
                  Tensor, numpy/cupy array or list
    reduction     "mean" (default) -> scalar, "sum" -> scalar, "none" -> (N,)
    step          optional training step, named in the NaN/Inf error
    on_nonfinite  "raise" (FloatingPointError), "warn" or "ignore"; None uses
                  the module default (see :func:`set_on_nonfinite`)
    """
    where = "softmax_cross_entropy"
    if reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    z = as_tensor(logits)
    _check_logits(where, z)
    labels, ids_on_device = _prepare_labels(where, z, labels)
    xp = array_module(z.data)
    gather = xp.clip(labels, 0, z.shape[1] - 1) if ids_on_device else labels
    out = SoftmaxCrossEntropy(gather, reduction)(z)
    _after_forward(where, out, z, labels, ids_on_device, step, on_nonfinite)
    return out


def nll_loss(log_probs, labels, reduction="mean", step=None, on_nonfinite=None):
    """Negative log-likelihood of log-probabilities (e.g. from log_softmax).

    log_probs (N, C); labels as in :func:`softmax_cross_entropy`.
    ``nll_loss(log_softmax(z), y)`` equals ``softmax_cross_entropy(z, y)``;
    the fused form is faster and is what a model should use.
    """
    where = "nll_loss"
    if reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    lp = as_tensor(log_probs)
    _check_logits(where, lp, what="log-probabilities")
    labels, ids_on_device = _prepare_labels(where, lp, labels)
    xp = array_module(lp.data)
    if labels.ndim == 1:
        gather = xp.clip(labels, 0, lp.shape[1] - 1) if ids_on_device else labels
        losses = -lp[xp.arange(lp.shape[0]), gather]
    else:
        losses = -(lp * Tensor(labels)).sum(axis=1)
    out = losses if reduction == "none" else (losses.mean() if reduction == "mean"
                                              else losses.sum())
    _after_forward(where, out, lp, labels, ids_on_device, step, on_nonfinite)
    return out


__all__ = ["SoftmaxCrossEntropy", "softmax_cross_entropy", "nll_loss", "set_on_nonfinite",
           "get_on_nonfinite", "NonFiniteLossWarning"]
