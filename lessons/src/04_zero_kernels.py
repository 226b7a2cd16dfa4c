# Source of lessons/04_zero_kernels.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 4: Zero kernels
#
# **What a learner saw.** A job interview asked: *what happens if a conv layer's kernel is
# initialized to zero?* One engineer tried it. The network had four 3×3 conv layers with 32
# channels each (max pooling after the first), a Dense layer of 128 units and a 10-way output.
# The weights were Glorot-normal and, as TensorFlow does by default, every bias started at zero.
# Only the **second** conv layer got a zero kernel. The network was trained with plain SGD at
# lr = 1e-4, on one fixed batch: the first 50 MNIST training images, 1000 times. Two things
# happened:
#
# * the training accuracy was 0.08 at the start, and from then on it stayed at exactly **0.14**;
# * comparing every variable before and after training, **only the last layer's bias had
#   changed**. Everything else, including the layers *before* the zero layer, was unchanged.
#
# In this lesson you reproduce both observations and then find the exact reason for each
# number:
#
# 1. what the network computes at the start (exact zeros, and a loss of exactly ln 10);
# 2. training: which parameters change, and where the accuracy plateaus;
# 3. one step traced op by op to the factor that zeroes the gradient;
# 4. the role of `relu'(0) = 0`, with a ReLU that decides otherwise;
# 5. why the last bias moves, and by exactly how much;
# 6. what changes when the zero layer sits somewhere else, and what `tn.diagnose.explain` says.

# %%
# %matplotlib inline
import os

import numpy as np
import matplotlib.pyplot as plt

import tinynet as tn
from tinynet import nn, optim
import tinynet.nn.functional as F
from tinynet.data import digits
from tinynet.experiments import zero_kernel_cnn

np.set_printoptions(precision=4, suppress=True, linewidth=110)

LR, STEPS = 1e-4, 150          # the article: 1000 steps; the plateau starts at step 1 (see below)
x, y = digits(50)              # ONE fixed batch: the first 50 embedded digits, (50, 1, 28, 28)
counts = np.bincount(y, minlength=10)
share = counts / len(y)        # the class frequencies f_c of this batch
majority_class = int(np.argmax(counts))
print("images per class:", counts)
print(f"most frequent class: {majority_class} with {counts[majority_class]} of 50 images "
      f"(share {share[majority_class]:.2f});  class 0 has share {share[0]:.2f}")

# %% [markdown]
# We use tinynet's embedded digits, so no download is needed. Our batch is the first 50 of them,
# and its most frequent class is 4, with 11 images (share 0.22). The article's batch had
# different images, so its most frequent share was 0.14. Remember these two numbers, 0.22 and
# 0.08 (class 0's share).
#
# ## 1. The network at the start
#
# `zero_kernel_cnn()` builds the article's network. Layer 3 is the second conv, and its kernel
# and bias are zero:

# %%
tn.manual_seed(0)
model = zero_kernel_cnn()
model

# %% [markdown]
# Push the batch through it one layer at a time and look at the largest absolute value each
# layer produces:

# %%
def layer_by_layer(model, x):
    """[(index, layer, output)] for one forward pass."""
    out, h = [], tn.tensor(x)
    with tn.no_grad():
        for i, layer in enumerate(model):
            h = layer(h)
            out.append((i, layer, h.numpy()))
    return out


forward0 = layer_by_layer(model, x)
for i, layer, a in forward0:
    print(f"layer {i:2d} {type(layer).__name__:9s} output {str(a.shape):17s} max |value| = {np.abs(a).max():.4g}")
logits0 = forward0[-1][2]

# %% [markdown]
# From layer 3 on, **every value is exactly 0.0**, not merely small. The zero conv computes
# $0 \cdot x + 0 = 0$. The ReLU keeps it at 0. The next conv has a real kernel, but it multiplies
# zeros and adds a zero bias. And so on, down to the logits. So at the start:
#
# * every logit is 0, so the softmax gives 1/10 to every class and the loss is exactly
#   $\ln 10 = 2.302585$ for every image;
# * all ten logits are tied, and `argmax` picks the first one, class 0. The accuracy is
#   therefore the share of class 0 in the batch, **0.08** here. (In the article's batch class 0
#   also had 4 of 50 images, and that is where its 0.08 at step 0 came from.)

