# Source of lessons/03_constant_init.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 3: Constant initialization
#
# A learner's MLP gave slightly different results on every run, and the learner guessed that the
# random initial weights were to blame. To make runs comparable, they set **every weight to 1**.
# After that the network stopped learning altogether. The first epoch's loss was in the
# millions, every later epoch sat at 2.303, and the accuracy stayed at exactly 10%, which is
# guessing among ten classes. They tried other constants and none of them trained.
# They then tried to give each weight a different value with a Python double loop, and gave
# up because the loop was too slow.
#
# The article ran this on Fashion-MNIST (its loss in epoch 1 was 9,765,948.7, then 2.3032 to
# 2.3031; test accuracy 0.100 throughout; the same network from normal(0, 0.01) reached 0.862).
# We reproduce it on tinynet's embedded digits. (Reading the article's code closely: it assigns
# `W2` twice, the second time with the output layer's shape, and never sets `W3` to ones, so
# `W3` keeps its earlier random values. tinynet's `constant_init_mlp` sets all three to 1, which
# is what the learner meant; exercise 3 shows the first layer stays tied with a random `W3`.)
#
# 1. **The epoch table**: the blow-up in epoch 1, then 2.303 and 0.100.
# 2. **The first three steps**: why the loss is exactly $\ln 10$ at step 1, why it explodes at
#    step 2, and why the network is dead from step 3 on.
# 3. **Every hidden unit stays identical**, and why: identical units get identical gradients.
# 4. **A gentler constant** avoids the blow-up but not the tie.
# 5. **What breaks the tie**: random initialization (over several seeds), and partly Dropout.
# 6. **What the learner wanted**: the same start on every run, which is what a seed gives.

# %%
# %matplotlib inline
import time

import numpy as np
import matplotlib.pyplot as plt

import tinynet as tn
from tinynet import nn, optim, init, plot
import tinynet.nn.functional as F
import os

from tinynet.data import digits, mnist, DataLoader, DatasetError
from tinynet.train import fit, evaluate
from tinynet.experiments import constant_init_mlp

np.set_printoptions(precision=4, suppress=True, linewidth=100)

LR, BATCH, EPOCHS = 0.5, 256, 5          # the learner's settings: SGD, lr 0.5, batch 256, 5 epochs

x_train, y_train = digits(10000, flatten=True)                 # (10000, 784) in [0, 1]
x_test, y_test = digits(2000, flatten=True, split="test")      # a held-out set, 200 per class
print(x_train.shape, x_test.shape, "classes in the test set:", np.bincount(y_test))

# %% [markdown]
# ## 1. Reproducing the epoch table
#
# The network is the learner's 784 → 256 → 30 → 10 MLP with ReLU. Every weight starts at 1
# and every bias at 0 (`tinynet.experiments.constant_init_mlp`). We train it with plain SGD, a
# learning rate of 0.5 and batches of 256. `train` is a small helper that we will reuse for
# every variant in this lesson. Besides training, it attaches a `tn.diagnose.Recorder`, which
# watches every parameter and layer, and at the end asks `tn.diagnose.explain` what it saw.
# The loader gets its own seed, so that every variant sees the same batches in the same order.

# %%
def train(model, epochs=EPOCHS, lr=LR, every=1):
    """SGD on the training digits; returns (history, recorder, report)."""
    opt = optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)
    rec = tn.diagnose.Recorder(model, opt, every=every)
    history = fit(model, F.softmax_cross_entropy, opt, loader, epochs=epochs,
                  val_data=(x_test, y_test), callbacks=[rec])
    report = tn.diagnose.explain(model, recorder=rec, steps=0)     # analyze what was recorded
    return history, rec, report


def print_epochs(history, first=1):
    for i, (loss, acc, val) in enumerate(zip(history.epoch["loss"], history.epoch["acc"],
                                             history.epoch["val_acc"])):
        print(f"epoch {first + i}, loss {loss:.4f}, train acc {acc:.3f}, test acc {val:.3f}")


tn.manual_seed(0)
ones_model = constant_init_mlp(1.0)
ones_model

# %%
history, ones_rec, ones_report = train(ones_model)
print_epochs(history)
print(f"\nln 10 = {np.log(10):.4f}")

# %% [markdown]
# That is the learner's table. The first epoch's mean loss is in the millions. From epoch 2 on
# the loss sits at 2.303 and the test accuracy is exactly 0.100.
#
# Both numbers mean "the network guesses". If a network gives every class the same
# probability $1/10$, its cross-entropy is $-\ln(1/10) = \ln 10 \approx 2.3026$ on every
# image. If it predicts the same class for every image, its accuracy is that class's share of
# the data, and our test set has exactly 200 images of each digit.
#
# The per-step loss shows that the first epoch's mean comes from a single step:

