# Source of lessons/06_dying_units_and_high_lr.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 6: Units that die, and learning rates that are too high
#
# Lessons 1 to 5 met parameters that never moved because of how the network **started**: black
# pixels, equal weights, zero kernels, a badly scaled initialization. This lesson is about
# networks that start well and break **during** training, because each step is too large.
#
# 1. **ReLU units die gradually.** A unit whose pre-activation is negative on every image outputs
#    0 and gets no gradient, so nothing can revive it. With too high a learning rate, one large
#    step after another pushes units into that state. We count the dead units over training.
# 2. **A negative bias** kills units before training starts.
# 3. **Divergence**: with too large a step the loss grows geometrically until it is no longer a
#    finite number. We compute the learning rate at which that starts, and see how tinynet
#    reports it.
# 4. **What fixes each**: a lower learning rate, a zero (or small positive) bias, He
#    initialization; and what `tn.diagnose.explain` says about a network that lost its units.
#
# A single training run at a high learning rate is chaotic (lesson 3): the seed, or even the
# number of BLAS threads, changes how many units die. So every comparison here is over three
# seeds.

# %%
# %matplotlib inline
import os

import numpy as np

import tinynet as tn
from tinynet import nn, optim, init, plot
import tinynet.nn.functional as F
from tinynet.data import digits, mnist, DataLoader, DatasetError
from tinynet.train import fit, evaluate

x_train, y_train = digits(6000, flatten=True)                 # (6000, 784) in [0, 1]
x_test, y_test = digits(1000, flatten=True, split="test")
x_probe = tn.tensor(x_train[:1000])                            # where we look for dead units
STEPS, BATCH, SEEDS = 300, 64, (0, 1, 2)
print(x_train.shape, x_test.shape)

# %% [markdown]
# ## 1. Counting dead units during training
#
# The network is a 784 → 128 → 64 → 10 MLP with ReLU, He-initialized, zero biases, trained with
# plain SGD on batches of 64. A unit is **dead** (on our 1,000 probe images) when its output is 0
# on every one of them. `DeadCount` is a small `fit` callback that counts the dead units of both
# hidden layers every 10 steps.

# %%
def mlp(kernel_init=init.he_normal, bias_init=init.zeros):
    """784 -> 128 -> 64 -> 10 with ReLU."""
    return nn.Sequential(nn.Dense(784, 128, kernel_init=kernel_init, bias_init=bias_init), nn.ReLU(),
                         nn.Dense(128, 64, kernel_init=kernel_init, bias_init=bias_init), nn.ReLU(),
                         nn.Dense(64, 10, kernel_init=kernel_init))


def dead_units(model, probe=x_probe):
    """Hidden units of both layers whose output is 0 on every probe image."""
    with tn.no_grad():
        h1 = model[1](model[0](probe))
        h2 = model[3](model[2](h1))
    return int((h1.numpy().max(axis=0) <= 0).sum() + (h2.numpy().max(axis=0) <= 0).sum())


class DeadCount:
    """fit callback: dead_units(model) at step 0 and every `every` steps."""

    def __init__(self, model, probe=x_probe, every=10):
        self.model, self.probe, self.every = model, probe, every
        self.steps, self.dead = [0], [dead_units(model, probe)]

    def on_batch_end(self, state):
        if state.step % self.every == 0:
            self.steps.append(state.step)
            self.dead.append(dead_units(self.model, self.probe))


EMBEDDED = (x_train, y_train, x_test, y_test, x_probe)


