"""hw3_freeze_detector: detectors for two freeze causes, applied to the seed experiments.

The student writes

    find_zero_input_rows(model, data) -> bool array (IN,)
        rows of the FIRST Dense layer's weight whose input feature is 0 on every
        sample of ``data`` -- their gradient xᵀδ is 0, so they can never change
    frozen_rows_after_training(model, x, y, epochs=1, batch_size=50, lr=1e-3) -> bool array
        train the model in place (RMSprop) and return the rows of its first Dense
        weight that did not change at all
    effective_width(layer, next_layer=None, rtol=1e-5) -> int
        how many different hidden units a Dense layer really has, as
        tinynet.diagnose counts them: incoming column, bias and (when a Dense
        layer follows) outgoing row, each equal within rtol x the largest
        |value| of that part in the layer

Parts (10 points):

    find_zero_input_rows        4
    frozen_rows_after_training  3
    effective_width             3
"""

import numpy as np

from tinynet import init, nn
from tinynet.grade.core import (WRONG, WRONG_TYPE, Assignment, Described, Fail, Part, lookup,
                                type_name, unwrap)
from tinynet.random import manual_seed
from tinynet.tensor import Tensor, no_grad

ID = "hw3_freeze_detector"


# --------------------------------------------------------------------------
# reference helpers
# --------------------------------------------------------------------------
def first_dense(model):
    return next((m for m in model.modules() if isinstance(m, nn.Dense)), None)


def first_dense_input(model, data):
    """The array the first Dense layer receives when ``model`` runs on ``data``."""
    dense = first_dense(model)
    seen = []
    handle = dense.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    training = model.training
    model.eval()
    try:
        with no_grad():
            model(data if isinstance(data, Tensor) else Tensor(np.asarray(data)))
    finally:
        handle.remove()
        model.train(training)
    a = seen[0]
    return np.asarray(a.numpy() if isinstance(a, Tensor) else a)


def zero_input_rows(model, data):
    return (first_dense_input(model, data) == 0).all(axis=0)


def _weights(model):
    return {k: np.asarray(v, dtype=np.float64) for k, v in model.state_dict().items()}


#: tinynet's own implementations of the exercise a detector must not call while graded.
REFUSED = ["tinynet.diagnose:effective_width", "tinynet.diagnose.symmetry:group_units",
           "tinynet.diagnose.symmetry:width_from_projection",
           "tinynet.diagnose:zero_input_rows", "tinynet.diagnose.probes:zero_input_rows"]


def model_spec(model, layer=None):
    """A model as plain data the student process rebuilds (tinynet.grade.student.build_model)."""
    layers = []
    for m in (model if isinstance(model, nn.Sequential) else [model]):
        if isinstance(m, nn.Dense):
            layers.append(["Dense", m.in_features, m.out_features, m.bias is not None])
        elif isinstance(m, nn.ReLU):
            layers.append(["ReLU"])
        elif isinstance(m, nn.Flatten):
            layers.append(["Flatten"])
        elif isinstance(m, nn.Dropout):
            layers.append(["Dropout", float(m.p)])
        else:
            raise TypeError(f"model_spec: no spec for {type(m).__name__}")
    state = {k: p.numpy() for k, p in
             (model if isinstance(model, nn.Sequential) else nn.Sequential(model))
             .named_parameters()}
    return {"layers": layers, "state": state, "layer": layer}


def call_with_model(st, name, model, data, *args, layer=None, **kwargs):
    """The student's ``name(model, data, *args)`` on a copy of ``model`` in their process.

    Returns (their result as a trusted stand-in, the copy's weights afterwards).
    """
    if data is None:
        spec = {"array": None}
    else:
        spec = {"array": np.asarray(data.numpy() if isinstance(data, Tensor) else data),
                "tensor": isinstance(data, Tensor)}
    reply = st.request("call_model", name=name, model=model_spec(model, layer), data=spec,
                       args=list(args), kwargs=kwargs, refused=REFUSED)
    value = unwrap(reply)
    state = reply.get("state") if isinstance(reply, dict) else None
    if not isinstance(state, dict) or not all(type(v) is np.ndarray for v in state.values()):
        raise Fail("the student process sent a malformed reply", WRONG)
    return value, state


