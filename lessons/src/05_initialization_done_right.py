# Source of lessons/05_initialization_done_right.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 5: Initialization done right
#
# Lessons 1–4 each met one way in which the first weights can stop a network from learning:
# every weight equal, a kernel of zeros, a scale so large that the updates looked like nothing.
# This lesson puts all of them side by side in one deep network and measures, before any
# training, what each initialization does to the signal.
#
# * **Forward:** does each layer's output keep a sensible size, or does it shrink to nothing or
#   blow up, layer after layer?
# * **Backward:** does the gradient reach the first layer?
# * **Symmetry:** do the units of a layer differ from each other at all?
#
# Then we train each network for a few hundred steps and collect everything in one table.
#
# The network is deliberately deep and plain: **10 Dense layers, 256 units wide, ReLU**, on
# tinynet's embedded digits. With depth, a small per-layer effect compounds into a huge one,
# which makes it easy to measure.

# %%
# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import tinynet as tn
from tinynet import nn, optim, init
import tinynet.nn.functional as F
from tinynet.data import DataLoader, digits

DEPTH, WIDTH = 10, 256              # Dense layers, hidden units per layer
N_TRAIN, N_PROBE = 3000, 512        # training images; images in the measuring batch
STEPS, BATCH, LR = 300, 64, 0.005   # the short training run: SGD with momentum 0.9

x_train, y_train = digits(N_TRAIN, flatten=True)      # (3000, 784) in [0, 1], labels 0-9
x_probe, y_probe = x_train[:N_PROBE], y_train[:N_PROBE]
print(x_train.shape, x_train.dtype, "pixel mean", round(float(x_train.mean()), 3))

# %% [markdown]
# ## The six schemes
#
# | scheme | weights drawn from | what to expect |
# |---|---|---|
# | zeros | $w = 0$ | nothing flows, forward or backward |
# | constant | $w = 1/256$ | a sensible *scale*, but every unit identical (lesson 3) |
# | too small | $\mathcal N(0,\,0.01^2)$ | the signal shrinks at every layer |
# | too large | $\mathcal N(0,\,1)$ | the signal grows at every layer (lesson 2's init) |
# | Glorot | $\mathrm{Var}(w) = 2/(n_\text{in} + n_\text{out})$ | designed for tanh; slowly shrinks with ReLU |
# | He | $\mathrm{Var}(w) = 2/n_\text{in}$ | designed for ReLU: keeps the size |
#
# All biases start at zero. `tn.manual_seed(0)` before each model makes every run repeat
# bit for bit.

# %%
SCHEMES = {
    "zeros": init.zeros,
    "constant": init.constant(1 / WIDTH),
    "too small": init.normal(0.0, 0.01),
    "too large": init.normal(0.0, 1.0),
    "Glorot": init.glorot_normal,
    "He": init.he_normal,
}


def deep_mlp(kernel_init, depth=DEPTH, width=WIDTH):
    """784 -> width -> ... -> width -> 10: `depth` Dense layers with a ReLU between them."""
    layers, n_in = [], 784
    for _ in range(depth - 1):
        layers += [nn.Dense(n_in, width, kernel_init=kernel_init), nn.ReLU()]
        n_in = width
    layers.append(nn.Dense(n_in, 10, kernel_init=kernel_init))
    return nn.Sequential(*layers)


def fresh_model(scheme):
    tn.manual_seed(0)
    return deep_mlp(SCHEMES[scheme])


deep_mlp(init.he_normal, depth=3)     # what a (shorter) one looks like

