"""Checkpoints: a model's parameters, and optionally an optimizer's state, in one .npz file.

    save(model, "mlp.npz", optimizer=opt)      # atomic: temp file + os.replace
    load(model, "mlp.npz", optimizer=opt)      # checks every name and shape first

The PyTorch habit works too (``tn.save``/``tn.load`` are these functions):

    tn.save(model.state_dict(), "mlp.npz")     # a state dict: name -> array
    model.load_state_dict(tn.load("mlp.npz"))  # load(path) returns that state dict

Loading warns (CheckpointWarning, naming the parameter) when a saved array
holds NaN or Inf, or values too large for the parameter's dtype (they would
become Inf): the file loads, but training from it will not go well.

File layout (plain ``numpy.savez``, readable with ``np.load`` and no tinynet):

    param/<name>          one array per parameter, named as in model.named_parameters()
    optim/<name>/<key>    the optimizer's per-parameter arrays (e.g. exp_avg), if saved
    __meta__              a JSON string: format, tinynet version, model class, module
                          classes, parameter shapes and dtypes, optimizer type,
                          hyperparameters and step counts

Writing goes to a temporary file in the same directory that is renamed over
the target only once it is complete, so a crash or an error halfway leaves the
previous checkpoint intact and no temporary file behind.  Loading validates
the whole file against the model (and the optimizer) before changing
anything, then copies the arrays INTO the existing parameters (``p.data[...]
= ...``), so the Parameters keep their identity, device and dtype and an
optimizer built on them stays valid.
"""
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from tinynet import backend
from tinynet.files import atomic_write, remove_stale_temp_files

__all__ = ["save", "load", "CheckpointError", "CheckpointWarning"]