def _as_mask(what, got, n):
    """got as a bool array of shape (n,), or a Fail about its type or shape."""
    if isinstance(got, Described) and got.kind == "tensor":
        raise Fail(f"{what} returned a tinynet Tensor; return a numpy boolean array "
                   f"(call .numpy() on it)", WRONG_TYPE)
    if not isinstance(got, np.ndarray):
        raise Fail(f"{what} should return a numpy boolean array of shape ({n},), got "
                   f"{type_name(got)}", WRONG_TYPE)
    if got.dtype != np.bool_:
        if np.issubdtype(got.dtype, np.integer) and np.isin(got, (0, 1)).all():
            got = got.astype(bool)
        else:
            raise Fail(f"{what} should return a boolean array (True/False per row), got "
                       f"dtype {got.dtype}; e.g. (a == 0).all(axis=0) is boolean", WRONG_TYPE)
    if got.shape != (n,):
        hint = ""
        if got.size == n:
            hint = f"; drop the extra axes (reshape({n}) or no keepdims)"
        elif got.ndim == 2 and got.shape[1] == n:
            hint = "; reduce over the samples (axis 0) with .all(axis=0)"
        raise Fail(f"{what} returned shape {got.shape}; expected one entry per row of the "
                   f"first Dense weight, i.e. per input feature: ({n},){hint}", WRONG)
    return got


def _rows(n):
    n = int(n)
    return f"{n} row" if n == 1 else f"{n} rows"


def _mask_mismatch(what, got, expected, case, inputs=None, raw=None):
    """A Fail describing how ``got`` differs from ``expected`` (both bool (IN,))."""
    if np.array_equal(got, ~expected):
        return Fail(f"{what} on {case}: your mask is inverted -- True must mark the rows "
                    f"that CANNOT change (input always 0).", WRONG)
    extra = np.flatnonzero(got & ~expected)
    missed = np.flatnonzero(expected & ~got)
    lines = [f"{what} on {case}: you marked {_rows(got.sum())}, the right answer is "
             f"{_rows(expected.sum())}."]
    if len(extra):
        i = int(extra[0])
        detail = ""
        if inputs is not None:
            s = int(np.flatnonzero(inputs[:, i] != 0)[0])
            detail = f" (it is {inputs[s, i]:.4g} on sample {s})"
        lines.append(f"{_rows(len(extra))} marked but the input is not always 0 there, "
                     f"e.g. row {i}: input feature {i} is nonzero on some sample{detail}.")
    if len(missed):
        i = int(missed[0])
        lines.append(f"{_rows(len(missed))} with an input that is 0 on every sample not "
                     f"marked, e.g. row {i}.")
        if raw is not None and (raw[:, i] != 0).any():
            lines.append("The data itself is not 0 there: a layer in front of the first "
                         "Dense layer (here a ReLU) makes it 0. Look at the input the Dense "
                         "layer actually receives -- run the layers before it, or catch "
                         "its input with layer.register_forward_hook.")
    return Fail("\n".join(lines), WRONG)


# --------------------------------------------------------------------------
# part 1: find_zero_input_rows
# --------------------------------------------------------------------------
def _zero_input_cases():
    rng = np.random.default_rng(3)
    cases = []

    manual_seed(0)
    model = nn.Sequential(nn.Dense(6, 4), nn.ReLU(), nn.Dense(4, 2))
    x = rng.uniform(0.1, 1.0, (5, 6)).astype(np.float32)
    x[:, [1, 4]] = 0
    cases.append((model, x, x, "a Dense(6 -> 4) model and (5, 6) numpy data with columns "
                  "1 and 4 zero"))

    model = nn.Sequential(nn.Flatten(), nn.Dense(16, 3), nn.ReLU(), nn.Dense(3, 2))
    img = np.zeros((7, 1, 4, 4), np.float32)
    img[:, :, 1:3, 1:3] = rng.uniform(0.1, 1.0, (7, 1, 2, 2))
    cases.append((model, Tensor(img), img.reshape(7, 16),
                  "Flatten + Dense(16 -> 3) on 4x4 images (a Tensor) with a zero border"))

    model = nn.Sequential(nn.ReLU(), nn.Dense(5, 3))
    x = rng.uniform(0.1, 1.0, (6, 5)).astype(np.float32)
    x[:, 2] = -x[:, 2]                 # negative everywhere: ReLU makes it 0
    x[::2, 0] = -1.0                   # mixed: stays nonzero on odd samples
    x[:, 4] = 0
    cases.append((model, x, x, "ReLU + Dense(5 -> 3), where column 2 of the data is "
                  "negative"))
    return cases


def _digits_case(n=64):
    from tinynet import data, experiments
    manual_seed(0)
    x, y = data.digits(n=n, seed=1, flatten=True)
    return experiments.zero_pixels_mlp(), x, y


