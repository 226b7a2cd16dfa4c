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
# ## Part 3 -- `effective_width(layer, atol=1e-6)` (3 points)
#
# Unit *j* of a Dense layer is column `W[:, j]` together with the bias `b[j]`: it computes
# $\mathrm{relu}(x \cdot W_{:,j} + b_j)$. Two units whose columns **and** biases agree (within
# `atol`, elementwise) compute the same thing on every input. Return the number of *different*
# units -- the layer's effective width. A layer built with `bias=False` has `layer.bias is None`.
#
# Group the units greedily: keep a list of representatives; a unit that is within `atol` of
# one of them belongs to its group, otherwise it starts a new group.

# %% tags=["solution"]
def effective_width(layer, atol=1e-6):
    """Number of distinct units of a Dense layer: columns of W (with their bias) equal within atol."""
    ### BEGIN SOLUTION
    w = layer.weight.numpy()                                   # (IN, OUT)
    units = w.T                                                # one row per unit
    if layer.bias is not None:
        units = np.concatenate([units, layer.bias.numpy()[:, None]], axis=1)
    representatives = []
    for u in units:
        if not any(np.abs(u - r).max() <= atol for r in representatives):
            representatives.append(u)
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
# after training? The loss tells the same story: it settles at ln 10 ≈ 2.303, the loss of a
# network that cannot tell the classes apart.

# %% tags=["demo"]
def widths(model):
    return [effective_width(m) for m in model.modules() if isinstance(m, nn.Dense)]

model = experiments.constant_init_mlp()
opt = optim.SGD(model.parameters(), lr=0.5)
print("before training, effective widths:", widths(model))
for epoch in range(3):
    for xb, yb in DataLoader(x, y, batch_size=256, shuffle=True, seed=epoch):
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}, effective widths {widths(model)}")

tn.manual_seed(0)
print("the same layers with a glorot init:", widths(nn.Sequential(nn.Dense(784, 256), nn.Dense(256, 30), nn.Dense(30, 10))))

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw3_freeze_detector", "effective_width")
### END HIDDEN TESTS

# %% [markdown]
# **What the numbers say.** Both hidden layers have effective width 1 before *and* after
# training: 256 + 30 units that act as two. The output layer's columns differ (each class gets
# its own gradient), but every class sees the same single hidden feature, so the network cannot
# separate them. A random (glorot) init breaks the symmetry from the first step.
