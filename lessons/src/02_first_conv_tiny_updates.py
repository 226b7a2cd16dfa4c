# Source of lessons/02_first_conv_tiny_updates.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 2: The first conv layer "doesn't change"
#
# **What a learner saw.** Someone took the classic TensorFlow MNIST example: two 5×5 conv layers
# with max pooling, a 1024-unit Dense layer with dropout, and a 10-way output. Every weight
# *and every bias* came from `tf.random_normal`, a normal distribution with standard deviation
# 1. The optimizer was Adam with learning rate 0.001. To watch the first conv layer learn, they
# drew its 32 filters (5×5 each) as a grey image after every step: the weights were stretched
# so that the smallest became black and the largest white. The image **did not change at all**
# during training. Is the first layer useless?
#
# The accepted answer said: *vanishing gradients. Print the first layer's gradients (they will
# be tiny, around 1e-5) and raise the learning rate 20×, and the weights will start to move.*
#
# In this lesson you reproduce the picture and then put that answer to the test with
# measurements:
#
# 1. the filter picture before and after training, and how many of its grey levels changed;
# 2. what the weights *actually* did, entry by entry;
# 3. the gradient of every layer: is the first one small?
# 4. the learning rate 20× higher: what happens to the updates, the loss and the accuracy?
# 5. the real explanation: **Adam moves every weight by about `lr` per step, whatever the
#    gradient**, and weights drawn with std 1 are a thousand times larger than that;
# 6. the fix: an initialization scaled to the layer (He or Glorot).

# %%
# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

import tinynet as tn
from tinynet import nn, optim, init, plot
import tinynet.nn.functional as F
from tinynet.data import DataLoader, digits
from tinynet.train import evaluate, fit
from tinynet.experiments import first_conv_cnn

np.set_printoptions(precision=4, suppress=True)

STEPS, BATCH, LR = 60, 64, 1e-3     # the article: ~1,560 steps of batch 128 (see below)
x_train, y_train = digits(STEPS * BATCH)              # (3840, 1, 28, 28) in [0, 1]
x_test, y_test = digits(1000, split="test")           # held out
print(x_train.shape, x_test.shape)

# %% [markdown]
# We use tinynet's embedded digits, which need no download. Each training step on this CNN costs
# about 0.1–0.2 s on two CPU cores, so we train for **60 steps with batches of 64** instead of
# the article's 1,560 steps of 128. As you will see, that is plenty. The effect we are after
# does not depend on the batch size at all: Adam's step size does not depend on the gradient,
# and a larger batch changes only the gradient.
#
# The article's full length, 1,560 steps of 128 images, takes about 6 minutes here, so it is not
# part of the lesson; we ran it once (same network, seed 0, Adam 1e-3, 60,000 embedded digits).
# The loss fell from 86,414 to about 130, the held-out accuracy reached 0.994, and yet the
# largest move of any first-conv weight was 0.19, about 7 grey levels of the article's picture:
# 686 of its 800 pixels changed, by at most 9 of 256 levels. Adam's largest step per step was
# 1.16 lr, its median 0.38 lr. Longer training does not change the story below.
#
# ## 1. The network, and how it starts
#
# `tinynet.experiments.first_conv_cnn()` builds the article's network. Every weight and every
# bias is drawn from normal(0, 1), and Dropout keeps 75% of the Dense units during training.

# %%
tn.manual_seed(0)
model = first_conv_cnn()
model

# %% [markdown]
# Before training anything, push 500 test images through it. With weights of std 1, every layer
# multiplies the size of its input by roughly $\sqrt{\text{fan-in}}$: that is 5 for the first conv
# (25 inputs), 28 for the second (800 inputs), 56 for the Dense layer (3136 inputs), and 32 for
# the output layer. So the logits come out enormous:

# %%
model.eval()                                  # no dropout for this look
with tn.no_grad():
    logits0 = model(tn.tensor(x_test[:500])).numpy()
model.train()

shifted = logits0 - logits0.max(axis=1, keepdims=True)
probs0 = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)     # float32 softmax
p_true0 = probs0[np.arange(500), y_test[:500]]
init_loss = F.softmax_cross_entropy(tn.tensor(logits0), tn.tensor(y_test[:500])).item()
margin0 = float(np.mean(logits0.max(axis=1) - logits0[np.arange(500), y_test[:500]]))
onehot_share = float(np.mean(probs0.max(axis=1) == 1.0))
print(f"logits: std {logits0.std():,.0f}, largest |logit| {np.abs(logits0).max():,.0f}")
print(f"loss at init: {init_loss:,.1f}   (a uniform guess would give ln 10 = {np.log(10):.3f})")
print(f"mean (largest logit - true logit) = {margin0:,.1f}")
print(f"softmax exactly one-hot in float32: {onehot_share:.1%} of the images; "
      f"p(true class) exactly 0: {np.mean(p_true0 == 0):.1%}")