# %%
loss0 = F.softmax_cross_entropy(tn.tensor(logits0), tn.tensor(y)).item()
acc0 = float(np.mean(logits0.argmax(axis=1) == y))
print(f"all logits exactly 0: {bool(np.all(logits0 == 0))};  loss {loss0:.6f} (ln 10 = {np.log(10):.6f});  "
      f"accuracy {acc0:.2f} = share of class 0 ({share[0]:.2f})")

# %% [markdown]
# ## 2. Training on the fixed batch
#
# Now train as the article did: SGD, lr = 1e-4, the same 50 images at every step. We write the
# loop by hand so that we can keep three things per step: the loss, the accuracy *before* the
# update (as the article measured it) and the gradient of the last bias. A
# `tn.diagnose.Recorder` rides along to record the evidence for section 6. We train for 150
# steps instead of 1000: as you will see, everything is settled after the first step.

# %%
before = {name: p.numpy().copy() for name, p in model.named_parameters()}
opt = optim.SGD(model.parameters(), lr=LR)
rec = tn.diagnose.Recorder(model, opt, every=10).attach()
xb, yb = tn.tensor(x), tn.tensor(y)

losses, accs, bias_grads = [], [], []
for step in range(STEPS):
    logits = model(xb)
    loss = F.softmax_cross_entropy(logits, yb)
    losses.append(loss.item())
    accs.append(float(np.mean(logits.numpy().argmax(axis=1) == y)))
    opt.zero_grad()
    loss.backward()
    bias_grads.append(model[12].bias.grad.numpy().copy())
    opt.step()
    rec.step()
rec.finalize()
rec.detach()

with tn.no_grad():
    final_logits = model(xb).numpy()
final_acc = float(np.mean(final_logits.argmax(axis=1) == y))
print(f"accuracy at steps 0, 1, 2, 10, 100: {[accs[i] for i in (0, 1, 2, 10, 100)]};  after "
      f"training: {final_acc:.2f}")
