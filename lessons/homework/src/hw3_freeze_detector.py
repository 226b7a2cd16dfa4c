# Source of lessons/homework/hw3_freeze_detector.ipynb: build it with python scripts/build_homework.py.
# Cells tagged "solution" hold the solution between ### BEGIN/END SOLUTION;
# each "hidden-tests" cell checks one part (nbgrader points come from tinynet.grade).

# %% [markdown]
# # Homework 3 -- A detector for frozen weights
#
# The lessons met two ways for weights to stop learning:
#
# * **A zero input** (lesson 1, the zero pixels): the gradient of a Dense weight is
#   $dW = A^\top \Delta$, so row *i* of $dW$ is zero whenever input feature *i* is zero on every
#   sample. Those rows never move, and a picture of the first layer shows them frozen.
# * **Symmetry** (lesson 3, constant initialization): units with identical weights compute the
#   same output, receive the same gradient, take the same step -- and stay identical forever.
#   Their weights *do* change, but the layer acts as one unit.
#
# You will write a detector for each, check the first one against what training actually does,
# and apply both to the models of the lessons, built by `tinynet.experiments`.
#
# | part | what you write | points |
# |---|---|---|
# | `find_zero_input_rows` | rows of the first Dense weight that cannot change | 4 |
# | `frozen_rows_after_training` | train, then find the rows that did not move | 3 |
# | `effective_width` | how many different units a Dense layer really has | 3 |
# | | **total** | **10** |
#
# **How this homework works.** Write your code where a cell says `# YOUR CODE HERE` and
# delete the `raise NotImplementedError()` line below it; keep the names of the functions and
# classes. Cells marked *Visible checks* test your code on small examples -- run them as you go.
# When you are done, save the notebook and grade it yourself from a terminal:
#
#     python -m tinynet.grade hw3_freeze_detector.ipynb
#
# The grader runs your notebook in a fresh process (a cell that crashes or loops forever costs
# only the parts that need it) and prints, for every part, PASS or FAIL, the points, and what
# is wrong: which gradient, at which element, by how much -- and, when it can tell, whether a
# shape is transposed, a sign flipped or a factor missing. Use only tinynet's public API
# (`tn.tensor`, `tn.Function`, `tn.gradcheck`, `nn`, `optim`, `data`, `experiments`) and numpy.

# %%
import numpy as np
import matplotlib.pyplot as plt
import tinynet as tn
import tinynet.nn.functional as F
from tinynet import experiments, nn, optim
from tinynet.data import DataLoader, digits

# %% tags=["demo"]
x, y = digits(n=500, seed=0, flatten=True)      # tinynet's embedded digits: (500, 784) in [0, 1]
print(x.shape, y.shape, "pixels that are 0 in every image:", int((x == 0).all(axis=0).sum()))

# %% [markdown]
# ## Part 1 -- `find_zero_input_rows(model, data)` (4 points)
#
# Return a boolean array with one entry per row of the **first Dense layer's** weight (per input
# feature, `in_features` of them): `True` where the input that layer receives is 0 on every
# sample of `data`.
#
# Careful: "the input that layer receives" is not always the data. A `Flatten` in front of it
# only reshapes, but a `ReLU` in front of it turns negative values into zeros. Two ways to get
# the real input:
#
# * run the layers in front of it yourself, or
# * catch it with a forward hook: `handle = layer.register_forward_hook(fn)` makes the model
#   call `fn(layer, inputs, output)` after the layer runs, with `inputs` a tuple of what it was
#   called with; `handle.remove()` takes the hook away again.
#
# `model.modules()` yields the model and all its layers, in order; `isinstance(m, nn.Dense)`
# picks out the Dense ones. `data` may be a numpy array or a Tensor (`tn.tensor(data)` accepts
# both). A detector only looks: run the model under `with tn.no_grad():` and change nothing.

# %% tags=["solution"]
def find_zero_input_rows(model, data):
    """Boolean mask (IN,): rows of the first Dense weight whose input is 0 on every sample."""
    ### BEGIN SOLUTION
    dense = next(m for m in model.modules() if isinstance(m, nn.Dense))
    seen = []
    handle = dense.register_forward_hook(lambda layer, inputs, output: seen.append(inputs[0]))
    try:
        with tn.no_grad():
            model(tn.tensor(data))
    finally:
        handle.remove()
    return (seen[0].numpy() == 0).all(axis=0)
    ### END SOLUTION

