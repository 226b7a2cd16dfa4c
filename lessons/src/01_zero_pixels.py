# Source of lessons/01_zero_pixels.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 1: Zero pixels
#
# A learner trained the classic Keras MLP on MNIST. It has two hidden layers of 512 ReLU units,
# Dropout 0.2, RMSprop, and weights drawn from uniform(−0.05, 0.05). Out of curiosity, they
# printed the first row of the first weight matrix before and after training. **The numbers were
# exactly the same.** The first row of the second layer's weights had changed, though. With only
# two hidden layers, vanishing gradients seemed an unlikely explanation. So was the first layer
# not learning?
#
# It was learning. In this lesson we reproduce the observation and then explain it exactly:
#
# 1. **The data**: which pixels are black in every image.
# 2. **Reproduce it**: row 0 of the first weight matrix is bit-for-bit unchanged after training.
# 3. **Count**: most of the matrix did change, and so did the second layer.
# 4. **Derive** the gradient of a Dense weight, $dW = x^\top \delta$, and check it by hand on one
#    batch. Row $i$ of $dW$ is built from pixel $i$ alone.
# 5. **Map**: the rows that never changed are exactly the pixels that are black in every
#    training image.
# 6. **Diagnose**: what `tn.diagnose.explain` says, and why it calls the freeze permanent.
# 7. **Real MNIST**, if you have it.
# 8. **What to do about it**: nothing is broken. We also look at cropping and normalizing.

# %%
# %matplotlib inline
import os

import numpy as np
import matplotlib.pyplot as plt
from IPython.display import display

import tinynet as tn
from tinynet import nn, optim, plot
import tinynet.nn.functional as F
from tinynet.data import digits, mnist, DataLoader, DatasetError
from tinynet.train import fit, evaluate
from tinynet.experiments import zero_pixels_mlp, KERAS_RANDOM_UNIFORM

np.set_printoptions(precision=5, suppress=True, linewidth=100)

BATCH, EPOCHS = 128, 3

# %% [markdown]
# ## 1. The data, and its black border
#
# tinynet's embedded digits are drawn like MNIST: a white digit on a black 28×28 background,
# centred, with a black border. We take 10,000 training images and 2,000 held-out ones. Each
# image is flattened to 784 numbers, so **pixel $i$ is input feature $i$**. Pixel 0 is the
# top-left corner, and pixel $28r + c$ is row $r$, column $c$.

# %%
x_train, y_train = digits(10000, flatten=True)               # (10000, 784), values in [0, 1]
x_test, y_test = digits(2000, flatten=True, split="test")

used = (x_train != 0).mean(axis=0)                 # fraction of images with ink in each pixel
always_zero = ~(x_train != 0).any(axis=0)          # True: the pixel is 0 in EVERY training image
n_always_zero = int(always_zero.sum())
print(f"pixels that are 0 in all {len(x_train):,} training images: {n_always_zero} of 784")
print("pixel 0 (top-left corner): largest value over the training set =", x_train[:, 0].max())

# %%
fig, axes = plt.subplots(1, 7, figsize=(13, 2.4))
for k, ax in enumerate(axes[:5]):
    ax.imshow(x_train[k].reshape(28, 28), cmap="gray"); ax.set_title(f"label {y_train[k]}")
shown = np.ma.masked_where(always_zero, used).reshape(28, 28)
axes[5].imshow(shown, cmap="viridis")
axes[5].set_facecolor("#c0392b")
axes[5].set_title("share of images with\nink (red: none)", fontsize=9)
axes[6].imshow(always_zero.reshape(28, 28), cmap="Reds")
axes[6].set_title(f"0 in every image:\n{n_always_zero} pixels", fontsize=9)
for ax in axes:
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
# The sixth panel shows how often each pixel has any ink at all, and the red pixels have none
# in any of the 10,000 images. In tinynet's embedded digits the whole outer frame (108 pixels)
# is never drawn on, and neither are the corners of the central area. That is a property of
# these generated digits, not a law: in real MNIST some strokes reach the frame. On the 10,000
# images of the real MNIST test split, 116 pixels are 0 in every image, and only 78 of the 108
# frame pixels are among them (measured with `tinynet.data.mnist("test")`; section 7 repeats the
# experiment there when the files are present).
#
# How many pixels are "always 0" depends on how many images you look at. A pixel drops out of
# the set as soon as one image has a speck of ink there:

# %%
first_ink = np.where((x_train != 0).any(axis=0), (x_train != 0).argmax(axis=0), len(x_train))
ks = np.unique(np.geomspace(1, len(x_train), 60).astype(int))
never_inked = [(first_ink >= k).sum() for k in ks]          # zero in all of the first k images
fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogx(ks, never_inked, ".-")
ax.set_xlabel("number of images looked at"); ax.set_ylabel("pixels 0 in all of them")
ax.set_title(f"always-zero pixels: {never_inked[0]} in one image, {never_inked[-1]} in 10,000")
ax.grid(True, alpha=0.3)
fig.tight_layout()

# %% [markdown]
# ## 2. Reproducing the observation
#
# Here is the learner's network, from `tinynet.experiments.zero_pixels_mlp`: Dense 784→512,
# ReLU, Dropout 0.2, Dense 512→512, ReLU, Dropout 0.2, Dense 512→10. Every weight is drawn from
# uniform(−0.05, 0.05) and every bias starts at 0. tinynet stores a Dense weight as
# **(inputs, outputs)**, like Keras, so the first weight matrix is 784×512 and **row $i$ holds
# the 512 weights that leave pixel $i$**. The optimizer is RMSprop with Keras's defaults
# (lr $10^{-3}$, $\rho = 0.9$, $\varepsilon = 10^{-7}$), with batches of 128.
#
# We keep a copy of both weight matrices before training. We also attach a
# `tn.diagnose.Recorder`, which watches what every parameter does. It only watches: the trained
# weights come out bit-for-bit the same with or without it.

# %%
tn.manual_seed(0)
model = zero_pixels_mlp()
opt = optim.RMSprop(model.parameters(), lr=1e-3, rho=0.9, eps=1e-7)
W1_before = model[0].weight.numpy()          # .numpy() is a copy
W2_before = model[3].weight.numpy()
print(model)
print("\nfirst layer, row 0, first 8 of 512 values, BEFORE training:\n", W1_before[0, :8])

# %%
rec = tn.diagnose.Recorder(model, opt)
loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)
history = fit(model, F.softmax_cross_entropy, opt, loader, epochs=EPOCHS,
              val_data=(x_test, y_test), callbacks=[rec])
for e in range(EPOCHS):
    print(f"epoch {e + 1}: loss {history.epoch['loss'][e]:.4f}, "
          f"held-out accuracy {history.epoch['val_acc'][e]:.3f}")
W1_after = model[0].weight.numpy()
W2_after = model[3].weight.numpy()

# %% [markdown]
# The network learns: about 97% on held-out digits after three epochs. Now the learner's
# check:

# %%
print("first layer, row 0, BEFORE:", W1_before[0, :8])
print("first layer, row 0, AFTER: ", W1_after[0, :8])
row0_identical = bool(np.array_equal(W1_before[0], W1_after[0]))
print(f"all 512 entries of row 0 bit-identical: {row0_identical}")
print()
print("second layer, row 0, BEFORE:", W2_before[0, :8])
print("second layer, row 0, AFTER: ", W2_after[0, :8])

# %% [markdown]
# Reproduced. Row 0 of the first layer has not moved by a single bit, while row 0 of the second
# layer has.
#
# ## 3. The matrix as a whole did change
#
# Row 0 is one row out of 784. Let's count every entry of both matrices:

# %%
changed1 = W1_after != W1_before              # (784, 512) bool: entry moved at least once
changed2 = W2_after != W2_before
rows_touched = changed1.any(axis=1)
frozen_rows = ~rows_touched                   # rows in which not a single entry changed
print(f"first layer:  {changed1.sum():>7,} of {changed1.size:,} entries changed "
      f"({changed1.mean():.0%}); rows with at least one change: {rows_touched.sum()} of 784; "
      f"rows entirely unchanged: {frozen_rows.sum()}")