print(f"loss: {losses[0]:.6f} -> {losses[-1]:.6f}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax1.plot(np.arange(STEPS), accs, marker=".", lw=1, color="#4a6fa5", label="train accuracy")
ax1.axhline(share[majority_class], color="#c0392b", ls="--", lw=1,
            label=f"share of class {majority_class} (most frequent): {share[majority_class]:.2f}")
ax1.axhline(share[0], color="#7f7f7f", ls=":", lw=1, label=f"share of class 0: {share[0]:.2f}")
ax1.set_ylim(0, 0.4); ax1.set_xlabel("SGD step"); ax1.set_ylabel("accuracy on the batch")
ax1.legend(fontsize=8); ax1.set_title("Accuracy: one jump, then a plateau")
ax2.plot(np.arange(STEPS), losses, color="#4a6fa5")
ax2.axhline(np.log(10), color="k", ls=":", lw=1)
ax2.set_xlabel("SGD step"); ax2.set_ylabel("loss"); ax2.set_title("Loss: barely below ln 10")
fig.tight_layout()

# %% [markdown]
# The accuracy jumps from class 0's share to the majority share **after a single step** and
# never moves again. The loss creeps down from ln 10 in the fourth decimal. Now compare every
# parameter with its value before training, bit for bit:

# %%
changed = {}
for name, p in model.named_parameters():
    now = p.numpy()
    changed[name] = int((now != before[name]).sum())
    print(f"{name:10s} {str(now.shape):16s} entries changed: {changed[name]:7d} of {now.size:7d}   "
          f"max |change| = {np.abs(now - before[name]).max():.3g}")
moved = [name for name, k in changed.items() if k > 0]
print("\nparameters that moved:", moved)

# %% [markdown]
# Both observations are reproduced. Of the twelve parameters (832,298 numbers), only the ten
# numbers of `12.bias` changed. Every weight of the first conv, which sits *before* the zero
# layer, and every weight after it is bit-for-bit what it was. The network predicts the same
# class for every image, the one whose bias grew most, so the accuracy is that class's share.
#
# ## 3. One step, traced to the zero factor
#
# `tn.diagnose.trace_step` runs one forward and backward pass on a fresh copy of the network
# (no update). It keeps the gradient that arrives at every tensor, and then walks backward from
# the loss until the gradient becomes exactly zero. It prints a table: forward values on the
# left, the arriving gradient in the middle, the local derivative on the right. Below the
# table it tells the story.

# %%
tn.manual_seed(0)
fresh = zero_kernel_cnn()
trace = tn.diagnose.trace_step(fresh, x, y)
print(trace)

# %% [markdown]
# Read the table from the bottom up, the way the gradient travels:
#
# * The loss sends $(\mathrm{softmax} - \mathrm{onehot})/N$ to the logits. That is not zero.
# * The output Dense layer (12) passes $g\,W_{12}^\top$ back to ReLU 11. That is not zero either
#   (|g| ≈ 0.18), because $W_{12}$ is a healthy Glorot matrix.
# * **ReLU 11 multiplies it by relu'(z), and every z is exactly 0.** From here on the gradient is
#   exactly zero, all the way back to the image. This is `trace.first_zero`.
#
# The first zero is therefore *not* at the zero conv (layer 3). It appears at the last ReLU
# (layer 11), because the zeros the conv produced were carried forward all the way to there. The graph shows the
# same thing. Red dashed edges carry exactly zero, and the only green box is `12.bias`:

# %%
trace.draw()

# %%
fz = trace.first_zero
print(f"first zero: {fz.name}, made by {fz.op} in layer {fz.layer}: {fz.factor}")
print(f"root: {fz.root};  cut off: {', '.join(fz.cut_off)}")
for name, pz in trace.zero_params.items():
    print(f"  {name:10s} {pz.zero:6d} of {pz.total:6d} gradient entries exactly 0: {pz.reasons}")

# %% [markdown]
# Every parameter except `12.bias` gets a gradient of exactly 0. There are four different
# local reasons, and all four go back to the zero conv:
#
# * **zero_input**: `5.weight`, `7.weight`, `10.weight` and `12.weight` see all-zero inputs, so
#   $dW = x^\top g = 0$ whatever $g$ is;
# * **dead_unit**: the biases `5.bias`, `7.bias` and `10.bias` sit in front of a ReLU whose input
#   is exactly 0, so relu'(0) = 0 decides (`pz.flat_units` lists those units);
# * **zero_weights**: the zero conv's own kernel and bias. With all-zero weights and bias its
#   output is exactly 0 everywhere, the ReLU after it has relu'(0) = 0, and so no gradient comes
#   back to the very layer that caused it all; the report calls this root cause `zero_weights`;
# * **blocked_downstream**: the first conv is reached only through the zero conv, and
#   nothing arrives there.
#
# The names in the printout are the same words `tn.diagnose.explain` uses in its report.
#
# ## 4. What relu'(0) = 0 has to do with it
#
# ReLU has a kink at 0 and no derivative there. TensorFlow, PyTorch and tinynet all *define*
# relu'(0) = 0. Normally that choice never matters, because a real-valued pre-activation is
# almost never exactly 0. Here **every** pre-activation after the zero conv is exactly 0 (the
# table above: layers 3, 5, 7 and 10 output only zeros), so the choice decides everything.
#
# Let's try the other choice. A custom `tn.Function` gives a ReLU with relu'(0) = 1. The forward
# pass is the same; only the backward mask changes from `z > 0` to `z >= 0`:

# %%
class ReLUOpenAtZero(tn.Function):
    """y = max(z, 0), but with relu'(0) = 1: the gradient passes where z >= 0."""

    def forward(self, z):
        self.mask = z >= 0
        return z * (z > 0)

    def backward(self, g):
        return (g * self.mask,)


class OpenReLU(nn.Module):
    def forward(self, x):
        return ReLUOpenAtZero()(x)


def with_open_relus():
    """The same network (same seed, same weights), every ReLU replaced by OpenReLU."""
    tn.manual_seed(0)
    net = zero_kernel_cnn()
    return nn.Sequential(*[OpenReLU() if isinstance(m, nn.ReLU) else m for m in net])


open_net = with_open_relus()
F.softmax_cross_entropy(open_net(xb), yb).backward()
open_grads = {name: float(np.abs(p.grad.numpy()).max()) for name, p in open_net.named_parameters()}
for name, g in open_grads.items():
    print(f"{name:10s} max |gradient| = {g:.3g}")

# %% [markdown]
# With relu'(0) = 1 the gradient gets through the zero activations, so the **zero conv's own
# kernel and bias** get a gradient, and so do the biases after it. Two kinds of zero remain, and
# they are different:
#
# * the weights *after* the zero conv still see zero inputs, so $dW = x^\top g = 0$;
# * the first conv, *before* it, still gets nothing. The gradient must pass back through the
#   zero conv, $dx = g\,W_3^\top$, and $W_3 = 0$. That is the "zero weight" factor.
#
# Neither of these is permanent. After one update the zero conv is no longer zero. Let's take
# three SGD steps and list what has moved after each:

# %%
def moved_per_step(net, steps):
    """For each of `steps` SGD steps on the batch: the parameters that differ from the start."""
    start = {name: p.numpy().copy() for name, p in net.named_parameters()}
    opt = optim.SGD(net.parameters(), lr=LR)
    out = []
    for _ in range(steps):
        loss = F.softmax_cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append([n for n, p in net.named_parameters() if not np.array_equal(p.numpy(), start[n])])
    return out


open_moved = moved_per_step(with_open_relus(), 3)
for s, names in enumerate(open_moved, 1):
    print(f"relu'(0) = 1, after step {s}: {len(names):2d} of 12 moved: {names}")

# %% [markdown]
# By step 2 all twelve parameters move. So the zero kernel freezes the network *permanently*
# only in combination with relu'(0) = 0. The zero layer makes every pre-activation after it
# exactly 0, and relu'(0) = 0 then stops exactly the gradient that would have let the zero layer
# repair itself. Lesson 0 met this same kink, where `gradcheck` disagreed with backward at z = 0.
#
# ## 5. Why the last bias moves, and by exactly how much
#
# The output layer computes $z = h_{11} W_{12} + b_{12}$, and $h_{11} = 0$ for every image. So
# the logits are just $b$, the same for all 50 images, and the loss is that of a 10-number
# model:
#
# $$L(b) = \frac1N\sum_n -\log \mathrm{softmax}(b)_{y_n}, \qquad
#   \frac{\partial L}{\partial b_c} = \mathrm{softmax}(b)_c - f_c ,$$
#
# where $f_c$ is the share of class $c$ in the batch. This gradient does not involve $h_{11}$ at
# all, which is why the zeros cannot stop it. At the start, $b = 0$, so the gradient is exactly
# $0.1 - f_c$. Each SGD step moves $b_c$ by $-\mathrm{lr}\cdot(\text{gradient})$. Classes more
# frequent than 1/10 go up, rarer ones go down, and a class with exactly 5 of 50 images stays
# put. After the first step the largest bias belongs to the most frequent class, and the
# network predicts that class for every image. That is the plateau.
#
# Three predictions of the bias after training, from exact to approximate:

# %%
b_final = model[12].bias.numpy().astype(np.float64)
sum_of_steps = -LR * np.sum(bias_grads, axis=0, dtype=np.float64)   # -lr x the sum of its gradients
linear = LR * STEPS * (share - 0.1)                                  # the gradient frozen at 0.1 - f


def ten_number_model(steps, lr=LR):
    """SGD on L(b) alone, in float32 like the network: b <- b - lr (softmax(b) - f)."""
    b = np.zeros(10, dtype=np.float32)
    f = share.astype(np.float32)
    for _ in range(steps):
        p = np.exp(b - b.max())
        b = b - np.float32(lr) * (p / p.sum() - f)
    return b.astype(np.float64)


replica = ten_number_model(STEPS)
print("class share f      ", share)
print("bias after training", b_final)
for label, pred in (("-lr x sum of grads", sum_of_steps), ("10-number model", replica),
                    ("lr x T x (f - 0.1)", linear)):
    print(f"{label:19s} max |difference| = {np.abs(b_final - pred).max():.2e}")

# %% [markdown]
# * The bias moved by exactly $-\mathrm{lr}\sum_t g_t$. The differences, below 1e-9, are float32
#   rounding.
# * A separate 10-number model, SGD on $L(b)$ alone, reproduces the network's bias just as
#   closely (below 1e-9). The whole 832,298-parameter network is training just these ten
#   numbers.
# * Since $b$ stays tiny (about 1e-3), the softmax stays almost uniform, and
#   $\mathrm{lr}\,T\,(f - 0.1)$ is already correct to about 1e-6.
#
# Where would the bias end up if we trained forever? The gradient $\mathrm{softmax}(b) - f$ is
# zero when $\mathrm{softmax}(b) = f$, that is at $b_c = \log f_c + \text{const}$, the log
# class frequencies. At lr = 1e-4 that is millions of steps away, but the 10-number model runs in
# no time. We run it for the article's 1000 steps and then, with a larger learning rate, to the
# end:

# %%
b_1000 = ten_number_model(1000)
b_end = ten_number_model(5000, lr=1.0)
log_f = np.log(share) - np.log(share).mean()
centered = lambda v: v - v.mean()
corr_now_f = float(np.corrcoef(b_final, share)[0, 1])
corr_now_logf = float(np.corrcoef(b_final, log_f)[0, 1])
p_end = np.exp(b_end - b_end.max()); p_end /= p_end.sum()
print(f"correlation of the trained bias with f: {corr_now_f:.6f}, with log f: {corr_now_logf:.4f}")
print(f"after 1000 steps (the article): largest bias is class {int(np.argmax(b_1000))}; "
      f"max |b| = {np.abs(b_1000).max():.4f}")
print(f"trained to the end: softmax(b) = f to {np.abs(p_end - share).max():.1e}; "
      f"b - mean(b) matches log f - mean(log f) to {np.abs(centered(b_end) - log_f).max():.1e}")

fig, ax = plt.subplots(figsize=(9, 3.8))
cls = np.arange(10)
top = majority_class                    # both series scaled to 1 at the most frequent class
ax.bar(cls - 0.2, centered(b_final) / centered(b_final)[top], width=0.4,
       color="#4a6fa5", label=f"bias after {STEPS} steps: along f - 0.1")
ax.bar(cls + 0.2, log_f / log_f[top], width=0.4, color="#e39b54",
       label="where it converges: log f (centered)")
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(cls); ax.set_xlabel("class"); ax.set_ylabel(f"relative size (class {top} = 1)")
ax.set_title(f"The last bias learns the class frequencies of the batch (most frequent: class {top})")
ax.legend(fontsize=8, loc="upper left");

# %% [markdown]
# The trained bias points exactly along $f - 0.1$ (correlation 1.000000). That is the direction
# of the very first gradient. Its ranking of the classes is the ranking by frequency, the same
# as that of $\log f$, where it would end up. (Class 9, with exactly 5 images, has not moved at
# all yet. It will rise later, once the softmax is no longer uniform, because $\log 0.1$ is above
# the average of $\log f$.) Either way the best this network can do is to
# predict the most frequent class for every image, so its accuracy on the batch is the majority
# share and nothing more.
#
# **The article's batch.** If the real MNIST files are available (set `TINYNET_MNIST_DIR`), the
# next cell reads the labels of the first 50 *training* images, the article's batch, and checks
# its numbers. The article printed the change of the last bias, and its pattern is this lesson's
# $f - 0.1$: the six classes with 4 images moved by one amount, the three classes with 7 images
# by twice that amount in the opposite direction, and the class with 5 images not at all. (The
# size it printed, 2e-5 per 0.02 of share, is 100× smaller than 1000 steps of lr 1e-4 would
# give. Its listing does not say why, so we do not try to reproduce that size.)

# %%
MNIST_DIR = os.environ.get("TINYNET_MNIST_DIR")
article = None
if MNIST_DIR and os.path.exists(os.path.join(MNIST_DIR, "train-labels-idx1-ubyte.gz")):
    from tinynet.data import read_idx
    article_labels = read_idx(os.path.join(MNIST_DIR, "train-labels-idx1-ubyte.gz"))[:50]
    article_counts = np.bincount(article_labels, minlength=10)
    article = {"counts": article_counts, "share0": article_counts[0] / 50,
               "majority": article_counts.max() / 50}
    print("the article's batch, images per class:", article_counts)
    print(f"class 0 share {article['share0']:.2f} (its step-0 accuracy);  majority share "
          f"{article['majority']:.2f} (its plateau);  0.1 - f per class: {0.1 - article_counts / 50}")
else:
    print("real MNIST not found (set TINYNET_MNIST_DIR); skipping the article's batch")

# %% [markdown]
# ## 6. Where the zero layer sits
#
# ### A zero kernel in any of the four conv layers
#
# `zero_kernel_cnn(zero_layer=k)` puts the zero kernel (and zero bias) into conv number k
# (0 to 3), and `zero_layer=None` gives the healthy network. A few steps are enough to see which
# parameters can move, because the freeze is structural:

# %%
position = {}
for k in (0, 1, 2, 3, None):
    tn.manual_seed(0)
    position[k] = moved_per_step(zero_kernel_cnn(zero_layer=k), 5)[-1]
    where = "healthy network" if k is None else f"zero kernel in conv {k} (layer {[0, 3, 5, 7][k]})"
    print(f"{where:34s} -> {len(position[k]):2d} of 12 parameters moved: {position[k]}")

# %% [markdown]
# Wherever the zero conv sits, even in the **last** conv layer (layer 7), only `12.bias` moves.
# The layers after a zero conv still see zeros: the Dense layer 10 gets an all-zero input and
# adds a zero bias, so its output is 0 and ReLU 11 blocks the gradient exactly as before. Here is
# what `explain` says about the last-conv case, root causes first:

# %%
tn.manual_seed(0)
last_conv = zero_kernel_cnn(zero_layer=3)
report_last = tn.diagnose.explain(last_conv, (x, y), optimizer=optim.SGD(last_conv.parameters(), lr=LR),
                                  steps=5)
print([(f.param, f.cause) for f in report_last.roots()])

# %% [markdown]
# ### A zero final Dense weight
#
# The very last layer is different. Let's take the healthy network and set the output layer's
# weight to zero (its bias is already zero):

# %%
tn.manual_seed(0)
zero_out = zero_kernel_cnn(zero_layer=None)
zero_out[12].weight.data[...] = 0.0
out_moved = moved_per_step(zero_out, 3)
for s, names in enumerate(out_moved, 1):
    print(f"zero output weight, after step {s}: {len(names):2d} of 12 moved: {names}")
w12_grown = float(np.abs(zero_out[12].weight.numpy()).max())
print(f"largest |output weight| after 3 steps: {w12_grown:.2g}")

# %% [markdown]
# The zero output layer learns **at once**, and the rest follows:
#
# * No ReLU follows the output layer. Its gradient is softmax − onehot, which is never zero. Its
#   input $h_{11}$ is a healthy, nonzero activation, so $dW_{12} = h_{11}^\top(\mathrm{softmax}
#   - \mathrm{onehot}) \neq 0$ at step 1.
# * At step 1 nothing before it moves, because $dx = g\,W_{12}^\top = 0$ (the zero weight
#   factor). One step later $W_{12} \neq 0$ and the gradient reaches every layer.
# * The freshly grown output weights are still tiny (a few millionths), and so is the gradient
#   they pass back. Times lr = 1e-4, the update of the second conv's kernel `3.weight` at
#   step 2 is around 1e-11. That is below the float32 resolution of weights of size 0.06
#   (about 4e-9), so the rounding swallows it. By step 3 every parameter has moved somewhere,
#   and the rest follows as $W_{12}$ grows.
#
# So a zero kernel is permanent when a **ReLU follows it** and **zero biases pass its zeros
# on**. A zero last layer, with no ReLU after it, repairs itself in one step.
#
# ### What `tinynet explain` says about the original network
#
# `tn.diagnose.explain` analyzes the recorder we attached during the 150 training steps. It names
# one root cause, the zero kernel of layer 3, and lists every other frozen parameter as its
# consequence, each with its own local reason:

# %%
report = tn.diagnose.explain(model, recorder=rec, steps=0)
print(report)

# %%
roots = [(f.param, f.cause) for f in report.roots()]
consequences = sorted({f.param for f in report.findings if f.root == "3.weight"})
print("roots:", roots)
print("caused by 3.weight:", consequences)
print("moved with nothing to report:", report.moved)

# %% [markdown]
# ### Real MNIST
#
# With real MNIST available (`TINYNET_MNIST_DIR`), the same experiment on the first 50 **test**
# images (the training images are not shipped here) shows the same plateau at that batch's
# majority share. We take 20 steps, because the plateau starts after the first.

# %%
real = None
if MNIST_DIR:
    from tinynet.data import mnist
    try:
        xr, yr = mnist("test", root=MNIST_DIR, download=False, progress=False)
    except Exception as err:           # files missing or unreadable: keep the lesson running
        print("real MNIST not usable:", err)
    else:
        xr, yr = xr[:50], yr[:50]
        tn.manual_seed(0)
        real_net = zero_kernel_cnn()
        real_opt = optim.SGD(real_net.parameters(), lr=LR)
        for _ in range(20):
            real_loss = F.softmax_cross_entropy(real_net(tn.tensor(xr)), tn.tensor(yr))
            real_opt.zero_grad(); real_loss.backward(); real_opt.step()
        with tn.no_grad():
            real_acc = float(np.mean(real_net(tn.tensor(xr)).numpy().argmax(axis=1) == yr))
        real = {"acc": real_acc, "majority": np.bincount(yr, minlength=10).max() / 50}
        print(f"first 50 MNIST test images: images per class {np.bincount(yr, minlength=10)}; "
              f"accuracy after 20 steps {real_acc:.2f} = majority share {real['majority']:.2f}")
else:
    print("real MNIST not found (set TINYNET_MNIST_DIR); skipping")

# %% [markdown]
# ## Summary
#
# * A conv layer with a zero kernel and a zero bias outputs exact zeros. With zero biases after
#   it, every later layer outputs exact zeros too, down to the logits. The loss is then exactly
#   ln 10, and the accuracy is the share of class 0, which `argmax` picks from the tie.
# * Backward, the first exact zero appears at the **last ReLU** (relu'(0) = 0 on an input that
#   is exactly 0), not at the zero conv. Everything before that point gets no gradient. The
#   weights after the zero conv also have all-zero inputs ($dW = x^\top g = 0$), and the layers
#   before it are behind a zero weight ($dx = g W^\top = 0$).
# * With relu'(0) = 1 the zero conv would learn at step 1 and everything would move by step 2.
#   The convention relu'(0) = 0 is what makes the freeze permanent.
# * Only the last bias learns. Its gradient, softmax(b) − f, does not depend on the activations.
#   It moves by exactly −lr Σ g, along f − 0.1, towards log f. The network predicts the most
#   frequent class for every image, and the accuracy plateaus at that class's share (0.22 on our
#   batch, 0.14 on the article's).
# * The zero kernel's position among the conv layers does not matter. A zero **output layer**,
#   with no ReLU after it, learns at once and unblocks everything within a few steps.
# * The fix: initialize kernels randomly (Glorot, He). Zero *biases* are fine.
#
# ## Exercises
#
# 1. Give the zero conv a bias of 0.1 instead of 0 (`model[3].bias.data[...] = 0.1` on a fresh
#    `zero_kernel_cnn()`). Predict which parameters move at step 1 and which only at step 2,
#    then check with `moved_per_step`.
# 2. Start from the healthy network (`zero_kernel_cnn(zero_layer=None)`) and set the **hidden**
#    Dense weight `model[10].weight` to zero instead. What moves in three steps? Is the freeze
#    permanent, and why is this different from the zero *output* layer above?
#
# The solutions are collapsed below; click a cell to open it.

# %% [solution]
# Solution 1: with bias 0.1 the zero conv outputs 0.1 everywhere, relu'(0.1) = 1 passes the
# gradient, so the zero conv and everything after it move at step 1. Below it, the gradient
# is K^T delta with K = 0 at step 1, so the first conv waits one step.
tn.manual_seed(0)
biased = zero_kernel_cnn()
biased[3].bias.data[...] = 0.1
biased_moved = moved_per_step(biased, 2)
for s, names in enumerate(biased_moved, 1):
    print(f"bias 0.1, after step {s}: {len(names):2d} of 12 moved: {names}")

# %% [solution]
# Solution 2: a zero hidden Dense weight makes its pre-activation b = 0 on every image, and
# relu'(0) = 0 stops the gradient there on every step: only the output bias (fed by nothing)
# moves. The weights stay 0, so the same holds at the next step: permanent. A zero OUTPUT layer
# has no ReLU after it, so its own gradient is h^T delta != 0 and it repairs itself.
tn.manual_seed(0)
hidden_zero = zero_kernel_cnn(zero_layer=None)
hidden_zero[10].weight.data[...] = 0.0
hidden_moved = moved_per_step(hidden_zero, 3)
for s, names in enumerate(hidden_moved, 1):
    print(f"zero hidden Dense, after step {s}: moved {names}")

# ## Checks
#
# The last cell checks every number this lesson claims.

# %% [check]
# Section 1: exact zeros from the zero conv on; loss ln 10; accuracy = share of class 0
assert all(np.all(a == 0) for i, _, a in forward0 if i >= 3)
assert all(np.abs(a).max() > 0 for i, _, a in forward0 if i < 3)
assert abs(loss0 - np.log(10)) < 1e-6 and acc0 == share[0] == 0.08
assert majority_class == 4 and share[majority_class] == 0.22

# Section 2: only 12.bias moved; the accuracy plateaus at the majority share from step 1 on
assert moved == ["12.bias"], moved
assert sum(v.size for v in before.values()) == 832298
assert changed["12.bias"] == 10 and all(changed[n] == 0 for n in changed if n != "12.bias")
assert accs[0] == share[0] and all(a == share[majority_class] for a in accs[1:]), accs[:5]
assert final_acc == share[majority_class]
assert np.all(final_logits == final_logits[0])                  # the same logits for every image
assert losses[0] == loss0 and np.log(10) - 1e-3 < losses[-1] < losses[0]

# Section 3: the trace finds the zero at the last ReLU, rooted in the zero kernel
assert fz.factor == "relu'(0) = 0" and fz.op == "ReLU" and fz.layer == "11", fz
assert fz.root == "3.weight"
assert set(fz.cut_off) == set(before) - {"12.weight", "12.bias"}
assert set(trace.zero_params) == set(before) - {"12.bias"}
for n in ("5.weight", "7.weight", "10.weight", "12.weight"):
    assert trace.zero_params[n].reasons == {"zero_input": trace.zero_params[n].total}, n
for n in ("3.weight", "3.bias"):
    assert trace.zero_params[n].reasons == {"zero_weights": trace.zero_params[n].total}, n
for n in ("5.bias", "7.bias", "10.bias"):
    pz = trace.zero_params[n]
    assert pz.reasons == {"dead_unit": pz.total} and len(pz.flat_units) == pz.total, n
for n in ("0.weight", "0.bias"):
    assert trace.zero_params[n].reasons == {"blocked_downstream": trace.zero_params[n].total}, n
assert 0.1 < trace.node("11:ReLU").grad_norm < 0.3                # |g| ~ 0.18 arrives at ReLU 11

# Section 4: with relu'(0) = 1 the zero conv and the biases after it get a gradient; all move by step 2
open_nonzero = {n for n, g in open_grads.items() if g > 0}
assert open_nonzero == {"3.weight", "3.bias", "5.bias", "7.bias", "10.bias", "12.bias"}, open_nonzero
assert set(open_moved[0]) == open_nonzero and len(open_moved[1]) == 12

# Section 5: the last bias moves by exactly -lr x sum of its gradients, along f - 0.1, towards log f
assert np.abs(b_final - sum_of_steps).max() < 1e-9
assert np.abs(b_final - replica).max() < 1e-9
assert 1e-7 < np.abs(b_final - linear).max() < 5e-6
assert np.abs(b_final).max() < 3e-3
assert int(np.argmax(b_final)) == majority_class == int(np.argmax(b_1000))
assert corr_now_f > 0.999999 and 0.9 < corr_now_logf < corr_now_f
assert np.abs(p_end - share).max() < 1e-4 and np.abs(centered(b_end) - log_f).max() < 1e-3
five = np.flatnonzero(counts == 5)                               # classes at exactly 1/10 stay put
assert np.all(np.abs(b_final[five]) < 1e-9) and np.all(log_f[five] > 0), b_final[five]
if article is not None:                                          # the article's batch (real MNIST)
    assert article["share0"] == 0.08 and article["majority"] == 0.14
    assert sorted(article["counts"]) == [4, 4, 4, 4, 4, 4, 5, 7, 7, 7]

# Section 6: wherever the zero conv sits, only 12.bias moves; a zero output layer learns at once
for k in (0, 1, 2, 3):
    assert position[k] == ["12.bias"], (k, position[k])
assert len(position[None]) == 12
assert [(f.param, f.cause) for f in report_last.roots()] == [("7.weight", "zero_weights")]
assert out_moved[0] == ["12.weight", "12.bias"] and len(out_moved[2]) == 12
assert "3.weight" not in out_moved[1] and w12_grown < 1e-5
assert roots == [("3.weight", "zero_weights")], roots
assert consequences == sorted(set(before) - {"3.weight", "12.bias"}), consequences
assert report.moved == ["12.bias"]
assert all(f.permanent for f in report.findings)
if real is not None:
    assert real["acc"] == real["majority"], real
# Exercises
assert "3.weight" in biased_moved[0] and "12.weight" in biased_moved[0]
assert "0.weight" not in biased_moved[0] and len(biased_moved[1]) == 12
assert all(names == ["12.bias"] for names in hidden_moved), hidden_moved
print("Lesson 4: all claims hold.")