# %% [markdown]
# ## Why the scale of the weights matters: the variance argument
#
# Take one unit of layer $l$: $z = \sum_{i=1}^{n_\text{in}} w_i h_i$ with independent weights of
# mean 0 and variance $\mathrm{Var}(w)$, independent of the inputs $h_i$. Then
#
# $$\mathrm{Var}(z) = n_\text{in}\,\mathrm{Var}(w)\,\mathbb E[h^2].$$
#
# ReLU keeps the positive half of a symmetric $z$, so $\mathbb E[\mathrm{relu}(z)^2] = \tfrac12 \mathrm{Var}(z)$.
# Put together, every layer multiplies the mean square of the signal by the same **gain**
#
# $$\mathbb E[h_l^2] = \underbrace{\tfrac12\, n_\text{in}\, \mathrm{Var}(w)}_{\text{gain}}\;\mathbb E[h_{l-1}^2].$$
#
# After 9 hidden layers the signal has been multiplied by $\text{gain}^{9}$ (its standard
# deviation by $\text{gain}^{9/2}$). So only a gain of exactly 1 keeps it alive:
#
# * **He** (Kaiming He et al., 2015) chooses $\mathrm{Var}(w) = 2/n_\text{in}$, which makes the
#   gain exactly 1.
# * **Glorot** (Xavier Glorot and Yoshua Bengio, 2010) derived its variance for units that are
#   linear around 0 (tanh, sigmoid). There is no ReLU factor $\tfrac12$, and it compromises
#   between the forward pass ($n_\text{in}$) and the backward pass ($n_\text{out}$):
#   $\mathrm{Var}(w) = 2/(n_\text{in}+n_\text{out})$. In our square $256\times256$ layers that is
#   $1/256$, so with ReLU the gain is $\tfrac12$ and the std shrinks by $\sqrt{1/2} \approx 0.71$
#   per layer.
# * A fixed **std of 0.01** gives gain $= \tfrac12 \cdot 256 \cdot 10^{-4} = 0.0128$, so the std
#   shrinks by $0.113\times$ per layer. A fixed **std of 1** gives gain 128, so the std grows by
#   $11.3\times$ per layer.
#
# The backward pass is the mirror image. The gradient at layer $l$ is $\delta_l = (\delta_{l+1}
# W_{l+1}^\top) \odot \mathrm{relu}'(z_l)$, a sum over $n_\text{out}$ terms followed by the same
# halving by the ReLU mask. In square layers it gets the same per-layer factor, applied from the
# top down.
#
# Zeros and constant do not fit this argument at all, because their weights are not independent
# draws. We will see what they do instead.
#
# Here is the predicted per-layer factor for the standard deviation, for our 256-wide layers:

# %%
def predicted_factor(kernel_init, n=WIDTH):
    """sqrt(gain) = sqrt(n * Var(w) / 2) for an n x n layer; None where the argument does not apply."""
    if kernel_init in (init.zeros,) or repr(kernel_init).startswith("constant"):
        return None
    var = float(np.var(kernel_init((n, n), dtype=np.float64, fan_in=n, fan_out=n)))
    return float(np.sqrt(n * var / 2))


tn.manual_seed(0)
PREDICTED = {name: predicted_factor(fn) for name, fn in SCHEMES.items()}
for name, f in PREDICTED.items():
    print(f"{name:10s}", "—" if f is None else f"std x {f:.3f} per layer  ->  x {f ** 8:.3g} over 8 layers")

# %% [markdown]
# ## Measuring one forward and backward pass
#
# `probe` pushes one batch of 512 images through the network layer by layer and keeps every
# layer's output. For the hidden activations $h_l$ (after ReLU) it records the standard deviation
# and the fraction of exact zeros. Then it runs one backward pass and records, for every Dense
# layer, two gradient norms:
#
# * $\lVert\partial L/\partial z_l\rVert$, the gradient arriving at the layer's output. This is
#   the **backward signal**, the quantity the variance argument is about.
# * $\lVert\partial L/\partial W_l\rVert$, the gradient of the weights, which is what the
#   optimizer actually uses. Since $dW_l = h_{l-1}^\top \delta_l$, it is a product of a *forward*
#   factor and a *backward* factor.
#
# Nothing is trained yet.

# %%
def probe(model, x, y):
    """One forward + backward pass on (x, y); per-layer statistics as numpy arrays."""
    h, pre, post = tn.tensor(x), [], []
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.Dense):
            pre.append(h.retain_grad())           # keep dL/dz for this layer
        elif isinstance(layer, nn.ReLU):
            post.append(h)
    loss = F.softmax_cross_entropy(h, tn.tensor(y))
    model.zero_grad()
    loss.backward()
    dense = [layer for layer in model if isinstance(layer, nn.Dense)]
    return {
        "loss": loss.item(),
        "act_std": np.array([a.numpy().std() for a in post]),          # hidden layers 1..9
        "zero_frac": np.array([(a.numpy() == 0).mean() for a in post]),
        "grad_z": np.array([np.linalg.norm(z.grad.numpy()) for z in pre]),           # 1..10
        "grad_w": np.array([np.linalg.norm(d.weight.grad.numpy()) for d in dense]),  # 1..10
    }