# %%
steps_loss = np.array(history.batch["loss"])
print("loss at steps 1-5:", np.round(steps_loss[:5], 4))
plot.step_losses({"all-ones init, SGD lr 0.5": steps_loss}, ref=np.log(10), ref_label="ln 10 = 2.303",
                 title="All-ones initialization: one enormous step, then ln 10 forever")

# %% [markdown]
# ## 2. The first three steps, one by one
#
# We rebuild the same model and feed it the same first batches (the loader has the same seed).
# For every step we keep the pre-activations $z_1 = xW_1 + b_1$, $z_2$ and the logits $z_3$,
# and we print the largest gradient that reaches each parameter.

# %%
tn.manual_seed(0)
probe_model = constant_init_mlp(1.0)
probe_opt = optim.SGD(probe_model.parameters(), lr=LR)
probe_batches = iter(DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0))
trace = []
for step in (1, 2, 3):
    xb, yb = next(probe_batches)
    h, pre = xb, []
    for layer in probe_model:
        h = layer(h)
        if isinstance(layer, nn.Dense):
            pre.append(h)
    loss = F.softmax_cross_entropy(h, yb)
    probe_opt.zero_grad()
    loss.backward()
    z1, z2, z3 = (t.numpy() for t in pre)
    grads = {name: float(np.abs(p.grad.numpy()).max())
             for name, p in probe_model.named_parameters()}
    trace.append({"loss": loss.item(), "z1": (z1.min(), z1.max()), "z2": (z2.min(), z2.max()),
                  "logit_spread": float((z3.max(axis=1) - z3.min(axis=1)).max()), "grads": grads,
                  "W1_grad": probe_model[0].weight.grad.numpy()})
    probe_opt.step()

print(f"{'':18s}" + "".join(f"{'step ' + str(s):>14s}" for s in (1, 2, 3)))
print(f"{'loss':18s}" + "".join(f"{t['loss']:14.6g}" for t in trace))
print(f"{'z1 min':18s}" + "".join(f"{t['z1'][0]:14.6g}" for t in trace))
print(f"{'z1 max':18s}" + "".join(f"{t['z1'][1]:14.6g}" for t in trace))
print(f"{'z2 max':18s}" + "".join(f"{t['z2'][1]:14.6g}" for t in trace))
print(f"{'logit max - min':18s}" + "".join(f"{t['logit_spread']:14.6g}" for t in trace))
for name in trace[0]["grads"]:
    print(f"{'max |grad| ' + name:18s}" + "".join(f"{t['grads'][name]:14.3g}" for t in trace))

# %% [markdown]
# Read the table column by column.
#
# **Step 1: the loss is exactly $\ln 10$.** Every hidden unit gets the same input sum:
# $z_1 = \sum_i x_i$, the total ink of the image (45 to 180 here). The 30 units of the second
# layer add up 256 equal values, so $z_2 = 256\, z_1$, in the tens of thousands. All 10 columns of
# $W_3$ are equal, so **all 10 logits are equal**, whatever the image. The softmax turns equal
# logits into $1/10$ each, and the loss is $\ln 10$.
#
# The gradient that reaches the hidden layers is zero, up to rounding ($10^{-6}$ against
# weights of 1). Let $\delta_3 = \partial L/\partial z_3$ be the gradient at the logits. For
# softmax cross-entropy it is $\delta_{3,k} = (p_k - y_k)/N$, so its entries **sum to zero**
# over the classes. It travels back through $W_3$ as
#
# $$\frac{\partial L}{\partial h_{2,j}} = \sum_k \delta_{3,k}\, W_3[j,k]
#   = 1 \cdot \sum_k \delta_{3,k} = 0 .$$
#
# So at step 1 only $W_3$ and $b_3$ learn. Their gradient is large, because
# $dW_3 = h_2^\top \delta_3$ and $h_2$ is in the tens of thousands. With a learning rate of 0.5,
# the 10 columns of $W_3$ move apart by hundreds.
#
# **Step 2: the blow-up.** Now the columns of $W_3$ differ by hundreds, and they multiply
# $h_2 \approx 30\,000$ summed over 30 units. The logits of one image now differ by up to
# $10^{9}$, so the softmax is certain, mostly of a wrong class. The cross-entropy of a confident
# wrong answer is the logit gap itself, which gives the loss of $3 \times 10^{8}$. The gradients are
# now huge everywhere. One SGD step pushes $b_1$ to about $-6000$, and the weights of every
# pixel that had ink in this batch to large negative values.
#
# **Step 3: everything is dead.** $z_1$ is now negative for every image, by tens of thousands,
# so the ReLU outputs 0 and passes no gradient back ($\mathrm{relu}'(z) = 0$ for $z < 0$). The
# second layer's input is 0 and its bias is negative, so it outputs 0 too. The logits are just
# $b_3$, the same for every image. Every gradient except $b_3$'s is **exactly** 0.
#
# From then on only $b_3$ learns, and the best a bias can do without looking at the image is
# the class frequencies. With balanced classes that is $1/10$ each, a loss of $\ln 10$, and an
# accuracy of 10%.
#
# Is the network dead for good? Gradients reach $W_1$ and $b_1$ only through active units, so
# those weights can never change again. They are dead on **every** image exactly when $z_1 < 0$
# on every image. We check the whole training set and the test set:

# %%
with tn.no_grad():
    z1_all = ones_model[0](tn.tensor(np.concatenate([x_train, x_test]))).numpy()
print(f"largest pre-activation of layer 1 over all {len(z1_all)} images: {z1_all.max():.6g}")
print(f"output bias b3 after training: {ones_model[4].bias.numpy()}")

# %% [markdown]
# The largest pre-activation is still far below zero, so no image can ever switch a unit back
# on. The network is a constant function of the image: it outputs $b_3$, whatever it is shown.
#
# `tn.diagnose.explain` tells the same story. Here are its findings (cause, parameter, how many
# entries or units, and whether it is permanent):

# %%
for f in ones_report.findings:
    print(f"{f.cause:18s} {f.param:9s} {f.entries:>7,} of {f.total:>7,}   permanent={f.permanent}"
          + (f"   (because of {f.root})" if f.root else ""))

# %% [markdown]
# There are two different root causes here, and the report names both:
#
# * **`dead_unit`**: all 256 units of layer 0 died after the blow-up at step 2. Their weights
#   stopped changing, and everything downstream (the second layer's weights, its bias, the
#   output weights) lost its input as a *consequence*. `explain` marks this as "not necessarily
#   permanent", because it can only vouch for the samples it watched after the units died. We
#   just checked every image, so we know it is permanent for this data.
# * **`symmetry`**: layer 0's 256 units behave as **1**, and layer 2's 30 units behave as 1.
#   This one is the subject of the lesson, and it is there from step 1, before anything died.
#
# (The `zero_input` finding on `0.weight` is lesson 1's story: rows of always-black border pixels.)


# %% [markdown]
# ## 3. Every hidden unit is the same unit, and why
#
# A hidden unit $j$ of layer 1 is fully described by its incoming weights (column $j$ of $W_1$),
# its bias $b_1[j]$ and its outgoing weights (row $j$ of $W_2$). We stack these into one vector
# per unit and count how many **bit-different** vectors there are:

# %%
def distinct_units(model, layer):
    """Number of bit-different hidden units of Dense layer `layer` (incoming, bias, outgoing)."""
    dense = [m for m in model if isinstance(m, nn.Dense)]
    i = dense.index(model[layer])
    W, b, W_next = dense[i].weight.numpy(), dense[i].bias.numpy(), dense[i + 1].weight.numpy()
    units = np.concatenate([W.T, b[:, None], W_next], axis=1)      # one row per unit
    return len(np.unique(units, axis=0))


W1 = ones_model[0].weight.numpy()
print("W1 changed during training:", not np.all(W1 == 1.0), "   min / max:", W1.min(), W1.max())
print("distinct units in layer 1:", distinct_units(ones_model, 0), "of 256")
print("distinct units in layer 2:", distinct_units(ones_model, 2), "of 30")

# %% [markdown]
# The weights **did** change, from 1 to values in the thousands, yet all 256 units are still
# bit-identical. Nothing froze: the units moved in lock step.
#
# **Why.** Take two units $j$ and $k$ with equal incoming weights, bias and outgoing weights.
# Forward, $z_{1,nj} = z_{1,nk}$ on every image $n$. Backward, the gradient arriving at unit $j$
# is $\sum_m \delta_{2,nm} W_2[j,m]$, equal to unit $k$'s because the rows of $W_2$ are equal,
# and both are multiplied by the same $\mathrm{relu}'(z_{1,nj})$. So
# $\partial L/\partial W_1[:,j] = \sum_n x_n \delta_{1,nj}$ equals the column for $k$, and the
# same holds for $b_1$ and the rows of $W_2$. The step subtracts equal amounts from equal numbers,
# so the units are still equal afterwards, and by induction forever. Momentum, RMSprop and Adam
# are elementwise rules whose running averages also start equal, so they keep the tie too
# (exercise 2). Nothing in the argument depends on the constant or on the size of the gradient.
#
# We check it at step 2 of the trace, where the gradients are large: all 256 columns of
# $\partial L/\partial W_1$ should be equal.

