"""Layers validate once: their own checks (with the layer's hint), then the
op's Function directly -- never the op's wrapper, which would check again."""
import importlib

import numpy as np
import pytest

import tinynet as tn
from tinynet import _checks, nn
conv_ops = importlib.import_module("tinynet.ops.conv")
dense_ops = importlib.import_module("tinynet.ops.dense")     # (tinynet.ops.dense is the function)
pool_ops = importlib.import_module("tinynet.ops.pool")


def test_layers_do_not_call_the_checking_op_wrappers(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the op wrapper ran its checks a second time")
    monkeypatch.setattr(conv_ops, "conv2d", refuse)
    monkeypatch.setattr(pool_ops, "max_pool2d", refuse)
    monkeypatch.setattr(dense_ops, "check_dense_operands", refuse)
    model = nn.Sequential(nn.Conv2D(1, 2, 3, padding="same"), nn.ReLU(), nn.MaxPool2D(2),
                          nn.Flatten(), nn.Dense(2 * 3 * 3, 4))
    x = tn.tensor(np.random.default_rng(0).random((2, 1, 6, 6), dtype=np.float32))
    model(x).sum().backward()
    assert model[0].weight.grad is not None


def test_each_shared_check_runs_at_most_once_per_layer_call(monkeypatch):
    calls = {}
    for name in ("input_tensor", "match_weights", "float_input", "conv_padding"):
        original = getattr(_checks, name)

        def counted(*a, _name=name, _original=original, **k):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*a, **k)
        monkeypatch.setattr(_checks, name, counted)
    x = tn.tensor(np.zeros((1, 1, 5, 5), np.float32))
    for layer in (nn.Conv2D(1, 1, 3), nn.MaxPool2D(2)):
        calls.clear()
        layer(x)
        assert calls and max(calls.values()) == 1, (layer, calls)


def test_op_wrappers_still_check_on_their_own():
    with pytest.raises(ValueError, match=r"^conv2d: input has 2 channels but the weight expects 1"):
        tn.ops.conv2d(np.zeros((1, 2, 5, 5), np.float32), np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"^max_pool2d: input must be 4-D"):
        tn.ops.max_pool2d(np.zeros((5, 5), np.float32), 2)
