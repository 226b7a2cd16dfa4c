# Source of lessons/00_autograd_by_hand.ipynb -- edit here, then run
#     python scripts/build_lessons.py
# (tests/test_lesson_sources.py fails while the notebook is stale).

# %% [markdown]
# # Lesson 0: Autograd by hand
#
# Every later lesson asks the same question: *why is this gradient exactly zero?* To answer it
# you have to know precisely where a gradient comes from. In this lesson you compute the
# gradients yourself, first for a tiny expression of three numbers and then for a 2-2-1 network,
# and check that tinynet gets the very same numbers.
#
# You will see:
#
# 1. **Forward values and local derivatives.** Each operation knows only its own small derivative.
# 2. **The chain rule, multiplied out.** Multiply the local derivatives along every path from the
#    loss back to a weight, then **add** the paths.
# 3. **Checks.** `loss.backward()` must equal your hand computation, and `tn.gradcheck` must agree
#    with finite differences.
# 4. **Where exact zeros come from.** One negative pre-activation, through `relu'(z) = 0`, cuts off
#    every weight of its unit. There is also the special case `z = 0` exactly.
# 5. **The gradient-flow graph** of one step, drawn by `tn.diagnose`.

# %%
# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

import tinynet as tn
from tinynet import nn, plot
import tinynet.nn.functional as F

tn.manual_seed(0)
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## 1. Three numbers and a fork
#
# Take two numbers $a = 2$, $b = -3$ and the loss
#
# $$L = (a\,b + a)^2 .$$
#
# Give every intermediate result a name, which is exactly what an autograd engine does when it
# records the graph:
#
# | node | forward | local derivatives |
# |---|---|---|
# | $u = a\,b$ | $-6$ | $\partial u/\partial a = b = -3$, $\partial u/\partial b = a = 2$ |
# | $v = u + a$ | $-4$ | $\partial v/\partial u = 1$, $\partial v/\partial a = 1$ |
# | $L = v^2$ | $16$ | $\partial L/\partial v = 2v = -8$ |
#
# Note that $a$ is used **twice**: once inside $u$ and once directly in $v$. The chain rule says to
# follow every path from $L$ back to $a$, multiply the local derivatives along each path, and add
# the paths:
#
# $$\frac{\partial L}{\partial a} = \underbrace{\frac{\partial L}{\partial v}\frac{\partial v}{\partial u}\frac{\partial u}{\partial a}}_{\text{through } u}
#   + \underbrace{\frac{\partial L}{\partial v}\frac{\partial v}{\partial a}}_{\text{direct}}
#   = (-8)(1)(-3) + (-8)(1) = 24 - 8 = 16,
# \qquad
# \frac{\partial L}{\partial b} = \frac{\partial L}{\partial v}\frac{\partial v}{\partial u}\frac{\partial u}{\partial b} = (-8)(1)(2) = -16 .$$
#
# Here is the same computation in plain Python, one line per step:

# %%
a_val, b_val = 2.0, -3.0

# forward
u_val = a_val * b_val          # -6
v_val = u_val + a_val          # -4
L_val = v_val ** 2             # 16

# backward: start from dL/dL = 1 and multiply by each local derivative
dL_dv = 2 * v_val                          # -8
dL_du = dL_dv * 1.0                        # -8
dL_da = dL_du * b_val + dL_dv * 1.0        # two paths into a: 24 + (-8)
dL_db = dL_du * a_val                      # -16

print(f"forward:  u = {u_val}, v = {v_val}, L = {L_val}")
print(f"by hand:  dL/da = {dL_da}, dL/db = {dL_db}")

# %% [markdown]
# Now let tinynet do it. `requires_grad=True` asks tinynet to record the graph. We use float64
# here so that a comparison can be exact. `backward()` walks the graph from the loss to the
# leaves, and at each node it multiplies the gradient that has arrived by that node's local
# derivative.

# %%
a = tn.tensor(a_val, requires_grad=True, dtype="float64")
b = tn.tensor(b_val, requires_grad=True, dtype="float64")
L = (a * b + a) ** 2
L.backward()
print(f"backward: dL/da = {a.grad.item()}, dL/db = {b.grad.item()}")

