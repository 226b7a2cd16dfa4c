"""fit / evaluate: the training loop every lesson uses, with a progress bar and a History.

    history = fit(model, F.softmax_cross_entropy, optim.Adam(model.parameters()),
                  DataLoader(x, y, batch_size=64), epochs=3, val_data=(x_test, y_test))
    history.plot()                    # a matplotlib Figure: loss and accuracy curves
    evaluate(model, F.softmax_cross_entropy, (x_test, y_test))   # {"loss": ..., "acc": ...}

One step is: forward, loss, ``optimizer.zero_grad()``, ``loss.backward()``,
``optimizer.step()``.  The gradients therefore stay on the parameters until
the next step starts, so a callback's ``on_batch_end`` can read them.  Per
step the loop reads the device once, right after the loss is computed (the
loss and the accuracy travel together; the accuracy is computed where the
logits are), so a non-finite loss stops training before its update is applied.

Callbacks are objects with any of the methods ``on_train_begin``,
``on_epoch_begin``, ``on_batch_begin``, ``on_batch_end``, ``on_epoch_end``,
``on_train_end``; each is called with a :class:`TrainState`.  Setting
``state.stop = True`` ends training after the current batch (the epoch is
still summarized, validated and reported).

Checkpoints: ``save(model, path, optimizer=None)`` and
``load(model, path, optimizer=None, strict=True)`` (from tinynet.checkpoint).
"""
import math
import numbers
import sys
import time

import numpy as np

from tinynet import backend
from tinynet.checkpoint import load, save  # noqa: F401  (re-exported)
from tinynet.tensor import Tensor, no_grad

__all__ = ["fit", "evaluate", "History", "TrainState", "save", "load"]

HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_begin", "on_batch_end",
         "on_epoch_end", "on_train_end")


# --------------------------------------------------------------------------
# History and the state handed to callbacks
# --------------------------------------------------------------------------
class History:
    """What fit() measured.

    ``batch["loss"]``, ``batch["acc"]``: one float per optimizer step.
    ``epoch["loss"]``, ``epoch["acc"]``: per epoch, the mean over its samples.
    ``epoch["val_loss"]``, ``epoch["val_acc"]``: per epoch, when val_data was given
    (empty lists otherwise).  ``epoch_end_steps``: the step count at each epoch's end.
    Accuracy is NaN when the outputs/labels are not a classification (N, C)/(N,).
    """

    def __init__(self):
        self.batch = {"loss": [], "acc": []}
        self.epoch = {"loss": [], "acc": [], "val_loss": [], "val_acc": []}
        self.epoch_end_steps = []

    @property
    def steps(self):
        return len(self.batch["loss"])

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.epoch.items() if v}
        return f"History({len(self.epoch['loss'])} epochs, {self.steps} steps, last={last})"

    def plot(self, figsize=(10, 3.6)):
        """A matplotlib Figure with the loss (left) and accuracy (right) curves.

        Thin line: every step; dots: the epoch means; squares: validation.
        Built like every tinynet figure (``tinynet.plot.new_figure``): shown inline in
        Jupyter, by ``plt.show()`` / ``fig.show()`` in a script, and held by nothing
        headless: ``history.plot().savefig("curves.png")``.
        """
        from tinynet.plot import new_figure

        fig = new_figure(figsize=figsize, layout="constrained")
        steps = np.arange(1, self.steps + 1)
        ends = self.epoch_end_steps
        for i, (key, label) in enumerate((("loss", "loss"), ("acc", "accuracy"))):
            ax = fig.add_subplot(1, 2, i + 1)
            if self.batch[key]:
                ax.plot(steps, self.batch[key], lw=0.8, alpha=0.45, color="C0",
                        label=f"train {label} (per step)")
            if self.epoch[key]:
                ax.plot(ends, self.epoch[key], "o-", color="C0",
                        label=f"train {label} (epoch mean)")
            val = self.epoch["val_" + key]
            if val:
                ax.plot(ends[:len(val)], val, "s--", color="C1", label=f"validation {label}")
            ax.set_xlabel("step")
            ax.set_ylabel(label)
            ax.set_title(label)
            if key == "acc":
                ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize="small")
        return fig


