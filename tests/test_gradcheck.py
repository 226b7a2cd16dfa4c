"""gradcheck passes correct backward passes and names the first wrong element."""
import numpy as np
import pytest

import tinynet as tn
from tinynet.tensor import Function


class BadSquare(Function):
    """y = x²  with a deliberately wrong backward (forgets the factor 2)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (g * self.x,)


def test_gradcheck_accepts_correct_op(device):
    x = tn.tensor(np.random.default_rng(0).standard_normal((3, 2)), requires_grad=True,
                  device=device)
    assert tn.gradcheck(lambda t: (t * t).sum(axis=0), [x])


def test_gradcheck_reports_input_element_and_values():
    x = tn.tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    with pytest.raises(tn.GradcheckError) as info:
        tn.gradcheck(lambda t: BadSquare()(t), [x])
    err = info.value
    assert err.input_index == 0 and err.element == (0, 0)
    assert err.numeric == pytest.approx(2 * err.analytic, rel=1e-6)
    msg = str(err)
    assert "input 0" in msg and "element (0, 0)" in msg and "analytic" in msg
    assert "numeric" in msg and "relative error" in msg


def test_gradcheck_checks_second_input_only_when_it_requires_grad():
    a = tn.tensor([1.0, 2.0], requires_grad=False)
    b = tn.tensor([3.0, 4.0], requires_grad=True)
    assert tn.gradcheck(lambda x, y: x * y, [a, b])


def test_gradcheck_runs_in_float64_and_leaves_inputs_alone():
    x = tn.tensor([1.0, 2.0], requires_grad=True)          # float32
    seen = []
    tn.gradcheck(lambda t: seen.append(t.dtype) or t * 2.0, x)
    assert seen[0] == np.float64 and x.dtype == np.float32 and x.grad is None


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad=True"):
        tn.gradcheck(lambda t: t * 2.0, [tn.tensor([1.0])])
