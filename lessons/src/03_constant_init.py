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
# In this lesson we reproduce all of it on tinynet's embedded digits and take it apart:
#
# 1. **The epoch table**: the blow-up in epoch 1, then 2.303 and 0.100.
# 2. **The first three steps, one by one**: why the loss is exactly $\ln 10$ at step 1, why it
#    explodes at step 2, and why the network is dead from step 3 on.
# 3. **Every hidden unit stays identical**: 256 units act as 1, and 30 act as 1.
# 4. **Why**: identical units get identical gradients. We write the argument out and check it.
# 5. **It is permanent**: more training does not help, and a gentler constant does not help.
# 6. **What breaks the tie**: random initialization, and (partly) Dropout.
# 7. **What the learner actually wanted**: the same initial weights on every run, done with a
#    seed. We also replace the slow loop with one vectorized expression and time both.

# %%
# %matplotlib inline
import time

import numpy as np
import matplotlib.pyplot as plt

import tinynet as tn
from tinynet import nn, optim, init, plot
import tinynet.nn.functional as F
from tinynet.data import digits, DataLoader
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
                  val_data=(x_test, y_test), callbacks=[rec], progress=False)
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
fig, ax = plt.subplots(figsize=(9, 3.4))
ax.semilogy(np.arange(1, len(steps_loss) + 1), steps_loss, ".-", lw=0.8, color="#4a6fa5")
ax.axhline(np.log(10), color="#c0392b", ls=":", lw=1)
ax.text(len(steps_loss), np.log(10) * 1.6, "ln 10 = 2.303", ha="right", color="#c0392b")
ax.annotate(f"step 2: loss {steps_loss[1]:.3g}", (2, steps_loss[1]), (12, steps_loss[1] / 5),
            arrowprops=dict(arrowstyle="->"))
ax.set_xlabel("SGD step"); ax.set_ylabel("loss of the batch (log scale)")
ax.set_title("All-ones initialization: one enormous step, then ln 10 forever")
fig.tight_layout()
print("loss at steps 1-5:", np.round(steps_loss[:5], 4))

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
# accuracy of 10%. (The loss sits slightly *above* 2.3026 because with lr 0.5 the bias jitters
# around the optimum from batch to batch.)
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
#
# Here is the symmetry finding in full:

# %%
print(ones_report.by_cause("symmetry")[0])

# %% [markdown]
# ## 3. Every hidden unit is the same unit
#
# `explain` says "effective width 1". Let's check that directly with numpy. A hidden unit $j$
# of layer 1 is fully described by three things: its incoming weights (column $j$ of $W_1$),
# its bias $b_1[j]$, and its outgoing weights (row $j$ of $W_2$). We stack these into one vector
# per unit and count how many **different** vectors there are. The comparison is exact, bit
# for bit.

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
print("every column of W1 equals column 0:", np.array_equal(W1, np.repeat(W1[:, :1], 256, axis=1)))
print("distinct units in layer 1:", distinct_units(ones_model, 0), "of 256")
print("distinct units in layer 2:", distinct_units(ones_model, 2), "of 30")
plot.effective_width(ones_rec)      # what the recorder measured at every step