stats = {name: probe(fresh_model(name), x_probe, y_probe) for name in SCHEMES}

print(f"{'scheme':10s} {'loss':>9s}   activation std at hidden layers 1, 3, 5, 7, 9")
for name, s in stats.items():
    print(f"{name:10s} {s['loss']:9.3g}   " + "  ".join(f"{v:9.2e}" for v in s["act_std"][::2]))

# %% [markdown]
# ## The forward pass: activation size across depth
#
# The left panel plots the numbers above on a log scale. The right panel shows the fraction of
# activations that are exactly 0: a ReLU layer normally zeroes about half of them.

# %%
COLORS = {"zeros": "#7f7f7f", "constant": "#9467bd", "too small": "#1f77b4",
          "too large": "#d62728", "Glorot": "#ff7f0e", "He": "#2ca02c"}
FLOOR = 1e-12                      # exact zeros, drawn at the bottom of a log axis
hidden = np.arange(1, DEPTH)       # hidden layers 1..9
dense_idx = np.arange(1, DEPTH + 1)


def log_curve(ax, xs, ys, name):
    ys = np.asarray(ys, dtype=float)
    label = name + ("  (exactly 0, drawn at 1e-12)" if np.all(ys == 0) else "")
    ax.plot(xs, np.maximum(ys, FLOOR), marker="o", ms=4, color=COLORS[name], label=label,
            ls="--" if np.all(ys == 0) else "-")


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
for name, s in stats.items():
    log_curve(ax1, hidden, s["act_std"], name)
    ax2.plot(hidden, s["zero_frac"], marker="o", ms=4, color=COLORS[name], label=name)
ax1.set_yscale("log"); ax1.set_ylim(FLOOR / 3, 1e11)
ax1.set_xlabel("hidden layer"); ax1.set_ylabel("std of activations (after ReLU)")
ax1.set_title("Forward: the signal shrinks, explodes, or keeps its size")
ax1.legend(fontsize=8, loc="upper left")
ax2.set_ylim(-0.03, 1.03); ax2.set_xlabel("hidden layer"); ax2.set_ylabel("fraction exactly 0")
ax2.set_title("Fraction of activations that are exactly 0")
ax2.legend(fontsize=8, loc="center right")
fig.tight_layout()

# %% [markdown]
# Here is what the figure shows:
#
# * **too small** falls by about $9\times$ per layer (a factor of 0.11), as predicted. By layer 9 the activations
#   are around $10^{-9}$: every image produces (almost) the same nothing.
# * **too large** rises by about $11\times$ per layer, to around $10^{9}$. The logits are
#   enormous, the softmax is saturated, and the loss is around $10^{10}$.
# * **Glorot** shrinks gently, by $0.71\times$ per layer. That is harmless at depth 10 but
#   would be fatal at depth 50.
# * **He** stays in a narrow band. The layer-to-layer wobble is the finite width (256 random
#   weights per unit), not a trend.
# * **zeros**: every activation is exactly 0, and 100% of them are zeros.
# * **constant** has a healthy-looking std and no zeros at all, because all weights are
#   positive and so every unit is on. Its problem does not show up in a size statistic (see
#   below).
#
# In the right panel the four random schemes draw only two curves. With the same seed,
# `normal(0, 0.01)` and `normal(0, 1)` draw the *same* random numbers at two different scales,
# and so do Glorot and He. A ReLU looks only at the sign of its input, so the pattern of zeros
# does not depend on the scale. The fraction of zeros cannot reveal a scale problem.
#
# Let's compare the measured per-layer factor (the geometric mean of the ratio of consecutive
# stds over the eight square layers) with the prediction:

# %%
def per_layer(values):
    """Geometric mean of values[l+1] / values[l] (nan when a value is 0: no factor to measure)."""
    values = np.asarray(values, dtype=float)
    if np.any(values == 0):
        return float("nan")
    return float(np.exp(np.mean(np.log(values[1:] / values[:-1]))))