# %% tags=["tests"]
# Visible checks: features 1 and 3 are always 0; a ReLU in front makes feature 0 zero as well.
data = np.array([[-1.0, 0.0, 2.0, 0.0],
                 [-2.0, 0.0, 1.0, 0.0]], dtype=np.float32)
mask = find_zero_input_rows(nn.Sequential(nn.Dense(4, 2)), data)
assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (4,), mask
assert mask.tolist() == [False, True, False, True], mask
mask = find_zero_input_rows(nn.Sequential(nn.ReLU(), nn.Dense(4, 2)), data)
assert mask.tolist() == [True, True, False, True], "look at what the Dense layer receives"
print("find_zero_input_rows passes the visible checks")

# %% [markdown]
# Apply it to lesson 1's model -- the Keras-style MLP 784→512→512→10 -- on the digits above,
# and draw the mask as a 28×28 image next to the average digit.

# %% tags=["demo"]
model = experiments.zero_pixels_mlp()
predicted = find_zero_input_rows(model, x)
print(f"{predicted.sum()} of {predicted.size} rows of the first weight can never change on these {len(x)} images")

fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(x.mean(axis=0).reshape(28, 28), cmap="gray")
axes[0].set_title("average image")
axes[1].imshow(predicted.reshape(28, 28), cmap="Reds")
axes[1].set_title("rows that cannot change")
for ax in axes:
    ax.axis("off")
plt.show()

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw3_freeze_detector", "find_zero_input_rows")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 -- `frozen_rows_after_training(model, x, y, ...)` (3 points)
#
# A detector makes a prediction; check it against what training does. Train `model` **in
# place** for `epochs` passes over all of `x` with `optim.RMSprop(model.parameters(), lr=lr)`,
# mini-batches of `batch_size` (`DataLoader(x, y, batch_size=..., shuffle=True, seed=0)`), and
# `F.softmax_cross_entropy(model(xb), yb)` as the loss. Return a boolean array: `True` for the
# rows of the first Dense layer's weight in which **no entry changed at all**.
#
# One trap: `layer.weight.data` is the live array that the optimizer updates in place. Keep a
# *copy* of the weights from before training (`layer.weight.numpy()` returns one), or you will
# compare the weights with themselves.