# %% [markdown]
# The weights **did** change (from 1 to values in the thousands), yet all 256 columns are still
# bit-identical, and the recorder saw width 1 at every step (the two curves lie on top of each
# other at the bottom; the dotted lines are the layers' real sizes). Nothing froze. The units
# moved in lock step.
#
# ## 4. Why: identical units get identical gradients
#
# Take two hidden units $j$ and $k$ of layer 1 that are equal: $W_1[:,j] = W_1[:,k]$,
# $b_1[j] = b_1[k]$ and $W_2[j,:] = W_2[k,:]$. Then, for every image $n$:
#
# * **Forward.** $z_{1,nj} = \sum_i x_{ni} W_1[i,j] + b_1[j] = z_{1,nk}$, and therefore
#   $h_{1,nj} = h_{1,nk}$. Everything after layer 1 only sees the *sum* of their contributions.
# * **Backward.** The gradient arriving at unit $j$ is
#   $\partial L/\partial h_{1,nj} = \sum_m \delta_{2,nm} W_2[j,m]$, the same as unit $k$'s because
#   the rows $W_2[j,:]$ and $W_2[k,:]$ are equal. Multiplied by the same $\mathrm{relu}'(z_{1,nj})$,
#   this gives $\delta_{1,nj} = \delta_{1,nk}$.
# * **Gradients.** $\partial L/\partial W_1[:,j] = \sum_n x_n^\top \delta_{1,nj}$ equals the same
#   expression for $k$. Likewise $\partial L/\partial b_1[j] = \partial L/\partial b_1[k]$, and
#   $\partial L/\partial W_2[j,:] = \sum_n h_{1,nj}\, \delta_{2,n} = \partial L/\partial W_2[k,:]$.
# * **Update.** $W \leftarrow W - \eta\, \partial L/\partial W$ subtracts equal amounts from
#   equal numbers, so the units are still equal after the step.
#
# By induction they are equal after every step, forever. Momentum, RMSprop and Adam apply an
# elementwise rule to the gradient, and their running averages start equal too, so they keep
# the tie just as well. The argument does not care what the constant is, or how large the
# gradient is. The only thing it needs is that the units **start** equal.
#
# Let's check the middle step numerically, at step 2 of the trace above, where the gradients are
# large. If the argument is right, all 256 columns of $\partial L/\partial W_1$ are identical.

# %%
g1 = trace[1]["W1_grad"]                       # dL/dW1 at step 2, shape (784, 256)
print("largest |dL/dW1| at step 2:", float(np.abs(g1).max()))
print("max over columns of |g[:, j] - g[:, 0]|:", float(np.abs(g1 - g1[:, :1]).max()))
print("distinct gradient columns:", len(np.unique(g1.T, axis=0)), "of 256")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.6, 1]})
lim = np.abs(g1).max()
im = ax1.imshow(g1, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
ax1.set_xlabel("column j = hidden unit"); ax1.set_ylabel("row i = pixel")
ax1.set_title("dL/dW1 at step 2: every column the same")
fig.colorbar(im, ax=ax1, shrink=0.8)
ax2.imshow(g1[:, 0].reshape(28, 28), cmap="RdBu_r", vmin=-lim, vmax=lim)
ax2.set_title("column 0 as a 28×28 image\n(= every other column)"); ax2.axis("off")
fig.tight_layout()

# %% [markdown]
# The picture has only horizontal stripes. Each row (pixel) has one value, shared by all 256
# units.
#
# What does "acts as one unit" mean for the function the network computes? If the 256 units are
# equal, then layer 2 sees $256$ copies of one number $h$, so $z_2 = 256\, h\, w_2 + b_2$. Let's
# compute the logits once with the real network and once with a **784 → 1 → 1 → 10** network
# built from one unit per layer (with the outgoing weights scaled by 256 and by 30). A dead
# network would make this comparison trivial, so we use the network after step 1, where
# every unit is still active:

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
# The two networks agree up to float32 rounding. A 784-256-30-10 network that starts with
# equal weights is a 784-1-1-10 network wearing a costume. One hidden unit computes one
# number per image, a weighted sum of the pixels. Ten classes cannot be read off a single
# number well. This is the learner's own picture, $f(x_1, x_2) = w(x_1 + x_2)$, at full size.
#
# ## 5. It is permanent, and a gentler constant does not help
#
# The blow-up makes the all-ones case look like a problem of scale. To separate the two effects,
# take a constant small enough that nothing explodes, $w = 0.001$. Then $z_1 = 0.001 \sum_i x_i$
# is about 0.1, and every unit stays alive.

# %%
tn.manual_seed(0)
gentle = constant_init_mlp(0.001)
gentle_history, gentle_rec, gentle_report = train(gentle)
print_epochs(gentle_history)
print("\ndistinct units:", distinct_units(gentle, 0), "of 256 and", distinct_units(gentle, 2),
      "of 30")
print("findings:", sorted({(f.cause, f.param, f.entries, f.total) for f in gentle_report.findings
                           if f.cause != "zero_input"}))

# %% [markdown]
# No blow-up and no dead units, and the loss does go down. It goes down only as far as one unit
# per layer allows. The test accuracy stays far below what this network can reach (see section 6),
# and both layers still have exactly one distinct unit. The only finding
# `explain` has left (apart from the border pixels) is `symmetry`.
#
# Is it a matter of patience? We train the same model for 15 more epochs:

# %%
more_history, more_rec, more_report = train(gentle, epochs=15)
print_epochs(more_history, first=EPOCHS + 1)
gentle_width_after = (distinct_units(gentle, 0), distinct_units(gentle, 2))
print("\ndistinct units after 20 epochs:", gentle_width_after[0], "of 256 and",
      gentle_width_after[1], "of 30")

# %% [markdown]
# 20 epochs, and both layers are still exactly one unit wide. By the argument of section 4, they
# would still be one unit wide after a million epochs. No amount of training can break the tie,
# because every step preserves it.
#
# Something else happened on the way. A few epochs in, the loss jumped back to $\ln 10$ and the
# accuracy to 10%, and it never recovered. The report of this continued run says why:

# %%
gentle_died = [f for f in more_report.by_cause("dead_unit") if f.root is None]
for f in gentle_died:
    print(f"dead_unit  {f.param}: {f.entries} of {f.total} entries, died after step "
          f"{f.evidence['died_after_step']} of this run")
for f in more_report.findings:
    if f.root is not None:
        print(f"  because of it: {f.cause} {f.param} ({f.entries:,} of {f.total:,} entries)")
print(f"mean loss of the last 5 epochs: {np.mean(more_history.epoch['loss'][-5:]):.4f}")

# %% [markdown]
# One large SGD step pushed the pre-activation of the second layer's single unit below zero on
# every image. In a layer of 30 *independent* units, a bad step kills a few of them. Here it
# killed all 30 at once, because they are one unit. With the second layer silent, no gradient
# reaches the first layer either (the report's `blocked_downstream`), and only the output bias
# is left to learn. A layer of copies has no redundancy: it lives or dies as one.
#
# ## 6. What breaks the tie
#
# The tie needs **all** the units of a layer to start equal. Anything that makes them differ
# breaks it:
#
# * **A random initialization.** The learner's original code drew the weights from
#   $\mathcal N(0, 0.01^2)$. Glorot and He scale the random weights to the layer's size
#   (lesson 5 explains why that matters).
# * **Dropout.** It switches off a *different* random set of units for every image. The units
#   then see different gradients, and they drift apart.
#
# We train all of these with the same settings (SGD, lr 0.5, batch 256, 5 epochs):

# %%
def mlp(kernel_init, dropout=0.0):
    """784 -> 256 -> 30 -> 10 with ReLU and zero biases; Dropout after each hidden layer if > 0."""
    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.Dense(784, 256, kernel_init=kernel_init), nn.ReLU(), *drop,
                         nn.Dense(256, 30, kernel_init=kernel_init), nn.ReLU(), *drop,
                         nn.Dense(30, 10, kernel_init=kernel_init))


