"""Every public op, in one table, in MyGrad's spirit:

* every name in ``tinynet.ops.__all__`` has a row here, and each row passes
  gradcheck (float64) on numpy and through the strict CuPy stand-in;
* no op writes into its inputs or into the gradient it receives: forward and
  backward run on copies-checked arrays, which must come out bit-for-bit as
  they went in (an op that reused ``g`` or ``x`` as scratch would change them).
"""
import numpy as np
import pytest

import tinynet as tn
from tinynet import ops

R = np.random.default_rng(0)


def _pos(shape):
    return np.abs(R.standard_normal(shape)) + 0.5


def _std(shape):
    return R.standard_normal(shape)


# name -> (function of the Tensors, input arrays); every input requires grad
TABLE = {
    "add": (lambda a, b: ops.add(a, b), [_std((2, 3)), _std((3,))]),
    "sub": (lambda a, b: ops.sub(a, b), [_std((2, 3)), _std((2, 1))]),
    "mul": (lambda a, b: ops.mul(a, b), [_std((2, 3)), _std((3,))]),
    "div": (lambda a, b: ops.div(a, b), [_std((2, 3)), _pos((3,))]),
    "neg": (lambda a: ops.neg(a), [_std((2, 3))]),
    "pow": (lambda a, b: ops.pow(a, b), [_pos((2, 3)), _std((3,))]),
    "exp": (lambda a: ops.exp(a), [_std((2, 3))]),
    "log": (lambda a: ops.log(a), [_pos((2, 3))]),
    "relu": (lambda a: ops.relu(a), [_std((3, 4))]),
    "matmul": (lambda a, b: ops.matmul(a, b), [_std((2, 3, 4)), _std((4, 2))]),
    "sum": (lambda a: ops.sum(a, axis=1), [_std((2, 3, 2))]),
    "mean": (lambda a: ops.mean(a, axis=(0, 2), keepdims=True), [_std((2, 3, 2))]),
    "max": (lambda a: ops.max(a, axis=1), [_std((3, 4))]),
    "reshape": (lambda a: ops.reshape(a, (3, 2)), [_std((2, 3))]),
    "transpose": (lambda a: ops.transpose(a, (1, 0, 2)), [_std((2, 3, 2))]),
    "getitem": (lambda a: ops.getitem(a, (slice(None), [0, 2, 2])), [_std((2, 3))]),
    "concatenate": (lambda a, b: ops.concatenate([a, b], axis=1),
                    [_std((2, 3)), _std((2, 1))]),
    "broadcast_to": (lambda a: ops.broadcast_to(a, (4, 2, 3)), [_std((2, 1))]),
    "cast": (lambda a: ops.cast(a, np.float64), [_std((2, 3))]),
    "to_device": (lambda a: ops.to_device(a, a.device), [_std((2, 3))]),
    "log_softmax": (lambda a: ops.log_softmax(a, axis=-1), [_std((3, 4))]),
    "softmax": (lambda a: ops.softmax(a, axis=0), [_std((3, 4))]),
    "dense": (lambda x, w, b: ops.dense(x, w, b), [_std((4, 3)), _std((3, 2)), _std((2,))]),
    "conv2d": (lambda x, w, b: ops.conv2d(x, w, b, stride=(1, 2), padding=1),
               [_std((2, 2, 5, 5)), _std((3, 2, 3, 2)), _std((3,))]),
    "max_pool2d": (lambda a: ops.max_pool2d(a, 2, 1), [_std((2, 2, 4, 5))]),
    "conv2d_relu_maxpool": (lambda x, w, b: ops.conv2d_relu_maxpool(x, w, b, padding=1),
                            [_std((2, 2, 4, 6)), _std((3, 2, 3, 3)), _std((3,))]),
    "dropout": (lambda a: ops.dropout(a, 0.5, mask=tn.tensor(
        (np.arange(12).reshape(3, 4) % 3 > 0).astype(np.float64), device=a.device)),
                [_std((3, 4))]),
    "softmax_cross_entropy": (lambda z: ops.softmax_cross_entropy(z, [0, 3, 1]),
                              [_std((3, 4))]),
    "nll_loss": (lambda z: ops.nll_loss(ops.log_softmax(z), [2, 0, 1]), [_std((3, 4))]),
    "conv2d_simple": (lambda x, w: ops.conv2d_simple(x, w, padding="same"),
                      [_std((1, 2, 4, 4)), _std((2, 2, 3, 3))]),
    "max_pool2d_simple": (lambda a: ops.max_pool2d_simple(a, 2), [_std((1, 2, 4, 4))]),
    "conv2d_relu_maxpool_simple": (
        lambda x, w, b: ops.conv2d_relu_maxpool_simple(x, w, b, padding=1),
        [_std((1, 2, 4, 4)), _std((2, 2, 3, 3)), _std((2,))]),
    "softmax_cross_entropy_simple": (
        lambda z: ops.softmax_cross_entropy_simple(z, [1, 1, 0]), [_std((3, 2))]),
}


def test_every_public_op_has_a_gradcheck_row():
    assert sorted(ops.__all__) == sorted(TABLE), (
        f"missing rows: {sorted(set(ops.__all__) - set(TABLE))}; "
        f"stale rows: {sorted(set(TABLE) - set(ops.__all__))}")


def _inputs(name, device):
    return [tn.tensor(a.copy(), requires_grad=True, dtype=np.float64, device=device)
            for a in TABLE[name][1]]


@pytest.mark.parametrize("name", sorted(TABLE))
def test_gradcheck(name, device):
    assert tn.gradcheck(TABLE[name][0], _inputs(name, device))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_op_mutates_neither_its_inputs_nor_the_incoming_gradient(name, device):
    xs = _inputs(name, device)
    before = [x.numpy().copy() for x in xs]
    out = TABLE[name][0](*xs)
    g_host = np.random.default_rng(1).standard_normal(out.shape)
    g = tn.tensor(g_host, dtype=np.float64, device=device)
    out.backward(g)
    for x, b in zip(xs, before):
        assert x.numpy().tobytes() == b.tobytes(), f"{name} changed an input"
    assert g.numpy().tobytes() == g_host.tobytes(), f"{name} changed the incoming gradient"


# shapes large enough that the fast ops split their work into several blocks
# (ops/_parallel.py), so the threaded paths are held to the same rule
LARGE = {
    "conv2d": (lambda x, w, b: ops.conv2d(x, w, b, padding="same"),
               [_std((8, 8, 12, 12)), _std((16, 8, 3, 3)), _std((16,))]),
    "conv2d_stride2": (lambda x, w: ops.conv2d(x, w, stride=2, padding=1),
                       [_std((8, 8, 12, 12)), _std((16, 8, 3, 3))]),
    "relu": (lambda a: ops.relu(a), [_std((64, 32, 8, 8))]),
    "max_pool2d": (lambda a: ops.max_pool2d(a, 2), [_std((32, 16, 12, 12))]),
    "dense": (lambda x, w, b: ops.dense(x, w, b), [_std((64, 300)), _std((300, 400)),
                                                   _std((400,))]),
}


@pytest.mark.parametrize("name", sorted(LARGE))
def test_blocked_ops_mutate_nothing_either(name):
    fn, arrays = LARGE[name]
    xs = [tn.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    before = [x.numpy().copy() for x in xs]
    out = fn(*xs)
    g_host = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    g = tn.tensor(g_host)
    out.backward(g)
    for x, b in zip(xs, before):
        assert x.numpy().tobytes() == b.tobytes(), f"{name} changed an input"
    assert g.numpy().tobytes() == g_host.tobytes(), f"{name} changed the incoming gradient"