# %% tags=["solution"]
def frozen_rows_after_training(model, x, y, epochs=1, batch_size=50, lr=1e-3):
    """Train model in place (RMSprop); boolean mask of the first Dense layer's rows that did not change."""
    ### BEGIN SOLUTION
    dense = next(m for m in model.modules() if isinstance(m, nn.Dense))
    before = dense.weight.numpy()                          # a copy, not the live .data
    opt = optim.RMSprop(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for xb, yb in DataLoader(x, y, batch_size=batch_size, shuffle=True, seed=0):
            opt.zero_grad()
            loss = F.softmax_cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    return (dense.weight.numpy() == before).all(axis=1)
    ### END SOLUTION

# %% tags=["demo"]
# The prediction against the experiment: one epoch of RMSprop on the zero-pixels MLP.
tn.manual_seed(0)
model = experiments.zero_pixels_mlp()
predicted = find_zero_input_rows(model, x)
observed = frozen_rows_after_training(model, x, y, epochs=1)
print(f"predicted frozen rows: {predicted.sum()}, observed: {observed.sum()}, "
      f"identical masks: {bool((predicted == observed).all())}")
assert (predicted == observed).all()

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw3_freeze_detector", "frozen_rows_after_training")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 -- `effective_width(layer, next_layer=None, rtol=1e-5)` (3 points)
#
# Unit *j* of a Dense layer L is three things: its incoming column `W[:, j]`, its bias
# `b[j]`, and -- when a Dense layer M follows (through ReLU or Dropout) -- its outgoing row
# `W_M[j, :]`. Two units whose three parts agree compute the same value on every input AND
# receive the same gradient, so every optimizer moves them alike: they stay one unit forever.
# The number of *different* units is the layer's **effective width** -- the one definition
# tinynet uses everywhere (`tinynet.diagnose` and lessons 03 and 05 count it the same way).
#
# "Agree" allows for rounding: parts count as equal when every element differs by at most
# `rtol` times the largest |value| of that part in the layer (for the weights: `rtol *
# abs(W).max()`; for the biases: `rtol * abs(b).max()`; ...). A layer built with
# `bias=False` has `layer.bias is None`.
#
# Group the units greedily, in order: keep a list of representatives; a unit that agrees with
# one of them belongs to its group, otherwise it starts a new group.

# %% tags=["solution"]
def effective_width(layer, next_layer=None, rtol=1e-5):
    """Number of distinct units of Dense layer ``layer`` (U units).

    A unit is [W[:, j], b[j], W_next[j, :]] (bias and next row when they exist); two units
    are equal when each part agrees within rtol * max |part| over the layer.
    """
    ### BEGIN SOLUTION
    parts = [layer.weight.numpy().T]                           # (U, IN)
    if layer.bias is not None:
        parts.append(layer.bias.numpy()[:, None])              # (U, 1)
    if next_layer is not None:
        parts.append(next_layer.weight.numpy())                # (U, OUT)
    tols = [rtol * np.abs(p).max() for p in parts]
    representatives = []
    for j in range(parts[0].shape[0]):
        same = lambda r: all(np.abs(p[j] - p[r]).max() <= t for p, t in zip(parts, tols))
        if not any(same(r) for r in representatives):
            representatives.append(j)
    return len(representatives)
    ### END SOLUTION

# %% tags=["tests"]
# Visible checks: a constant layer has width 1; a random one has full width.
assert effective_width(nn.Dense(3, 5, kernel_init=tn.init.ones)) == 1
tn.manual_seed(0)
assert effective_width(nn.Dense(3, 5)) == 5
print("effective_width passes the visible checks")

# %% [markdown]
# Apply it to lesson 3's model: the MLP 784→256→30→10 with every weight 1, trained with SGD
# (lr 0.5). Its hidden layers have 256 and 30 units -- how many are really there, before and
# after training? And how many hidden units still output anything but 0 on the 500 images?

# %% tags=["demo"]
def widths(model):
    """Effective width of each hidden Dense layer (with the Dense layer after it)."""
    dense = [m for m in model.modules() if isinstance(m, nn.Dense)]
    return [effective_width(L, M) for L, M in zip(dense, dense[1:])]


def alive(model, x):
    """Hidden units (of each ReLU) that are > 0 on at least one sample."""
    counts, h = [], tn.tensor(x)
    with tn.no_grad():
        for layer in model:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                counts.append(int((h.numpy() > 0).any(axis=0).sum()))
    return counts


model = experiments.constant_init_mlp()
opt = optim.SGD(model.parameters(), lr=0.5)
print("before training: effective widths", widths(model), "| units alive", alive(model, x))
for epoch in range(3):
    losses = []
    for xb, yb in DataLoader(x, y, batch_size=256, shuffle=True, seed=epoch):
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(f"{loss.item():.4g}")
    print(f"epoch {epoch}: batch losses {losses}, effective widths {widths(model)}, "
          f"units alive {alive(model, x)}")

tn.manual_seed(0)
print("the same layers with a glorot init:",
      widths(nn.Sequential(nn.Dense(784, 256), nn.Dense(256, 30), nn.Dense(30, 10))))

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw3_freeze_detector", "effective_width")
### END HIDDEN TESTS

# %% [markdown]
# **What the numbers say.** Two different things happen, and the loss shows only the second.
#
# * *Symmetry.* Both hidden layers have effective width 1 before and after training: 256 + 30
#   units that act as one each. Equal units get equal gradients, so training never separates
#   them; a random (glorot) init breaks the tie from the start. A width-1 network is weak, but
#   it could still learn something -- symmetry alone does not hold the loss at ln 10.
# * *Dead units.* With lr 0.5 the all-ones network blows up within the first epoch (a batch
#   loss around 4e8), and the steps around it push every hidden pre-activation below 0: by the
#   end of that epoch no hidden unit outputs anything but 0 on any of the 500 images. From then on the output
#   is the last layer's bias alone, the same for every image, and the loss settles at
#   ln 10 ≈ 2.303 -- the loss of a guess that cannot tell the classes apart. This is what
#   lesson 03 shows: the network died after the blow-up.