def run(lr, seed, bias_init=init.zeros, kernel_init=init.he_normal, record=False, data=EMBEDDED):
    """SGD for STEPS steps; a Recorder watches only when record=True (it costs time)."""
    x_tr, y_tr, x_te, y_te, probe = data
    tn.manual_seed(seed)
    model = mlp(kernel_init, bias_init)
    opt = optim.SGD(model.parameters(), lr=lr)
    dead = DeadCount(model, probe)
    rec = tn.diagnose.Recorder(model, opt, every=10) if record else None
    fit(model, F.softmax_cross_entropy, opt,
        DataLoader(x_tr, y_tr, batch_size=BATCH, shuffle=True, seed=seed),
        epochs=4, max_steps=STEPS, callbacks=[dead] + ([rec] if rec else []), progress=False)
    return {"model": model, "dead": dead, "rec": rec, "opt": opt,
            "acc": evaluate(model, F.softmax_cross_entropy, (x_te, y_te))["acc"]}


LRS = (0.1, 0.6, 1.0)
runs = {lr: [run(lr, seed, record=(lr == 1.0 and seed == SEEDS[0])) for seed in SEEDS]
        for lr in LRS}
print(f"{'':8s} dead units of 192 (start -> end), and test accuracy, for seeds {SEEDS}")
for lr, rs in runs.items():
    print(f"lr {lr:<4}  " + "   ".join(f"{r['dead'].dead[0]:3d} -> {r['dead'].dead[-1]:3d}, acc {r['acc']:.3f}"
                                     for r in rs))

# %%
plot.dead_units_over_steps({f"lr {lr}, seed {SEEDS[0]}": (rs[0]["dead"].steps, rs[0]["dead"].dead)
                            for lr, rs in runs.items()},
                           title="hidden units (of 192) that are 0 on all 1,000 probe images")

# %% [markdown]
# At lr 0.1 almost every unit stays alive and the network learns. At lr 0.6 units die one
# after another, and at lr 1.0 the count climbs through the first hundred steps until a large
# part of the network is dead and the accuracy is far below lr 0.1's. Nobody switched the units
# off: each SGD step moved a unit's weights and bias by lr × gradient, and once a step left the
# pre-activation negative on every image, the unit got no gradient ever again
# ($\mathrm{relu}'(z) = 0$ for $z < 0$, lesson 0).
#
# Does a dead unit stay dead? Its incoming weights and bias get exactly zero gradient, so under
# SGD they cannot change. (Its input could still change, if the layer below moved; in the first
# hidden layer the input is the image, so a unit dead on every image is dead for good.) We
# check that on the lr 1.0 run of seed 0: the units of layer 1 that are dead now, on all 6,000
# training images, have weights that did not move over the last 50 steps.

# %%
bad = runs[1.0][0]
with tn.no_grad():
    z1_all = bad["model"][0](tn.tensor(x_train)).numpy()
dead_now = z1_all.max(axis=0) <= 0                               # dead on every training image
snapshot = bad["model"][0].weight.numpy().copy()
fit(bad["model"], F.softmax_cross_entropy, bad["opt"],
    DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=99), max_steps=50,
    progress=False)
moved_cols = (bad["model"][0].weight.numpy() != snapshot).any(axis=0)
print(f"layer 1: {int(dead_now.sum())} of 128 units dead on all {len(x_train):,} training images")
print(f"of those, units whose weights moved in 50 more steps: {int((moved_cols & dead_now).sum())}")
print(f"live units whose weights moved: {int((moved_cols & ~dead_now).sum())} of {int((~dead_now).sum())}")

# %% [markdown]
# ## 2. What `explain` says about it
#
# The Recorder watched the lr 1.0 run (`every=10`). `tn.diagnose.explain(model, recorder=rec,
# steps=0)` analyses what it recorded. A unit that stopped in the middle of training is a
# `dead_unit` finding with `since` set: the first step of the window in which it stopped.

# %%
bad_report = tn.diagnose.explain(runs[1.0][0]["model"], recorder=runs[1.0][0]["rec"], steps=0)
for f in bad_report.findings:
    if f.cause == "dead_unit" and f.root is None:
        print(f"dead_unit {f.param:9s} {f.entries:>6,} of {f.total:>6,} entries   since step {f.since}"
              f"   permanent={f.permanent}")