MEASURED = {}
for name, s in stats.items():
    fwd = per_layer(s["act_std"])                  # std(h_{l+1}) / std(h_l), layers 1..9
    bwd = per_layer(s["grad_z"][-2::-1])           # |delta_l| / |delta_{l+1}|, layers 9..1
    MEASURED[name] = (fwd, bwd)
    pred = "—" if PREDICTED[name] is None else f"{PREDICTED[name]:.3f}"
    print(f"{name:10s} predicted {pred:>6s}   measured forward {fwd:8.3f}   backward {bwd:8.3f}")

# %% [markdown]
# The measured factors match the prediction to within about 5%. For square layers the
# backward factor agrees too. The variance argument is not a rule of thumb; it is the
# arithmetic of the network.
#
# ## The backward pass: does the gradient reach the first layer?

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
for name, s in stats.items():
    log_curve(ax1, dense_idx, s["grad_z"], name)
    log_curve(ax2, dense_idx, s["grad_w"], name)
ax1.set_yscale("log"); ax1.set_ylim(FLOOR / 3, 1e11)
ax1.set_xlabel("Dense layer (10 = output)"); ax1.set_ylabel("gradient norm")
ax1.set_title("Backward signal ‖∂L/∂z‖: read it right to left")
ax2.set_xlabel("Dense layer (10 = output)")
ax2.set_title("Weight gradients ‖∂L/∂W‖")
ax1.legend(fontsize=8, loc="upper right")
fig.tight_layout()

# %% [markdown]
# **Left panel, read from right to left.** All schemes except too-large start from the same
# gradient at the output: the softmax of near-equal logits against the labels. Then:
#
# * **too small**: the backward signal shrinks about $9\times$ per layer, so that between
#   layer 10 and layer 1 it loses a factor of a few $10^{-9}$.
# * **too large**: it grows about $11\times$ per layer towards the input.
# * **Glorot**: a gentle slope ($0.71\times$ per layer). **He**: flat.
# * **zeros**: only the output layer gets a gradient. $\delta_{l} = \delta_{l+1} W_{l+1}^\top$
#   with $W_{l+1} = 0$ is exactly 0, so nothing reaches layers 1–9 (the *zero weight* cause of
#   lesson 4). Even the output layer's weight gradient $h_9^\top \delta_{10}$ is 0, because
#   $h_9 = 0$. Only the output **bias** can learn.
# * **constant**: about $10^{-10}$, which is zero up to rounding. The output layer's 10 columns
#   are identical, so the gradient reaching a hidden unit is $\tfrac1{256}\sum_k \delta_k$, and a
#   softmax gradient sums to zero over the classes.
#
# **Right panel.** The weight gradients of too-small (and too-large) look *flat* across depth.
# The reason is $dW_l = h_{l-1}^\top \delta_l$: the forward factor falls by the same factor per
# layer by which the backward factor rises, and the two cancel. A flat weight-gradient plot does
# **not** mean "no vanishing gradient". For too-small the flat line sits around $10^{-9}$, while
# the weights are about $0.01 \cdot 256 = 2.6$ in norm. With SGD at lr 0.005 a step changes them
# by about $10^{-11}$ of their size. Lesson 2 met this trap from the other side: a picture in which
# nothing seemed to move.
#
# ## Symmetry: how many different units does a layer have?
#
# A size statistic cannot see the constant scheme's problem. The units of a layer are *all the
# same*. Two units with identical incoming weights compute identical outputs, receive identical
# gradients and therefore stay identical after every update, so the layer acts like a single
# unit copied 256 times (lesson 3). We count the distinct units in each hidden layer: columns of
# the weight matrix that differ from every other column by more than a tiny tolerance.

# %%
def distinct_units(weight, tol=1e-5):
    """Number of distinct columns (units) of an (IN, OUT) weight.

    Two columns count as the same unit when their distance is below tol times the longer
    one's length: |c_i - c_j|^2 = |c_i|^2 + |c_j|^2 - 2 c_i.c_j, all pairs in one product.
    """
    cols = weight.T.astype(np.float64)                 # (OUT, IN)
    sq = (cols ** 2).sum(axis=1)
    dist2 = sq[:, None] + sq[None, :] - 2 * cols @ cols.T
    same = dist2 <= tol ** 2 * np.maximum(sq[:, None], sq[None, :])
    same_as_earlier = np.tril(same, k=-1).any(axis=1)
    return int((~same_as_earlier).sum())