# %% [markdown]
# The loss starts in the tens of thousands. The softmax is **saturated**: the largest logit
# beats every other one by thousands, so in float32 the probabilities are exactly 1 and 0. The
# cross-entropy then equals *largest logit − true logit*, which is why it is so large. Keep this
# in mind. It means the gradient at the logits, softmax − one-hot, is exactly
# (one-hot of the prediction) − (one-hot of the label): 0 for an image the network already gets
# right, and ±1 in two places for one it gets wrong. That is not a small gradient.
#
# ## 2. Training, and the picture the learner saw
#
# We train with Adam(lr = 1e-3) as the article did. A `tn.diagnose.Recorder` attached as a
# callback records, at every step (`every=1`), the gradient norm, the update and the
# update-to-weight ratio $\lVert\Delta W\rVert / \lVert W\rVert$ of every parameter, plus
# activation statistics of every layer. A tiny extra callback keeps the first conv's weights
# after step 1, which we will need in section 5.
#
# We will train several variants of the same network, so the training goes into a function.

# %%
class KeepAfterFirstStep:
    """fit callback: the first conv's weights right after step 1, and every step's size.

    steps[k] = the largest |change| of any first-conv weight at step k + 1.
    """

    def __init__(self, model):
        self.model, self.weights, self.steps = model, None, []
        self.prev = model[0].weight.numpy().copy()

    def on_batch_end(self, state):
        w = self.model[0].weight.numpy().copy()
        self.steps.append(float(np.abs(w - self.prev).max()))
        self.prev = w
        if state.step == 1:
            self.weights = w


def train(build, lr=LR, steps=STEPS):
    """Train build() with Adam(lr) for `steps` steps; everything we measure, in a dict."""
    tn.manual_seed(0)
    model = build()
    opt = optim.Adam(model.parameters(), lr=lr)
    rec = tn.diagnose.Recorder(model, opt, every=1)
    first = KeepAfterFirstStep(model)
    w0 = model[0].weight.numpy().copy()
    loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)
    history = fit(model, F.softmax_cross_entropy, opt, loader, callbacks=[rec, first],
                  max_steps=steps)
    return {"model": model, "rec": rec, "history": history, "lr": lr,
            "w0": w0, "w1": model[0].weight.numpy().copy(), "w_step1": first.weights,
            "max_step": np.array(first.steps),
            "test": evaluate(model, F.softmax_cross_entropy, (x_test, y_test))}


normal = train(first_conv_cnn)
h = normal["history"].batch
print(f"loss: step 1 {h['loss'][0]:,.0f} -> mean of the last 10 steps {np.mean(h['loss'][-10:]):,.0f}")
print(f"held-out accuracy after {STEPS} steps: {normal['test']['acc']:.3f}")

# %% [markdown]
# The network *is* learning: the loss fell several-fold, and it classifies most held-out digits
# correctly (a guess would score 0.10). Now let's draw the first conv layer the
# way the article did. `plot.filter_grid(before, after, scale="minmax")` stretches each grid to
# its own min..max, rounds it to 256 grey levels, and shows what changed **in the pictures**:

# %%
plot.filter_grid(normal["w0"], normal["w1"], scale="minmax")

# %% [markdown]
# Before and after look the same. The third panel looks busy only because it is stretched to its
# own largest difference. Let's count the changed grey levels ourselves:

# %%
def grey_levels(w):
    """The article's picture: (w - min) / (max - min) rounded to 0..255 (channel 0 of each filter)."""
    w = w[:, 0]
    return np.round((w - w.min()) / (w.max() - w.min()) * 255).astype(int)


def picture_change(run):
    """Per picture pixel: how many grey levels it moved between before and after."""
    return np.abs(grey_levels(run["w1"]) - grey_levels(run["w0"]))


d_normal = picture_change(normal)
print(f"{int((d_normal > 0).sum())} of {d_normal.size} picture pixels changed, "
      f"by at most {d_normal.max()} of 256 grey levels")