print(f"second layer: {changed2.sum():>7,} of {changed2.size:,} entries changed "
      f"({changed2.mean():.1%})")

# %% [markdown]
# So the first layer did learn. Most of its entries moved. But **whole rows** did not move at
# all, and row 0 is one of them. `tinynet.plot.weight_rows` shows "print the row before and
# after" as a picture. Here it is for row 0 and for row 406, the pixel in the middle of the
# image (row 14, column 14):

# %%
CENTER = 14 * 28 + 14
plot.weight_rows(W1_before, W1_after, rows=(0, CENTER), max_cols=64)

# %% [markdown]
# ## 4. Why: the gradient of a Dense weight is $x^\top \delta$
#
# The first layer computes $z = xW + b$ for a batch $x$ of shape (N, 784). For one image $n$ and
# one unit $j$:
#
# $$z_{nj} = \sum_{i=1}^{784} x_{ni}\, W_{ij} + b_j .$$
#
# Call $\delta_{nj} = \partial L / \partial z_{nj}$ the gradient that arrives at the layer's
# output. It carries everything above the layer: the loss, the second and third layers, the
# ReLU and Dropout masks. $W_{ij}$ appears in $z_{nj}$ with the factor $x_{ni}$ and nowhere else,
# so the chain rule gives
#
# $$\frac{\partial L}{\partial W_{ij}}
#   = \sum_{n=1}^{N} \frac{\partial L}{\partial z_{nj}}\,\frac{\partial z_{nj}}{\partial W_{ij}}
#   = \sum_{n=1}^{N} \delta_{nj}\, x_{ni}
# \qquad\Longleftrightarrow\qquad dW = x^\top \delta \quad \text{(784×N)·(N×512)} .$$
#
# Now read off **row $i$**:
#
# $$dW_{i,:} = \sum_{n} x_{ni}\, \delta_{n,:} .$$
#
# Row $i$ depends on the data only through pixel $i$. If pixel $i$ is 0 in every image of the
# batch, every term is $0 \cdot \delta_{n,:}$ and the row's gradient is **exactly** 0. This holds
# in floating point too, because 0 times a finite number is 0. How large $\delta$ is makes no
# difference, and neither does how deep the network is. This is not a vanishing gradient: the
# factor that vanishes is the input, not the gradient.
#
# RMSprop then turns a zero gradient into a zero step. Its running average
# $s \leftarrow \rho s + (1-\rho) g^2$ starts at 0 and stays 0, and the step is
# $\mathrm{lr}\cdot g/(\sqrt{s} + \varepsilon) = 0/\varepsilon = 0$. The weight is left exactly
# as it was. If this happens on every batch of every epoch, the row never moves.
#
# Let's check all of this on one batch. We run the layers one at a time, so that we can keep
# $z$ and ask for its gradient with `retain_grad()`. (`z.register_hook(fn)` would hand us the
# same gradient as it flows past.) Then we compute $x^\top\delta$ ourselves.

# %%
xb, yb = next(iter(DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=1)))
model.train()                                  # Dropout on, as in training
z = model[0](xb).retain_grad()                 # z = x W + b, shape (128, 512)
logits = model[1:](z)                          # ReLU, Dropout, Dense, ReLU, Dropout, Dense
loss = F.softmax_cross_entropy(logits, yb)
opt.zero_grad()
loss.backward()                                # no opt.step(): we only look

x_np, delta = xb.numpy(), z.grad.numpy()       # x (128, 784), delta = dL/dz (128, 512)
dW_by_hand = x_np.T @ delta                    # (784, 512)
dW = model[0].weight.grad.numpy()
print("dW = x^T delta by hand vs .grad: largest difference", float(np.abs(dW_by_hand - dW).max()))
print(f"delta is not zero: {np.count_nonzero(delta):,} of {delta.size:,} entries nonzero, "
      f"largest {np.abs(delta).max():.3g}")
