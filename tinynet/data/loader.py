"""Mini-batches for training loops, and ``load``: one name for each dataset."""
import numpy as np

DATASETS = ("embedded", "mnist")


class DataLoader:
    """Iterate over (x, y) in mini-batches, as tinynet Tensors on a device.

    Args:
        x: array (N, ...) — e.g. images (N, 1, 28, 28) or (N, 784).
        y: array (N,) — labels (or any per-sample target).
        batch_size: samples per batch; the last batch may be smaller unless drop_last.
        shuffle: visit the samples in a new random order on every ``iter()`` (every epoch).
        seed: seed of the loader's own ``numpy.random.Generator``; the same seed gives the
            same sequence of epoch orders. None: drawn from tinynet's generator, so
            ``tn.manual_seed(n)`` fixes the order too.
        drop_last: skip the final short batch.
        device: "cpu" or "cuda", where the Tensors live.
        dtype: dtype for xb (y keeps its own); None keeps x's.
        as_tensor: False yields plain numpy arrays instead of Tensors.

    Yields:
        (xb, yb): xb (B, ...) and yb (B,), B = batch_size except perhaps the last batch.
    """

    def __init__(self, x, y, batch_size=128, shuffle=True, seed=None, drop_last=False,
                 device="cpu", dtype=None, as_tensor=True):
        x, y = _as_numpy(x, "x"), _as_numpy(y, "y")
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"DataLoader: x and y need a sample dimension; got x shape {x.shape}, y shape {y.shape}")
        if len(x) != len(y):
            raise ValueError(
                f"DataLoader: x has {len(x)} samples but y has {len(y)}; "
                f"they must have the same first dimension (x shape {x.shape}, y shape {y.shape})"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.x, self.y = x, y
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

    def __len__(self):
        """Number of batches per epoch."""
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n = len(self.x)
        # drawn when iteration starts, so every epoch gets its own order
        order = self._rng.permutation(n) if self.shuffle else None
        if self.as_tensor:
            from tinynet.tensor import tensor  # lazy: the engine must not be needed to import tinynet.data
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]  # views: no copy until the Tensor is made
            else:
                idx = order[lo:hi]
                xb, yb = self.x[idx], self.y[idx]
            if self.as_tensor:
                # tensor() copies (and casts) once; views of x never leak into the graph
                yield tensor(xb, dtype=self.dtype, device=self.device), tensor(yb, device=self.device)
            else:
                yield (xb if self.dtype is None else xb.astype(self.dtype, copy=False)), yb

    def __repr__(self):
        return (f"DataLoader(n={len(self.x)}, batch_size={self.batch_size}, batches={len(self)}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, device={self.device!r})")


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