print("pixels that moved by 0, 1, 2, 3, ... grey levels:", np.bincount(d_normal.ravel()))

# %% [markdown]
# About half of the pixels did change, but by one, two or at most three grey levels out of 256.
# That is a brightness change of about 1%, which no eye can see (and many screens cannot even
# show). The learner was not imagining things: **in that picture** the layer did not change.
#
# ## 3. The weights did change
#
# The picture hides what the numbers show. Every one of the 800 weights moved:

# %%
w0, w1 = normal["w0"], normal["w1"]
changed_entries = int((w1 != w0).sum())
rel_change = float(np.linalg.norm(w1 - w0) / np.linalg.norm(w0))
print(f"entries changed: {changed_entries} of {w0.size}")
print(f"largest |change|: {np.abs(w1 - w0).max():.4f}   typical |weight|: {np.sqrt(np.mean(w0**2)):.3f}")
print(f"relative change of the whole kernel, |W1 - W0| / |W0|: {rel_change:.2%}")

# %% [markdown]
# With `scale="own"` (the default), `filter_grid` gives each panel its own symmetric color
# scale around 0, so the *difference* panel uses a scale almost 100 times finer than the weights.
# Now the change is plain to see, and it is structured (whole filters shift together):

# %%
plot.filter_grid(normal["w0"], normal["w1"])

# %% [markdown]
# So the layer is not frozen. Each weight moved by a few hundredths, while the weights themselves
# are about 1 in size. The question is *why so little*. The accepted answer blamed vanishing
# gradients, so let's test that first.
#
# ## 4. Testing the answer
#
# ### 4a. Are the first layer's gradients small?
#
# The recorder has the gradient of every parameter at every step. To compare layers of different
# sizes we use the **RMS** (root mean square) of each weight's gradient, $\lVert g\rVert / \sqrt{n}$,
# the typical size of one entry. We take the median over the 60 steps:

# %%
WEIGHTS = ["0.weight", "3.weight", "7.weight", "10.weight"]     # conv1, conv2, Dense, output
NAMES = {"0.weight": "conv1 (first)", "3.weight": "conv2", "7.weight": "Dense 3136->1024",
         "10.weight": "output Dense"}


def median_over_steps(run, key):
    hist = run["rec"].history
    return {name: float(np.median(hist[name][key])) for name in WEIGHTS}


grad_rms = median_over_steps(normal, "grad_rms")
for name in WEIGHTS:
    print(f"{NAMES[name]:18s} gradient RMS {grad_rms[name]:9.3g}")
print(f"first conv / output layer: {grad_rms['0.weight'] / grad_rms['10.weight']:.1f}x")

# %% [markdown]
# The first conv's gradient entries are typically a few **hundred**, not 1e-5. They are the
# *largest* in the network, several times larger than the output layer's. A vanishing gradient
# would shrink from the output towards the input. Here it does the opposite: the std-1 weights
# of each layer enlarge the gradient on its way back, just as they enlarge the activations on
# the way forward. Here is the full record of the gradient *norms* (whole tensors, not per
# entry), one curve per parameter, the biases dashed:

# %%
plot.grad_norms(normal["rec"])

# %% [markdown]
# ### 4b. Raise the learning rate 20×
#
# The answer's second suggestion: with lr = 0.02 the weights "should start to change". Let's try
# it for 40 steps. Besides the loss and the accuracy, we look at the fraction of exact zeros
# after the second conv's ReLU (layer 4), which the recorder also keeps.

# %%
FAST_STEPS = 40
fast = train(first_conv_cnn, lr=20 * LR, steps=FAST_STEPS)
d_fast = picture_change(fast)
hf = fast["history"].batch
zero_frac_4 = fast["rec"].layer_stats["4"]["zero_frac"]
ratio1 = {r: float(run["rec"].history["0.weight"]["update_ratio"][0]) for r, run in
          (("lr 1e-3", normal), ("lr 2e-2", fast))}
print(f"first conv, update ratio at step 1: lr 1e-3 -> {ratio1['lr 1e-3']:.2e},  "
      f"lr 2e-2 -> {ratio1['lr 2e-2']:.2e}")
print(f"picture pixels changed: {int((d_fast > 0).sum())} of {d_fast.size}, up to {d_fast.max()} grey levels")
print(f"loss: step 1 {hf['loss'][0]:,.0f} -> last 10 steps {np.mean(hf['loss'][-10:]):,.1f}")
print(f"held-out accuracy: {fast['test']['acc']:.3f}   (lr 1e-3 after 60 steps: {normal['test']['acc']:.3f})")
print(f"fraction of exact zeros after conv2's ReLU: step 1 {zero_frac_4[0]:.3f} -> "
      f"step {FAST_STEPS} {zero_frac_4[-1]:.5f}")

