# Source of lessons/homework/hw1_dense_softmax.ipynb: build it with python scripts/build_homework.py.
# Cells tagged "solution" hold the solution between ### BEGIN/END SOLUTION;
# each "hidden-tests" cell checks one part (nbgrader points come from tinynet.grade).

# %% [markdown]
# # Homework 1 -- Backpropagation through Dense and softmax cross-entropy
#
# Every classifier in the lessons ends the same way: a fully connected layer `y = x @ W + b`
# produces logits, and softmax cross-entropy turns them into one number, the loss.
# `loss.backward()` then walks back through both. In this homework you write those backward
# passes yourself, as tinynet `Function`s, and check them the way tinynet checks its own ops:
# against numerical derivatives with `tn.gradcheck`.
#
# | part | what you write | points |
# |---|---|---|
# | `dense_dx`, `dense_dw`, `dense_db` | `Dense.backward`: dx, dW, db | 2 + 2 + 1 |
# | `softmax_ce_forward` | `SoftmaxCrossEntropy.forward` | 2 |
# | `softmax_ce_backward` | `SoftmaxCrossEntropy.backward` | 3 |
# | | **total** | **10** |
#
# **How this homework works.** Write your code where a cell says `# YOUR CODE HERE` and
# delete the `raise NotImplementedError()` line below it; keep the names of the functions and
# classes. Cells marked *Visible checks* test your code on small examples -- run them as you go.
# When you are done, save the notebook and grade it yourself from a terminal:
#
#     python -m tinynet.grade hw1_dense_softmax.ipynb
#
# The grader runs your notebook in a fresh process (a cell that crashes or loops forever costs
# only the parts that need it) and prints, for every part, PASS or FAIL, the points, and what
# is wrong: which gradient, at which element, by how much -- and, when it can tell, whether a
# shape is transposed, a sign flipped or a factor missing. Use only tinynet's public API
# (`tn.tensor`, `tn.Function`, `tn.gradcheck`, `nn`, `optim`, `data`, `experiments`) and numpy.

# %%
import numpy as np
import tinynet as tn
import tinynet.nn.functional as F

rng = np.random.default_rng(0)

# %% [markdown]
# ## How a tinynet `Function` works
#
# A `Function` is one differentiable operation. `forward` receives plain numpy arrays and
# returns an array; it saves on `self` whatever `backward` will need. `backward(g)` receives
# `g`, the gradient of the loss with respect to the forward's output (so `g` has the output's
# shape), and returns **a tuple with one gradient per input**, each with the shape of that
# input. You call an instance with Tensors, `Square()(x)`; the engine records it in the graph
# and calls your `backward` during `loss.backward()`.
#
# Here is a complete one, `y = x²`, checked with `tn.gradcheck`. Gradcheck nudges every input
# element by ±1e-6, measures how the output moves, and compares that numerical derivative
# with what `backward` returns; it returns `True` or raises an error naming the first element
# that disagrees.

# %%
class Square(tn.Function):
    """y = x ** 2, elementwise."""

    def forward(self, x):
        self.x = x                      # saved for backward
        return x * x

    def backward(self, g):
        return (2 * self.x * g,)        # dL/dx = dL/dy * dy/dx; one gradient per input (the comma!)


x = tn.tensor(rng.standard_normal(5), requires_grad=True)
y = Square()(x)
y.backward(np.ones(5))
print("x      ", x.numpy().round(3))
print("x.grad ", x.grad.numpy().round(3), " = 2x")
print("gradcheck:", tn.gradcheck(lambda x: Square()(x), [x]))

# %% [markdown]
# ## Part 1 -- `Dense.backward` (5 points)
#
# The layer computes, for a batch of N samples,
#
# $$y = xW + b, \qquad x \in \mathbb{R}^{N\times IN},\; W \in \mathbb{R}^{IN\times OUT},\;
# b \in \mathbb{R}^{OUT},\; y \in \mathbb{R}^{N\times OUT}.$$
#
# (tinynet keeps Keras's `(IN, OUT)` layout, so row *i* of `W` holds the weights leaving input
# feature *i* -- pixel *i* of a flattened image.) Written element by element,
# $y_{nj} = \sum_i x_{ni} W_{ij} + b_j$. With $g_{nj} = \partial L/\partial y_{nj}$ and the
# chain rule:
#
# * $\partial L/\partial W_{ij} = \sum_n x_{ni}\, g_{nj}$, that is $dW = x^\top g$ -- shape (IN, OUT);
# * $\partial L/\partial x_{ni} = \sum_j g_{nj}\, W_{ij}$, that is $dx = g W^\top$ -- shape (N, IN);
# * $\partial L/\partial b_j = \sum_n g_{nj}$ -- the sum of `g` over the batch, shape (OUT,).
#
# A gradient always has the shape of the thing it is the gradient of. That alone picks
# $x^\top g$ out of all the ways to multiply `x` and `g`: it is the only one that is (IN, OUT).
#
# **The zero-pixels phenomenon falls out of $dW = x^\top g$.** Row *i* of `dW` is
# $\sum_n x_{ni}\, g_{n,:}$. If input feature *i* is 0 on every sample -- a pixel on the black
# border of every MNIST digit -- then row *i* of `dW` is exactly zero, on every step, whatever
# `g` is. No optimizer can move that row (lesson 1); homework 3 builds a detector for it.
#
# Implement `Dense.backward`. The forward is given.