# %%
g1 = trace[1]["W1_grad"]                       # dL/dW1 at step 2, shape (784, 256)
print("largest |dL/dW1| at step 2:", float(np.abs(g1).max()))
print("distinct gradient columns:", len(np.unique(g1.T, axis=0)), "of 256")
print("distinct values inside column 0 (one per pixel with ink):", len(np.unique(g1[:, 0])))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.6, 1]})
lim = np.abs(g1).max()
im = ax1.imshow(g1, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
ax1.set_xlabel("column j = hidden unit"); ax1.set_ylabel("row i = pixel")
ax1.set_title("dL/dW1 at step 2: the 256 columns (units) are equal")
fig.colorbar(im, ax=ax1, shrink=0.8, label="dL/dW1")
ax2.imshow(g1[:, 0].reshape(28, 28), cmap="RdBu_r", vmin=-lim, vmax=lim)
ax2.set_title("column 0 as a 28×28 image:\nthe pixels' weights differ"); ax2.axis("off")
fig.tight_layout()

# %% [markdown]
# Read the figure in both directions. Along a row nothing changes: every unit gets the same
# gradient, so the **columns (units) are tied**. Down a column the values differ from pixel to
# pixel (right panel), so the weights of different pixels are **not** tied: each unit learns a
# full 784-pixel weight pattern.
#
# The article pictures the problem with two inputs sharing one weight, $f(x_1,x_2) = w(x_1+x_2)$,
# and concludes that the model is a one-variable linear function. The figure shows a different
# tie: the weights are shared across *units*, not across *inputs*. The 256 units compute one
# number per image, $h = \mathrm{relu}(w \cdot x + b)$, with $w$ a learned pattern over all
# pixels. That unit is still a ReLU unit, so the network is not linear. To check the picture, we
# build a **784 → 1 → 1 → 10** network from one unit per layer (outgoing weights scaled by 256
# and 30) and compare its logits with the full network after step 1, while every unit is alive:

# %%
def one_unit_copy(model):
    """784 -> 1 -> 1 -> 10: unit 0 of each hidden layer, outgoing weights scaled by the width."""
    W1, b1 = model[0].weight.numpy(), model[0].bias.numpy()
    W2, b2 = model[2].weight.numpy(), model[2].bias.numpy()
    W3, b3 = model[4].weight.numpy(), model[4].bias.numpy()
    return nn.Sequential(
        nn.Dense(784, 1, kernel_init=W1[:, :1], bias_init=b1[:1]), nn.ReLU(),
        nn.Dense(1, 1, kernel_init=W2[:1, :1] * W1.shape[1], bias_init=b2[:1]), nn.ReLU(),
        nn.Dense(1, 10, kernel_init=W3[:1, :] * W2.shape[1], bias_init=b3))


tn.manual_seed(0)
after_step1 = constant_init_mlp(1.0)
opt1 = optim.SGD(after_step1.parameters(), lr=LR)
xb, yb = next(iter(DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)))
opt1.zero_grad(); F.softmax_cross_entropy(after_step1(xb), yb).backward(); opt1.step()

with tn.no_grad():
    wide = after_step1(tn.tensor(x_test[:500])).numpy()
    narrow = one_unit_copy(after_step1)(tn.tensor(x_test[:500])).numpy()
one_unit_rel_diff = float(np.abs(wide - narrow).max() / np.abs(wide).max())
one_unit_same_pred = bool(np.array_equal(wide.argmax(1), narrow.argmax(1)))
print(f"logits: largest |wide - narrow| / largest |logit| = {one_unit_rel_diff:.1e}")
print("same predicted class for all 500 images:", one_unit_same_pred)

# %% [markdown]
# They agree up to float32 rounding: the 784-256-30-10 network is a 784-1-1-10 network. One
# nonlinear unit that sees one projection of the image cannot separate ten classes well.
#
# ### The same on real MNIST
#
# With the real MNIST test split on this machine (`TINYNET_MNIST_DIR`), we repeat the epoch table
# on it: the all-ones network trained on its first 8,000 images, tested on the last 2,000. That
# test set is not balanced, so "guessing" now means the share of whichever class the network
# predicts for every image.