# %% [markdown]
# The first part of the prediction holds. The update ratio at step 1 is 20 times larger, and
# the picture now visibly changes. But look at the rest:
#
# * The **loss** dropped from tens of thousands to a few hundred, far below the lr 1e-3 run.
#   That looks like a success.
# * The **accuracy** is close to chance (0.10), while the lr 1e-3 run reached about 0.7.
# * Almost every activation after the second conv is now **exactly zero**. Adam moved each of
#   conv2's 51,200 weights by up to 0.02 per step, in concert. By step 40 nearly all of conv2's
#   pre-activations were at or below zero, and a ReLU there passes neither signal nor gradient
#   (lessons 0 and 4).
#
# With conv2 silent, the network outputs nearly the same logits for every image. The loss
# fell because those constant logits shrank, not because the network learned anything. (The
# answer itself warned that the network would diverge.) Raising the learning rate made the
# picture move and broke the network: it treated a symptom of the picture, not a problem of
# the layer.
#
# ## 5. What actually happens: Adam's step does not care about the gradient's size
#
# Adam keeps two running averages per weight, the mean $m$ of the gradient and the mean $v$ of
# its square (both bias-corrected, written $\hat m$, $\hat v$). Its update is
#
# $$\Delta w = -\,\mathrm{lr}\;\frac{\hat m}{\sqrt{\hat v} + \varepsilon}.$$
#
# Multiply every gradient by 1000 and both $\hat m$ and $\sqrt{\hat v}$ grow by 1000, so the
# step stays the same. How large can the step be? If $m$ and $v$ averaged over the same window,
# $|\hat m| \le \sqrt{\hat v}$ would follow (an average is at most the root of the average
# square). They do not: $m$ forgets with $\beta_1 = 0.9$, $v$ with $\beta_2 = 0.999$, so a large
# gradient after a long run of small ones enters $\hat m$ with weight about 0.1 and $\hat v$ with
# weight only 0.001, and $|\hat m|/\sqrt{\hat v}$ can exceed 1. The bound that does hold (the Adam
# paper's) is $|\Delta w| \le \mathrm{lr}\,(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2\,\mathrm{lr}$ for
# the default betas. In practice the step is **about lr or less**: at step 1, $\hat m = g$ and
# $\sqrt{\hat v} = |g|$, so every weight with a nonzero gradient moves by exactly lr; later, when
# the gradient changes sign from batch to batch, $\hat m$ averages out and the step shrinks. We
# measure it below for every step of the run. First, a three-weight toy, with gradients of three very
# different sizes:

# %%
def adam_steps(grad_scale, steps=3):
    w = tn.tensor(np.array([1.0, -2.0, 0.5], dtype=np.float32), requires_grad=True)
    opt = optim.Adam([w], lr=LR)
    direction = tn.tensor(np.array([1.0, -1.0, 2.0], dtype=np.float32) * grad_scale)
    for _ in range(steps):
        opt.zero_grad()
        (w * direction).sum().backward()        # gradient = direction, every step
        opt.step()
    return w.numpy() - np.array([1.0, -2.0, 0.5], dtype=np.float32)


toy_moves = {s: adam_steps(s) for s in (1e-3, 1.0, 1e3)}
for s, move in toy_moves.items():
    print(f"gradient x {s:<6g}: change after 3 Adam steps {move}")

# %% [markdown]
# The moves are the same, 3 × lr = 0.003 per weight, whether the gradient is 0.001 or 1000.
# Now the first conv of our run, at step 1:

# %%
step1 = normal["w_step1"] - normal["w0"]
moved1 = step1 != 0
print(f"step 1: {int(moved1.sum())} of {step1.size} weights moved; |change| between "
      f"{np.abs(step1[moved1]).min():.7f} and {np.abs(step1[moved1]).max():.7f}  (lr = {LR})")

# %%
steps_over_lr = normal["max_step"] / LR
print(f"largest first-conv step, in units of lr: step 1 {steps_over_lr[0]:.3f}, "
      f"median over the {STEPS} steps {np.median(steps_over_lr):.3f}, largest {steps_over_lr.max():.3f}")