# %% tags=["solution"]
class Dense(tn.Function):
    """y = x @ W + b.   x (N, IN), W (IN, OUT), b (OUT,) -> y (N, OUT)."""

    def forward(self, x, w, b):
        self.x, self.w = x, w
        return x @ w + b

    def backward(self, g):
        """g (N, OUT) -> (dx (N, IN), dW (IN, OUT), db (OUT,))."""
        ### BEGIN SOLUTION
        dx = g @ self.w.T
        dw = self.x.T @ g
        db = g.sum(axis=0)
        ### END SOLUTION
        return dx, dw, db

# %% tags=["tests"]
# Visible checks: shapes first, then gradcheck.
x = tn.tensor(rng.standard_normal((5, 4)), requires_grad=True)
w = tn.tensor(rng.standard_normal((4, 3)), requires_grad=True)
b = tn.tensor(rng.standard_normal(3), requires_grad=True)
y = Dense()(x, w, b)
y.backward(np.ones(y.shape))
assert x.grad.shape == (5, 4), f"dx should have x's shape (5, 4), got {x.grad.shape}"
assert w.grad.shape == (4, 3), f"dW should have W's shape (4, 3), got {w.grad.shape}"
assert b.grad.shape == (3,), f"db should have b's shape (3,), got {b.grad.shape}"
assert tn.gradcheck(lambda x, w, b: Dense()(x, w, b), [x, w, b])
print("Dense.backward passes gradcheck")

# %% [markdown]
# See the zero row happen: feature 2 below is 0 on all 8 samples. Whatever gradient `g`
# arrives from above, row 2 of `dW` is zero.

# %% tags=["demo"]
x = rng.standard_normal((8, 4))
x[:, 2] = 0.0                                   # a "black pixel": 0 on every sample
w = tn.tensor(rng.standard_normal((4, 3)), requires_grad=True)
b = tn.tensor(np.zeros(3), requires_grad=True)
y = Dense()(tn.tensor(x), w, b)
y.backward(rng.standard_normal(y.shape))        # any upstream gradient at all
print(w.grad.numpy().round(3))

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw1_dense_softmax", "dense_dx")
### END HIDDEN TESTS

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw1_dense_softmax", "dense_dw")
### END HIDDEN TESTS

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw1_dense_softmax", "dense_db")
### END HIDDEN TESTS

# %% [markdown]
# **Question (not auto-graded).** RMSprop and Adam divide the gradient by a running root mean
# square of past gradients, so even a tiny gradient produces a visible step. Why does that not
# rescue row 2 above? Answer in two or three sentences.

# %% [markdown]
# ### BEGIN SOLUTION
# Because the gradient of that row is not small but exactly zero, on every step. RMSprop's
# step is g / (sqrt(v) + eps) = 0 / eps = 0; Adam's first moment is an average of zeros, so
# its step is 0 as well. Rescaling cannot create a direction that is not there; only a term
# that does not come from the gradient (weight decay, say) could move the row.
# ### END SOLUTION

# %% [markdown]
# ## Part 2 -- softmax cross-entropy (5 points)
#
# For logits $z \in \mathbb{R}^{N\times C}$ and class ids $y_n$, softmax turns each row into
# probabilities $p_{nc} = e^{z_{nc}} / \sum_k e^{z_{nk}}$, and the loss is the mean negative
# log-probability of the right class:
#
# $$L = -\frac{1}{N} \sum_n \log p_{n, y_n}.$$
#
# **Forward, stably.** `np.exp(1000.0)` is `inf`. Softmax does not change when you subtract a
# constant from a row, so subtract the row maximum $m_n$ first:
# $\log p_{nc} = (z_{nc} - m_n) - \log \sum_k e^{z_{nk} - m_n}$. Every exponent is now
# $\le 0$, and the largest term of the sum is 1, so the log never sees 0.
#
# **Backward.** For one sample, $\partial(-\log p_{y})/\partial z_c = p_c - [c = y]$: the
# predicted probabilities minus the one-hot label. The loss is the *mean* over the batch, so
# every sample's gradient carries a factor $1/N$, and `backward(g)` multiplies by the
# upstream gradient `g` (a 0-d array; 1 when the loss is where `backward()` starts):
#
# $$dz = g\,\frac{p - \mathrm{onehot}(y)}{N}.$$
#
# Forget the $1/N$ and every step is N times too big -- the same as an N times larger learning
# rate; the grader will tell you "off by a factor of N".
#
# Implement `forward` (return the mean loss as a 0-d array, e.g. `np.asarray(value)`) and
# `backward` (return `(dz,)`).