VARIANTS = {
    "constant 1 (the learner's)": lambda: constant_init_mlp(1.0),
    "constant 0.001": lambda: constant_init_mlp(0.001),
    "constant 0.001 + Dropout 0.2": lambda: mlp(init.constant(0.001), dropout=0.2),
    "normal(0, 0.01) (original code)": lambda: mlp(init.normal(0.0, 0.01)),
    "Glorot normal": lambda: mlp(init.glorot_normal),
    "He normal": lambda: mlp(init.he_normal),
}
results = {}
for name, build in VARIANTS.items():
    tn.manual_seed(0)
    model = build()
    hist, rec, rep = train(model, every=5)
    first_hidden = 3 if any(isinstance(m, nn.Dropout) for m in model) else 2
    results[name] = {"model": model, "rec": rec, "report": rep,
                     "loss": hist.epoch["loss"][-1], "acc": hist.epoch["val_acc"][-1],
                     "width": (distinct_units(model, 0), distinct_units(model, first_hidden)),
                     "symmetry": [(f.param, f.entries, f.total) for f in rep.by_cause("symmetry")],
                     "dead": sum(f.entries for f in rep.by_cause("dead_unit")
                                 if f.root is None and f.param.endswith("bias"))}
    r = results[name]
    print(f"{name:32s} loss {r['loss']:7.4f}   test acc {r['acc']:.3f}   "
          f"distinct units {r['width'][0]:3d}/256 {r['width'][1]:2d}/30   "
          f"dead units {r['dead']:3d}   symmetry: {'width 1' if r['symmetry'] else 'none'}")