# %% [markdown]
# Step 1 moves by exactly lr. Over the run the largest step per step stays close to lr (the
# median is a little below it), and at some steps it is a little *above* lr: that is the
# $|\hat m| > \sqrt{\hat v}$ case that "an average is at most the root of the average square"
# would wrongly rule out. Every step is far inside the $3.2\,\mathrm{lr}$ bound.
#
# Every weight that moved at step 1 moved by lr, give or take float32 rounding. (A weight can
# also sit still at step 1: its gradient was exactly 0 on that batch.) So the
# update-to-weight ratio at step 1 is simply
#
# $$\frac{\lVert\Delta W\rVert}{\lVert W\rVert} \approx \frac{\mathrm{lr}\sqrt{n}}{\mathrm{rms}(W)\sqrt{n}} = \frac{\mathrm{lr}}{\mathrm{rms}(W)} ,$$
#
# and for std-1 weights that is 1e-3. After step 1 it only gets smaller: as the gradient changes
# sign from batch to batch, $|\hat m|$ falls below $\sqrt{\hat v}$. Here is the recorded ratio
# for every parameter, with the usual rule of thumb (about 1e-3) as a dotted line:

# %%
plot.update_ratios(normal["rec"])

# %%
ratio_med = median_over_steps(normal, "update_ratio")
weight_rms = {name: float(np.sqrt(np.mean(normal["rec"].initial_numpy(name) ** 2))) for name in WEIGHTS}
for name in WEIGHTS:
    r1 = float(normal["rec"].history[name]["update_ratio"][0])
    print(f"{NAMES[name]:18s} rms(W) {weight_rms[name]:.3f}   lr/rms(W) {LR / weight_rms[name]:.2e}   "
          f"ratio at step 1 {r1:.2e}   median ratio {ratio_med[name]:.2e}")

# %% [markdown]
# Every layer moves by 2e-4 to 5e-4 of its size per step (the median), the first conv
# included. The layers do not differ much from each other. The init scale (std 1) and Adam's
# step (lr) set this ratio, and the gradients, huge as they are, do not enter. (At step 1 the larger layers come out a
# little below lr/rms(W), because some of their entries got an exactly-zero gradient on the
# first batch.)
#
# Now the arithmetic of the picture. It maps the range of the weights, about −3.9 to 3.1, onto
# 256 grey levels, so **one grey level is about 0.027**. A step of at most 0.001 needs at least 27
# steps, all in the same direction, to move a pixel by one level:

# %%
grey_step = float((w0[:, 0].max() - w0[:, 0].min()) / 255)
print(f"one grey level = (max - min) / 255 = {grey_step:.4f} = {grey_step / LR:.0f} x lr")
print(f"largest move of any first-conv weight in {STEPS} steps: {np.abs(w1 - w0).max():.4f} "
      f"= {np.abs(w1 - w0).max() / grey_step:.1f} grey levels")

# %% [markdown]
# (A pixel can still move by up to 3 levels: rounding to whole levels adds up to one, and the
# picture's own min and max shift a little too.)
#
# This also explains the article's puzzling remark that the picture *did* change when the first
# layer started from zeros. A kernel that starts at 0 has a min..max range about as large as the
# updates themselves, so the stretched picture amplifies every step.
#
# ## 6. The fix: scale the initialization to the layer
#
# He initialization draws weights with variance $2/\text{fan-in}$ (designed for ReLU; see
# lesson 5). Glorot uses $2/(\text{fan-in} + \text{fan-out})$. Both set the biases to zero. For
# the first conv (fan-in 25) He gives weights of std 0.28 and Glorot 0.05, compared with 1.
# Same data, same Adam, same 60 steps:

# %%
he = train(lambda: first_conv_cnn(kernel_init=init.he_normal, bias_init=init.zeros))
glorot = train(lambda: first_conv_cnn(kernel_init=init.glorot_normal, bias_init=init.zeros))
RUNS = {"normal(0, 1)": normal, "He": he, "Glorot": glorot}

print(f"{'init':13s} {'loss step 1':>12s} {'last 10':>9s} {'test acc':>8s}   conv1: "
      f"{'rms(W)':>7s} {'ratio step 1':>12s} {'median ratio':>12s} {'max grey change':>15s}")
