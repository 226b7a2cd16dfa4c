# Source of lessons/07_reading_the_report.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 7: Reading the diagnose report on your own network
#
# The earlier lessons each took one article's puzzle apart. This one turns the tools on a network
# you might have written yourself, with **two planted mistakes** that are not the articles':
#
# * the first layer's bias starts at −1 ("to make the units sparse"), and
# * the optimizer was built from a list of parameters, and the output layer was added to the
#   model later but never to that list.
#
# You will read every part of `tn.diagnose.explain`'s printed report (root cause, "because of",
# permanent, the evidence, the fix, what "since" means), check each claim against the model
# yourself, trace one step with `tn.diagnose.trace_step`, look at the figures, and run the
# `tinynet explain` command line.

# %%
# %matplotlib inline
import subprocess
import sys
import tempfile

import numpy as np

import tinynet as tn
from tinynet import nn, optim, init, plot
import tinynet.nn.functional as F
from tinynet.data import digits, DataLoader

x_train, y_train = digits(3000, flatten=True)                  # (3000, 784) in [0, 1]
STEPS, BATCH = 60, 64

# %% [markdown]
# ## 1. The student's network

# %%
tn.manual_seed(0)
model = nn.Sequential(
    nn.Dense(784, 64, bias_init=init.constant(-1.0)), nn.ReLU(),      # mistake 1: bias -1
    nn.Dense(64, 32), nn.ReLU(),
    nn.Dense(32, 10),
)
trained = list(model[0].parameters()) + list(model[2].parameters())  # mistake 2: no model[4]
opt = optim.Adam(trained, lr=1e-3)
initial = {name: p.numpy().copy() for name, p in model.named_parameters()}
model

# %% [markdown]
# ## 2. The report
#
# `explain` trains the model **in place** for `steps` optimizer steps while a `Recorder` watches
# every parameter and layer, then attributes every entry that never changed to a cause.

# %%
loader = DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)
report = tn.diagnose.explain(model, loader, loss_fn=F.softmax_cross_entropy, optimizer=opt,
                             steps=STEPS)
print(report)

# %% [markdown]
# ## 3. Every term of the report
#
# The report is a printed view of `report.findings`, a list of `Finding` objects. Each numbered
# item is one finding; here are their fields, which is what code (and this lesson's checks)
# should read rather than the wording:

# %%
print(f"{'param':9s} {'cause':17s} {'entries':>8s} {'total':>7s} {'permanent':>9s} {'root':>9s} {'since':>5s}  indices")
for f in report.findings:
    idx = "" if f.indices is None else f"{len(f.indices)} {f.index_kind}(s)"
    print(f"{f.param:9s} {f.cause:17s} {f.entries:8,} {f.total:7,} {str(f.permanent):>9s} "
          f"{str(f.root):>9s} {f.since:5d}  {idx}")

# %% [markdown]
# * **param** names the parameter as `model.named_parameters()` does: `0.weight` is the weight
#   of layer 0 (the first Dense).
# * **cause** is one of a fixed set, `tn.diagnose.CAUSES` (one small module each in
#   `tinynet/diagnose/causes/`). Entries that never changed at all: `frozen_by_user`,
#   `not_in_optimizer`, `graph_cut`, `no_gradient`, `zero_lr`, `zero_weights`, `zero_input`,
#   `dead_unit`, `blocked_downstream`, `below_resolution` (the update rounded away); entries that
#   change, but in lock step: `symmetry`; entries that change by very little: `tiny_update`,
#   `vanishing_gradient`.
# * **entries of total**: how many entries of the parameter the cause explains. `indices` says
#   which input features or units, and `mask` marks the entries themselves.
# * **ROOT CAUSES** are findings with `root=None`: something is wrong right there. A finding whose
#   `root` names another parameter is a *consequence*, printed under its root as **"Because of
#   0.weight"**: the rows of `2.weight` that belong to the dead units of layer 0 get an input of
#   exactly 0, so they cannot learn either, but fixing layer 0 fixes them.
# * **Permanent** means proven: further training with this data cannot change those entries. A
#   dead unit in the first layer is permanent when it stayed off on every sample of the data set
#   (its input is the data itself, and its weights get no gradient); when `explain` saw only part
#   of the data it says "not proven permanent" and how many samples it saw. In a deeper layer a
#   dead unit is "not necessarily permanent", because the layers before it may still change its
#   input (lesson 3).
# * **since**: 0 means the entries never changed from the first step. A unit that worked for a
#   while and then died gets `since = s`: it changed before step s and never from s on (lesson 6
#   shows such units).
# * **evidence** holds the measured numbers behind the sentence (samples seen, the largest
#   pre-activation of a dead unit, ...), and **fix** the one-sentence remedy.
# * **FROZEN WITHOUT A STRUCTURAL CAUSE** (if present) lists entries that never changed although
#   no single cause forces it: their input and their unit's gradient were simply never nonzero on
#   the same sample in the steps recorded. It is a count, not a diagnosis.
# * The `zero_input` finding on `0.weight` is lesson 1's border pixels: not a mistake.
#
# ## 4. Checking the report against the model
#
# A report is only worth reading if it is right. We check the two planted mistakes without
# trusting `explain`:
#
# * **Dead units** of layer 0: a unit whose pre-activation, with the *initial* weights, is
#   $\le 0$ on every training image gets no gradient at the first step, so its weights stay the
#   initial ones, so it stays dead. We compute that set with numpy.
# * **Not in the optimizer**: the parameters missing from `trained`.