def min_distinct_units(model):
    """The smallest number of distinct units over the hidden layers."""
    hidden_dense = [layer for layer in model if isinstance(layer, nn.Dense)][:-1]
    return min(distinct_units(layer.weight.numpy()) for layer in hidden_dense)


DISTINCT_AT_INIT = {name: min_distinct_units(fresh_model(name)) for name in SCHEMES}
DISTINCT_AT_INIT

# %% [markdown]
# ## A short training run
#
# Every network now gets the same 300 steps of SGD (lr 0.005, momentum 0.9, batches of 64, the
# same batches in the same order). SGD follows the gradient's size, so it shows plainly what the
# gradients above allow. When a loss stops being finite we stop that run and record the step.

# %%
def train(model, steps=STEPS):
    """SGD on the training digits; returns (losses, step where the loss became non-finite or None)."""
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)
    losses = []
    while len(losses) < steps:
        for xb, yb in loader:
            # the too-large network overflows float32 on purpose: we catch that ourselves
            with np.errstate(over="ignore", invalid="ignore"):
                try:
                    loss = F.softmax_cross_entropy(model(xb), yb)
                except FloatingPointError:       # tinynet refuses a NaN/inf loss
                    return losses, len(losses) + 1
            losses.append(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if len(losses) == steps:
                break
    return losses, None


def accuracy(model, x, y):
    with tn.no_grad(), np.errstate(over="ignore", invalid="ignore"):
        logits = model(tn.tensor(x)).numpy()
    return float(np.mean(logits.argmax(axis=1) == y))


runs = {}
for name in SCHEMES:
    model = fresh_model(name)
    losses, diverged_at = train(model)
    runs[name] = {"losses": losses, "diverged_at": diverged_at,
                  "acc": float("nan") if diverged_at else accuracy(model, x_train, y_train),
                  "distinct": min_distinct_units(model)}
    print(f"{name:10s} steps {len(losses):3d}   final loss {losses[-1]:10.4g}   "
          f"train acc {runs[name]['acc']:.3f}" + (f"   DIVERGED at step {diverged_at}" if diverged_at else ""))

# %%
fig, ax = plt.subplots(figsize=(10, 4))
for name, r in runs.items():
    ls = r["losses"]
    ax.plot(np.arange(1, len(ls) + 1), ls, color=COLORS[name], lw=1.4,
            label=name + (f" (diverged at step {r['diverged_at']})" if r["diverged_at"] else ""),
            marker="x" if r["diverged_at"] else None)
ax.axhline(np.log(10), color="k", ls=":", lw=1)
ax.text(STEPS, np.log(10) + 0.08, "ln 10: guessing", ha="right", fontsize=8)
ax.set_ylim(0, 3.5); ax.set_xlabel("SGD step"); ax.set_ylabel("training loss (batch)")
ax.set_title(f"{STEPS} steps of SGD from each initialization")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()

# %% [markdown]
# * **He** learns fast, and **Glorot** learns more slowly: its first layers receive a gradient
#   about 15× smaller.
# * **too small** sits at $\ln 10 \approx 2.303$, the loss of a uniform guess. Its gradients are
#   $10^{-9}$.
# * **zeros** sits there too (its curve hides under too-small's). Only the output bias learns,
#   so the network can at best predict the most frequent class.
# * **constant** creeps down a little, to about 20% accuracy. A network whose layers each act
#   as one unit passes a single number from layer to layer, and one number can separate only
#   a few classes. After training its layers *still* have exactly one distinct unit each (see
#   the table): gradient descent cannot break the symmetry.
# * **too large** starts at a loss around $10^{10}$. Its first update is about as large as the
#   weights themselves, and at step 2 the logits are no longer finite numbers.
#
# ## Summary table
#
# The whole lesson in one table, computed from the runs above:

# %%
def verdict(name):
    s, r = stats[name], runs[name]
    growth = s["act_std"][-1] / s["act_std"][0] if s["act_std"][0] > 0 else 0.0
    if np.all(s["act_std"] == 0):
        return "dead: all activations 0, no gradient below the output"
    if r["diverged_at"]:
        return f"exploding: loss not finite at step {r['diverged_at']}"
    if r["distinct"] == 1:
        return "symmetric: every layer acts as 1 unit"
    if growth < 1e-3:
        return "vanishing: the signal dies with depth"
    if growth > 1e3:
        return "exploding: the signal grows with depth"
    if growth < 0.2:
        return "trains, but the signal shrinks with depth"
    return "healthy"


def fmt(v, spec=".2e"):
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


rows = []
for name in SCHEMES:
    s, r = stats[name], runs[name]
    ratio = s["grad_z"][0] / s["grad_z"][-1]
    rows.append((name, fmt(float(s["act_std"][-1])), fmt(float(ratio)),
                 f"{r['distinct']} / {WIDTH}",
                 "— (diverged)" if r["diverged_at"] else f"{r['acc']:.3f}", verdict(name)))
header = ("scheme", "final act std (layer 9)", "grad norm ratio first/last ‖∂L/∂z₁‖/‖∂L/∂z₁₀‖",
          "distinct units (after training)", f"train acc after {STEPS} steps", "verdict")
table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                  ["| " + " | ".join(row) + " |" for row in rows])
display(Markdown(table))