for label, run in RUNS.items():
    bl = run["history"].batch["loss"]
    r = run["rec"].history["0.weight"]["update_ratio"]
    rms = float(np.sqrt(np.mean(run["w0"] ** 2)))
    print(f"{label:13s} {bl[0]:12,.3f} {np.mean(bl[-10:]):9,.3f} {run['test']['acc']:8.3f}   "
          f"      {rms:7.3f} {r[0]:12.2e} {np.median(r):12.2e} {picture_change(run).max():15d}")

# %% [markdown]
# With a scaled init the loss starts near $\ln 10 \approx 2.3$ instead of tens of thousands. The
# network reaches a much higher held-out accuracy in the same 60 steps, and the first conv's
# update ratio is several times larger, because the same step lr is now measured against much
# smaller weights. Here are the three pictures side by side. Each row shows the min-max
# picture before and after training, and how many grey levels each pixel moved, **on one common
# scale** for all three rows (it saturates at 16 levels):

# %%
fig, axes = plt.subplots(3, 3, figsize=(10, 6.6), layout="constrained")
CLIP = 16          # the color scale of the right column saturates at 16 grey levels


def tiled(levels, ncols=8):
    """(32, 5, 5) -> one image, 4 rows of 8 filters with 1-pixel gaps (NaN)."""
    out = np.full((4 * 6 - 1, ncols * 6 - 1), np.nan)
    for k, f in enumerate(levels):
        r, c = divmod(k, ncols)
        out[r * 6:r * 6 + 5, c * 6:c * 6 + 5] = f
    return out


for row, (label, run) in zip(axes, RUNS.items()):
    move = picture_change(run)
    row[0].imshow(tiled(grey_levels(run["w0"])), cmap="gray", vmin=0, vmax=255)
    row[1].imshow(tiled(grey_levels(run["w1"])), cmap="gray", vmin=0, vmax=255)
    im = row[2].imshow(tiled(move), cmap="magma", vmin=0, vmax=CLIP)
    row[0].set_ylabel(label, fontsize=12)
    row[0].set_title("before (min-max)", fontsize=10)
    row[1].set_title(f"after {STEPS} steps (min-max)", fontsize=10)
    row[2].set_title(f"grey levels moved (largest {move.max()})", fontsize=10)
    for ax in row:
        ax.set_xticks([]); ax.set_yticks([])
fig.colorbar(im, ax=axes[:, 2], shrink=0.6, label=f"grey levels moved (of 256; {CLIP}+ all white)")
fig.suptitle("First conv layer: the same 60 Adam steps from three initializations");

# %% [markdown]
# With std-1 weights the right-hand panel is black: nothing moved by more than 3 levels. With He
# the filters shift by up to about a dozen levels, and with Glorot they visibly reshape.
#
# Look at the "before" pictures of He and Glorot: they are the *same picture*. With the same seed
# both draw the same random numbers and only scale them differently (std 0.28 against 0.05), and
# a min-max picture cannot see scale. That is the whole trap in one image. The picture shows the
# pattern of the weights, never their size, so it cannot show how big a step is compared with
# them. The loss curves tell the same story on a log
# scale:

# %%
fig, ax = plt.subplots(figsize=(8, 3.8))
for (label, run), color in zip({**RUNS, "normal(0, 1), lr x 20": fast}.items(),
                               ("#d62728", "#2ca02c", "#ff7f0e", "#9467bd")):
    ax.plot(np.arange(1, len(run["history"].batch["loss"]) + 1), run["history"].batch["loss"],
            color=color, label=f"{label} (test acc {run['test']['acc']:.2f})")
ax.axhline(np.log(10), color="k", ls=":", lw=1)
ax.set_yscale("log"); ax.set_xlabel("Adam step"); ax.set_ylabel("training loss (batch)")
ax.legend(fontsize=8); ax.set_title("Loss per step");

# %% [markdown]
# ### What `tinynet explain` concludes
#
# `tn.diagnose.explain` reads the same recorder and applies fixed rules (see
# `tinynet/diagnose/updates.py`). A weight is called **tiny_update** when its median ratio is
# below 1e-3 *and*, under an adaptive optimizer like Adam, lr/rms(W) is below 2e-3: the weights
# are too large for the step Adam takes. It is called **vanishing_gradient** only when its
# gradient RMS is 1000× below the output layer's and shrinks towards the input. Here is its
# verdict on the std-1 run, for the first conv:

# %%
report_normal = tn.diagnose.explain(normal["model"], recorder=normal["rec"], steps=0)
report_he = tn.diagnose.explain(he["model"], recorder=he["rec"], steps=0)
tiny_normal = [f.param for f in report_normal.by_cause("tiny_update")]
print("tiny_update:", tiny_normal, "  vanishing_gradient:",
      [f.param for f in report_normal.by_cause("vanishing_gradient")])