print("pixel 0 in this batch:", np.unique(x_np[:, 0]), "-> row 0 of dW:", dW[0, :6], "...")
print("nonzero entries in row 0 of dW:", np.count_nonzero(dW[0]), "of 512")
print(f"for comparison, row {CENTER} (the centre pixel): {np.count_nonzero(dW[CENTER])} of 512 "
      f"nonzero, size {np.linalg.norm(dW[CENTER]):.3g}")

# %% [markdown]
# The hand computation matches `.grad`. Row 0 of the gradient is exactly zero, although the
# very same $\delta$ gives the centre pixel's row a perfectly ordinary gradient. (The entries
# of $\delta$ that are 0 belong to units that the ReLU switched off or Dropout dropped for that
# image.)
#
# One batch of 128 images leaves many more pixels black than the full training set does. Every
# one of those pixels gets an exactly-zero gradient row on this batch:

# %%
zero_in_batch = ~(x_np != 0).any(axis=0)            # pixels 0 in all 128 images of this batch
zero_grad_rows = ~(dW != 0).any(axis=1)             # rows of dW that are exactly 0
print(f"pixels 0 in every image of this batch: {zero_in_batch.sum()};  "
      f"rows of dW exactly 0: {zero_grad_rows.sum()};  same set: "
      f"{np.array_equal(zero_in_batch, zero_grad_rows)}")

fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6))
axes[0].imshow(np.linalg.norm(dW, axis=1).reshape(28, 28), cmap="magma")
axes[0].set_title("size of each row of dW\n(one batch)", fontsize=10)
axes[1].imshow(zero_in_batch.reshape(28, 28), cmap="Reds")
axes[1].set_title(f"pixels 0 in all 128 images\nof the batch: {zero_in_batch.sum()}", fontsize=10)
for ax in axes:
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
# On a single batch, a row's gradient is zero exactly where the pixel is black in the whole
# batch. Over training, each batch freezes its own set of rows for one step. A row that never
# moves is a row that got a zero gradient on **every** batch, which means a pixel that is black
# in **every** training image. That is the prediction. Let's check it.
#
# ## 5. The frozen map
#
# `tinynet.plot.frozen_map` draws the rows of the first weight matrix that never changed as a
# 28×28 image, next to the pixels that are 0 in every training image, and next to the places
# where the two maps differ:

# %%
plot.frozen_map(changed1, zero_pixel_mask=always_zero)

# %%
print(f"rows that never changed: {frozen_rows.sum()};  pixels 0 in every training image: "
      f"{n_always_zero};  the same set of pixels: {np.array_equal(frozen_rows, always_zero)}")

# %% [markdown]
# The two maps are identical. Every frozen row belongs to an always-black pixel, and every
# always-black pixel has a frozen row.
#
# A footnote for the careful reader: a few *entries* also never changed in rows that did move.
# They belong to inputs that are nonzero in only a handful of images, such as pixels near the
# frame. On those few images, the entry's unit happened to be switched off by its ReLU or
# dropped by Dropout. So $\delta_{nj} = 0$ there, and $x_{ni}\delta_{nj}$ was never nonzero.
# The report below lists these entries separately.
#
# ## 6. What `tn.diagnose` says
#
# The recorder watched the whole run. `tn.diagnose.explain` with `steps=0` trains nothing; it
# analyzes what the recorder saw and names a cause for every entry that never changed.

# %%
report = tn.diagnose.explain(model, recorder=rec, steps=0)
zero_input = [f for f in report.by_cause("zero_input") if f.param == "0.weight" and f.root is None]
finding = zero_input[0]
print(finding)

# %%
print("cause:     ", finding.cause)
print("parameter: ", finding.param, "  entries:", f"{finding.entries:,} of {finding.total:,}",
      f"= {finding.evidence['features']} rows x 512")
print("permanent: ", finding.permanent)
print("evidence:  ", {k: finding.evidence[k] for k in
                      ("samples_seen", "samples_with_feature_nonzero", "features", "source")})
