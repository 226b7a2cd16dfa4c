"""Optimizers: SGD (momentum, Nesterov, weight decay), RMSprop and Adam.

Each one changes ``p.data`` IN PLACE, so a Parameter keeps its identity (the
model, the optimizer and any recorder all hold the same object) and its
device and dtype: float32 stays float32 -- hyperparameters are stored as
Python floats, which never promote an array (NEP 50; CuPy does the same).
The per-parameter state (momentum buffer, moving averages) lives beside the
parameter in the same dtype and on the same device; the update runs with the
array module's ufuncs writing into reused scratch buffers, so a step makes no
host round trip and allocates nothing after the first.

Notation (per parameter, all element-wise):  p the parameter, g its gradient,
lr the learning rate, t the number of updates this parameter has received
(1 on its first update).

    SGD      (PyTorch)   g <- g + wd*p;  v <- mu*v + g  (v = g on the first update)
                         p <- p - lr*(g + mu*v)  if nesterov,  else  p <- p - lr*v
    RMSprop  (Keras 2)   s <- rho*s + (1-rho)*g**2 ;  p <- p - lr*g / (sqrt(s) + eps)
    Adam     (PyTorch)   m <- b1*m + (1-b1)*g ;  v <- b2*v + (1-b2)*g**2
                         p <- p - lr * (m/(1-b1**t)) / (sqrt(v/(1-b2**t)) + eps)

RMSprop: s starts at 0 and eps is OUTSIDE the square root, as in Keras 2's
``keras.optimizers.RMSprop`` and in ``torch.optim.RMSprop(alpha=rho, eps=eps)``
(the two are then the same update).  tf.keras 2.x and Keras 3 put eps inside
the root, ``sqrt(s + eps)``; with eps=1e-7 that only matters where s is tiny.

Adam: eps is added to the bias-corrected root, as in PyTorch and in Kingma &
Ba's Algorithm 1.  TensorFlow 1's ``AdamOptimizer`` (and Keras 2's Adam)
instead use ``lr_t = lr*sqrt(1-b2**t)/(1-b1**t)`` and add their eps ("eps-hat")
to the uncorrected ``sqrt(v)``, i.e. our eps = their eps / sqrt(1-b2**t);
the updates differ only where sqrt(v) is comparable to eps.

Skipped parameters: a parameter whose ``.grad`` is None at ``step()`` is not
touched (its state does not advance either), and the skip is counted:
``opt.skipped[name]`` is the number of steps that skipped it and
``opt.last_skipped`` the names skipped by the last step.  The diagnostics use
this to tell "received no gradient" apart from "not in the optimizer" (a model
parameter missing from ``opt.names``).  Nothing else is recorded here.
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from tinynet import backend
from tinynet.ops._im2col import thread_scratch
from tinynet.ops._parallel import BLOCKS, block_bounds, run_blocks
from tinynet.tensor import Tensor, enable_grad

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam"]

#: thread_scratch slots of the optimizers' scratch arrays (ops use slots below 20)
_SCRATCH_SLOT = 20


def _check_number(opt, name, value, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a Python float, or raise naming the optimizer and the bound."""
    if isinstance(value, Tensor) or isinstance(value, bool) or \
            not isinstance(value, numbers.Real):
        raise TypeError(f"{opt}: {name} must be a real number, got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ValueError(f"{opt}: {name} must satisfy {lo}{name}{hi}, got {value!r}")
    return value


class Optimizer:
    """Base class: holds the parameters, their names, per-parameter state.

    ``params``: an iterable of Parameters (``model.parameters()``), or of
    ``(name, parameter)`` pairs / a mapping (``model.named_parameters()``),
    whose names then appear in error messages, ``skipped`` and ``state_dict``.
    Unnamed parameters are called ``param0``, ``param1``, ...

    Subclasses set ``state_keys`` (the arrays they keep per parameter) and
    implement ``_update(p, g, state, tmp)``: change ``p`` in place given its
    gradient array ``g``; ``tmp(k)`` returns the k-th scratch array shaped like p.
    """

    state_keys = ()

    def __init__(self, params, defaults):
        kind = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{kind}: params must be an iterable of parameters, got a single "
                            f"Tensor; wrap it in a list: {kind}([w], ...)")
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(f"{kind}: got the model itself; pass its parameters: "
                            f"{kind}(model.parameters(), ...)")
        if isinstance(params, Mapping):
            params = params.items()
        try:
            items = list(params)
        except TypeError:
            raise TypeError(f"{kind}: params must be an iterable of parameters, "
                            f"got {type(params).__name__}") from None
        if not items:
            raise ValueError(f"{kind}: got an empty parameter list; did you create the "
                             f"optimizer before adding layers to the model, or pass a "
                             f"generator that was already used up?")
        self.params, self.names = [], []
        seen = {}
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                name, p = item
            else:
                p = item
                name = getattr(p, "name", None) or f"param{i}"
            if not isinstance(p, Tensor):
                raise TypeError(f"{kind}: parameter {name!r} is a {type(p).__name__}, "
                                f"expected a Parameter or Tensor")
            if not p.requires_grad:
                raise ValueError(f"{kind}: parameter {name!r} (shape {p.shape}) does not "
                                 f"require grad, so it would never be updated; leave it out "
                                 f"(e.g. [p for p in model.parameters() if p.requires_grad])")
            if id(p) in seen:
                raise ValueError(f"{kind}: parameter {name!r} appears twice (also as "
                                 f"{seen[id(p)]!r}); each parameter may be given only once")
            if name in self.names:
                raise ValueError(f"{kind}: two parameters are both named {name!r}")
            seen[id(p)] = name
            self.params.append(p)
            self.names.append(name)
        self.defaults = dict(defaults)
        for key, value in self.defaults.items():
            setattr(self, key, value)
        self.state = [dict() for _ in self.params]   # per parameter: key -> array, "step" -> int
        self.step_count = 0
        self.skipped = {name: 0 for name in self.names}
        self.last_skipped = []
        self._scratch = {}

    # ---- the public loop --------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Forget the gradients (set ``.grad`` to None, or zero them in place)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; count the ones that don't.

        ``closure`` (optional) recomputes the loss and calls backward; its
        return value is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        skipped, ready = [], []
        for p, name, state in zip(self.params, self.names, self.state):
            grad = p.grad
            if grad is None:
                skipped.append(name)
                self.skipped[name] += 1
                continue
            g = grad.data
            if g.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}: gradient of {name!r} has shape "
                                 f"{tuple(g.shape)}, the parameter has shape {p.shape}")
            ready.append((p, g, state))
        # every gradient checked before any parameter changes: an error leaves all as they were
        for p, g, state in ready:
            state["step"] = state.get("step", 0) + 1
        self._update_all([(p.data, g, state) for p, g, state in ready])
        for p, _, _ in ready:
            p.mark_modified()         # a graph that saved p before this step may not backprop
        self.last_skipped = skipped
        self.step_count += 1
        return loss

    def _update(self, p, g, state, tmp):
        raise NotImplementedError(f"{type(self).__name__}._update")

    #: the elements of one block of a parameter's update (its arrays' blocks fit in L2)
    _BLOCK_ELEMENTS = 1 << 16

    def _update_all(self, updates):
        """``_update`` for every (p, g, state) of ``updates``, in one hand-off to
        tinynet's thread pool: a parameter of at least _BLOCK_ELEMENTS elements
        in fixed blocks of about that size (at least BLOCKS of them), a smaller
        one as one block, all the blocks of all the parameters together (one
        wake-up of the pool per step, and the threads share out the blocks of
        the big and the small parameters evenly).  The update is element-wise,
        so the blocks give exactly the bits one piece would, for any thread
        count.  A parameter's first update (its state not yet created), CuPy
        arrays and non-contiguous arrays run in one piece on the calling
        thread; so does everything when no parameter is big enough to be cut
        (a hand-off would cost more than it saves)."""
        blocks, whole = [], []
        for p, g, state in updates:
            if (type(p) is np.ndarray and type(g) is np.ndarray and p.flags.c_contiguous
                    and g.flags.c_contiguous and all(k in state for k in self.state_keys)):
                n = max(BLOCKS, p.size // self._BLOCK_ELEMENTS) \
                    if p.size >= self._BLOCK_ELEMENTS else 1
                flat = {k: v.reshape(-1) for k, v in state.items() if k != "step"}
                for lo, hi in block_bounds(p.size, n):
                    blocks.append((p.reshape(-1), g.reshape(-1), flat, state["step"], lo, hi))
            else:
                whole.append((p, g, state))
        for p, g, state in whole:
            self._update(p, g, state, self._tmp_for(p))
        if not any(hi - lo >= self._BLOCK_ELEMENTS // 2 for *_, lo, hi in blocks):
            for block in blocks:       # all small: on this thread, no hand-off
                self._update_block(block)
            return
        # the longest blocks first, so the threads finish together
        run_blocks(self._update_block, sorted(blocks, key=lambda b: b[4] - b[5]))

    def _update_block(self, block):
        """``_update`` on elements lo .. hi - 1 of a flattened parameter; its scratch
        arrays are the calling thread's (kept for the next step)."""
        p, g, flat, step, lo, hi = block
        s = slice(lo, hi)
        sub = {k: v[s] for k, v in flat.items()}
        sub["step"] = step
        self._update(p[s], g[s], sub,
                     lambda k=0: thread_scratch((hi - lo,), p.dtype, slot=_SCRATCH_SLOT + k))

    def _tmp_for(self, p):
        """tmp(k): scratch array k shaped like ``p`` (a view of a reused flat buffer)."""
        xp = backend.array_module(p)

        def tmp(k=0):
            key = (xp, p.dtype, k)
            flat = self._scratch.get(key)
            if flat is None or flat.size < p.size:
                flat = self._scratch[key] = xp.empty(p.size, dtype=p.dtype)
            return flat[:p.size].reshape(p.shape)
        return tmp

    # ---- introspection ------------------------------------------------------
    def named_parameters(self):
        """(name, parameter) pairs, in the order the optimizer updates them."""
        return zip(self.names, self.params)

    @property
    def hyperparameters(self):
        return {key: getattr(self, key) for key in self.defaults}

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"

    # ---- saving and resuming -----------------------------------------------
    def state_dict(self):
        """Everything needed to resume, as host numpy copies and plain Python values.

        ``{"optimizer": class name, "hyper": {...}, "step": int, "names": [...],
        "shapes": [...], "state": {name: {key: ndarray, "step": int}},
        "skipped": {name: int}}``
        """
        state = {}
        for name, st in zip(self.names, self.state):
            entry = {k: np.array(backend.to_numpy(v), copy=True)
                     for k, v in st.items() if k != "step"}
            if st:
                entry["step"] = int(st["step"])
            state[name] = entry
        return {
            "optimizer": type(self).__name__,
            "hyper": {k: (list(v) if isinstance(v, tuple) else v)
                      for k, v in self.hyperparameters.items()},
            "step": int(self.step_count),
            "names": list(self.names),
            "shapes": [list(p.shape) for p in self.params],
            "state": state,
            "skipped": dict(self.skipped),
        }

    def load_state_dict(self, state_dict):
        """Resume from :meth:`state_dict`; checks everything before changing anything.

        Raises ValueError naming the first mismatch (optimizer type, a missing or
        unexpected parameter name, a shape, a missing state entry).
        """
        kind = type(self).__name__
        sd = state_dict
        if not isinstance(sd, Mapping) or "state" not in sd or "names" not in sd:
            raise ValueError(f"{kind}.load_state_dict: expected the dict made by "
                             f"Optimizer.state_dict(), got {type(sd).__name__}")
        if sd.get("optimizer", kind) != kind:
            raise ValueError(f"{kind}.load_state_dict: the state was saved from "
                             f"{sd['optimizer']}, this optimizer is {kind}")
        names = list(sd["names"])
        for name in self.names:
            if name not in names:
                raise ValueError(f"{kind}.load_state_dict: parameter {name!r} is missing "
                                 f"from the saved state (it has {names})")
        for name in names:
            if name not in self.names:
                raise ValueError(f"{kind}.load_state_dict: the saved state has an "
                                 f"unexpected parameter {name!r} (this optimizer has "
                                 f"{self.names})")
        hyper = dict(sd.get("hyper", {}))
        # Validate the saved hyperparameters by building a throwaway instance;
        # it also tells which state arrays they need (SGD keeps none without momentum).
        probe = type(self)([Tensor(np.zeros(1, np.float32), requires_grad=True)],
                           **hyper) if hyper else self
        new_state = []
        for p, name in zip(self.params, self.names):
            entry = sd["state"].get(name, {})
            arrays = {}
            if entry:
                for key in probe.state_keys:
                    if key not in entry:
                        raise ValueError(f"{kind}.load_state_dict: parameter {name!r} "
                                         f"has no saved {key!r}")
                    arr = backend.to_numpy(entry[key])
                    if tuple(arr.shape) != p.shape:
                        raise ValueError(f"{kind}.load_state_dict: {key!r} of parameter "
                                         f"{name!r} has shape {tuple(arr.shape)}, expected "
                                         f"{p.shape}")
                    arrays[key] = arr
                if "step" not in entry:
                    raise ValueError(f"{kind}.load_state_dict: parameter {name!r} has no "
                                     f"saved 'step'")
            new_state.append((entry, arrays))

        device_dtype = [(p.device, p.dtype) for p in self.params]
        for i, (entry, arrays) in enumerate(new_state):
            device, dtype = device_dtype[i]
            st = {}
            for key, arr in arrays.items():
                st[key] = backend.to_device(np.array(arr, dtype=dtype, copy=True), device)
            if entry:
                st["step"] = int(entry["step"])
            self.state[i] = st
        for key, value in hyper.items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.step_count = int(sd.get("step", 0))
        saved_skips = sd.get("skipped", {})
        self.skipped = {name: int(saved_skips.get(name, 0)) for name in self.names}
        self.last_skipped = []


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    ``SGD(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False)``;
    the momentum buffer v starts as the first gradient (v = mu*v + g after).
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        lr = _check_number("SGD", "lr", lr, low=0, low_open=True)
        momentum = _check_number("SGD", "momentum", momentum, low=0)
        weight_decay = _check_number("SGD", "weight_decay", weight_decay, low=0)
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum,
                                      weight_decay=weight_decay, nesterov=bool(nesterov)))

    @property
    def state_keys(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _update(self, p, g, state, tmp):
        xp = backend.array_module(p)
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        d = g                          # never written to: g is the user's .grad
        if wd:
            d = xp.multiply(p, wd, out=tmp(0))
            d += g
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= mu
                buf += d
            if self.nesterov:
                n = xp.multiply(buf, mu, out=tmp(1))
                n += d
                d = n
            else:
                d = buf
        step = xp.multiply(d, lr, out=tmp(0))
        p -= step


class RMSprop(Optimizer):
    """RMSprop with Keras 2 semantics (the seeds used Keras defaults).

    ``RMSprop(params, lr=1e-3, rho=0.9, eps=1e-7)``:
    s <- rho*s + (1-rho)*g**2 (s starts at 0);  p <- p - lr*g/(sqrt(s) + eps).
    Equal to ``torch.optim.RMSprop(params, lr, alpha=rho, eps=eps)``.
    """

    state_keys = ("square_avg",)

    def __init__(self, params, lr=1e-3, rho=0.9, eps=1e-7):
        lr = _check_number("RMSprop", "lr", lr, low=0, low_open=True)
        rho = _check_number("RMSprop", "rho", rho, low=0, high=1, high_open=True)
        eps = _check_number("RMSprop", "eps", eps, low=0)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps))

    def _update(self, p, g, state, tmp):
        xp = backend.array_module(p)
        s = state.get("square_avg")
        if s is None:
            s = state["square_avg"] = xp.zeros_like(p)
        t = tmp(0)
        s *= self.rho
        xp.multiply(g, g, out=t)
        t *= 1.0 - self.rho
        s += t
        xp.sqrt(s, out=t)
        t += self.eps
        xp.divide(g, t, out=t)
        t *= self.lr
        p -= t