# %%
mnist_ones = None
if os.environ.get("TINYNET_MNIST_DIR"):
    try:
        x_m, y_m = mnist("test", root=os.environ["TINYNET_MNIST_DIR"], download=False, flatten=True)
    except DatasetError as err:
        x_m = None
        print("MNIST not usable here:", str(err).splitlines()[0])
    if x_m is not None:
        tn.manual_seed(0)
        mnist_ones = constant_init_mlp(1.0)
        mnist_hist = fit(mnist_ones, F.softmax_cross_entropy, optim.SGD(mnist_ones.parameters(), lr=LR),
                         DataLoader(x_m[:8000], y_m[:8000], batch_size=BATCH, shuffle=True, seed=0),
                         epochs=EPOCHS, val_data=(x_m[8000:], y_m[8000:]))
        print_epochs(mnist_hist)
        with tn.no_grad():
            mnist_pred = mnist_ones(tn.tensor(x_m[8000:])).numpy().argmax(axis=1)
        mnist_share = float(np.mean(y_m[8000:] == mnist_pred[0]))
        print(f"predicted class for every test image: {sorted(set(mnist_pred.tolist()))}; its share "
              f"of the test images: {mnist_share:.3f};  distinct units: "
              f"{distinct_units(mnist_ones, 0)} and {distinct_units(mnist_ones, 2)}")
else:
    print("TINYNET_MNIST_DIR is not set: skipping real MNIST.")

# %% [markdown]
# ## 4. A gentler constant avoids the blow-up, not the tie
#
# Is it only the blow-up? With $w = 0.001$, $z_1 \approx 0.1$ and nothing explodes. We train
# 5 epochs, then 15 more:

# %%
tn.manual_seed(0)
gentle = constant_init_mlp(0.001)
gentle_history, gentle_rec, gentle_report = train(gentle)
print_epochs(gentle_history)
more_history, more_rec, _ = train(gentle, epochs=15)
gentle_width_after = (distinct_units(gentle, 0), distinct_units(gentle, 2))
print(f"\nafter 20 epochs: distinct units {gentle_width_after[0]} of 256 and "
      f"{gentle_width_after[1]} of 30; best test accuracy on the way "
      f"{max(gentle_history.epoch['val_acc'] + more_history.epoch['val_acc']):.3f}")
print("symmetry findings of explain:",
      [(f.param, f.entries, f.total) for f in gentle_report.by_cause("symmetry")])

# %% [markdown]
# No blow-up, and the loss does go down a little, but after 20 epochs both layers are still
# exactly one unit wide, as the argument says they will be after any number of epochs. The
# recorder measured the width at every step; here it is next to a He-initialized run (drawn in
# section 5), one panel per layer on a log axis so that both widths are visible.
#
# ## 5. What breaks the tie: random initialization
#
# Anything that makes the units differ breaks the tie: a random initialization (the learner's
# original $\mathcal N(0, 0.01^2)$, or Glorot and He, which scale the weights to the layer; see
# lesson 5), or, partly, Dropout, which silences a different random set of units for each image.
#
# One warning before the table. At lr 0.5 a single training run is **chaotic**: a different
# seed, or even a different number of BLAS threads (which changes the order of the additions in
# a matrix product, and so the last bits), can send it to a different accuracy. So we compare
# every setting over five seeds and look at the spread, not at one run.

# %%
def mlp(kernel_init, dropout=0.0):
    """784 -> 256 -> 30 -> 10 with ReLU and zero biases; Dropout after each hidden layer if > 0."""
    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.Dense(784, 256, kernel_init=kernel_init), nn.ReLU(), *drop,
                         nn.Dense(256, 30, kernel_init=kernel_init), nn.ReLU(), *drop,
                         nn.Dense(30, 10, kernel_init=kernel_init))


VARIANTS = {
    "constant 0.001": lambda: constant_init_mlp(0.001),
    "constant 0.001 + Dropout 0.2": lambda: mlp(init.constant(0.001), dropout=0.2),
    "normal(0, 0.01) (article)": lambda: mlp(init.normal(0.0, 0.01)),
    "Glorot normal": lambda: mlp(init.glorot_normal),
    "He normal": lambda: mlp(init.he_normal),
}
SEEDS = range(5)
runs = {name: [] for name in VARIANTS}
for name, build in VARIANTS.items():
    for seed in SEEDS:
        tn.manual_seed(seed)
        model = build()
        opt = optim.SGD(model.parameters(), lr=LR)
        loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=seed)
        rec = tn.diagnose.Recorder(model, opt, every=10) if seed == 0 else None
        hist = fit(model, F.softmax_cross_entropy, opt, loader, epochs=EPOCHS,
                   val_data=(x_test, y_test), callbacks=[rec] if rec else [], progress=False)
        hidden2 = 3 if any(isinstance(m, nn.Dropout) for m in model) else 2
        runs[name].append({"acc": hist.epoch["val_acc"][-1], "model": model, "rec": rec,
                           "width": (distinct_units(model, 0), distinct_units(model, hidden2))})