print()
print([f for f in report_normal.by_cause("tiny_update") if f.param == "0.weight"][0])

# %%
print("He init -> tiny_update:", [f.param for f in report_he.by_cause("tiny_update")],
      "  vanishing_gradient:", [f.param for f in report_he.by_cause("vanishing_gradient")])

# %% [markdown]
# For the std-1 run all four weight layers are flagged **tiny_update**, and none of them
# **vanishing_gradient**. For the He run nothing is flagged. The evidence (`f.evidence`) holds the
# numbers we measured above: the median ratio, lr/rms(W), and the gradient RMS against the
# output layer's.
#
# ## Summary
#
# * The min-max picture maps the weights' range (±3.5) onto 256 levels. A change smaller than
#   about 0.027 is invisible, and in 60 Adam steps no first-conv weight moved by more than a few
#   of those levels. Yet **all 800 weights moved**, and the network learned.
# * The gradients are not vanishing. The first conv's are the largest in the network, hundreds
#   per entry.
# * **Adam's step is about lr whatever the gradient**, so the update-to-weight ratio is about
#   lr / rms(W) = 1e-3 at best, and 3e-4 in practice, for std-1 weights.
# * Raising the learning rate 20× makes the picture move but silences conv2 and leaves the
#   network at chance accuracy.
# * Scaling the init (He, Glorot, zero biases) fixes the real problems. The loss starts at
#   about 2.3 instead of tens of thousands, accuracy rises faster, and the first layer's
#   filters visibly change.
# * To see whether a layer moves, look at $\lVert\Delta W\rVert/\lVert W\rVert$ (or a difference
#   picture on its own color scale), not at a min-max picture of the weights.
#
# ## Exercises
#
# 1. Take one **SGD** step (lr 1e-3) on the std-1 network instead of an Adam step. SGD's step
#    *is* proportional to the gradient. How far does the first conv's largest weight move, with
#    gradients in the hundreds or thousands?
# 2. Replace the std-1 initialization by `init.normal(0.0, 0.01)` (biases 0) and keep Adam.
#    Predict the first conv's update ratio at step 1 before you run it.
#
# The solutions are collapsed below; click a cell to open it.

# %% [solution]
# Solution 1: SGD moves each weight by lr * gradient, so the largest step is lr * max|g|:
# hundreds of times larger than Adam's lr.
tn.manual_seed(0)
sgd_net = first_conv_cnn()
sgd_w0 = sgd_net[0].weight.numpy().copy()
sgd_opt = optim.SGD(sgd_net.parameters(), lr=LR)
xb, yb = next(iter(DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)))
sgd_opt.zero_grad(); F.softmax_cross_entropy(sgd_net(xb), yb).backward()
sgd_grad_max = float(np.abs(sgd_net[0].weight.grad.numpy()).max())
sgd_opt.step()
sgd_step_max = float(np.abs(sgd_net[0].weight.numpy() - sgd_w0).max())
print(f"largest first-conv gradient {sgd_grad_max:.1f};  SGD step {sgd_step_max:.4f} "
      f"= {sgd_step_max / LR:.0f} x lr  (Adam's was 1 x lr)")

# %% [solution]
# Solution 2: Adam's first step is lr for every weight with a nonzero gradient, so the ratio is
# about lr / rms(W) = 1e-3 / 0.01 = 0.1: every step changes the weights by ~10% of their size.
small = train(lambda: first_conv_cnn(kernel_init=init.normal(0.0, 0.01), bias_init=init.zeros),
              steps=3)
small_ratio1 = float(small["rec"].history["0.weight"]["update_ratio"][0])
small_rms = float(np.sqrt(np.mean(small["w0"] ** 2)))
print(f"rms(W) {small_rms:.4f};  predicted lr / rms(W) = {LR / small_rms:.3f};  "
      f"measured ratio at step 1 {small_ratio1:.3f}")

# ## Checks
#
# The last cell checks every number this lesson claims.

# %% [check]
# Section 1: huge logits, a saturated softmax, a loss in the tens of thousands
assert init_loss > 1e4 and logits0.std() > 1e4, (init_loss, logits0.std())
assert onehot_share > 0.99, onehot_share
assert abs(margin0 - init_loss) / init_loss < 1e-3       # loss = largest logit - true logit
assert 50 < np.abs(w0).max() / np.abs(w1 - w0).max() < 200         # "almost 100x finer"