# %% [markdown]
# `tn.gradcheck` checks `backward()` without trusting anybody's algebra. It nudges every input by
# $\pm\varepsilon$ and compares $\big(L(x+\varepsilon) - L(x-\varepsilon)\big) / 2\varepsilon$
# with the analytic gradient. It returns `True`, or raises an error that names the element that
# disagrees.

# %%
tn.gradcheck(lambda a, b: (a * b + a) ** 2, [a, b])

# %% [markdown]
# `tn.diagnose.trace_loss` records the same backward pass node by node and draws it. Read the
# arrows from right to left: each one carries the gradient that flows back along it. The two
# arrows that end at `a` carry **24** (through the multiplication) and **−8** (directly from
# the addition). Their sum is the 16 stored in `a.grad`.

# %%
a = tn.tensor(a_val, requires_grad=True, dtype="float64")
b = tn.tensor(b_val, requires_grad=True, dtype="float64")
scalar_trace = tn.diagnose.trace_loss((a * b + a) ** 2, names={"a": a, "b": b})
scalar_trace.draw()

# %% [markdown]
# ## 2. A 2-2-1 network, by hand
#
# Next comes a real (if tiny) network: two inputs, a hidden layer of two ReLU units, one linear
# output, and a squared error against the target $t$:
#
# $$z = x W_1 + b_1,\qquad h = \mathrm{relu}(z),\qquad \hat y = h W_2 + b_2,\qquad L = (\hat y - t)^2 .$$
#
# tinynet keeps Keras's weight layout: $W_1$ has shape (inputs, units), so **row $i$ belongs to
# input $i$ and column $j$ to hidden unit $j$**. We pick round numbers so that you can follow
# along on paper:

# %%
x  = np.array([[1.0, 2.0]])                 # one sample, 2 features       (N=1, 2)
t  = np.array([[1.0]])                      # its target                   (1, 1)
W1 = np.array([[0.5, -1.0],                 # row 0: weights leaving x[0]  (2, 2)
               [0.25, 0.5]])                # row 1: weights leaving x[1]
b1 = np.array([0.0, -0.5])                  #                              (2,)
W2 = np.array([[1.5],                       # from hidden unit 0           (2, 1)
               [-2.0]])                     # from hidden unit 1
b2 = np.array([0.25])                       #                              (1,)

# forward
z = x @ W1 + b1          # pre-activations
h = np.maximum(z, 0)     # ReLU
y_hat = h @ W2 + b2
loss = ((y_hat - t) ** 2).sum()
print("z     =", z, "  <- unit 1 is negative")
print("h     =", h)
print("y_hat =", y_hat, "  loss =", loss)

# %% [markdown]
# Going backward, each line is one local derivative multiplied onto the gradient that has
# arrived so far. The Dense layer $y = xW + b$ has three local rules: $dW = x^\top g$,
# $db = \sum_n g$ and $dx = g W^\top$. ReLU multiplies by its mask $\mathrm{relu}'(z) = 1$ where
# $z > 0$ and $0$ elsewhere.

# %%
g_yhat = 2 * (y_hat - t)          # dL/dy_hat                          (1, 1)
g_W2 = h.T @ g_yhat               # dW = x^T g  (the "x" of layer 2 is h) (2, 1)
g_b2 = g_yhat.sum(axis=0)         # db = sum over samples                 (1,)
g_h = g_yhat @ W2.T               # dx = g W^T                            (1, 2)
relu_mask = (z > 0).astype(float) # relu'(z): 1 where z > 0, else 0
g_z = g_h * relu_mask             # through the ReLU                      (1, 2)
g_W1 = x.T @ g_z                  #                                       (2, 2)
g_b1 = g_z.sum(axis=0)            #                                       (2,)

hand = {"W1": g_W1, "b1": g_b1, "W2": g_W2, "b2": g_b2}
print("dL/dy_hat =", g_yhat.ravel(), "  dL/dh =", g_h.ravel(), "  relu' =", relu_mask.ravel())
for name, g in hand.items():
    print(f"dL/d{name} =\n{g}")

# %% [markdown]
# Now the same network in tinynet, written with the function forms `F.dense` and `F.relu`. All
# four gradients come out of a single `backward()`, and they match the hand computation to the
# last bit:

# %%
def as_param(a):
    return tn.tensor(a, requires_grad=True, dtype="float64")

params = {"W1": as_param(W1), "b1": as_param(b1), "W2": as_param(W2), "b2": as_param(b2)}
x_t, t_t = tn.tensor(x, dtype="float64"), tn.tensor(t, dtype="float64")

def net_loss(W1, b1, W2, b2):
    h = F.relu(F.dense(x_t, W1, b1))
    return ((F.dense(h, W2, b2) - t_t) ** 2).sum()

net_loss(**params).backward()
max_diff = max(float(np.abs(params[k].grad.numpy() - hand[k]).max()) for k in hand)
print("largest |backward - hand| over all four gradients:", max_diff)
print("gradcheck:", tn.gradcheck(net_loss, [params[k] for k in ("W1", "b1", "W2", "b2")]))

# %% [markdown]
# ## 3. Where the zeros come from
#
# Four of the nine gradient entries are **exactly** zero, not just small. Hidden unit 1 has
# pre-activation $z_1 = -0.5 < 0$, and that single fact zeroes its gradients in two different ways:
#
# * **Its incoming weights** $W_1[:,1]$ and $b_1[1]$ sit *before* the ReLU. The gradient reaching
#   them is multiplied by $\mathrm{relu}'(z_1) = 0$, so nothing gets through. We say the unit is
#   *dead* on this sample.
# * **Its outgoing weight** $W_2[1]$ sits *after* the ReLU. Its gradient is
#   $dW_2 = h^\top g$, and its input $h_1 = 0$. This is the *zero input* cause: a weight whose input
#   is zero cannot tell whether changing it would help.
#
# The gradient arriving at $h_1$ itself is $-3$, far from zero. The loss *would* change if $h_1$
# changed. The ReLU simply reports that nudging $z_1$ does not change $h_1$ while $z_1 < 0$.
#
# The picture below is the network with every weight's gradient written on its edge. Red dashed
# edges are exactly zero.

# %%
plot.network_gradients(z, h, hand, "Gradient of every weight (red dashed: exactly 0)\n"
                       "hidden unit h₁ has z < 0, so relu'(z) = 0 cuts it off")

# %% [markdown]
# A slice through the loss shows the same thing geometrically. On the left we move the bias of
# the **live** unit 0 and keep everything else fixed: the loss is a parabola, and the tangent at
# the current value has slope 2.25, which is exactly `dL/db1[0]`. On the right we move the bias
# of the **dead** unit 1: around the current value the loss is perfectly flat, so the slope
# (the gradient) is 0. It only starts to change once $b_1[1] > 0$, where $z_1$ crosses zero and
# the unit turns on.

# %%
def loss_np(W1_, b1_, W2_, b2_):
    h_ = np.maximum(x @ W1_ + b1_, 0)
    return float(((h_ @ W2_ + b2_ - t) ** 2).sum())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, unit in zip(axes, (0, 1)):
    values = np.linspace(b1[unit] - 1.5, b1[unit] + 1.5, 301)
    losses = [loss_np(W1, np.where(np.arange(2) == unit, v, b1), W2, b2) for v in values]
    slope = g_b1[unit]
    ax.plot(values, losses, color="#4a6fa5", lw=2, label="loss along this bias")
    near = np.abs(values - b1[unit]) < 0.6
    ax.plot(values[near], loss + slope * (values[near] - b1[unit]), "--", color="#c0392b",
            lw=1.5, label=f"tangent, slope = dL/db1[{unit}] = {slope:g}")
    ax.plot([b1[unit]], [loss], "o", color="#c0392b")
    ax.set_xlabel(f"b1[{unit}]")
    ax.set_title(["live unit 0: slope 2.25", "dead unit 1: flat, gradient exactly 0"][unit])
    ax.legend(fontsize=8, loc="upper left")
axes[0].set_ylabel("loss L")
fig.tight_layout()

# %% [markdown]
# ### Dead on *this* sample is not dead forever
#
# Whether a unit passes gradient depends on the sample. With a second sample $x' = (0.5, 3)$ we
# get $z_1 = 0.5 \cdot (-1) + 3 \cdot 0.5 - 0.5 = 0.5 > 0$, so unit 1 fires for that sample. Averaged over the
# batch, its weights now get a gradient. A unit whose pre-activation is $\le 0$ on **every**
# sample is what the diagnostics call a *dead unit*, and only then is its freeze permanent
# (lesson 4).

