"""Mini-batches for training loops (DataLoader, TensorDataset), and ``load``: one name for each dataset."""
import numpy as np

DATASETS = ("embedded", "mnist")


class TensorDataset:
    """Samples of several arrays side by side: ``ds[i] == (x[i], y[i])`` (PyTorch's name).

        ds = TensorDataset(x, y)                       # arrays or Tensors, same first dim
        loader = DataLoader(ds, batch_size=64)         # batches like DataLoader(x, y, ...)

    ``ds[i]`` gives a tuple of Tensors, one per array; a DataLoader reads the
    arrays directly (one fancy index per batch, not one call per sample).
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one array, e.g. TensorDataset(x, y)")
        self.arrays = [_as_numpy(t, f"array {k}") for k, t in enumerate(tensors)]
        lengths = [len(a) if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(f"TensorDataset: every array needs the same first dimension "
                             f"(the samples); got shapes {shapes}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, i):
        from tinynet.tensor import tensor
        return tuple(tensor(a[i]) for a in self.arrays)

    def __repr__(self):
        return f"TensorDataset({', '.join(str(a.shape) for a in self.arrays)})"


class DataLoader:
    """Iterate over (x, y) in mini-batches, as tinynet Tensors on a device.

        DataLoader(x, y, batch_size=64)            arrays: tinynet's form
        DataLoader(dataset, batch_size=64)         PyTorch's form: a TensorDataset, or any
                                                   object with __len__ and __getitem__
                                                   whose samples are tuples like (x_i, y_i)

    Args:
        x: array (N, ...) — e.g. images (N, 1, 28, 28) or (N, 784); or a dataset.
        y: array (N,) — labels (or any per-sample target); omitted with a dataset
            (an int there is taken as batch_size, as PyTorch's second argument).
        batch_size: samples per batch; the last batch may be smaller unless drop_last.
        shuffle: visit the samples in a new random order on every ``iter()`` (every epoch).
            Default True (PyTorch's default is False).
        seed: seed of the loader's own ``numpy.random.Generator``; the same seed gives the
            same sequence of epoch orders. None: drawn from tinynet's generator, so
            ``tn.manual_seed(n)`` fixes the order too.
        drop_last: skip the final short batch.
        device: "cpu" or "cuda", where the Tensors live.
        dtype: dtype for xb (the first field; y keeps its own); None keeps x's.
        as_tensor: False yields plain numpy arrays instead of Tensors.

    Yields:
        (xb, yb): xb (B, ...) and yb (B,), B = batch_size except perhaps the last batch.
        A dataset whose samples have k fields gives k-tuples (a lone array: one batch).
        A general dataset is read sample by sample and each field stacked (np.stack).
    """

    def __init__(self, x, y=None, batch_size=128, shuffle=True, seed=None, drop_last=False,
                 device="cpu", dtype=None, as_tensor=True):
        self.dataset = None
        if y is not None and _is_dataset(x) and isinstance(y, (int, np.integer)) \
                and not isinstance(y, bool):
            x, y, batch_size = x, None, y           # DataLoader(dataset, 64), PyTorch's order
        if y is None:
            if isinstance(x, TensorDataset):
                arrays = list(x.arrays)
            elif _is_dataset(x):
                arrays = None
                self.dataset = x
            else:
                arrays = [_as_numpy(x, "x")]
        else:
            arrays = [_as_numpy(x, "x"), _as_numpy(y, "y")]
        if arrays is not None:
            if any(a.ndim == 0 for a in arrays):
                raise ValueError(f"DataLoader: x and y need a sample dimension; got shapes "
                                 f"{', '.join(str(a.shape) for a in arrays)}")
            if len(arrays) == 2 and len(arrays[0]) != len(arrays[1]):
                x_, y_ = arrays
                raise ValueError(
                    f"DataLoader: x has {len(x_)} samples but y has {len(y_)}; "
                    f"they must have the same first dimension (x shape {x_.shape}, y shape {y_.shape})"
                )
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.arrays = arrays
        self.x = arrays[0] if arrays else None
        self.y = arrays[1] if arrays and len(arrays) > 1 else None
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = device
        self.dtype = dtype
        self.as_tensor = as_tensor
        self.seed = seed
        # Without a seed, shuffle from tinynet's generator so tn.manual_seed(n)
        # repeats the run (PyTorch's DataLoader follows torch.manual_seed too).
        if seed is None:
            from tinynet.random import host_rng
            seed = int(host_rng().integers(2**63))
        self._rng = np.random.default_rng(seed)

    def _n(self):
        return len(self.dataset) if self.dataset is not None else len(self.arrays[0])

    def __len__(self):
        """Number of batches per epoch."""
        n, b = self._n(), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _fields(self, idx, lo, hi):
        """The batch's fields as numpy arrays (views where no shuffling)."""
        if self.dataset is None:
            if idx is None:
                return [a[lo:hi] for a in self.arrays]  # views: no copy until the Tensor is made
            return [a[idx] for a in self.arrays]
        indices = range(lo, hi) if idx is None else idx
        samples = [self.dataset[int(i)] for i in indices]
        if isinstance(samples[0], (tuple, list)):
            return [np.stack([_as_numpy(v, "a sample field") for v in field])
                    for field in zip(*samples)]
        return [np.stack([_as_numpy(v, "a sample") for v in samples])]

    def __iter__(self):
        n = self._n()
        # drawn when iteration starts, so every epoch gets its own order
        order = self._rng.permutation(n) if self.shuffle else None
        if self.as_tensor:
            from tinynet.tensor import tensor  # lazy: the engine must not be needed to import tinynet.data
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            fields = self._fields(None if order is None else order[lo:hi], lo, hi)
            if self.as_tensor:
                # tensor() copies (and casts) once; views of x never leak into the graph
                out = [tensor(fields[0], dtype=self.dtype, device=self.device)]
                out += [tensor(f, device=self.device) for f in fields[1:]]
            else:
                out = [fields[0] if self.dtype is None
                       else fields[0].astype(self.dtype, copy=False)] + fields[1:]
            yield out[0] if len(out) == 1 else tuple(out)

    def __repr__(self):
        what = f"dataset={type(self.dataset).__name__}, " if self.dataset is not None else ""
        return (f"DataLoader({what}n={self._n()}, batch_size={self.batch_size}, batches={len(self)}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, device={self.device!r})")


def _is_dataset(obj):
    """A map-style dataset (len + getitem) that is not itself an array."""
    from tinynet.tensor import Tensor

    if isinstance(obj, list) and obj and isinstance(obj[0], tuple):
        return True                           # [(x_0, y_0), (x_1, y_1), ...]
    if isinstance(obj, (np.ndarray, Tensor, list, tuple)) or hasattr(obj, "__array__"):
        return False
    return hasattr(obj, "__len__") and hasattr(obj, "__getitem__")


def _as_numpy(a, name):
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "numpy") and callable(a.numpy):  # a tinynet Tensor (or a torch tensor)
        return np.asarray(a.numpy())
    try:
        return np.asarray(a)
    except Exception as e:
        raise TypeError(f"DataLoader: {name} must be array-like, got {type(a).__name__}") from e


def load(name="embedded", split="train", n=None, flatten=False, seed=0):
    """(x, y) of a named dataset, in the format of ``mnist()``.

    Args:
        name: "embedded" — tinynet's offline generated digits (no network, ever);
              "mnist" — real MNIST via ``mnist(split)`` (found on disk or downloaded).
        split: "train" or "test". For "embedded" the two come from disjoint random streams.
        n: number of samples; default 10000 (train) / 2000 (test) for "embedded", all for "mnist"
           (otherwise the first n).
        flatten: x as (N, 784) instead of (N, 1, 28, 28).
        seed: seed of the "embedded" generator (ignored for "mnist").

    Returns:
        x float32 (N, 1, 28, 28) or (N, 784) in [0, 1]; y int64 (N,).
    """
    if split not in ("train", "test"):
        raise ValueError(f"load(split={split!r}): expected 'train' or 'test'")
    if name == "embedded":
        from .digits import digits
        if n is None:
            n = 10000 if split == "train" else 2000
        return digits(n, seed=seed, flatten=flatten, split=split)
    if name == "mnist":
        from .mnist import mnist
        x, y = mnist(split, flatten=flatten)
        return (x, y) if n is None else (x[:n], y[:n])
    raise ValueError(f"load: unknown dataset {name!r}; valid names: {', '.join(repr(d) for d in DATASETS)}")