accs = {name: np.array([r["acc"] for r in rs]) for name, rs in runs.items()}
print(f"{'':30s} test acc after {EPOCHS} epochs, {len(SEEDS)} seeds: mean ± std  [min, max]   widths")
for name, a in accs.items():
    widths = sorted({r["width"] for r in runs[name]})
    print(f"{name:30s} {a.mean():.3f} ± {a.std():.3f}  [{a.min():.3f}, {a.max():.3f}]   {widths}")
plot.spread_over_seeds(accs, ref=0.1, ref_label="guessing (0.1)",
                       title=f"SGD lr {LR}, {EPOCHS} epochs: one dot per seed")

# %% [markdown]
# What holds for every seed (and at any thread count; the CI runs this lesson with one and with
# several BLAS threads):
#
# * **The constants stay at width 1** (1 distinct unit of 256 and of 30) and stay far below the
#   random initializations. Dropout breaks the exact tie (full width), yet its accuracy stays
#   down with the constants: its units start equal and drift apart only by Dropout's noise.
# * **Every random initialization has full width.** Glorot and He are far ahead on average; the
#   article's $\mathcal N(0, 0.01^2)$ is slower here, because its small weights shrink the signal
#   layer by layer (lesson 5), and we train on 10,000 images instead of the article's 60,000.
# * **The spread between seeds is large** at this learning rate (see the dots). Which of Glorot
#   and He comes out ahead depends on the seed, so this lesson does not rank them.
#
# The effective width of seed 0, as the recorders measured it:

# %%
plot.width_per_layer({"all ones": ones_rec, "constant 0.001": gentle_rec,
                      "He normal": runs["He normal"][0]["rec"]})

# %% [markdown]
# How alike are Dropout's units? The mean absolute correlation between the responses of two
# layer-1 units over the test images (units silent on every image left out; copies have 1):

# %%
def unit_correlation(model):
    """Mean |correlation| between the layer-1 activations of two units, over the test images."""
    with tn.no_grad():
        h = model[1](model[0](tn.tensor(x_test))).numpy()
    h = h[:, h.std(axis=0) > 0]                        # leave out units silent on every image
    if h.shape[1] < 2:
        return 1.0                                     # one live unit (or none): one copy
    c = np.corrcoef(h.T)
    return float(np.abs(c[np.triu_indices_from(c, k=1)]).mean())


similarity = {name: np.array([unit_correlation(r["model"]) for r in runs[name]])
              for name in ("constant 0.001 + Dropout 0.2", "Glorot normal", "He normal")}
for name, c in similarity.items():
    print(f"{name:30s} mean |correlation| of two layer-1 units: {c.mean():.3f} "
          f"(seeds: {np.round(c, 2)})")

# %% [markdown]
# Dropout's units are far more alike than random ones. Dropout is a regularizer, not a way to
# initialize.
#
# ## 6. What the learner wanted: the same start on every run
#
# The learner wanted **repeatable** runs, to judge a hyperparameter on its own. That is what a
# seed gives: `tn.manual_seed(s)` makes every initializer and Dropout mask draw the same numbers
# again, and the DataLoader takes its own seed.

# %%
def seeded_run(seed, epochs=1):
    tn.manual_seed(seed)
    model = mlp(init.he_normal, dropout=0.2)
    initial = {k: v.copy() for k, v in model.state_dict().items()}
    opt = optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=seed)
    hist = fit(model, F.softmax_cross_entropy, opt, loader, epochs=epochs, progress=False)
    return initial, model.state_dict(), hist.batch["loss"]


init_a, final_a, losses_a = seeded_run(seed=7)
init_b, final_b, losses_b = seeded_run(seed=7)
same_run = (all(np.array_equal(init_a[k], init_b[k]) for k in init_a)
            and all(np.array_equal(final_a[k], final_b[k]) for k in final_a) and losses_a == losses_b)
print(f"seed 7 twice: same initial weights, same final weights, same {len(losses_a)} losses: {same_run}")

