"""hw3's effective_width is graded against tinynet's own definition (one definition)."""
import pytest

from tinynet import init, nn
from tinynet.grade import check
from tinynet.grade.hw3 import reference_width

SOLUTION = '''
import numpy as np
def effective_width(layer, next_layer=None, rtol=1e-5):
    parts = [layer.weight.numpy().T]
    if layer.bias is not None:
        parts.append(layer.bias.numpy()[:, None])
    if next_layer is not None:
        parts.append(next_layer.weight.numpy())
    tols = [rtol * np.abs(p).max() for p in parts]
    reps = []
    for j in range(parts[0].shape[0]):
        if not any(all(np.abs(p[j] - p[r]).max() <= t for p, t in zip(parts, tols))
                   for r in reps):
            reps.append(j)
    return len(reps)
'''
ABSOLUTE = SOLUTION.replace("tols = [rtol * np.abs(p).max() for p in parts]",
                            "tols = [rtol for p in parts]")
NO_NEXT = SOLUTION.replace("if next_layer is not None:", "if False:")


def _ns(source):
    ns = {}
    exec(compile(source, "<student>", "exec"), ns)
    return ns


def test_the_solution_passes_in_process(capsys):
    assert check(_ns(SOLUTION), "hw3_freeze_detector", "effective_width") == 3
    assert capsys.readouterr().out.startswith("PASS  effective_width  3/3")


@pytest.mark.parametrize("source, hint", [
    (ABSOLUTE, "The tolerance is relative"),
    (NO_NEXT, "OUTGOING row"),
])
def test_each_half_definition_gets_its_hint(source, hint):
    with pytest.raises(AssertionError) as err:
        check(_ns(source), "hw3_freeze_detector", "effective_width")
    assert hint in str(err.value)


def test_reference_is_tinynets_grouping_on_a_tied_network():
    """The all-ones 784-256-30-10 MLP: every hidden layer is one unit; a planted
    difference in one outgoing row splits off exactly that unit."""
    first = nn.Dense(6, 5, kernel_init=init.ones)
    nxt = nn.Dense(5, 3, kernel_init=init.ones)
    assert reference_width(first, nxt) == 1
    w = nxt.weight.numpy()
    w[2, 1] += 0.5
    nxt.weight.data = w
    assert reference_width(first, nxt) == 2
    assert reference_width(first) == 1                  # the incoming half alone: tied
    assert reference_width(first, nxt, rtol=1.0) == 1   # a tolerance as large as the values