# %%
z0 = x_train @ initial["0.weight"] + initial["0.bias"]            # (3000, 64), initial weights
dead_from_start = np.flatnonzero(z0.max(axis=0) <= 0)
dead_finding = next(f for f in report.findings if f.cause == "dead_unit" and f.param == "0.bias")
print(f"numpy: {len(dead_from_start)} of 64 units of layer 0 are <= 0 on all {len(x_train):,} images")
print("explain's dead units of layer 0 are the same units:",
      np.array_equal(np.sort(dead_finding.indices), dead_from_start))
print("their weights and biases are still the initial ones:",
      np.array_equal(model[0].weight.numpy()[:, dead_from_start], initial["0.weight"][:, dead_from_start]))

in_opt = {id(p) for p in trained}
missing = sorted(name for name, p in model.named_parameters() if id(p) not in in_opt)
reported_missing = sorted(f.param for f in report.by_cause("not_in_optimizer"))
print("not given to the optimizer:", missing, "  reported:", reported_missing)

# %% [markdown]
# ## 5. One step, traced
#
# `tn.diagnose.trace_step(model, x, y)` runs one forward and backward pass on one batch and keeps
# every node of the graph: the values going forward, the gradient coming back, and where that
# gradient is exactly 0 and why. It trains nothing.

# %%
step = tn.diagnose.trace_step(model, x_train[:BATCH], y_train[:BATCH])
step.draw()

# %%
for name, pz in step.zero_params.items():
    print(f"{name:9s}: {pz.zero} of {pz.total} gradient entries exactly 0 -> {pz.reasons}")

# %% [markdown]
# On this batch the output layer does get a gradient; it is the optimizer that never applies it,
# which is why `trace_step` (one gradient) and `explain` (what changed over training) answer
# different questions. For layer 0 the trace shows the dead units (no gradient at the unit) and
# the black pixels (zero input) on this one batch.
#
# ## 6. The figures
#
# The frozen map draws layer 0's weight as one row per pixel (28×28) next to the always-zero
# pixels; the update ratios show how fast each parameter moved relative to its size.

# %%
plot.frozen_map(report)

# %%
plot.update_ratios(report.recorder)

# %% [markdown]
# In the update-ratio figure the two output-layer parameters have no curve, only a row of crosses
# labelled "exactly 0 at every step": the optimizer never touched them. The frozen map shows
# rows (pixels) only, so the dead units, which are *columns* of `0.weight`, do not appear in it;
# the report and `indices` are where to find them.
#
# ## 7. The command line
#
# `tinynet explain CASE` runs one of the four article cases end to end, prints the same kind of
# report, and writes the figures to a folder. (`python -m tinynet.cli` runs it from a checkout
# where tinynet is not installed.)

# %%
cli = subprocess.run([sys.executable, "-c", "from tinynet.cli import main; main()", "explain",
                      "zero-pixels", "--steps", "20", "--samples", "2000", "--no-progress",
                      "--out", tempfile.mkdtemp(prefix="tinynet_explain_")],
                     capture_output=True, text=True, timeout=600)
print(cli.stdout[:1800])
print("exit status:", cli.returncode)