# %% [markdown]
# Bit for bit the same, Dropout included, on this machine with this number of threads. (Another
# machine or thread count can change the last bits; section 5 is why conclusions should rest on
# several seeds, not on one run.) A random initialization and a repeatable run are not opposites.
#
# ## Summary
#
# * **All-ones weights**: step 1 gives equal logits (loss $\ln 10$) and no gradient below $W_3$;
#   step 2 gives a loss in the hundreds of millions; the step after it drives every
#   pre-activation below 0. From then on only the output bias learns: $\ln 10$ and 10%.
# * **Any constant** makes the units of a layer identical, and identical units get identical
#   gradients: the layer has effective width 1 forever, under any elementwise optimizer. The tie
#   is across units (columns), not across pixels; the surviving unit is a ReLU unit.
# * **Random initialization** breaks the tie. At lr 0.5 single runs are chaotic, so compare
#   settings over several seeds.
# * **Repeatable runs** come from a seed, not from equal weights.
#
# ## Exercises
#
# 1. The learner's second idea was to fill $W_1$ (784 × 256) with a Python double loop: start at
#    0.01, add $10^{-7}$ per element, alternate the sign. Write the loop, then one numpy
#    expression that gives the same array (to float32 rounding), and time both.
# 2. Train `constant_init_mlp(0.001)` for 40 steps with `optim.Adam(lr=1e-3)` instead of SGD.
#    Predict the number of distinct units in both layers, then check with `distinct_units`.
# 3. Start from `constant_init_mlp(0.001)`, but give **only the output layer** $W_3$ random
#    values (as the article's code accidentally did). Are the hidden layers still tied? And if
#    instead you change a single column of $W_1$ by $+0.001$, how many distinct units do layers
#    1 and 2 have after one epoch?
#
# Each solution below is collapsed: click the cell to open it.

# %% [solution]
# Solution 1: the loop, and one vectorized expression for it.
def alternating_loop(n_in, n_out, start=0.01, step=1e-7):
    w = np.empty((n_in, n_out), dtype=np.float32)
    value, sign = start, 1.0
    for i in range(n_in):
        for j in range(n_out):
            w[i, j] = sign * value
            sign, value = -sign, value + step
    return w


def alternating_vectorized(n_in, n_out, start=0.01, step=1e-7):
    n = np.arange(n_in * n_out)                  # element n = n_out * i + j, row by row
    return ((start + n * step) * (1 - 2 * (n % 2))).reshape(n_in, n_out).astype(np.float32)


t0 = time.perf_counter(); W_loop = alternating_loop(784, 256); t_loop = time.perf_counter() - t0
t0 = time.perf_counter(); W_vec = alternating_vectorized(784, 256); t_vec = time.perf_counter() - t0
print(f"loop {t_loop * 1e3:.0f} ms, vectorized {t_vec * 1e3:.2f} ms: {t_loop / t_vec:.0f}x faster here")
print("same array (to float32 rounding):", np.allclose(W_vec, W_loop, rtol=1e-6, atol=0))
# (The loop's running sum rounds at every addition, so a few entries differ in the last bit.)
# Every odd column is negative in every row: pixels are >= 0, so those 128 units never fire.
print("odd columns all negative:", bool(np.all(W_vec[:, 1::2] < 0)))

# %% [solution]
# Solution 2: Adam keeps the tie -- it is an elementwise rule on identical gradients.
tn.manual_seed(0)
adam_model = constant_init_mlp(0.001)
fit(adam_model, F.softmax_cross_entropy, optim.Adam(adam_model.parameters(), lr=1e-3),
    DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0), max_steps=40,
    progress=False)
adam_widths = (distinct_units(adam_model, 0), distinct_units(adam_model, 2))
print("distinct units after 40 Adam steps:", adam_widths)

# %% [solution]
# Solution 3: the tie needs equal incoming AND equal outgoing weights of the tied units.
tn.manual_seed(0)
w3_random = constant_init_mlp(0.001)
w3_random[4].weight.data[...] = np.random.default_rng(0).normal(0, 0.01, (30, 10)).astype(np.float32)
train(w3_random, epochs=1)
w3_widths = (distinct_units(w3_random, 0), distinct_units(w3_random, 2))
print("random W3 only -> distinct units in layers 1 and 2:", w3_widths)
# Layer 2's units now have different outgoing rows of W3: they get different gradients and split
# (30 distinct). Layer 1's units still have equal outgoing rows of W2 (W2's columns split, its
# rows stay equal), so each gets sum_m delta2_m W2[j, m], the same for every j: still 1 unit.
# So the article's network, with W3 left random, was still one unit wide in its first layer.

tn.manual_seed(0)
one_col = constant_init_mlp(0.001)
one_col[0].weight.data[:, 0] += 0.001
train(one_col, epochs=1)
one_col_widths = (distinct_units(one_col, 0), distinct_units(one_col, 2))
print("one column of W1 changed -> distinct units in layers 1 and 2:", one_col_widths)