# %% [markdown]
# The effective width over training, as the recorder measured it (`rec.effective_width`), for the
# gentle constant and for He:

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, name in zip(axes, ("constant 0.001", "He normal")):
    for layer, entry in results[name]["rec"].effective_width.items():
        ax.plot(entry["step"], entry["width"], "-o", ms=3,
                label=f"layer {layer} ({entry['units']} units)")
    ax.set_title(name); ax.set_xlabel("SGD step"); ax.set_yscale("log"); ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
axes[0].set_ylabel("distinct units (log scale)")
fig.suptitle("Effective width: random init starts at full width; a constant stays at 1")
fig.tight_layout()

# %% [markdown]
# And here is what "identical units" looks like in the activations: the 256 outputs of hidden
# layer 1 for four test images, for the gentle constant and for He.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharex=True)
for ax, name in zip(axes, ("constant 0.001", "He normal")):
    with tn.no_grad():
        h1 = results[name]["model"][1](results[name]["model"][0](tn.tensor(x_test[:4]))).numpy()
    for n in range(4):
        ax.plot(h1[n], lw=1, label=f"image {n} (digit {y_test[n]})")
    ax.set_title(f"{name}: hidden layer 1 after training"); ax.set_xlabel("unit")
    ax.legend(fontsize=7)
axes[0].set_ylabel("activation h1")
fig.tight_layout()

# %% [markdown]
# With the constant, each image gives a flat line: 256 copies of one number. For some images that
# number is 0, because the one unit is switched off, and then all 256 are. With He, every unit
# responds differently, and each image switches on a different set of units.
#
# What the table says:
#
# * **Every random initialization has full width** (256 and 30) and learns. Glorot reaches over
#   90% in 5 epochs. He gets there more slowly at this learning rate: lr 0.5 is large for its
#   bigger weights, and more of its units die on the way (the "dead units" column, from
#   `explain`).
#   The learner's $\mathcal N(0, 0.01^2)$ is the slowest of the three here, because its small
#   weights shrink the signal (lesson 5). It did well in the learner's run, which had six times
#   as many images per epoch and so six times as many steps. All of them leave the constants far
#   behind.
# * **Dropout breaks the exact tie.** Both layers have full width, and `explain` finds no
#   symmetry. But the units start equal and are pushed apart only by the noise Dropout injects,
#   so they stay much more alike than random units. The accuracy improves on the gentle constant,
#   but it stays far below a random initialization.
#
# How alike are the units? A simple measure is how strongly the responses of two units
# of layer 1 go up and down together over the test images: the mean absolute correlation over
# all pairs of units (units that are 0 on every test image are left out). Copies have
# correlation 1.

# %%
def unit_correlation(model):
    """Mean |correlation| between the layer-1 activations of two units, over the test images."""
    with tn.no_grad():
        h = model[1](model[0](tn.tensor(x_test))).numpy()
    h = h[:, h.std(axis=0) > 0]                        # leave out units silent on every image
    c = np.corrcoef(h.T)
    return float(np.abs(c[np.triu_indices_from(c, k=1)]).mean())


similarity = {name: unit_correlation(results[name]["model"]) for name in
              ("constant 0.001", "constant 0.001 + Dropout 0.2", "normal(0, 0.01) (original code)",
               "Glorot normal", "He normal")}
for name, c in similarity.items():
    print(f"{name:32s} mean |correlation| between two units of layer 1: {c:.3f}")

# %% [markdown]
# Without Dropout every pair of units is perfectly correlated, because they are copies. With
# Dropout the correlation drops to about one half, still two to eight times that of the random
# initializations. Dropout is a regularizer, not a way to initialize. Use a random
# initialization, and add Dropout for its own reasons.
#
# ## 7. What the learner actually wanted: the same start on every run
#
# The learner never wanted equal weights. They wanted **repeatable** runs, so that a change in a
# hyperparameter could be judged on its own. The tool for that is a seed. `tn.manual_seed(s)`
# resets tinynet's random number generator, so every random initializer and every Dropout mask
# after it draws the same numbers again. The DataLoader has its own generator, so we give it a
# seed too. Two runs:

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
init_c, final_c, losses_c = seeded_run(seed=8)