def check_find_zero_input_rows(st, ctx):
    fn = lookup(st, ctx, "find_zero_input_rows")
    what = "find_zero_input_rows"
    cases = _zero_input_cases()
    model, x, _ = _digits_case()
    cases.append((model, x, x, "the zero-pixels MLP on 64 embedded digits"))
    for model, data, raw, case in cases:
        before = _weights(model)
        inputs = first_dense_input(model, data)
        expected = (inputs == 0).all(axis=0)
        got, after = call_with_model(st, fn, model, data)
        got = _as_mask(what, got, expected.shape[0])
        if set(after) != set(before) or any(not np.array_equal(before[k], after[k])
                                            for k in before):
            raise Fail(f"{what} changed the model's weights ({case}); a detector must only "
                       f"look (run the model under tn.no_grad(), no optimizer step)", WRONG)
        if not np.array_equal(got, expected):
            raise _mask_mismatch(what, got, expected, case, inputs=inputs, raw=raw)
    return (f"right on {len(cases)} models, including a ReLU in front of the first Dense "
            f"layer and the zero-pixels MLP ({int(expected.sum())} frozen rows of 784 on 64 "
            f"digits).")


# --------------------------------------------------------------------------
# part 2: effective_width
# --------------------------------------------------------------------------
def reference_width(layer, next_layer=None, rtol=None):
    """tinynet's one definition of effective width (tinynet.diagnose.effective_width):
    units are the same when their incoming weights, bias and -- with next_layer -- outgoing
    weights each agree within rtol x that part's largest |value| in the layer.  Computed
    HERE, in the trusted process; the student's function is compared with it."""
    from tinynet.diagnose import effective_width
    if rtol is None:
        return effective_width(layer, next_layer)
    return effective_width(layer, next_layer, rtol=rtol)


def _dense_with(weight, bias, dtype=np.float32):
    """A Dense layer holding exactly these values (float64 keeps differences of 1e-9)."""
    layer = nn.Dense(weight.shape[0], weight.shape[1], bias=bias is not None)
    layer.weight.data = np.array(weight, dtype=dtype)
    if bias is not None:
        layer.bias.data = np.array(bias, dtype=dtype)
    return layer


def _width_cases():
    """(layer, next layer or None, kwargs, description, hint when wrong)."""
    rng = np.random.default_rng(5)
    a, b, c = (rng.standard_normal(4) for _ in range(3))
    cases = [
        (nn.Dense(5, 8, kernel_init=init.ones), None, {},
         "Dense(5 -> 8) with every weight 1 and every bias 0: all 8 units compute the same "
         "thing", ""),
    ]
    manual_seed(1)
    cases.append((nn.Dense(5, 8), None, {},
                  "Dense(5 -> 8) with a random (glorot) init: all 8 units differ", ""))
    w = np.stack([a, a, b, a, c, b], axis=1)
    cases.append((_dense_with(w, np.zeros(6)), None, {},
                  "a Dense(4 -> 6) whose weight columns are a, a, b, a, c, b (zero biases)", ""))
    w = np.stack([a] * 6, axis=1)
    cases.append((_dense_with(w, np.array([0.0, 0.0, 0.5, 0.5, 1.0, 0.0])), None, {},
                  "a Dense(4 -> 6) whose weight columns are all equal but whose biases are "
                  "0, 0, 0.5, 0.5, 1, 0", " You ignored the bias: units with different "
                  "biases compute different things."))
    w = np.stack([a, a + 1e-9, b, b - 1e-9], axis=1)
    noisy = _dense_with(w, np.zeros(4), dtype=np.float64)
    cases.append((noisy, None, {},
                  "a Dense(4 -> 4) whose columns are a, a + 1e-9, b, b - 1e-9 (float64), "
                  "default rtol=1e-5", " Compare with a tolerance (rtol times the largest "
                  "|value|), not exact equality: rounding makes equal units differ slightly."))
    cases.append((noisy, None, {"rtol": 1e-12},
                  "the same layer with rtol=1e-12: now the 1e-9 differences count",
                  " Use the rtol you are given."))
    w = np.stack([1000 * a, 1000 * a + 1e-3, 1000 * b], axis=1)
    cases.append((_dense_with(w, None, dtype=np.float64), None, {},
                  "a Dense(4 -> 3, bias=False) with columns 1000a, 1000a + 0.001, 1000b "
                  "(layer.bias is None)", " The tolerance is relative: rtol times the "
                  "largest |value| of the weights (here about 1000), so 0.001 is within it."))
    first = nn.Dense(3, 4, kernel_init=init.constant(0.5))
    nxt = _dense_with(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]), np.zeros(2))
    cases.append((first, nxt, {},
                  "a Dense(3 -> 4) with every weight 0.5, followed by a Dense(4 -> 2) whose "
                  "rows are r, r, s, r", " A unit is also its OUTGOING row of the next "
                  "layer: units that feed the next layer differently are different."))
    return cases