# %%
x2_t = tn.tensor(np.array([[1.0, 2.0], [0.5, 3.0]]), dtype="float64")
t2_t = tn.tensor(np.array([[1.0], [1.0]]), dtype="float64")
p2 = {k: as_param(v) for k, v in (("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2))}
h2 = F.relu(F.dense(x2_t, p2["W1"], p2["b1"]))
((F.dense(h2, p2["W2"], p2["b2"]) - t2_t) ** 2).mean().backward()
print("z on the batch:\n", (x2_t.numpy() @ W1 + b1))
print("dL/dW1 with two samples:\n", p2["W1"].grad.numpy(), "  <- column 1 is alive again")

# %% [markdown]
# ## 4. The gradient-flow graph of the step
#
# In a real model you do not draw edges by hand. `tn.diagnose.trace_step(model, x, y, loss_fn)`
# runs one forward and backward pass, keeps the gradient arriving at every node and tells the
# story. Here is the same 2-2-1 network built from layers. `kernel_init` also accepts an array,
# so it gets exactly our weights.
#
# In the graph each box is a whole tensor, so the picture shows a parameter whose gradient is
# *partly* zero in orange ("50% exactly 0"). The printout below it names the cause for each one:
# **dead_unit** for the first layer's column 1 and bias 1, and **zero_input** for row 1 of the
# second layer's weight (the same words `tn.diagnose.explain` uses).

# %%
model = nn.Sequential(
    nn.Dense(2, 2, kernel_init=W1, bias_init=b1), nn.ReLU(),
    nn.Dense(2, 1, kernel_init=W2, bias_init=b2),
)
squared_error = lambda out, target: ((out - target) ** 2).mean()
step_trace = tn.diagnose.trace_step(model, x.astype(np.float32), t.astype(np.float32),
                                    loss_fn=squared_error)
step_trace.draw()

# %%
for name, pz in step_trace.zero_params.items():
    print(f"{name:9s} shape {pz.shape}: {pz.zero} of {pz.total} entries exactly 0 -> {pz.reasons}")

# %% [markdown]
# The same graph is also available as Graphviz text (`step_trace.to_dot()`), for a viewer or
# for a slide. Here are its first lines:

# %%
print("\n".join(step_trace.to_dot().splitlines()[:6]))

# %% [markdown]
# The model runs in float32, the default. Our numbers are sums of powers of two, so its
# gradients still equal the hand computation exactly. `trace_step` leaves the model as it
# found it, so an ordinary `backward()` on the model gives the same gradients:

# %%
out = model(tn.tensor(x.astype(np.float32)))
squared_error(out, tn.tensor(t.astype(np.float32))).backward()
model_grads = {"W1": model[0].weight.grad, "b1": model[0].bias.grad,
               "W2": model[2].weight.grad, "b2": model[2].bias.grad}
model_diff = max(float(np.abs(g.numpy() - hand[k]).max()) for k, g in model_grads.items())
print("largest |model grad - hand| (float32):", model_diff)

# %% [markdown]
# ## 5. Exactly at the kink: relu'(0) = 0
#
# ReLU has no derivative at $z = 0$, because the slope is 0 on the left and 1 on the right.
# tinynet, like PyTorch and TensorFlow, **defines** $\mathrm{relu}'(0) = 0$. Set $b_1[1] = 0$, so
# that unit 1 sits exactly on the kink ($z_1 = -1 + 1 + 0 = 0$), and look at what backward gives:

# %%
b1_kink = np.array([0.0, 0.0])
print("z =", x @ W1 + b1_kink, "  <- unit 1 exactly at 0")
kink = {k: as_param(v) for k, v in (("W1", W1), ("b1", b1_kink), ("W2", W2), ("b2", b2))}
net_loss(**kink).backward()
print("dL/db1 from backward:", kink["b1"].grad.numpy())

# %% [markdown]
# Backward says 0 again, by convention. A central difference cannot follow that convention.
# Nudging $b_1[1]$ up by $\varepsilon$ turns the unit on: $\hat y$ changes by
# $-2\varepsilon$ and $L$ by $2(\hat y - t)(-2\varepsilon) = -3\varepsilon$. Nudging it down
# changes nothing. The central difference averages the two sides:
# $(-3\varepsilon - 0) / 2\varepsilon = -1.5$. Let's compute it:

# %%
eps = 1e-6
up, down = b1_kink + [0, eps], b1_kink - [0, eps]
numeric_kink = (loss_np(W1, up, W2, b2) - loss_np(W1, down, W2, b2)) / (2 * eps)
print(f"one-sided slopes: right {(loss_np(W1, up, W2, b2) - loss) / eps:.4f}, "
      f"left {(loss - loss_np(W1, down, W2, b2)) / eps:.4f};  central difference {numeric_kink:.4f}")

# %% [markdown]
# So `gradcheck` *must* fail at a kink, and it tells you exactly where. The first entry it trips
# over is $W_1[0,1]$, which moves $z_1$ just like the bias does. (gradcheck multiplies the output
# by a fixed random weight so that one backward pass checks every output at once. That is why
# its numeric value is a scaled version of the slope.)

# %%
try:
    tn.gradcheck(net_loss, [kink[k] for k in ("W1", "b1", "W2", "b2")])
    kink_error = None
except tn.GradcheckError as err:
    kink_error = err
    print(err)

# %% [markdown]
# Two lessons follow from this:
#
# * **Run gradcheck away from kinks.** Random inputs almost never land exactly on 0, but
#   handmade round numbers (or zero-initialized weights) do.
# * **In a network the kink is not rare at all.** If a layer's kernel and bias are all zero,
#   every pre-activation after it is *exactly* 0, so the ReLU that follows blocks every gradient.
#   That is the zero-kernel freeze of lesson 4.

# %% [markdown]
# ## 6. Where local derivatives live in tinynet
#
# Every op in tinynet is a `tn.Function` that has `forward` and `backward` side by side.
# `backward(g)` receives the gradient arriving at the output and returns the gradient for each
# input: $g$ times the local derivative. Writing your own op is the best way to see this, and
# gradcheck tells you when you got the derivative wrong:

# %%
class Cube(tn.Function):
    """y = x³, elementwise.  Local derivative 3x²."""

    def forward(self, x):
        self.x = x                      # save what backward needs
        return x ** 3

    def backward(self, g):
        return (g * 3 * self.x ** 2,)   # one gradient per input


class CubeWithABug(Cube):
    def backward(self, g):
        return (g * 2 * self.x ** 2,)   # forgot the power rule's exponent


w = tn.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True, dtype="float64")
print("Cube:", tn.gradcheck(lambda w: Cube()(w), [w]))
try:
    tn.gradcheck(lambda w: CubeWithABug()(w), [w])
    cube_error = None
except tn.GradcheckError as err:
    cube_error = err
    print("CubeWithABug:", err)

# %% [markdown]
# ## Summary
#
# * Backward multiplies local derivatives along every path from the loss and **adds** paths that
#   meet (here $16 = 24 - 8$).
# * For a Dense layer, $dW = x^\top g$, $db = \sum g$ and $dx = g W^\top$. For a ReLU, multiply by
#   the mask $z > 0$.
# * One negative pre-activation zeroes the gradient of every weight *into* its unit (relu' = 0)
#   and every weight *out of* it (its output, the next layer's input, is 0).
# * At $z = 0$ exactly, backward uses relu'(0) = 0 and a finite difference sees −1.5; gradcheck
#   reports the disagreement.
#
# ## Exercises
#
# 1. Take $L = (a\,b + b)^2$ with $a = 2$, $b = -3$. Which variable is now used twice? Compute
#    $\partial L/\partial a$ and $\partial L/\partial b$ by hand, path by path, then check with
#    `backward()`.
# 2. `tn.gradcheck` the ReLU of a tensor whose entries are all away from 0 (say 0.5 and −1.5), and
#    then of a tensor with one entry exactly 0. Before you run it: which call fails, and which
#    entry will the error name?
#
# The solutions are collapsed below; click a cell to open it.

# %% [solution]
# Solution 1: v = a*b + b = -9, dL/dv = 2v = -18. b is used twice (inside a*b and directly):
#   dL/da = dL/dv * b            = -18 * -3      =  54
#   dL/db = dL/dv * (a  +  1)    = -18 * (2 + 1) = -54   (path through a*b, plus the direct path)
ex_a = tn.tensor(2.0, requires_grad=True, dtype="float64")
ex_b = tn.tensor(-3.0, requires_grad=True, dtype="float64")
((ex_a * ex_b + ex_b) ** 2).backward()
print("dL/da =", ex_a.grad.item(), "  dL/db =", ex_b.grad.item())

# %% [solution]
# Solution 2: away from 0 the ReLU is linear on both sides of every entry, so finite differences
# agree with backward. At exactly 0 the one-sided slopes are 0 and 1: the finite difference sees
# a slope between them, backward uses relu'(0) = 0, and gradcheck fails naming element (1,).
smooth = tn.tensor(np.array([0.5, -1.5]), requires_grad=True, dtype="float64")
print("away from 0:", tn.gradcheck(lambda t: F.relu(t).sum(), [smooth]))
at_kink = tn.tensor(np.array([0.5, 0.0]), requires_grad=True, dtype="float64")
try:
    tn.gradcheck(lambda t: F.relu(t).sum(), [at_kink])
    relu_kink_error = None
except tn.GradcheckError as err:
    relu_kink_error = err
    print("at 0:", err)

# %% [markdown]
# The last cell checks every number this lesson claims, so a change in tinynet that breaks one
# of them fails the lesson.

# %% [check]
# Section 1: the fork adds its two paths
assert L_val == 16.0 and dL_da == 16.0 and dL_db == -16.0
a1 = tn.tensor(a_val, requires_grad=True, dtype="float64")
b1_ = tn.tensor(b_val, requires_grad=True, dtype="float64")
((a1 * b1_ + a1) ** 2).backward()
assert a1.grad.item() == dL_da and b1_.grad.item() == dL_db
assert tn.gradcheck(lambda a, b: (a * b + a) ** 2, [a1, b1_]) is True
edge_into_a = sorted(e.grad_value for e in scalar_trace.edges
                     if scalar_trace.nodes[e.dst].name == "a")
assert edge_into_a == [-8.0, 24.0], edge_into_a

# Section 2: hand-computed gradients equal backward() and pass gradcheck
assert loss == 0.5625 and float(y_hat[0, 0]) == 1.75
assert max_diff <= 1e-12, max_diff
for k in hand:
    assert np.allclose(params[k].grad.numpy(), hand[k], rtol=0, atol=1e-6), k
assert model_diff <= 1e-6, model_diff

# Section 3: exactly these entries are zero, and only these
assert np.array_equal(g_W1, [[2.25, 0.0], [4.5, 0.0]])
assert np.array_equal(g_b1, [2.25, 0.0]) and np.array_equal(g_W2, [[1.5], [0.0]])
assert float(g_h[0, 1]) == -3.0                      # the gradient *at* h1 is not zero
assert np.all(p2["W1"].grad.numpy()[:, 1] != 0) and p2["b1"].grad.numpy()[1] != 0
assert p2["W2"].grad.numpy()[1, 0] != 0                  # a second sample revives unit 1
assert set(step_trace.zero_params) == {"0.weight", "0.bias", "2.weight"}
assert step_trace.zero_params["0.weight"].dead_units == [1]
assert step_trace.zero_params["2.weight"].zero_inputs == [1]

# Section 5: relu'(0) = 0 in backward; the finite difference sees -1.5
assert kink["b1"].grad.numpy()[1] == 0.0
assert kink_error is not None and kink_error.element == (0, 1)        # first failure: W1[0, 1]
assert kink_error.analytic == 0.0 and kink_error.numeric != 0.0
assert abs(numeric_kink - (-1.5)) < 1e-4

# Section 6: gradcheck accepts the right derivative and catches the wrong one
assert cube_error is not None and cube_error.element == (0,)
# Exercises
assert ex_a.grad.item() == 54.0 and ex_b.grad.item() == -54.0
assert relu_kink_error is not None and "element (1,)" in str(relu_kink_error)
print("Lesson 0: all claims hold.")