# %% tags=["solution"]
class SoftmaxCrossEntropy(tn.Function):
    """loss = mean over n of -log softmax(z)[n, labels[n]].   z (N, C) -> loss, shape ()."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)             # (N,) integer class ids

    def forward(self, z):
        """z (N, C) -> the mean loss as a 0-d array; save what backward needs on self."""
        ### BEGIN SOLUTION
        n = z.shape[0]
        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.p = np.exp(log_p)
        return np.asarray(-log_p[np.arange(n), self.labels].mean())
        ### END SOLUTION

    def backward(self, g):
        """g: the gradient at the loss (0-d) -> (dz,) with dz of shape (N, C)."""
        ### BEGIN SOLUTION
        n = self.p.shape[0]
        dz = self.p.copy()
        dz[np.arange(n), self.labels] -= 1
        return (dz * g / n,)
        ### END SOLUTION

# %% tags=["tests"]
# Visible checks: the value against tinynet's own loss, large logits, gradcheck.
z = tn.tensor(rng.standard_normal((6, 4)), requires_grad=True)
labels = np.array([0, 3, 1, 1, 2, 0])
loss = SoftmaxCrossEntropy(labels)(z)
assert loss.shape == (), f"the loss should be one number (shape ()), got shape {loss.shape}"
assert np.isclose(loss.item(), F.softmax_cross_entropy(z, labels).item()), "wrong loss value"
big = SoftmaxCrossEntropy(labels)(tn.tensor(z.numpy() + 1000.0))
assert np.isfinite(big.item()), "the loss overflows for logits near 1000: subtract the row max"
assert tn.gradcheck(lambda z: SoftmaxCrossEntropy(labels)(z), [z])
print("SoftmaxCrossEntropy passes: value", round(loss.item(), 4), "and gradcheck")

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw1_dense_softmax", "softmax_ce_forward")
### END HIDDEN TESTS

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw1_dense_softmax", "softmax_ce_backward")
### END HIDDEN TESTS

# %% [markdown]
# ## Your two Functions, training
#
# With `Dense` and `SoftmaxCrossEntropy` you can train a softmax classifier on tinynet's
# embedded digits -- no other layer needed. Watch the loss fall, then count the rows of `W`
# that never moved: the border pixels, exactly as $dW = x^\top g$ predicts.
#
# `W` starts at 0 -- a constant init, which lesson 03 warns against. Here it is harmless:
# there is no hidden layer, so there are no units that could stay tied. Column $k$ of `W`
# gets the gradient $x^\top(p_{:,k} - \mathrm{onehot}_{:,k})/N$, which differs from class to
# class from the very first step, and the loss is convex in `W` and `b`, so the starting
# point does not decide where training ends up.

# %% tags=["demo"]
from tinynet.data import digits

images, targets = digits(n=500, seed=0, flatten=True)          # (500, 784) float32 in [0, 1]
W = tn.tensor(np.zeros((784, 10), np.float32), requires_grad=True)
b = tn.tensor(np.zeros(10, np.float32), requires_grad=True)
W0 = W.numpy()
xb = tn.tensor(images)
for step in range(30):
    loss = SoftmaxCrossEntropy(targets)(Dense()(xb, W, b))
    W.grad = b.grad = None
    loss.backward()
    W.data -= 0.5 * W.grad.data
    b.data -= 0.5 * b.grad.data
    if step % 10 == 0 or step == 29:
        print(f"step {step:2d}  loss {loss.item():.3f}")
acc = (Dense()(xb, W, b).numpy().argmax(axis=1) == targets).mean()
unchanged = (W.numpy() == W0).all(axis=1)
always_zero = (images == 0).all(axis=0)
print(f"train accuracy {acc:.2f}; rows of W that never changed: {unchanged.sum()} of 784; "
      f"pixels that are 0 in every image: {always_zero.sum()}; the same rows: "
      f"{(unchanged == always_zero).all()}")