def check_effective_width(st, ctx):
    fn = lookup(st, ctx, "effective_width")
    what = "effective_width"
    cases = _width_cases()
    for layer, nxt, kwargs, case, hint in cases:
        expected = reference_width(layer, nxt, kwargs.get("rtol"))
        model = nn.Sequential(layer) if nxt is None else nn.Sequential(layer, nn.ReLU(), nxt)
        try:
            got, _ = call_with_model(st, fn, model, None, layer=[0] if nxt is None else [0, 2],
                                     **kwargs)
        except Fail as exc:
            raise Fail(f"{exc}\n  (on {case})", exc.reason) from None
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)) \
                or isinstance(got, float):
            raise Fail(f"{what} should return an int (a count of units), got "
                       f"{type_name(got)}", WRONG_TYPE)
        if got != expected:
            raise Fail(f"{what} returned {got} for {case}; expected {expected}.{hint}", WRONG)
    return (f"right on {len(cases)} layers: constant, random, duplicated columns, biases, "
            f"relative tolerance, the next layer's rows.")


# --------------------------------------------------------------------------
# part 3: frozen_rows_after_training
# --------------------------------------------------------------------------
def check_frozen_rows_after_training(st, ctx):
    fn = lookup(st, ctx, "frozen_rows_after_training")
    what = "frozen_rows_after_training"
    rng = np.random.default_rng(11)
    img = np.zeros((40, 1, 4, 4), np.float32)
    img[:, :, 1:3, 1:3] = rng.uniform(0.1, 1.0, (40, 1, 2, 2))
    labels = rng.integers(0, 3, 40)
    manual_seed(2)
    small = nn.Sequential(nn.Flatten(), nn.Dense(16, 8), nn.ReLU(), nn.Dense(8, 3))
    mlp, x, y = _digits_case()
    cases = [(small, img, labels, "Flatten + Dense(16 -> 8) + ReLU + Dense(8 -> 3) on 40 "
              "4x4 images with a zero border"),
             (mlp, x, y, "the zero-pixels MLP on 64 embedded digits")]
    for model, data, targets, case in cases:
        expected = zero_input_rows(model, data)
        dense_key = next(k for k, p in model.named_parameters()
                         if p is first_dense(model).weight)
        w0 = first_dense(model).weight.numpy()
        got, after = call_with_model(st, fn, model, data, targets)
        got = _as_mask(what, got, expected.shape[0])
        w1 = after.get(dense_key)
        if not isinstance(w1, np.ndarray) or w1.shape != w0.shape:
            raise Fail(f"{what} on {case}: the model's first Dense weight changed shape", WRONG)
        moved = (w1 != w0).any(axis=1)
        if not moved.any():
            raise Fail(f"{what} on {case}: the model's first Dense weight did not change at "
                       f"all -- train the model you are given, in place, before comparing.",
                       WRONG)
        if got.all():
            raise Fail(f"{what} on {case}: you report every row as unchanged, but the model "
                       f"did train ({_rows(moved.sum())} moved). Did you save the "
                       f"weights before training as a reference (weight.data) instead of a "
                       f"copy (weight.numpy())? A reference changes along with the weights.",
                       WRONG)
        if not np.array_equal(got, ~moved):
            raise _mask_mismatch(what, got, ~moved, case)
        if not np.array_equal(got, expected):
            raise Fail(f"{what} on {case}: your mask matches what changed, but rows with a "
                       f"nonzero input did not move (or zero-input rows did): train on all "
                       f"of x for the given epochs.", WRONG)
    return ("after training, exactly the rows with an always-zero input stayed frozen -- "
            "the detector's prediction.")


ASSIGNMENT = Assignment(
    ID, "A detector for frozen weights", "hw3_freeze_detector.ipynb", [
        Part("find_zero_input_rows", 4, "find_zero_input_rows(model, data)",
             check_find_zero_input_rows),
        Part("frozen_rows_after_training", 3, "frozen_rows_after_training(model, x, y)",
             check_frozen_rows_after_training),
        Part("effective_width", 3, "effective_width(layer, next_layer, rtol)",
             check_effective_width),
    ])
