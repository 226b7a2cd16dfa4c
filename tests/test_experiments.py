"""The four experiments build, train a few steps on the embedded digits, and
repeat bit for bit under one seed."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.nn.functional as F
from tinynet.data import digits
from tinynet.experiments import EXPERIMENTS, zero_kernel_cnn


def _batches(exp, n_steps, seed=0):
    x, y = digits(exp.batch_size * n_steps, seed=seed, flatten=exp.flatten)
    for i in range(n_steps):
        sl = slice(i * exp.batch_size, (i + 1) * exp.batch_size)
        yield x[sl], y[sl]


def _train(name, steps, device="cpu", seed=0):
    exp = EXPERIMENTS[name]
    tn.manual_seed(seed)
    model = exp.build().to(device)
    opt = exp.optimizer(model.parameters())
    losses = []
    for xb, yb in _batches(exp, steps):
        loss = F.softmax_cross_entropy(model(tn.tensor(xb, device=device)),
                                       tn.tensor(yb, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_trains_a_few_steps(name):
    model, losses = _train(name, steps=2)
    assert len(losses) == 2 and all(np.isfinite(losses[:1]))
    assert model[0].weight.dtype == np.float32


@pytest.mark.parametrize("name", ["zero-pixels", "zero-kernel"])
def test_experiment_runs_through_strict_device(name, strict_device):
    model, losses = _train(name, steps=1, device=strict_device)
    assert model[0].weight.device == "cuda" and np.isfinite(losses[0])


def test_one_seed_repeats_a_cpu_run_bit_for_bit():
    a, la = _train("zero-pixels", steps=3, seed=5)
    b, lb = _train("zero-pixels", steps=3, seed=5)
    assert la == lb
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.numpy(), pb.numpy())


def test_zero_kernel_phenomenon_only_last_bias_moves():
    tn.manual_seed(0)
    model = zero_kernel_cnn()
    opt = EXPERIMENTS["zero-kernel"].optimizer(model.parameters())
    x, y = digits(50, seed=0)
    before = {n: p.numpy() for n, p in model.named_parameters()}
    for _ in range(3):
        loss = F.softmax_cross_entropy(model(tn.tensor(x)), tn.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    moved = [n for n, p in model.named_parameters() if not np.array_equal(p.numpy(), before[n])]
    assert moved == ["12.bias"]