print("fix:       ", finding.fix)
report_frozen_rows = report.frozen("0.weight").all(axis=1)
print("\nreport.frozen('0.weight') gives the same frozen rows:",
      np.array_equal(report_frozen_rows, frozen_rows))

# %% [markdown]
# The finding names the same rows we found by hand, and the same count. Their input feature was
# nonzero in **0** of the samples seen (three epochs of 10,000 images), so $dW = x^\top\delta$
# is exactly 0 there, and the freeze is **permanent for this data**. No optimizer, learning rate
# or number of epochs can move a weight whose input is always 0.
#
# The report has a few more lines, which are about other things:

# %%
for f in report.findings:
    if f is not finding:
        print(f"{f.cause:12s} {f.param:9s} {f.entries:>6,} of {f.total:,}"
              + (f"   (because of {f.root})" if f.root else ""))
for param, info in report.unexplained.items():
    print(f"no structural cause: {param}: {info['entries']:,} entries (rarely nonzero inputs, "
          f"see the footnote above)")

# %% [markdown]
# * **`dead_unit`** findings, if there are any, are a handful of ReLU units that switched off
#   for good during training, and the weights that fed them or read from them. That is a
#   different cause with its own lesson. It has nothing to do with the border pixels.
# * **"No structural cause"** covers the rarely-nonzero inputs from the footnote in section 5,
#   in the first layer (pixels) and in the second (hidden units that are rarely on).
#
# ## 7. Real MNIST
#
# If the real MNIST files are on this machine and `TINYNET_MNIST_DIR` points at their folder,
# we repeat the experiment on the 10,000 images of the MNIST **test** split (here we use them as
# training data, which is all this experiment needs). Without the files, this section is skipped.

# %%
mnist_dir = os.environ.get("TINYNET_MNIST_DIR")
x_mnist = None
if mnist_dir:
    try:
        x_mnist, y_mnist = mnist("test", root=mnist_dir, download=False, flatten=True)
    except DatasetError as err:
        print("MNIST not usable here:", str(err).splitlines()[0])
if x_mnist is None:
    print("TINYNET_MNIST_DIR is not set (or has no test split): skipping real MNIST.")
else:
    mnist_zero = ~(x_mnist != 0).any(axis=0)
    print(f"MNIST test split: {len(x_mnist):,} images; pixels 0 in every image: "
          f"{mnist_zero.sum()} of 784")
    tn.manual_seed(0)
    mnist_model = zero_pixels_mlp()
    mnist_opt = optim.RMSprop(mnist_model.parameters(), lr=1e-3, rho=0.9, eps=1e-7)
    mnist_before = mnist_model[0].weight.numpy()
    fit(mnist_model, F.softmax_cross_entropy, mnist_opt,          # one epoch: every image once
        DataLoader(x_mnist, y_mnist, batch_size=BATCH, shuffle=True, seed=0), epochs=1)
    mnist_changed = mnist_model[0].weight.numpy() != mnist_before
    mnist_frozen = ~mnist_changed.any(axis=1)
    print(f"rows that never changed: {mnist_frozen.sum()};  same set as the always-zero pixels: "
          f"{np.array_equal(mnist_frozen, mnist_zero)}")
    display(plot.frozen_map(mnist_changed, zero_pixel_mask=mnist_zero))

# %% [markdown]
# On the MNIST test split, 116 of the 784 pixels are 0 in all 10,000 images, and after one
# epoch exactly those 116 rows are untouched. Row 0, the top-left corner, is one of them, just as
# the learner saw. The learner trained on the 60,000 *training* images. Those are not on this
# machine, so we cannot count their always-black pixels here. More images can only shrink the
# set (a pixel leaves it at its first speck of ink, as the curve in section 1 shows), so expect
# fewer than 116 there, and row 0 among them: it is still the corner the learner printed.
#
# ## 8. What to do about it
#
# **Nothing is broken.** A frozen row multiplies a pixel that is 0 in every training image, so
# its value has no effect on any prediction for those images. To see this, we overwrite all
# frozen rows with random numbers and compare the network's outputs on the training set:

# %%
model.eval()
with tn.no_grad():
    logits_before = model(tn.tensor(x_train)).numpy()
    original = model[0].weight.data.copy()
    model[0].weight.data[always_zero] = np.random.default_rng(1).uniform(
        -1, 1, (n_always_zero, 512)).astype(np.float32)
    logits_scrambled = model(tn.tensor(x_train)).numpy()
    model[0].weight.data[...] = original                     # put the real weights back
same_outputs = bool(np.array_equal(logits_before, logits_scrambled))
print("outputs on all 10,000 training images bit-identical after scrambling the frozen rows:",
      same_outputs)

inked_in_test = always_zero & (x_test != 0).any(axis=0)
print(f"pixels black in every training image but inked in some held-out image: "
      f"{inked_in_test.sum()} (affecting {(x_test[:, inked_in_test] != 0).any(axis=1).sum()} "
      f"of {len(x_test):,} held-out images)")

# %% [markdown]
# The outputs are identical to the last bit. The one place where frozen rows can matter is an
# image with ink where no training image had any. Its frozen row then adds the untrained random
# initial weights. Here that happens for a couple of held-out images, which is harmless. It
# would matter if your test images were framed differently from your training images.
#
# If the frozen rows still bother you, you have two options:
#
# **Crop.** Feed the network only the pixels that carry information. The accuracy stays the same,
# and the first layer loses all of its frozen rows:

# %%
keep = ~always_zero
tn.manual_seed(0)
cropped = nn.Sequential(
    nn.Dense(int(keep.sum()), 512, kernel_init=KERAS_RANDOM_UNIFORM), nn.ReLU(), nn.Dropout(0.2),
    nn.Dense(512, 512, kernel_init=KERAS_RANDOM_UNIFORM), nn.ReLU(), nn.Dropout(0.2),
    nn.Dense(512, 10, kernel_init=KERAS_RANDOM_UNIFORM))
cropped_history = fit(cropped, F.softmax_cross_entropy,
                      optim.RMSprop(cropped.parameters(), lr=1e-3, rho=0.9, eps=1e-7),
                      DataLoader(x_train[:, keep], y_train, batch_size=BATCH, shuffle=True, seed=0),
                      epochs=EPOCHS, val_data=(x_test[:, keep], y_test))
print(f"inputs {keep.sum()} instead of 784; first-layer weights "
      f"{cropped[0].weight.shape[0] * 512:,} instead of {784 * 512:,}")
print(f"held-out accuracy: cropped {cropped_history.epoch['val_acc'][-1]:.3f}, "
      f"full {history.epoch['val_acc'][-1]:.3f}")

# %% [markdown]
# **Normalize.** Many pipelines standardize the input with one mean and one standard deviation
# for all pixels, $x \leftarrow (x - \mu)/\sigma$. After that the background is no longer 0 but
# $-\mu/\sigma$, so every row receives a gradient and every row moves. But a pixel that has the
# same value in every image still carries no information. Its row gradient is
# $-\tfrac{\mu}{\sigma}\sum_n \delta_{n,:}$, the bias gradient $\sum_n \delta_{n,:}$ times a
# constant. So all these rows get the same update, and it mirrors the bias's update. They
# move, but they learn nothing the bias does not already learn. (Standardizing each pixel on
# its own does not help either. An always-zero pixel has mean 0 and standard deviation 0, so
# it stays 0, or becomes NaN if nothing guards the division by 0.) One epoch shows it:

# %%
mu, sigma = float(x_train.mean()), float(x_train.std())
tn.manual_seed(0)
norm_model = zero_pixels_mlp()
norm_W0, norm_b0 = norm_model[0].weight.numpy(), norm_model[0].bias.numpy()
fit(norm_model, F.softmax_cross_entropy,
    optim.RMSprop(norm_model.parameters(), lr=1e-3, rho=0.9, eps=1e-7),
    DataLoader((x_train - mu) / sigma, y_train, batch_size=BATCH, shuffle=True, seed=0),
    epochs=1, progress=False)