# %% [markdown]
# **How to read it.** A healthy initialization has:
# * activations of the same order at the last hidden layer as at the first;
# * a gradient ratio near 1;
# * all 256 units distinct;
# * a falling loss.
#
# Read a row, not a column: most failures show in several columns at once. *zeros* has an
# activation std of 0, a gradient ratio of 0 **and** one distinct unit. *constant* keeps a
# normal activation std, yet its gradient ratio is tiny (the backward signal cancels, as in
# lesson 3) and it has one distinct unit. *too small* and *too large* show in the std, the
# gradient ratio and the training column. Only the distinct-units column separates the
# symmetry failures (zeros, constant) from the scale failures.
#
# ## What `tn.diagnose.explain` says about each
#
# The table above is built from hand-made probes. tinynet's own instrument gives a verdict from
# a short training run: `tn.diagnose.explain` trains a fresh copy of each network for 40 steps
# with the same optimizer, records it, and names the root cause of everything that did not
# learn. We list each scheme's root causes (`Finding.cause` of the findings with no `root`) and
# on how many parameters they appear. A few *scattered* weights whose own update rounded away
# (`below_resolution` with `evidence["scattered"]`: at most 1 % of a parameter whose other
# entries learn) are listed apart: the report says nothing needs fixing there. (*too large* diverges at step 2; lesson 6 shows how to
# read a diverged run, so we leave it out here.)

# %%
EXPLAIN_STEPS = 40
verdicts, scattered = {}, {}
for name in SCHEMES:
    if name == "too large":
        continue
    model = fresh_model(name)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    report = tn.diagnose.explain(model, DataLoader(x_train, y_train, batch_size=BATCH,
                                                   shuffle=True, seed=0),
                                 loss_fn=F.softmax_cross_entropy, optimizer=opt,
                                 steps=EXPLAIN_STEPS)
    roots = [f for f in report.findings if f.root is None]
    scattered[name] = sum(f.entries for f in roots if f.evidence.get("scattered"))
    roots = [f for f in roots if not f.evidence.get("scattered")]
    verdicts[name] = {c: sorted({f.param for f in roots if f.cause == c})
                      for c in sorted({f.cause for f in roots})}
    print(f"{name:10s} " + ";  ".join(f"{c} on {len(ps)} parameter(s)"
                                      for c, ps in verdicts[name].items())
          + f"   (+ {scattered[name]} scattered weights rounded away)")