# %% [check]
LN10 = float(np.log(10))
ep = history.epoch
# 1. The epoch table: the blow-up, then ln 10 and exactly 10% on the balanced test set.
assert ep["loss"][0] > 1e6, ep["loss"][0]
for loss, val_acc in zip(ep["loss"][1:], ep["val_acc"][1:]):
    assert abs(loss - LN10) < 0.005 and val_acc == 0.1, (loss, val_acc)
assert np.all(np.bincount(y_test) == 200)
# 2. Step 1: equal logits, loss ln 10; step 2: the blow-up; step 3: all but b3's gradient 0.
assert abs(trace[0]["loss"] - LN10) < 1e-5 and trace[0]["logit_spread"] == 0.0
assert all(trace[0]["grads"][p] < 1e-4 for p in ("0.weight", "0.bias", "2.weight", "2.bias"))
assert trace[0]["grads"]["4.weight"] > 1.0
assert trace[1]["loss"] > 1e7 and steps_loss[1] == trace[1]["loss"]
assert trace[2]["z1"][1] < 0 and trace[2]["grads"]["4.bias"] > 0
assert all(trace[2]["grads"][p] == 0.0 for p in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight"))
assert z1_all.max() < 0                                   # dead on every image, for good
# 3. Width 1 by numpy and by explain; tied columns, untied pixels; the one-unit network.
assert distinct_units(ones_model, 0) == 1 and distinct_units(ones_model, 2) == 1 and not np.all(W1 == 1.0)
sym = {f.param: (f.entries, f.total, f.permanent) for f in ones_report.by_cause("symmetry")}
assert sym == {"0.weight": (1, 256, True), "2.weight": (1, 30, True)}, sym
assert np.abs(g1).max() > 1.0 and len(np.unique(g1.T, axis=0)) == 1 and len(np.unique(g1[:, 0])) > 50
assert one_unit_rel_diff < 1e-5 and one_unit_same_pred
# 4. The gentle constant: no blow-up, still width 1 after 20 epochs, far from a random init.
assert max(gentle_history.epoch["loss"]) < LN10 + 0.01 and gentle_width_after == (1, 1)
assert {f.param: f.entries for f in gentle_report.by_cause("symmetry")} == {"0.weight": 1, "2.weight": 1}
# 5. Over five seeds: constants width 1 and low; random inits full width and far ahead; spread large.
for name in ("constant 0.001",):
    assert all(r["width"] == (1, 1) for r in runs[name]) and accs[name].max() < 0.45, name
assert all(r["width"] == (256, 30) for r in runs["constant 0.001 + Dropout 0.2"])
for name in ("normal(0, 0.01) (article)", "Glorot normal", "He normal"):
    assert all(r["width"] == (256, 30) for r in runs[name]), name
consts = ("constant 0.001", "constant 0.001 + Dropout 0.2")
for name in ("Glorot normal", "He normal"):
    assert accs[name].mean() > 0.7 and accs[name].min() > max(accs[c].max() for c in consts), name
    assert accs[name].mean() > accs["normal(0, 0.01) (article)"].mean() + 0.15, name
assert accs["normal(0, 0.01) (article)"].mean() > max(accs[c].mean() for c in consts) + 0.1
assert max(accs[n].max() - accs[n].min() for n in ("Glorot normal", "He normal")) > 0.1  # chaotic
assert similarity["constant 0.001 + Dropout 0.2"].mean() > 1.3 * max(
    similarity[n].mean() for n in ("Glorot normal", "He normal"))
# 6. A seed repeats a run bit for bit.
assert same_run
# Real MNIST (where present): the same blow-up, then ln 10 and one class predicted for every image.
if mnist_ones is not None:
    assert mnist_hist.epoch["loss"][0] > 1e6
    assert all(abs(loss - LN10) < 0.01 for loss in mnist_hist.epoch["loss"][1:])
    assert len(set(mnist_pred.tolist())) == 1 and mnist_hist.epoch["val_acc"][-1] == mnist_share
    assert distinct_units(mnist_ones, 0) == 1 and distinct_units(mnist_ones, 2) == 1
# Exercises
assert np.allclose(W_vec, W_loop, rtol=1e-6, atol=0) and np.all(W_vec[:, 1::2] < 0)
assert adam_widths == (1, 1)
assert w3_widths == (1, 30), w3_widths
assert one_col_widths[0] == 2 and one_col_widths[1] == 1, one_col_widths
print("Lesson 3: all claims hold.")