dW_norm = norm_model[0].weight.numpy() - norm_W0
db_norm = norm_model[0].bias.numpy() - norm_b0
border_moves = dW_norm[always_zero]                     # how the formerly frozen rows moved
norm_frozen_rows = int((~(dW_norm != 0).any(axis=1)).sum())
spread_between_rows = float(np.abs(border_moves - border_moves[0]).max())
corr_with_bias = float(np.corrcoef(border_moves[0], db_norm)[0, 1])
print(f"background value after normalizing: {-mu / sigma:.4f}")
print(f"rows that never changed: {norm_frozen_rows}")
print(f"the {n_always_zero} formerly frozen rows moved by up to {np.abs(border_moves).max():.3g}, "
      f"and differ from each other by at most {spread_between_rows:.1e}")
print(f"correlation between a border row's move and the bias's move: {corr_with_bias:.5f}")

# %% [markdown]
# No row is frozen any more, but the former border rows all made the same move, to within the
# rounding of float32. That move is the bias's, with the sign flipped (correlation −1). This is
# lesson 3's symmetry in a new form: a constant input is a second bias, copied once for every
# border pixel.
#
# ## Summary
#
# * The gradient of a Dense weight is $dW = x^\top\delta$. Row $i$ is
#   $\sum_n x_{ni}\,\delta_{n,:}$, so it is exactly 0 on every batch in which pixel $i$ is black.
# * A pixel that is black in **every** training image gives a row that never moves, with any
#   optimizer without weight decay, and for as long as you train. The frozen map equals the map
#   of always-black pixels exactly.
# * How many pixels are always black depends on the data and on how many images you look at:
#   the whole frame and more in 10,000 embedded digits (the count printed in section 1), 116 in
#   the 10,000 real MNIST test images, whose frame is only partly black.
# * The rest of the layer learns normally. "Row 0 did not change" is true and harmless: row 0 is
#   the top-left corner.
# * This is not a vanishing gradient. $\delta$ is an ordinary gradient; the input is 0.
# * Nothing needs fixing. Crop the border if you want a smaller model. Normalizing makes the rows
#   move but teaches them nothing.
#
# ## Exercises
#
# 1. Take a batch of **one** image. Predict how many rows of $dW_1$ are exactly zero for it, then
#    check with `backward()`.
# 2. Add weight decay by hand: train one SGD step (lr 0.1) on the loss
#    $L + \lambda \lVert W_1 \rVert^2$ with $\lambda = 10^{-4}$. Does row 0 move now? By exactly
#    how much should it move, and in which direction?
#
# The solutions are collapsed below; click a cell to open it.

# %% [solution]
# Solution 1: row i of dW = x^T delta is x_i * delta, zero exactly where pixel i is black
# (delta is almost never exactly 0 in a whole row).
tn.manual_seed(0)
one_model = zero_pixels_mlp()
one_x, one_y = x_train[:1], y_train[:1]
F.softmax_cross_entropy(one_model(tn.tensor(one_x)), tn.tensor(one_y)).backward()
one_zero_rows = int((~(one_model[0].weight.grad.numpy() != 0).any(axis=1)).sum())
print(f"black pixels in the image: {int((one_x[0] == 0).sum())};  zero rows of dW1: {one_zero_rows}")

# %% [solution]
# Solution 2: the decay term's gradient is 2*lambda*W, nonzero on every row, so row 0 moves by
# exactly -lr * 2 * lambda * W[0] (its data gradient is 0): towards 0, by a factor (1 - 2 lr lambda).
tn.manual_seed(0)
wd_model = zero_pixels_mlp()
wd_opt = optim.SGD(wd_model.parameters(), lr=0.1)
w_row0 = wd_model[0].weight.numpy()[0].copy()
xb0, yb0 = x_train[:BATCH], y_train[:BATCH]                   # a batch in which pixel 0 is black
wd_model.eval()                                               # no Dropout: one exact step
wd_loss = F.softmax_cross_entropy(wd_model(tn.tensor(xb0)), tn.tensor(yb0)) \
    + 1e-4 * (wd_model[0].weight * wd_model[0].weight).sum()
