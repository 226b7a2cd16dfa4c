"""A replay oracle: the ground truth of a training run, recorded the plain way.

``replay(model, make_opt, batches, ...)`` trains a DEEP COPY of ``model`` (taken
before explain trains the original) on the same batches, with a hand-written
loop: each layer of the Sequential called in turn, the gradient at every
layer's output caught with ``Tensor.register_hook``, the parameters compared
bit for bit before and after every ``opt.step()``.  It shares nothing with the
Recorder or the analysis, so a report can be checked against it claim by claim.

Truth kept, per step s = 1..S (numpy):
    changed[name]   (S, *shape) bool   the entry differs after step s from before it
    grad_nz[name]   (S, *shape) bool   its gradient was nonzero at step s (None: all False)
    grad_none[name] (S,) bool          .grad was None at step s
    feat_nz[layer]  (S, F) bool        input feature (Dense column / conv channel) nonzero
                                       on some sample at step s
    open[layer]     (S, U) bool        output unit > 0 on some sample at step s
    out_grad[layer] (S, U) bool        the gradient at the output nonzero on some sample
    lr[s]                              the optimizer's lr at step s
and ``final``: the trained copy's parameters, ``data_feat_nz[layer]`` for the
layers fed by the data (all samples of ``all_x``, when given).
"""
import copy

import numpy as np

import tinynet as tn
from tinynet import nn
from tinynet.nn import functional as F


def _unit_any(a):
    """(N, U, ...) -> (U,) bool: nonzero / positive on some sample and position."""
    return a.any(axis=tuple(i for i in range(a.ndim) if i != 1))


def replay(model, make_opt, batches, seed, steps=None, lr_schedule=None, all_x=None):
    """Ground truth for training a copy of ``model`` (copied NOW: call before explain)."""
    m = copy.deepcopy(model)
    opt = make_opt(m)
    names = [n for n, _ in m.named_parameters()]
    params = dict(m.named_parameters())
    layers = list(m._modules.items())
    t = {"changed": {n: [] for n in names}, "grad_nz": {n: [] for n in names},
         "grad_none": {n: [] for n in names}, "feat_nz": {}, "open": {}, "out_grad": {},
         "lr": [], "initial": {n: p.numpy().copy() for n, p in params.items()}}
    tn.manual_seed(seed)
    steps = len(batches) if steps is None else steps
    for s in range(steps):
        xb, yb = batches[s % len(batches)]
        if lr_schedule is not None:
            opt.lr = lr_schedule(s)
        h = tn.tensor(xb)
        caught = {}
        for name, layer in layers:
            if isinstance(layer, (nn.Dense, nn.Conv2D)):
                t["feat_nz"].setdefault(name, []).append(_unit_any(h.data != 0))
            out = layer(h)
            if isinstance(layer, (nn.Dense, nn.Conv2D)):
                t["open"].setdefault(name, []).append(_unit_any(out.data > 0))
                if out.requires_grad:
                    out.register_hook(lambda g, name=name: caught.__setitem__(name, g.data))
            h = out
        loss = F.softmax_cross_entropy(h, yb)
        opt.zero_grad()
        loss.backward()
        before = {n: p.numpy().copy() for n, p in params.items()}
        opt.step()
        t["lr"].append(float(opt.lr))
        for name, layer in layers:
            if isinstance(layer, (nn.Dense, nn.Conv2D)):
                g = caught.get(name)
                U = t["open"][name][-1].shape[0]
                t["out_grad"].setdefault(name, []).append(
                    np.zeros(U, bool) if g is None else _unit_any(np.asarray(g) != 0))
        for n, p in params.items():
            t["changed"][n].append(p.numpy() != before[n])
            t["grad_none"][n].append(p.grad is None)
            t["grad_nz"][n].append(np.zeros(p.shape, bool) if p.grad is None
                                   else p.grad.numpy() != 0)
    for key in ("changed", "grad_nz", "grad_none", "feat_nz", "open", "out_grad"):
        t[key] = {k: np.array(v) for k, v in t[key].items()}
    t["final"] = {n: p.numpy() for n, p in params.items()}
    t["steps"] = steps
    if all_x is not None:
        first = next((n for n, l in layers if isinstance(l, (nn.Dense, nn.Conv2D))), None)
        x = np.asarray(all_x)
        if first is not None:
            if isinstance(dict(layers)[first], nn.Dense):
                x = x.reshape(len(x), -1)
            t["data_feat_nz"] = {first: _unit_any(x != 0)}
    return t


def frozen(t, name):
    """Entries that never changed at any step."""
    return ~t["changed"][name].any(axis=0)