# %% [markdown]
# ## Summary
#
# * Read the ROOT CAUSES first; everything under "Because of" goes away with its root.
# * `permanent` is a proof over the whole data set (otherwise the report says what it saw), `since` says when entries stopped, `evidence`
#   holds the numbers and `fix` the remedy.
# * Read findings in code through their fields (`param`, `cause`, `entries`, `total`,
#   `permanent`, `root`, `since`, `indices`), not through the printed sentences.
# * `trace_step` explains one gradient; `explain` explains a training run.
#
# ## Exercises
#
# 1. Fix both mistakes (zero bias, `model.parameters()` in the optimizer), rerun `explain` and list
#    the root causes that are left.
# 2. Plant a third mistake of your own: make the **hidden** layer's weight `model[2].weight`
#    zero. Predict the root cause and the consequences before running `explain`.
#
# The solutions are collapsed below; click a cell to open it.

# %% [solution]
# Solution 1: only the border pixels remain (zero_input on 0.weight), which are not a mistake.
tn.manual_seed(0)
fixed = nn.Sequential(nn.Dense(784, 64), nn.ReLU(), nn.Dense(64, 32), nn.ReLU(), nn.Dense(32, 10))
fixed_report = tn.diagnose.explain(fixed, DataLoader(x_train, y_train, batch_size=BATCH,
                                                     shuffle=True, seed=0),
                                   loss_fn=F.softmax_cross_entropy,
                                   optimizer=optim.Adam(fixed.parameters(), lr=1e-3), steps=STEPS)
fixed_roots = sorted({(f.cause, f.param) for f in fixed_report.findings if f.root is None})
print("root causes after the fix:", fixed_roots)

# %% [solution]
# Solution 2: a zero hidden weight. Its layer's pre-activation is its bias, 0, on every
# image; relu'(0) = 0 stops all gradient there. Root: zero_weights on 2.weight; consequences:
# everything before it (layer 0) gets no gradient, the output layer's weight gets zero input.
tn.manual_seed(0)
planted = nn.Sequential(nn.Dense(784, 64), nn.ReLU(), nn.Dense(64, 32, kernel_init=init.zeros),
                        nn.ReLU(), nn.Dense(32, 10))
planted_report = tn.diagnose.explain(planted, DataLoader(x_train, y_train, batch_size=BATCH,
                                                         shuffle=True, seed=0),
                                     loss_fn=F.softmax_cross_entropy,
                                     optimizer=optim.Adam(planted.parameters(), lr=1e-3), steps=20)
for f in planted_report.findings:
    print(f"{f.cause:18s} {f.param:9s} {f.entries:>7,} of {f.total:>7,}  root={f.root}")

# %% [check]
causes = {(f.cause, f.param) for f in report.findings if f.root is None}
# Mistake 1: layer 0's dead units, exactly the units numpy finds dead from the initial weights.
assert 0 < len(dead_from_start) < 64
assert ("dead_unit", "0.bias") in causes and ("dead_unit", "0.weight") in causes
assert np.array_equal(np.sort(dead_finding.indices), dead_from_start)
assert dead_finding.entries == len(dead_from_start) and dead_finding.total == 64
assert dead_finding.permanent and dead_finding.since == 0
assert np.array_equal(model[0].weight.numpy()[:, dead_from_start], initial["0.weight"][:, dead_from_start])
# ...and its consequence: the rows of 2.weight fed by the dead units, "because of" 0.weight.
conseq = [f for f in report.findings if f.param == "2.weight" and f.root == "0.weight"]
assert conseq and set(conseq[0].indices) == set(dead_from_start)
# Mistake 2: exactly the output layer's parameters were not given to the optimizer; permanent.
assert missing == reported_missing == ["4.bias", "4.weight"]
assert all(f.permanent and f.entries == f.total for f in report.by_cause("not_in_optimizer"))
assert np.array_equal(model[4].weight.numpy(), initial["4.weight"])
# The trace of one step: layer 0's dead units get no gradient; the output layer does get one.
assert step.zero_params["0.bias"].zero >= len(dead_from_start)
assert "4.weight" not in step.zero_params or step.zero_params["4.weight"].zero < 320
# The command line ran and printed a report.
assert cli.returncode == 0 and "0.weight" in cli.stdout
# Exercises
assert {c for c, _ in fixed_roots} <= {"zero_input", "dead_unit"} and ("zero_input", "0.weight") in fixed_roots
assert not any(c == "not_in_optimizer" for c, _ in fixed_roots)
assert any(f.cause == "zero_weights" and f.param == "2.weight" and f.root is None
           for f in planted_report.findings)
print("Lesson 7: all claims hold.")
