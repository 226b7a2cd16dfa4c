"""Datasets and batching: the IDX reader, MNIST, tinynet's own offline digits, DataLoader.

Light to import: numpy only; matplotlib is imported when ``digits()`` first runs.

    x, y = load("embedded")            # (10000, 1, 28, 28) float32, (10000,) int64 — no network
    x, y = load("mnist", "test")       # real MNIST; downloads into ~/.cache/tinynet/mnist if absent
    for xb, yb in DataLoader(x, y, batch_size=64, seed=0): ...
    DataLoader(TensorDataset(x, y), batch_size=64)   # PyTorch's form; any dataset with len/getitem
"""
from .digits import digits
from .errors import DatasetError
from .idx import read_idx
from .loader import DataLoader, TensorDataset, load
from .mnist import mnist

__all__ = ["read_idx", "mnist", "digits", "DataLoader", "TensorDataset", "load", "DatasetError"]