class TrainState:
    """Handed to every callback.

    model, optimizer, history; epochs (total asked for); epoch (0-based);
    batch (0-based index within the epoch); step (optimizer steps done so far,
    1 after the first); loss, acc (floats of the last batch); x, y, logits (the
    last batch's Tensors; the graph is already freed); logs (per-epoch means,
    set before ``on_epoch_end``); stop (set True to end training).
    """

    def __init__(self, model, optimizer, history, epochs):
        self.model, self.optimizer, self.history, self.epochs = model, optimizer, history, epochs
        self.epoch = 0
        self.batch = 0
        self.step = 0
        self.loss = self.acc = math.nan
        self.x = self.y = self.logits = None
        self.logs = {}
        self.stop = False


# --------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------
def fit(model, loss_fn, optimizer, data, epochs=1, val_data=None, callbacks=(),
        progress=None, device=None, max_steps=None):
    """Train ``model`` on ``data`` for ``epochs`` epochs; returns a :class:`History`.

    data: a DataLoader or any re-iterable of (x, y) batches (numpy arrays or
        Tensors; numpy batches become Tensors on the model's device, x in the
        model's float dtype, integer labels kept as they are).
    val_data: evaluated after each epoch with :func:`evaluate`; a DataLoader,
        an iterable of batches, or an (x, y) pair of arrays.
    progress: None (the default) picks what the place can show: a tqdm bar in a
        terminal, tqdm's notebook bar in Jupyter (with ipywidgets), and one
        line per epoch on stdout anywhere else (Jupyter without widgets, logs,
        pipes).  True: a bar always (tqdm.auto); False: nothing.
    device: where batches go; defaults to the model's device (the model is
        never moved: call ``model.to(device)`` before creating the optimizer).
    max_steps: stop after this many optimizer steps in total.
    """
    epochs = _check_count("fit", "epochs", epochs, minimum=0)
    if max_steps is not None:
        max_steps = _check_count("fit", "max_steps", max_steps, minimum=1)
    if _is_array_pair(data):
        raise TypeError("fit: data is an (x, y) pair of arrays; wrap it in batches: "
                        "fit(..., tinynet.data.DataLoader(x, y, batch_size=64), ...)")
    device, dtype = _model_device_dtype(model, device, "fit")
    hooks = _collect_hooks(callbacks)
    history = History()
    state = TrainState(model, optimizer, history, epochs)
    mode = _progress_mode(progress)

    _call(hooks["on_train_begin"], state)
    for epoch in range(epochs):
        state.epoch = epoch
        _set_mode(model, True)
        _call(hooks["on_epoch_begin"], state)
        bar = (_make_bar(data, epoch, epochs, max_steps, state.step, mode)
               if mode in ("bar", "notebook") else None)
        started = time.monotonic()
        seen, loss_sum, acc_sum, last_post = 0, 0.0, 0.0, 0.0
        try:
            for i, batch in enumerate(data):
                x, y = _as_batch(batch, device, dtype, "fit")
                state.batch = i
                _call(hooks["on_batch_begin"], state)
                where = f"epoch {epoch + 1}, step {state.step + 1}, batch {i}"
                try:
                    logits = model(x)
                    loss = loss_fn(logits, y)
                    _check_loss(loss, "fit")
                    # Read now: the forward pass is finished here (the loss has been
                    # computed), so this is the step's only wait for the device.
                    loss_v, acc_v = _loss_and_acc(loss, logits, y)
                    if not math.isfinite(loss_v):
                        raise FloatingPointError(
                            f"fit: the loss is {loss_v} ({where}; this step's update was "
                            f"not applied); lower the learning rate or check the inputs "
                            f"and labels")
                    optimizer.zero_grad()
                    loss.backward()
                except FloatingPointError as exc:
                    raise _located(exc, where) from exc
                optimizer.step()
                state.step += 1
                n = x.shape[0]
                seen += n
                loss_sum += loss_v * n
                acc_sum += acc_v * n
                history.batch["loss"].append(loss_v)
                history.batch["acc"].append(acc_v)
                state.loss, state.acc, state.x, state.y, state.logits = loss_v, acc_v, x, y, logits
                _call(hooks["on_batch_end"], state)
                if bar is not None:
                    bar.update(1)
                    now = time.monotonic()
                    if now - last_post > 0.2:
                        bar.set_postfix_str(f"loss={loss_v:.4f} acc={acc_v:.3f}", refresh=False)
                        last_post = now
                if state.stop or (max_steps is not None and state.step >= max_steps):
                    break
            if seen == 0:
                raise ValueError(
                    f"fit: data yielded no batches in epoch {epoch + 1}; a generator or "
                    f"zip() can be iterated only once -- pass a DataLoader or a list")
            logs = {"loss": loss_sum / seen, "acc": acc_sum / seen}
            history.epoch["loss"].append(logs["loss"])
            history.epoch["acc"].append(logs["acc"])
            history.epoch_end_steps.append(state.step)
            if val_data is not None:
                result = evaluate(model, loss_fn, val_data, device=device)
                logs["val_loss"], logs["val_acc"] = result["loss"], result["acc"]
                history.epoch["val_loss"].append(result["loss"])
                history.epoch["val_acc"].append(result["acc"])
            if bar is not None:
                bar.set_postfix_str(" ".join(f"{k}={v:.4f}" for k, v in logs.items()),
                                    refresh=True)
            elif mode == "lines":
                _epoch_line(epoch, epochs, state.step, logs, time.monotonic() - started)
        finally:
            if bar is not None:
                bar.close()
        state.logs = logs
        _call(hooks["on_epoch_end"], state)
        if state.stop or (max_steps is not None and state.step >= max_steps):
            break
    _call(hooks["on_train_end"], state)
    return history