# Section 2: the network learns, yet the min-max picture barely moves
assert normal["test"]["acc"] > 0.5, normal["test"]
assert np.mean(h["loss"][-10:]) < h["loss"][0] / 3
assert 0.3 * d_normal.size < (d_normal > 0).sum() < 0.7 * d_normal.size    # about half changed...
assert d_normal.max() <= 3, d_normal.max()               # at most 3 of 256 grey levels

# Section 3: ...because every weight moved, but by ~2-3% of the kernel's size
assert changed_entries == w0.size == 800
assert 0.005 < rel_change < 0.05, rel_change

# Section 4a: not vanishing -- the first conv's gradient is the largest, above the output layer's
assert grad_rms["0.weight"] > 2 * grad_rms["10.weight"] > 1, grad_rms
assert 100 < grad_rms["0.weight"] < 1000, grad_rms
assert grad_rms["0.weight"] == max(grad_rms.values())
assert grad_rms["0.weight"] > 1e6 * 1e-5                     # the answer expected ~1e-5

# Section 4b: lr x 20: a 20x larger first step, a moving picture -- and a broken network
assert abs(ratio1["lr 2e-2"] / ratio1["lr 1e-3"] - 20) < 0.5, ratio1
assert d_fast.max() > 3 * d_normal.max() and (d_fast > 0).sum() > (d_normal > 0).sum()
assert 100 < np.mean(hf["loss"][-10:]) < 1000 < np.mean(h["loss"][-10:])
assert fast["test"]["acc"] < 0.25 and normal["test"]["acc"] > 0.5, (fast["test"], normal["test"])
assert zero_frac_4[-1] > 0.99 and zero_frac_4[0] < 0.6, (zero_frac_4[0], zero_frac_4[-1])

# Section 5: Adam's step is lr, whatever the gradient's scale
for s, move in toy_moves.items():
    assert np.allclose(np.abs(move), 3 * LR, rtol=1e-3), (s, move)
assert np.allclose(np.abs(step1[moved1]), LR, rtol=1e-3) and moved1.sum() >= 0.9 * step1.size
assert abs(steps_over_lr[0] - 1) < 1e-3 and steps_over_lr.max() < 0.1 / np.sqrt(1 - 0.999)
assert 0.5 < np.median(steps_over_lr) <= 1.01 and steps_over_lr.max() > 1.0
for name in WEIGHTS:
    r1 = float(normal["rec"].history[name]["update_ratio"][0])
    assert 0.5 * LR / weight_rms[name] < r1 <= 1.001 * LR / weight_rms[name], (name, r1)
    assert 2e-4 < ratio_med[name] < 5e-4, (name, ratio_med[name])
assert 20 < grey_step / LR < 35, grey_step
assert np.abs(w1 - w0).max() < 2 * grey_step and 6 < 255 * grey_step < 8

# Section 6: He and Glorot fix it
for label in ("He", "Glorot"):
    run = RUNS[label]
    assert run["history"].batch["loss"][0] < 3, label
    assert run["test"]["acc"] > 0.9 and run["test"]["acc"] > normal["test"]["acc"] + 0.1, label
    assert (np.median(run["rec"].history["0.weight"]["update_ratio"])
            > 2 * np.median(normal["rec"].history["0.weight"]["update_ratio"])), label
    assert picture_change(run).max() >= 3 * d_normal.max(), label
assert np.array_equal(grey_levels(he["w0"]), grey_levels(glorot["w0"]))   # same picture, other scale
assert picture_change(glorot).max() > 20 and 8 <= picture_change(he).max() <= 16
assert abs(np.sqrt(np.mean(he["w0"] ** 2)) - 0.28) < 0.02 and abs(np.sqrt(np.mean(glorot["w0"] ** 2)) - 0.05) < 0.01
assert set(tiny_normal) == set(WEIGHTS)
assert report_normal.by_cause("vanishing_gradient") == []
assert report_he.by_cause("tiny_update") == [] and report_he.by_cause("vanishing_gradient") == []
# Exercises
assert abs(sgd_step_max - LR * sgd_grad_max) <= 1e-6 * sgd_step_max + 1e-6 and sgd_step_max > 50 * LR
assert 0.5 * LR / small_rms < small_ratio1 <= 1.001 * LR / small_rms and small_ratio1 > 0.05
print("Lesson 2: all claims hold.")