same_init = all(np.array_equal(init_a[k], init_b[k]) for k in init_a)
same_final = all(np.array_equal(final_a[k], final_b[k]) for k in final_a)
same_losses = losses_a == losses_b
print(f"seed 7 twice:  initial weights identical: {same_init},  final weights identical: "
      f"{same_final},  all {len(losses_a)} losses identical: {same_losses}")
print(f"seed 7 vs 8:   initial weights identical: "
      f"{all(np.array_equal(init_a[k], init_c[k]) for k in init_a)},  final loss "
      f"{losses_a[-1]:.4f} vs {losses_c[-1]:.4f}")

# %% [markdown]
# Bit for bit the same, including Dropout. A random initialization and a repeatable run are not
# opposites: the seed gives you both.
#
# The learner also worried that tuning on one fixed start might tune for that start. That is a
# fair worry. Here is the same Glorot network, with the same settings, started from three seeds:

# %%
seed_accs = {}
for seed in (0, 1, 2):
    tn.manual_seed(seed)
    model = mlp(init.glorot_normal)
    fit(model, F.softmax_cross_entropy, optim.SGD(model.parameters(), lr=LR),
        DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=seed), epochs=EPOCHS,
        progress=False)
    seed_accs[seed] = evaluate(model, F.softmax_cross_entropy, (x_test, y_test))["acc"]
print("Glorot, 5 epochs, test accuracy per seed:", {s: round(a, 3) for s, a in seed_accs.items()})
print(f"spread: {100 * (max(seed_accs.values()) - min(seed_accs.values())):.1f} percentage points")

# %% [markdown]
# Same network, same data, same settings: only the seed differs, and after 5 epochs the test
# accuracy differs by several percentage points. One seed alone could make a setting look better
# or worse than it is. Fix the seed while you debug
# and compare. Before you trust a result, rerun it with a few seeds and look at the spread.

# %% [markdown]
# ### The slow loop, vectorized
#
# The learner's second idea was to give every weight of $W_1$ its own value: start at 0.01,
# add $10^{-7}$ per element, and alternate the sign. Here is that idea as a Python double
# loop, one element at a time:

# %%
def alternating_loop(n_in, n_out, start=0.01, step=1e-7):
    w = np.empty((n_in, n_out), dtype=np.float32)
    value, sign = start, 1.0
    for i in range(n_in):
        for j in range(n_out):
            w[i, j] = sign * value
            sign = -sign
            value += step
    return w

# %% [markdown]
# Element number $n$ (counting row by row, $n = 256 i + j$) gets the sign $(-1)^n$ and the
# magnitude "0.01 plus $n$ steps". The tempting vectorized form is `0.01 + n * 1e-7`, but that is
# **not** what the loop computes. The loop adds $10^{-7}$ to a running float64 sum, and every
# addition rounds, so after $n$ additions the sum has drifted from $0.01 + n\cdot 10^{-7}$ in its
# last bits. To get the *identical* array we have to add in the same order. `np.cumsum` does
# exactly that: it is a running sum, one addition after another. So the whole loop is one
# expression:

# %%
def alternating_vectorized(n_in, n_out, start=0.01, step=1e-7):
    n = np.arange(n_in * n_out)
    return (np.cumsum(np.r_[start, np.full(n.size - 1, step)]) * (1 - 2 * (n % 2))) \
        .reshape(n_in, n_out).astype(np.float32)


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


t_loop, W_loop = best_time(lambda: alternating_loop(784, 256), repeat=3)
t_vec, W_vec = best_time(lambda: alternating_vectorized(784, 256), repeat=20)
n = np.arange(784 * 256)
W_naive = ((0.01 + n * 1e-7) * (1 - 2 * (n % 2))).reshape(784, 256).astype(np.float32)

print(f"loop:       {t_loop * 1e3:8.2f} ms")
print(f"vectorized: {t_vec * 1e3:8.2f} ms   -> {t_loop / t_vec:.0f}x faster on this machine")
print("vectorized == loop, bit for bit:", np.array_equal(W_vec, W_loop))
print(f"naive 0.01 + n*1e-7 == loop: {np.array_equal(W_naive, W_loop)} "
      f"({int((W_naive != W_loop).sum())} of {W_loop.size} float32 entries differ, "
      f"by at most {np.abs(W_naive - W_loop).max():.1e})")
print("top-left corner:\n", W_vec[:3, :6])