# --------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------
def evaluate(model, loss_fn, data, batch_size=512, device=None):
    """Mean loss and accuracy of ``model`` over ``data``: ``{"loss": .., "acc": ..}``.

    Runs under ``no_grad()`` with ``model.eval()`` and puts the model back in
    the mode it was in.  ``data``: an (x, y) pair of arrays/Tensors (split
    into ``batch_size`` batches), a DataLoader or an iterable of batches.
    Means are over samples; acc is NaN when it does not apply.
    """
    batch_size = _check_count("evaluate", "batch_size", batch_size, minimum=1)
    device, dtype = _model_device_dtype(model, device, "evaluate")
    batches = _split(data, batch_size) if _is_array_pair(data) else data
    was_training = getattr(model, "training", None)
    _set_mode(model, False)
    loss_total = correct = None          # device scalars, read once at the end
    classification = True
    seen = 0
    try:
        with no_grad():
            for i, batch in enumerate(batches):
                x, y = _as_batch(batch, device, dtype, "evaluate")
                try:
                    out = model(x)
                    loss = loss_fn(out, y)
                    _check_loss(loss, "evaluate")
                except FloatingPointError as exc:
                    raise _located(exc, f"evaluate, batch {i}") from exc
                n = x.shape[0]
                seen += n
                part = loss.data.reshape(()).astype(np.float64) * n
                loss_total = part if loss_total is None else loss_total + part
                hits = _hits(out.data, y.data) if classification else None
                if hits is None:
                    classification = False
                else:
                    correct = hits if correct is None else correct + hits
    finally:
        if was_training is not None:
            _set_mode(model, was_training)
    if seen == 0:
        raise ValueError("evaluate: data yielded no batches")
    if not classification:
        return {"loss": float(backend.to_numpy(loss_total)) / seen, "acc": math.nan}
    xp = backend.array_module(loss_total)
    both = backend.to_numpy(xp.stack([loss_total, correct.astype(np.float64)]))  # one read
    return {"loss": float(both[0]) / seen, "acc": float(both[1]) / seen}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _check_count(where, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_loss(loss, where):
    if not isinstance(loss, Tensor):
        raise TypeError(f"{where}: loss_fn must return a Tensor, got {type(loss).__name__}")
    if loss.size != 1:
        raise ValueError(f"{where}: loss_fn must return a scalar (one element), got shape "
                         f"{loss.shape}; take its .mean()")


def _located(exc, where):
    """The same FloatingPointError with where it happened, unless it already says."""
    msg = str(exc)
    if "epoch" in msg:
        return exc
    return FloatingPointError(f"{msg} ({where})")


def _model_device_dtype(model, device, where):
    """(device, float dtype) for the batches: the model's, checked against ``device``."""
    first = None
    params = getattr(model, "parameters", None)
    if callable(params):
        first = next(iter(params()), None)
    model_device = first.device if first is not None else None
    dtype = first.dtype if first is not None else np.dtype(np.float32)
    if device is None:
        return model_device or "cpu", dtype
    device = backend.normalize_device(device)
    if model_device is not None and model_device != device:
        raise backend.DeviceError(
            f"{where}: the model is on {model_device} but device={device!r}; call "
            f"model.to({device!r}) before creating the optimizer, then pass device={device!r}")
    return device, dtype


def _is_array_pair(data):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        return False
    return all(isinstance(a, (np.ndarray, Tensor)) or backend.is_device_array(a)
               for a in data)


def _split(pair, batch_size):
    x, y = pair
    n = len(x)
    if len(y) != n:
        raise ValueError(f"evaluate: x has {n} samples but y has {len(y)}")
    for start in range(0, n, batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def _to_tensor(a, device, dtype):
    """A Tensor on ``device``; arrays (not Tensors) are cast to ``dtype`` when given."""
    if isinstance(a, Tensor):
        return a if a.device == device else a.to(device)
    if device == "cpu" and not backend.is_device_array(a):
        return Tensor(np.asarray(a, dtype=dtype))          # no copy when already right
    arr = backend.to_device(a, device)
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return Tensor(arr)


def _as_batch(batch, device, dtype, where):
    try:
        x, y = batch
    except (TypeError, ValueError):
        raise TypeError(f"{where}: each batch must be an (x, y) pair, got "
                        f"{type(batch).__name__}") from None
    x = _to_tensor(x, device, dtype)
    y_kind = np.dtype(y.dtype).kind if hasattr(y, "dtype") else np.asarray(y).dtype.kind
    y = _to_tensor(y, device, dtype if y_kind == "f" else None)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: a batch has {x.shape[0]} inputs but {y.shape[0]} labels")
    return x, y


def _hits(out, labels):
    """Number of correct predictions as a device 0-d array, or None if not a classification."""
    if out.ndim != 2:
        return None
    if labels.ndim == 1 and labels.shape[0] == out.shape[0]:
        return (out.argmax(axis=1) == labels).sum()
    if labels.shape == out.shape and out.shape[1] > 1:
        return (out.argmax(axis=1) == labels.argmax(axis=1)).sum()
    return None


def _loss_and_acc(loss, logits, y):
    """(loss, accuracy) as Python floats with a single device read."""
    ld = loss.data.reshape(())
    hits = _hits(logits.data, y.data)
    n = logits.shape[0]
    if backend.is_device_array(ld):
        if hits is None:
            return float(backend.to_numpy(ld)), math.nan
        xp = backend.array_module(ld)
        both = backend.to_numpy(xp.stack([ld.astype(np.float64), hits.astype(np.float64)]))
        return float(both[0]), float(both[1]) / n
    return float(ld), (math.nan if hits is None else float(hits) / n)


def _set_mode(model, training):
    method = getattr(model, "train" if training else "eval", None)
    if callable(method):
        method()


def _collect_hooks(callbacks):
    if callbacks is None:
        callbacks = ()
    elif any(hasattr(callbacks, h) for h in HOOKS):
        callbacks = (callbacks,)          # a single callback object
    callbacks = list(callbacks)
    for cb in callbacks:
        if not any(callable(getattr(cb, h, None)) for h in HOOKS):
            raise TypeError(f"fit: callback {cb!r} has none of the methods {', '.join(HOOKS)}")
    return {h: [getattr(cb, h) for cb in callbacks if callable(getattr(cb, h, None))]
            for h in HOOKS}


def _call(fns, state):
    for fn in fns:
        fn(state)


def _stderr_is_terminal():
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):   # replaced or closed stderr
        return False


def _in_jupyter():
    """True inside a Jupyter kernel (IPython's ZMQ shell), where stderr is no terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _has_widgets():
    import importlib.util
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):
        return False


def _progress_mode(progress):
    """"bar" (tqdm on stderr), "notebook" (tqdm's widget), "lines" (one line per epoch) or None."""
    if progress is not None and not progress:
        return None
    if progress is None and _stderr_is_terminal():
        return "bar"
    if _in_jupyter() and _has_widgets():
        return "notebook"
    return "bar" if progress else "lines"


def _epoch_line(epoch, epochs, step, logs, seconds):
    """One line per epoch, for places with no live bar (Jupyter without widgets, logs)."""
    values = " ".join(f"{k}={v:.4f}" for k, v in logs.items())
    print(f"epoch {epoch + 1}/{epochs}: step {step}, {values} ({seconds:.1f} s)",
          file=sys.stdout, flush=True)


def _make_bar(data, epoch, epochs, max_steps, steps_done, mode="bar"):
    if mode == "notebook":
        from tqdm.notebook import tqdm
    else:
        from tqdm import tqdm

    try:
        total = len(data)
    except TypeError:
        total = None
    if max_steps is not None:
        left = max_steps - steps_done
        total = left if total is None else min(total, left)
    if mode == "notebook":
        return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=True)
    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                file=sys.stderr, dynamic_ncols=True, leave=True)