FORMAT = "tinynet-checkpoint"
FORMAT_VERSION = 1
_META = "__meta__"
_PARAM = "param/"
_OPTIM = "optim/"


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, or does not match the model/optimizer."""


class CheckpointWarning(UserWarning):
    """A checkpoint loads, but holds values that will break training (NaN, Inf, overflow)."""


class _StateDict:
    """Adapts a state dict (name -> array or Tensor) to what save() reads from a model."""

    def __init__(self, state):
        self.items = [(str(k), v) for k, v in state.items()]

    def named_parameters(self):
        return [(k, _HostArray(v)) for k, v in self.items]


class _HostArray:
    def __init__(self, value):
        from tinynet.tensor import Tensor

        if isinstance(value, Tensor):
            value = value.data
        elif not (isinstance(value, np.ndarray) or backend.is_device_array(value)):
            value = np.asarray(value)
        self.data = value
        self.shape = tuple(value.shape)
        self.dtype = value.dtype


def _named_parameters(model, where):
    named = getattr(model, "named_parameters", None)
    if not callable(named):
        raise TypeError(f"{where}: expected a tinynet Module (with named_parameters()), "
                        f"got {type(model).__name__}")
    return list(named())


def _describe(model):
    """Class names of the model and its submodules, for the metadata and messages."""
    modules = getattr(model, "named_modules", None)
    if callable(modules):
        try:
            return [[name, type(m).__name__] for name, m in modules()]
        except TypeError:
            pass
    return [["", type(model).__name__]]


# --------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------
def save(model, path, optimizer=None):
    """Write ``model``'s parameters (and ``optimizer``'s state) to ``path`` atomically.

    ``model``: a Module, or a state dict (``model.state_dict()``: name -> array).
    Returns ``path``.  The file is written exactly at ``path`` (no suffix is added).
    """
    import tinynet

    path = os.fspath(path)
    if isinstance(model, Mapping):
        params = _StateDict(model).named_parameters()
        model_name = "state_dict"
    else:
        params = _named_parameters(model, "save")
        model_name = type(model).__name__
    arrays = {_PARAM + name: backend.to_numpy(p.data) for name, p in params}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tinynet_version": tinynet.__version__,
        "model": model_name,
        "modules": _describe(model) if model_name != "state_dict" else [],
        "params": {name: {"shape": list(p.shape), "dtype": str(p.dtype)} for name, p in params},
    }
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for name, entry in sd["state"].items():
            for key, value in entry.items():
                if isinstance(value, np.ndarray):
                    arrays[f"{_OPTIM}{name}/{key}"] = value
                else:
                    scalars.setdefault(name, {})[key] = value
        meta["optimizer"] = {k: v for k, v in sd.items() if k != "state"}
        meta["optimizer"]["scalars"] = scalars
    arrays[_META] = np.array(json.dumps(meta))
    _atomic_savez(path, arrays)
    return path


def _atomic_savez(path, arrays):
    with atomic_write(path) as f:
        np.savez(f, **arrays)


# --------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------
def _read(path):
    """(meta, {name: array}, {name: {key: array}}) from a checkpoint file."""
    # a run killed mid-save left its temp file; resuming is the next run, so clean here too
    remove_stale_temp_files(os.path.dirname(os.path.abspath(path)), os.path.basename(path),
                            ".tmp")
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: checkpoint {path!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        raise CheckpointError(f"load: {path!r} is not a tinynet checkpoint: checkpoints are "
                              f".npz (zip) files written by tinynet save(), and this file "
                              f"does not start like a zip archive (first bytes {head!r})")
    try:
        with np.load(path, allow_pickle=False) as z:
            if _META not in z.files:
                raise CheckpointError(f"load: {path!r} is an .npz file but not a tinynet "
                                      f"checkpoint (it has no {_META!r} entry; its entries: "
                                      f"{sorted(z.files)[:6]})")
            meta = json.loads(str(z[_META]))
            params, optim = {}, {}
            for key in z.files:
                if key.startswith(_PARAM):
                    params[key[len(_PARAM):]] = z[key]
                elif key.startswith(_OPTIM):
                    name, _, slot = key[len(_OPTIM):].rpartition("/")
                    optim.setdefault(name, {})[slot] = z[key]
    except CheckpointError:
        raise
    except Exception as exc:   # BadZipFile, pickled/garbage data, truncated entries, bad JSON
        raise CheckpointError(f"load: could not read checkpoint {path!r}: the .npz file is "
                              f"corrupt or truncated ({type(exc).__name__}: "
                              f"{exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"load: {path!r} is not a tinynet checkpoint (bad {_META})")
    return meta, params, optim


def _warn_bad_values(path, name, array, dtype):
    """Warn (naming the parameter) about NaN, Inf, or values that overflow ``dtype``."""
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    n_nan = int(np.isnan(array).sum())
    n_inf = int(array.size - finite.sum()) - n_nan
    n_big = 0
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and np.finfo(dtype).max < np.finfo(array.dtype).max:
        n_big = int((np.abs(np.where(finite, array, 0)) > np.finfo(dtype).max).sum())
    problems = []
    if n_nan:
        problems.append(f"{n_nan} NaN")
    if n_inf:
        problems.append(f"{n_inf} Inf")
    if n_big:
        problems.append(f"{n_big} values beyond the {dtype} range (they become Inf)")
    if problems:
        warnings.warn(f"load: parameter {name!r} in checkpoint {path!r} holds "
                      f"{' and '.join(problems)} of {array.size} values; the training that "
                      f"wrote it diverged or the file was edited -- a model loaded from it "
                      f"will give NaN/Inf outputs", CheckpointWarning, stacklevel=3)


def load(model, path=None, optimizer=None, strict=True):
    """Restore ``model`` (and ``optimizer``) from a checkpoint written by :func:`save`.

    strict=True: the checkpoint must hold exactly the model's parameter names.
    strict=False: names on one side only are skipped (and reported).
    A shape mismatch is always an error.  Nothing is changed unless everything
    matches.  Returns ``{"missing": [...], "unexpected": [...], "meta": {...}}``.

    ``load(path)`` (one argument, the PyTorch habit) returns the saved
    parameters as a state dict (an OrderedDict name -> numpy array) for
    ``model.load_state_dict``.  NaN and Inf in the file are reported with a
    :class:`CheckpointWarning`; so are values that overflow the model's dtype
    (float64 values beyond float32's range) when a model is given.
    """
    if path is None:
        if isinstance(model, (str, bytes, os.PathLike)):
            return _load_state_dict(os.fspath(model))
        raise TypeError("load: expected load(model, path) or load(path), got no path")
    path = os.fspath(path)
    params = _named_parameters(model, "load")
    meta, saved, saved_optim = _read(path)
    origin = f"saved from a {meta.get('model', '?')} with tinynet {meta.get('tinynet_version', '?')}"

    names = [name for name, _ in params]
    missing = [n for n in names if n not in saved]
    unexpected = [n for n in saved if n not in names]
    problems = []
    if strict:
        problems += [f"the model's parameter {n!r} is missing from the checkpoint"
                     for n in missing]
        problems += [f"the checkpoint has an unexpected parameter {n!r} that the model "
                     f"does not have" for n in unexpected]
    for name, p in params:
        if name in saved and tuple(saved[name].shape) != p.shape:
            problems.append(f"parameter {name!r} has shape {tuple(saved[name].shape)} in the "
                            f"checkpoint, the model expects {p.shape}")
    if problems:
        extra = len(problems) - 1
        more = f" (and {extra} more mismatch{'es' if extra > 1 else ''})" if extra else ""
        raise CheckpointError(f"load: checkpoint {path!r} ({origin}) does not match this "
                              f"{type(model).__name__}: {problems[0]}{more}")

    if optimizer is not None:
        info = meta.get("optimizer")
        if info is None:
            raise CheckpointError(f"load: checkpoint {path!r} holds no optimizer state; "
                                  f"save it with save(model, path, optimizer=opt)")
        state = {}
        for name in info.get("names", []):
            entry = dict(saved_optim.get(name, {}))
            entry.update(info.get("scalars", {}).get(name, {}))
            state[name] = entry
        sd = {k: v for k, v in info.items() if k != "scalars"}
        sd["state"] = state
        try:
            optimizer.load_state_dict(sd)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"load: the optimizer state in {path!r} does not fit this "
                                  f"optimizer: {exc}") from exc

    for name, p in params:
        if name in saved:
            _warn_bad_values(path, name, saved[name], p.dtype)
            with np.errstate(over="ignore", invalid="ignore"):   # reported just above
                arr = np.asarray(saved[name], dtype=p.dtype)
            p.data[...] = backend.to_device(arr, p.device)
    return {"missing": missing, "unexpected": unexpected, "meta": meta}


def _load_state_dict(path):
    """The parameters of a checkpoint as OrderedDict(name -> numpy array), in saved order."""
    meta, saved, _ = _read(path)
    order = list(meta.get("params", {})) or list(saved)
    state = OrderedDict((name, saved[name]) for name in order if name in saved)
    for name, array in state.items():
        # NaN/Inf only: whether the values fit is known once a model takes them
        _warn_bad_values(path, name, array, array.dtype)
    return state