# %% [markdown]
# Each scheme's characteristic failure is named: **zeros** → `zero_weights` (every weight matrix
# is 0, so nothing flows), **constant** → `symmetry` (one distinct unit per layer), **too
# small** → `vanishing_gradient`, **Glorot** → `tiny_update` (its deep layers move by less than
# 1e-3 of their size per step; it does learn, slowly). **He** has none of these: what is left are
# `zero_input` (lesson 1's always-black border pixels) and `dead_unit`s: ReLU units that never
# fired on the samples seen, which Glorot and *too small* have too (lesson 6 is about them).
#
# ## Exercises
#
# 1. Set the depth to 30 and predict, *before running*, the final activation std for Glorot and
#    for He from the per-layer factors. Then measure it.
# 2. Replace `init.he_normal` by `init.he_uniform`. It has the same variance, so what changes?
# 3. Train *too small* with `optim.Adam(model.parameters(), lr=1e-3)` instead of SGD. Adam
#    divides each step by the gradient's running size, $\sqrt{\hat v}$, **plus**
#    $\varepsilon = 10^{-8}$. With gradients of $10^{-9}$ or less, how large is the first step,
#    in units of lr? Does Adam rescue this network? Which problem can Adam never fix (symmetry!)?
# 4. If you have the real MNIST test split (`TINYNET_MNIST_DIR`), repeat the probe on it.
#
# The solutions are collapsed below; click a cell to open it.

# %% [solution]
# Solution 1: the factor per layer compounds over the 29 hidden layers of a 30-layer network.
deep_std = {}
for name in ("Glorot", "He"):
    s30 = probe(deep_mlp(SCHEMES[name], depth=30), x_probe, y_probe)["act_std"]
    deep_std[name] = (s30[-1] / s30[0], PREDICTED[name] ** 28)
    print(f"{name:7s} std(layer 29) / std(layer 1): measured {deep_std[name][0]:.3g}, "
          f"predicted {deep_std[name][1]:.3g}")
# Glorot shrinks by about 0.71 per layer, so 28 layers leave ~1e-4 of the signal; He keeps it.

# %% [solution]
# Solution 2: same variance -> same per-layer factor; only the shape of the distribution changes.
tn.manual_seed(0)
uniform_std = probe(deep_mlp(init.he_uniform), x_probe, y_probe)["act_std"]
print("He uniform, activation std at hidden layers 1, 3, 5, 7, 9:", np.round(uniform_std[::2], 3))
print("He normal:                                               ", np.round(stats["He"]["act_std"][::2], 3))

# %% [solution]
# Solution 3: Adam's step is lr * m / (sqrt(v) + eps). With |g| << eps it is about lr * |g| / eps.
def first_adam_step_over_lr(name):
    model = fresh_model(name)
    before = [p.numpy().copy() for p in model.parameters()]
    opt = optim.Adam(model.parameters(), lr=1e-3)
    xb, yb = next(iter(DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)))
    opt.zero_grad(); F.softmax_cross_entropy(model(xb), yb).backward(); opt.step()
    grads = [float(np.abs(p.grad.numpy()).max()) for p in model.parameters()]
    steps = [float(np.abs(p.numpy() - b).max()) / 1e-3 for p, b in zip(model.parameters(), before)]
    return grads[::2], steps[::2]                    # the weights of the 10 Dense layers


small_grads, small_steps = first_adam_step_over_lr("too small")
print("too small, largest |gradient| per layer:", [f"{g:.1e}" for g in small_grads])
print("first Adam step / lr per layer:         ", [f"{s:.3f}" for s in small_steps])
print("prediction |g| / (|g| + 1e-8):          ",
      [f"{g / (g + 1e-8):.3f}" for g in small_grads])
# The deep layers move by a few hundredths of lr, not by lr: eps dominates sqrt(v). Adam helps the
# output layer, but it cannot make the forward signal reach it, and no optimizer breaks symmetry.

# %% [solution]
# Solution 4: the same probe on real MNIST, when the test split is available.
import os
from tinynet.data import mnist
mnist_std = None
if os.environ.get("TINYNET_MNIST_DIR"):
    x_m, y_m = mnist("test", root=os.environ["TINYNET_MNIST_DIR"], download=False, flatten=True)
    mnist_std = {name: probe(fresh_model(name), x_m[:N_PROBE], y_m[:N_PROBE])["act_std"]
                 for name in ("too small", "He")}
    for name, a in mnist_std.items():
        print(f"real MNIST, {name:9s}: std(layer 9) / std(layer 1) = {a[-1] / a[0]:.3g}")
else:
    print("TINYNET_MNIST_DIR is not set: no real MNIST here.")

# ## Checks
#
# The last cell checks every number this lesson claims.

# %% [check]
act, gz = {k: s["act_std"] for k, s in stats.items()}, {k: s["grad_z"] for k, s in stats.items()}