# %% [markdown]
# The loop body runs 200,704 times in the Python interpreter, and every pass pays for a few
# interpreted statements and one element assignment. With a numpy array each pass costs well
# under a microsecond here. In the learner's framework each `W1[i][j] = ...` on a framework
# array was a whole framework operation, far more expensive, which is why the loop felt
# hopelessly slow there. The vectorized form does the same work in a handful of calls into
# compiled code. The speedup printed above is measured on this machine, and it will differ on yours.
#
# tinynet accepts such an array directly as `kernel_init=`. It is copied and its shape is
# checked. Would this hand-made start train? We use it for the first layer, He (seeded) for the
# others:

# %%
tn.manual_seed(0)
handmade = nn.Sequential(nn.Dense(784, 256, kernel_init=W_vec), nn.ReLU(),
                         nn.Dense(256, 30, kernel_init=init.he_normal), nn.ReLU(),
                         nn.Dense(30, 10, kernel_init=init.he_normal))
assert np.array_equal(handmade[0].weight.numpy(), W_vec)
handmade_history, _, handmade_report = train(handmade, every=5)
print_epochs(handmade_history)
odd_negative = bool(np.all(W_vec[:, 1::2] < 0) and np.all(W_vec[:, 0::2] > 0))
never_dead = [f for f in handmade_report.by_cause("dead_unit")
              if f.param == "0.bias" and f.since == 0]         # dead from the very first step
print("\nodd columns all negative, even columns all positive:", odd_negative)
print("units of layer 1 that never fired:", never_dead[0].entries if never_dead else 0, "of 256")

# %% [markdown]
# It trains, but poorly next to Glorot or He. The reason is in the pattern. With 256 columns per
# row, element $n = 256 i + j$ has the sign $(-1)^j$, so **every odd column is negative in every
# row**. Pixels are never negative, so those 128 units have $z_1 \le 0$ on every image and never
# fire (`explain` lists them as dead from the start). The even columns are almost copies of
# each other: neighbouring units differ by $2 \times 10^{-7}$ per weight. What lets them drift
# apart at all is that their *outgoing* weights are random. By section 4, a tie needs equal
# incoming **and** equal outgoing weights.
#
# "Different numbers" is not the same as "a good start". What an initialization needs is
# weights that are different in a way that matters (random signs, random directions) and of a
# sensible scale. A seeded random initializer gives exactly that, and it repeats on every run.
#
# ## Summary
#
# * **All-ones weights**: at step 1 every logit is equal (loss $\ln 10$) and no gradient reaches
#   the hidden layers. At step 2 the loss is in the hundreds of millions, and the step that follows
#   drives every pre-activation far below 0. From step 3 on only the output bias learns:
#   loss $\ln 10$, accuracy 10%.
# * **Any constant** makes all units of a layer identical. Identical units get identical
#   gradients and stay identical: the layer has effective width 1, forever, under any
#   elementwise optimizer. A gentle constant avoids the blow-up but not the symmetry.
# * **Random initialization** breaks the tie (Glorot and He scale it well). Dropout breaks it only
#   partly: its units stay strongly correlated.
# * **Repeatable runs** come from a seed, not from equal weights: `tn.manual_seed`, plus a seed
#   for the DataLoader.
# * **Element-by-element Python loops** become one numpy expression. To reproduce a running
#   sum exactly, use `np.cumsum` (the same additions in the same order).
#
# The last cell checks every number this lesson claims.

# %%
LN10 = float(np.log(10))
ep = history.epoch

# 1. The epoch table: the blow-up, then ln 10 and exactly 10% on the balanced test set.
assert ep["loss"][0] > 1e6, ep["loss"][0]
for loss, val_acc in zip(ep["loss"][1:], ep["val_acc"][1:]):
    assert abs(loss - LN10) < 0.005 and val_acc == 0.1, (loss, val_acc)
assert np.all(np.bincount(y_test) == 200)