class Adam(Optimizer):
    """Adam (Kingma & Ba, bias-corrected), as ``torch.optim.Adam``.

    ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)``; eps is added to
    the bias-corrected sqrt(v) (see the module docstring for TF1's "eps-hat").
    """

    state_keys = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        lr = _check_number("Adam", "lr", lr, low=0, low_open=True)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}") from None
        b1 = _check_number("Adam", "betas[0]", b1, low=0, high=1, high_open=True)
        b2 = _check_number("Adam", "betas[1]", b2, low=0, high=1, high_open=True)
        eps = _check_number("Adam", "eps", eps, low=0)
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps))

    def _update(self, p, g, state, tmp):
        xp = backend.array_module(p)
        b1, b2 = self.betas
        m = state.get("exp_avg")
        if m is None:
            m = state["exp_avg"] = xp.zeros_like(p)
            state["exp_avg_sq"] = xp.zeros_like(p)
        v = state["exp_avg_sq"]
        t = tmp(0)
        step = state["step"]
        # m <- m + (1-b1)(g - m)  (= b1*m + (1-b1)*g, PyTorch's lerp form)
        xp.subtract(g, m, out=t)
        t *= 1.0 - b1
        m += t
        # v <- b2*v + (1-b2)*g*g
        v *= b2
        xp.multiply(g, g, out=t)
        t *= 1.0 - b2
        v += t
        # p <- p - (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)
        bc1 = 1.0 - b1 ** step
        bc2_sqrt = math.sqrt(1.0 - b2 ** step)
        xp.sqrt(v, out=t)
        t /= bc2_sqrt
        t += self.eps
        xp.divide(m, t, out=t)
        t *= self.lr / bc1
        p -= t
from tinynet import lr_scheduler  # noqa: E402,F401  (optim.lr_scheduler.StepLR, as in PyTorch)