dead_findings = [f for f in bad_report.findings if f.cause == "dead_unit" and f.root is None]

# %% [markdown]
# `permanent=False` is honest: the Recorder saw only the training batches, not every image,
# so it cannot prove that no input would ever revive the unit. We did prove it above for layer 1,
# on every training image.
#
# ## 3. A negative bias kills units before the first step
#
# A unit with bias $b$ fires only when $x \cdot w > -b$. With He weights, $x\cdot w$ on our
# digits is of order 1, so a bias of −0.5 switches many units off on every image from the
# start. Those of the first layer never get a gradient again; those of the second can come back
# when the layer below them changes, so the count can fall:

# %%
neg = [run(0.1, seed, bias_init=init.constant(-0.5)) for seed in SEEDS]
pos = [run(0.1, seed, bias_init=init.constant(0.01)) for seed in SEEDS]
for name, rs in (("bias -0.5", neg), ("bias 0 ", runs[0.1]), ("bias 0.01", pos)):
    print(f"{name}: dead at step 0: {[r['dead'].dead[0] for r in rs]},  at the end: "
          f"{[r['dead'].dead[-1] for r in rs]},  test acc {[round(r['acc'], 3) for r in rs]}")

# %% [markdown]
# The negative bias starts with dozens of dead units and ends less accurate (on every seed); zero
# or a small positive bias starts with (almost) none. That is why Dense and Conv2D default to zero biases.
#
# ## 4. Divergence: when the step overshoots
#
# Dying is what too large a step does to ReLU units. The other failure is **divergence**: each
# step overshoots the minimum by more than it corrects, and the loss grows geometrically. It is
# easiest to see where it can be computed exactly: a linear layer (no ReLU), squared error,
# full-batch gradient descent on 512 images. The loss is
# $L(W) = \frac{1}{10N}\lVert XW - Y\rVert^2$, a quadratic, whose curvature along its steepest
# direction is $\lambda_\max = \frac{2}{10N}\,\sigma_\max(X)^2$. Gradient descent shrinks the
# error along that direction by $|1 - \mathrm{lr}\,\lambda_\max|$ per step, so it converges
# exactly when $\mathrm{lr} < 2/\lambda_\max$.

# %%
x_fb, y_fb = x_train[:512], np.eye(10, dtype=np.float32)[y_train[:512]]
lam_max = 2 / (10 * len(x_fb)) * float(np.linalg.norm(x_fb.astype(np.float64), 2)) ** 2
LR_CRIT = 2 / lam_max
print(f"lambda_max = {lam_max:.4f}   ->   largest stable learning rate 2 / lambda_max = {LR_CRIT:.4f}")


def squared_error(out, target):
    return ((out - target) ** 2).mean()


