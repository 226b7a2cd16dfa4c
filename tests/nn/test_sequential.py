"""Sequential: construction, naming, indexing, append, and its error messages."""
from collections import OrderedDict

import numpy as np
import pytest

import tinynet as tn
from tinynet import nn


def test_indexing_len_iteration_append():
    a, b, c = nn.Flatten(), nn.Dense(4, 3), nn.ReLU()
    model = nn.Sequential(a, b)
    assert len(model) == 2 and model[0] is a and model[-1] is b and list(model) == [a, b]
    assert model.append(c) is model and model[2] is c
    assert [n for n, _ in model.named_children()] == ["0", "1", "2"]
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [b, c]
    with pytest.raises(IndexError, match=r"Sequential: index 3 is out of range for 3 layers"):
        model[3]
    with pytest.raises(TypeError, match=r"indices must be integers or slices, got str"):
        model["0"]


def test_forward_chains_layers():
    tn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2))
    x = tn.tensor(np.random.default_rng(0).normal(size=(5, 2, 2)).astype(np.float32))
    expected = model[3](model[2](model[1](model[0](x))))
    np.testing.assert_array_equal(model(x).numpy(), expected.numpy())
    assert nn.Sequential()(x) is x


def test_ordered_dict_names():
    model = nn.Sequential(OrderedDict([("hidden", nn.Dense(4, 3)), ("act", nn.ReLU()),
                                       ("out", nn.Dense(3, 2))]))
    assert [n for n, _ in model.named_parameters()] == ["hidden.weight", "hidden.bias",
                                                        "out.weight", "out.bias"]
    assert model[0] is model.hidden
    assert "(hidden): Dense(4 -> 3)" in repr(model)


@pytest.mark.parametrize("item,match", [
    (nn.ReLU, r"Sequential: item 1 is the class ReLU, not a layer; write ReLU\(\.\.\.\)"),
    (tn.ops.relu, r"Sequential: item 1 is the function relu, not a layer"),
    (3, r"Sequential: item 1 must be a layer \(an nn\.Module\), got int"),
])
def test_non_layers_are_refused(item, match):
    with pytest.raises(TypeError, match=match):
        nn.Sequential(nn.Flatten(), item)


def test_errors_say_which_layer_raised():
    model = nn.Sequential(nn.Dense(784, 10), nn.ReLU())
    with pytest.raises(ValueError, match=r"Dense\(784 -> 10\)") as info:
        model(tn.tensor(np.zeros((2, 28, 28), np.float32)))
    assert "(raised in layer (0) of the Sequential)" in getattr(info.value, "__notes__", [
        "(raised in layer (0) of the Sequential)"])