# The variance argument: measured per-layer factors match the prediction (forward and backward).
for name in ("too small", "too large", "Glorot", "He"):
    fwd, bwd = MEASURED[name]
    assert abs(fwd / PREDICTED[name] - 1) < 0.2, (name, fwd, PREDICTED[name])
    assert abs(bwd / PREDICTED[name] - 1) < 0.2, (name, bwd, PREDICTED[name])

# He keeps the activation std within a band across depth; std 0.01 collapses, std 1 explodes.
assert act["He"].max() / act["He"].min() < 3, act["He"]
assert act["too small"][-1] / act["too small"][0] < 1e-6
assert act["too large"][-1] / act["too large"][0] > 1e6
assert 1e-2 < act["Glorot"][-1] / act["Glorot"][0] < 0.3

# The backward signal: flat for He, vanishing for std 0.01, exploding for std 1.
assert 1 / 3 < gz["He"][0] / gz["He"][-1] < 3
assert gz["too small"][0] / gz["too small"][-1] < 1e-6
assert gz["too large"][0] / gz["too large"][-1] > 1e6
assert 1e-2 < gz["Glorot"][0] / gz["Glorot"][-1] < 0.3
# ...while the weight gradients of std 0.01 look flat across depth, at a tiny size.
gw_small = stats["too small"]["grad_w"]
assert gw_small.max() / gw_small.min() < 3 and gw_small.max() < 1e-7

# Zeros: every activation and every gradient below the output is exactly 0.
assert np.all(act["zeros"] == 0) and np.all(stats["zeros"]["zero_frac"] == 1.0)
assert np.all(gz["zeros"][:-1] == 0) and np.all(stats["zeros"]["grad_w"] == 0)

# Symmetry: zeros and constant have effective width 1, at init and after training.
for name in ("zeros", "constant"):
    assert DISTINCT_AT_INIT[name] == 1 and runs[name]["distinct"] == 1, name
for name in ("too small", "too large", "Glorot", "He"):
    assert DISTINCT_AT_INIT[name] == WIDTH, name
assert np.all(stats["constant"]["zero_frac"] == 0)
assert gz["constant"][:-1].max() < 1e-6 * gz["constant"][-1]     # zero up to rounding

# Training: He learns, Glorot learns more slowly, the rest do not; std 1 diverges at once.
assert runs["He"]["acc"] > 0.95 and runs["He"]["acc"] > runs["Glorot"]["acc"] > 0.5
for name in ("zeros", "too small"):
    assert runs[name]["acc"] < 0.15 and abs(np.mean(runs[name]["losses"][-20:]) - np.log(10)) < 0.01, name
assert runs["constant"]["acc"] < 0.35 and np.mean(runs["constant"]["losses"][-20:]) > 1.5
assert runs["too large"]["diverged_at"] is not None and runs["too large"]["diverged_at"] <= 5
assert stats["too large"]["loss"] > 1e6
assert verdict("He") == "healthy" and verdict("too small").startswith("vanishing")

# explain's verdicts (Finding.cause of root findings), one characteristic cause per scheme.
assert set(verdicts["zeros"]) == {"zero_weights"}, verdicts["zeros"]
assert "symmetry" in verdicts["constant"] and len(verdicts["constant"]["symmetry"]) == DEPTH - 1
assert "vanishing_gradient" in verdicts["too small"]
assert "tiny_update" in verdicts["Glorot"] and "vanishing_gradient" not in verdicts["Glorot"]
assert set(verdicts["He"]) <= {"zero_input", "dead_unit"}, verdicts["He"]

# Exercises: depth 30; He uniform = He normal in scale; Adam's eps-limited step.
assert deep_std["Glorot"][0] < 1e-3 and 0.3 < deep_std["He"][0] < 3
assert 0.5 < uniform_std.max() / uniform_std.min() < 3
assert all(s < 0.2 for s in small_steps[:-1]), small_steps
for g, st in zip(small_grads[:-1], small_steps[:-1]):
    assert abs(st - g / (g + 1e-8)) < 0.05 * max(st, 1e-3) + 2e-4, (g, st)
if mnist_std is not None:
    assert mnist_std["too small"][-1] / mnist_std["too small"][0] < 1e-6
    assert mnist_std["He"].max() / mnist_std["He"].min() < 3
print("Lesson 5: all claims hold.")