wd_opt.zero_grad(); wd_loss.backward(); wd_opt.step()
row0_move = wd_model[0].weight.numpy()[0] - w_row0
print("row 0 moved:", bool(np.any(row0_move != 0)), "  largest |move - (-lr*2*lambda*W[0])|:",
      float(np.abs(row0_move - (-0.1 * 2e-4 * w_row0)).max()))

# %% [markdown]
# The last cell checks every number this lesson claims.

# %% [check]
# Sections 2-3: row 0 is bit-identical; the rest of both layers moved.
assert row0_identical and np.array_equal(W1_before[0], W1_after[0])
assert always_zero[0]                                           # the top-left corner is black
assert changed1.sum() > changed1.size // 2 and rows_touched.sum() == 784 - n_always_zero
assert not np.array_equal(W2_before[0], W2_after[0]) and changed2.mean() > 0.9
assert history.epoch["val_acc"][-1] > 0.9

# Section 4: dW = x^T delta, exactly; row 0 is exactly 0; zero rows = the batch's black pixels.
assert np.allclose(dW_by_hand, dW, rtol=1e-5, atol=1e-6)
assert np.count_nonzero(dW[0]) == 0 and np.all(x_np[:, 0] == 0)
assert np.all(zero_grad_rows[zero_in_batch])                     # black in the batch => zero row
assert np.array_equal(zero_in_batch, zero_grad_rows)
assert np.abs(delta).max() > 1e-3                                # delta is not vanishing

# Section 5: the frozen rows are exactly the always-zero pixels, and their count is what we printed.
assert np.array_equal(frozen_rows, always_zero)
assert int(frozen_rows.sum()) == n_always_zero and n_always_zero >= 208   # at least the 2-px frame
assert never_inked[-1] == n_always_zero and never_inked[0] > n_always_zero
frame = np.zeros((28, 28), bool); frame[[0, -1], :] = True; frame[:, [0, -1]] = True
assert frame.sum() == 108 and np.all(always_zero[frame.ravel()])   # the embedded frame: all black

# Section 6: explain's zero_input finding, with the exact count and its evidence.
assert len(zero_input) == 1
assert finding.cause == "zero_input" and finding.permanent and finding.root is None
assert finding.evidence["features"] == n_always_zero
assert finding.entries == n_always_zero * 512 and finding.total == 784 * 512
assert finding.evidence["samples_with_feature_nonzero"] == 0
assert finding.evidence["samples_seen"] == EPOCHS * len(x_train)
assert np.array_equal(finding.mask.all(axis=1), always_zero)
assert np.array_equal(report_frozen_rows, frozen_rows)

# Section 7: real MNIST (only where TINYNET_MNIST_DIR has the test split).
if x_mnist is not None:
    assert len(x_mnist) == 10000 and int(mnist_zero.sum()) == 116
    assert np.array_equal(mnist_frozen, mnist_zero) and mnist_zero[0]
    assert int(mnist_zero[frame.ravel()].sum()) == 78                # real MNIST: 78 of 108

# Section 8: the frozen rows do not affect any training output; cropping costs nothing;
# normalizing makes every row move, the border rows all alike and against the bias.
assert same_outputs
assert np.array_equal(model[0].weight.numpy(), W1_after)         # the real weights are back
assert cropped_history.epoch["val_acc"][-1] > history.epoch["val_acc"][-1] - 0.03
assert norm_frozen_rows == 0
assert spread_between_rows < 1e-6 < np.abs(border_moves).max()
assert corr_with_bias < -0.999
# Exercises
assert one_zero_rows == int((one_x[0] == 0).sum())
assert np.any(row0_move != 0) and np.allclose(row0_move, -0.1 * 2e-4 * w_row0, rtol=0, atol=1e-8)
print("Lesson 1: all claims hold.")