# 2. Step 1: equal logits, loss ln 10, (almost) no gradient below W3; step 2: the blow-up;
#    step 3: every gradient but b3's exactly 0.
assert abs(trace[0]["loss"] - LN10) < 1e-5 and trace[0]["logit_spread"] == 0.0
assert all(trace[0]["grads"][p] < 1e-4 for p in ("0.weight", "0.bias", "2.weight", "2.bias"))
assert trace[0]["grads"]["4.weight"] > 1.0
assert trace[1]["loss"] > 1e7 and steps_loss[1] == trace[1]["loss"]
assert trace[2]["z1"][1] < 0
assert all(trace[2]["grads"][p] == 0.0
           for p in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight"))
assert trace[2]["grads"]["4.bias"] > 0
assert z1_all.max() < 0                                   # dead on every image, for good

# 3. Effective width 1, by numpy and by tn.diagnose; the weights did change.
assert distinct_units(ones_model, 0) == 1 and distinct_units(ones_model, 2) == 1
assert not np.all(W1 == 1.0)
sym = {f.param: (f.entries, f.total, f.permanent) for f in ones_report.by_cause("symmetry")}
assert sym == {"0.weight": (1, 256, True), "2.weight": (1, 30, True)}, sym
dead = {f.param: (f.entries, f.total) for f in ones_report.by_cause("dead_unit") if f.root is None}
assert dead.get("0.bias") == (256, 256), dead
assert all(set(int(w) for w in v["width"]) == {1} for v in ones_rec.effective_width.values())

# 4. Identical gradients: all 256 columns of dL/dW1 equal (and not zero) at step 2;
#    the one-unit network computes the same logits.
assert np.abs(g1).max() > 1.0 and len(np.unique(g1.T, axis=0)) == 1
assert one_unit_rel_diff < 1e-5 and one_unit_same_pred

# 5. A gentle constant: no blow-up, no dead units, learns a little, still width 1 after 20 epochs.
assert max(gentle_history.epoch["loss"]) < LN10 + 0.01
assert not gentle_report.by_cause("dead_unit")
assert gentle_history.epoch["loss"][-1] < 2.1 and gentle_history.epoch["val_acc"][-1] < 0.4
assert gentle_width_after == (1, 1)
dead_bias = [f for f in gentle_died if f.param == "2.bias"]
assert dead_bias and (dead_bias[0].entries, dead_bias[0].total) == (30, 30)   # all 30 at once
assert abs(np.mean(more_history.epoch["loss"][-5:]) - LN10) < 0.005
more_sym = {f.param: f.entries for f in more_report.by_cause("symmetry")}
assert more_sym == {"0.weight": 1, "2.weight": 1}, more_sym

# 6. Random inits have full width and learn; Dropout breaks the exact tie, but barely.
for name in ("normal(0, 0.01) (original code)", "Glorot normal", "He normal"):
    assert results[name]["width"] == (256, 30) and not results[name]["symmetry"], name
assert results["Glorot normal"]["acc"] > 0.85 and results["He normal"]["acc"] > 0.7
assert results["He normal"]["dead"] > 0
assert results["Glorot normal"]["acc"] > results["He normal"]["acc"]
assert results["normal(0, 0.01) (original code)"]["acc"] < results["He normal"]["acc"]
for name in ("constant 1 (the learner's)", "constant 0.001"):
    assert results[name]["width"] == (1, 1) and results[name]["acc"] < 0.3, name
assert results["constant 1 (the learner's)"]["acc"] == 0.1
drop = results["constant 0.001 + Dropout 0.2"]
assert drop["width"] == (256, 30) and not drop["symmetry"]
assert drop["acc"] < results["Glorot normal"]["acc"] - 0.2
assert similarity["constant 0.001"] > 0.9999
assert 0.3 < similarity["constant 0.001 + Dropout 0.2"] < 0.8
for name in ("normal(0, 0.01) (original code)", "Glorot normal", "He normal"):
    assert similarity[name] < 0.5 * similarity["constant 0.001 + Dropout 0.2"], name

# 7. A seed repeats a run bit for bit; another seed does not; the vectorized array is the loop's.
assert same_init and same_final and same_losses
assert not all(np.array_equal(init_a[k], init_c[k]) for k in init_a)
assert all(a > 0.7 for a in seed_accs.values())
assert max(seed_accs.values()) - min(seed_accs.values()) > 0.02
assert np.array_equal(W_vec, W_loop) and W_vec.dtype == np.float32 and W_vec.shape == (784, 256)
assert not np.array_equal(W_naive, W_loop)
assert odd_negative and never_dead and never_dead[0].entries == 128
assert handmade_history.epoch["val_acc"][-1] < results["Glorot normal"]["acc"]
print("All of lesson 3's claims hold.")