class KeepLosses:
    """fit callback: the loss of every step (fit's history is lost when fit raises)."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, state):
        self.losses.append(state.loss)


def full_batch(lr, steps=60):
    """Full-batch GD on the linear model; (losses, the error tinynet raised or None)."""
    tn.manual_seed(0)
    model = nn.Dense(784, 10)
    loader = [(x_fb, y_fb)] * steps                       # the same full batch, `steps` times
    keep_losses = KeepLosses()
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            fit(model, squared_error, optim.SGD(model.parameters(), lr=lr), loader,
                callbacks=[keep_losses], progress=False)
        return keep_losses.losses, None
    except FloatingPointError as err:
        return keep_losses.losses, err


curves, errors = {}, {}
for factor in (0.9, 1.1, 2.0):
    curves[factor], errors[factor] = full_batch(factor * LR_CRIT)
    print(f"lr = {factor} x 2/lambda_max: {len(curves[factor])} steps, last loss "
          f"{curves[factor][-1]:.3g}" + ("" if errors[factor] is None else "  -> stopped"))
plot.step_losses({f"lr = {f} × 2/λmax": curves[f] + ([np.nan] if errors[f] else []) for f in curves},
                 title="Full-batch gradient descent on a quadratic: below 2/λmax it converges")

# %% [markdown]
# Just below $2/\lambda_\max$ the loss falls; just above, the steepest direction overshoots more
# at every step and the loss grows geometrically, slowly; at twice the limit it
# grows by about $(2\cdot 2 - 1)^2 = 9$ per step until it overflows float32. tinynet does not
# let a non-finite loss through silently. `fit` stops **before** applying that step's update
# and raises a `FloatingPointError` that says where it happened and what to try:

# %%
print(errors[2.0])

# %% [markdown]
# In a ReLU network the same overshoot usually shows up first as dying units (section 1), since a
# large step sends pre-activations far below zero; in a deep, badly scaled network (lesson 5's
# std-1 initialization) it shows up as a loss that is infinite after two steps.
#
# ## 5. What fixes each
#
# | symptom | measure | fix |
# |---|---|---|
# | dead units rise during training | dead-unit count over steps; `explain`: `dead_unit` with `since` | lower the learning rate |
# | dead units from step 0 | dead count at step 0; `explain`: `dead_unit` without `since` | zero or small positive bias; He initialization |
# | loss grows, then `FloatingPointError` | the step losses; the error message | lower the learning rate (below $2/\lambda_\max$ where you can compute it) |
#
# tinynet has no gradient clipping; exercise 2 builds it by hand. He initialization matters here
# because it keeps the pre-activations of a ReLU layer at a constant scale (lesson 5): with
# weights much larger, the same learning rate produces larger steps in $z$.
#
# ## 6. Real MNIST
#
# With the real MNIST test split (`TINYNET_MNIST_DIR`), we repeat section 1 for seed 0, training
# on its first 6,000 images and testing on the next 1,000.

# %%
mnist_runs = None
if os.environ.get("TINYNET_MNIST_DIR"):
    try:
        x_m, y_m = mnist("test", root=os.environ["TINYNET_MNIST_DIR"], download=False, flatten=True)
        real = (x_m[:6000], y_m[:6000], x_m[6000:7000], y_m[6000:7000], tn.tensor(x_m[:1000]))
        mnist_runs = {lr: run(lr, 0, data=real) for lr in (0.1, 1.0)}
        for lr, r in mnist_runs.items():
            print(f"real MNIST, lr {lr}: dead units {r['dead'].dead[0]} -> {r['dead'].dead[-1]}, "
                  f"test acc {r['acc']:.3f}")
    except DatasetError as err:
        print("MNIST not usable here:", str(err).splitlines()[0])
else:
    print("TINYNET_MNIST_DIR is not set: skipping real MNIST.")

# %% [markdown]
# ## Summary
#
# * A ReLU unit that is negative on every input is dead: no gradient reaches its weights, so it
#   stays dead. Too high a learning rate kills units step by step; count them over training.
# * A negative bias kills units before training starts; zero biases are the safe default.
# * Gradient descent diverges when the step overshoots: on a quadratic, exactly when
#   lr > 2/λmax. tinynet stops at the first non-finite loss, without applying that step, and
#   says where.
# * Compare learning rates over several seeds: a single high-lr run is chaotic.
#
# ## Exercises
#
# 1. For learning rates 0.4 and 0.8, count the dead units after 300 steps for seeds 0, 1 and 2.
#    Is "how many units die at lr 0.8" a property of the learning rate?
# 2. tinynet has no gradient clipping. Write it: before `opt.step()`, scale every gradient by
#    `min(1, c / ‖g‖)` where ‖g‖ is the norm over all parameters. Train the lr 1.0 network with
#    c = 1 and count the dead units.
#
# The solutions are collapsed below; click a cell to open it.

# %% [solution]
# Solution 1: the dead count after 300 steps for each learning rate and seed.
sweep = {lr: [run(lr, seed)["dead"].dead[-1] for seed in SEEDS] for lr in (0.4, 0.8)}
for lr, counts in sweep.items():
    print(f"lr {lr}: dead units after {STEPS} steps for seeds {SEEDS}: {counts}")
# The seeds disagree: the count is a property of one run, not of the learning rate alone.
# What is stable is the trend over several seeds (more units die at a higher rate).

# %% [solution]
# Solution 2: clipping by the global gradient norm, in a hand-written loop.
def clipped_run(lr, seed, c=1.0):
    tn.manual_seed(seed)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=seed)
    step = 0
    while step < STEPS:
        for xb, yb in loader:
            opt.zero_grad()
            F.softmax_cross_entropy(model(xb), yb).backward()
            norm = np.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in model.parameters()))
            scale = min(1.0, c / max(norm, 1e-12))
            for p in model.parameters():
                p.grad.data[...] *= scale                  # shrink the step, keep its direction
            opt.step()
            step += 1
            if step == STEPS:
                break
    return dead_units(model), evaluate(model, F.softmax_cross_entropy, (x_test, y_test))["acc"]


clipped = [clipped_run(1.0, seed) for seed in SEEDS]
print("lr 1.0 with clipping at 1: (dead units, test acc) per seed:", clipped)
print("lr 1.0 without clipping:   (dead units, test acc) per seed:",
      [(r["dead"].dead[-1], round(r["acc"], 3)) for r in runs[1.0]])

# %% [check]
ends = {lr: np.array([r["dead"].dead[-1] for r in rs]) for lr, rs in runs.items()}
accs = {lr: np.array([r["acc"] for r in rs]) for lr, rs in runs.items()}
# 1. Too high a learning rate kills units gradually; a moderate one does not (every seed).
assert ends[0.1].max() < 15 and accs[0.1].min() > 0.9, (ends[0.1], accs[0.1])
assert ends[1.0].min() > 3 * ends[0.1].max() and accs[1.0].mean() < 0.5, (ends, accs)
assert ends[0.6].mean() > ends[0.1].mean()
for r in runs[1.0]:
    d = r["dead"].dead
    assert d[-1] > d[0] + 20 and d[1] < d[-1], d              # it grows over training
# A unit dead on every training image stays frozen; live units keep moving.
assert dead_now.sum() > 0 and not (moved_cols & dead_now).any() and (moved_cols & ~dead_now).any()
# 2. explain names the dead units and when they stopped.
assert dead_findings and all(f.cause == "dead_unit" for f in dead_findings)
assert any(f.since is not None and f.since > 1 for f in dead_findings), [(f.param, f.since) for f in dead_findings]
# 3. A negative bias: many units dead from step 0; zero or 0.01: (almost) none.
assert min(r["dead"].dead[0] for r in neg) > 20
assert max(r["dead"].dead[0] for r in runs[0.1] + pos) <= 3
assert max(r["acc"] for r in neg) < accs[0.1].min()
# 4. Divergence exactly above 2/lambda_max; tinynet stops with a FloatingPointError.
assert errors[0.9] is None and curves[0.9][-1] < curves[0.9][0]
assert curves[1.1][-1] > 1e3 * curves[1.1][0]
assert errors[2.0] is not None and "fit:" in str(errors[2.0]) and "step" in str(errors[2.0])
growth = np.array(curves[2.0][20:30]) / np.array(curves[2.0][19:29])
assert np.all(np.abs(growth / 9 - 1) < 0.1), growth             # (2*2 - 1)^2 per step
if mnist_runs is not None:
    assert mnist_runs[1.0]["dead"].dead[-1] > mnist_runs[0.1]["dead"].dead[-1]
# Exercises
assert np.mean(sweep[0.8]) > np.mean(sweep[0.4])
assert np.mean([d for d, _ in clipped]) < ends[1.0].mean()
print("Lesson 6: all claims hold.")
