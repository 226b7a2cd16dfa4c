# Source of lessons/homework/hw2_conv_backward.ipynb: build it with python scripts/build_homework.py.
# Cells tagged "solution" hold the solution between ### BEGIN/END SOLUTION;
# each "hidden-tests" cell checks one part (nbgrader points come from tinynet.grade).

# %% [markdown]
# # Homework 2 -- Conv2D backward with im2col and col2im
#
# Lessons 2 and 4 are about convolutional layers that "do not learn". To follow what happens
# inside one, you need its backward pass -- which you will now write. The trick every framework
# uses is **im2col**: copy every window the kernel sees into a column of a matrix, and the
# whole convolution becomes one matrix product. The backward pass is then two more matrix
# products and **col2im**, which sends the gradient of every copied window back to the pixels
# it came from.
#
# | part | what you write | points |
# |---|---|---|
# | `col2im` | `col2im`, the adjoint of `im2col` | 3 |
# | `conv_dw`, `conv_db` | `Conv2D.backward`: dW, db | 2 + 1 |
# | `conv_dx` | `Conv2D.backward`: dx | 4 |
# | | **total** | **10** |
#
# **How this homework works.** Write your code where a cell says `# YOUR CODE HERE` and
# delete the `raise NotImplementedError()` line below it; keep the names of the functions and
# classes. Cells marked *Visible checks* test your code on small examples -- run them as you go.
# When you are done, save the notebook and grade it yourself from a terminal:
#
#     python -m tinynet.grade hw2_conv_backward.ipynb
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
# ## Notation and the given im2col
#
# `x` is a batch of images in NCHW layout, `(N, C, H, W)`; the weight is `(O, C, KH, KW)` --
# O filters, each C×KH×KW; the bias `(O,)`. With stride S and P zero rows/columns of padding on
# every side, the output is `(N, O, OH, OW)` with `OH = (H + 2P - KH) // S + 1` (OW likewise).
# Like every framework, "convolution" here is cross-correlation:
#
# $$y_{n,o,i,j} = b_o + \sum_{c,\,kh,\,kw} W_{o,c,kh,kw}\; x^{pad}_{n,\,c,\,iS+kh,\,jS+kw}.$$
#
# `im2col` builds `cols` of shape `(K, L)` with `K = C·KH·KW` (one row per weight of a filter,
# ordered (c, kh, kw) like `W.reshape(O, K)`) and `L = N·OH·OW` (one column per output pixel,
# ordered (n, i, j)). Column (n, i, j) is the window output pixel (i, j) of image n sees. Then
# the forward pass is
#
# $$y_2 = W_2\, \mathrm{cols} + b, \qquad W_2 = W.\mathrm{reshape}(O, K),\; y_2 \in \mathbb{R}^{O\times L}.$$
#
# It loops over the KH·KW kernel offsets only, never over pixels: at offset (kh, kw) every output
# pixel's neighbour is one strided slice of the padded input.

# %%
def conv_output_size(H, W, KH, KW, stride=1, pad=0):
    return (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1


def im2col(x, KH, KW, stride=1, pad=0):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW).

    cols[(c, kh, kw), (n, i, j)] = xpad[n, c, i*stride + kh, j*stride + kw]
    """
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, W, KH, KW, stride, pad)
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            window = xpad[:, :, kh:kh + stride * (OH - 1) + 1:stride,
                          kw:kw + stride * (OW - 1) + 1:stride]       # (N, C, OH, OW)
            cols[:, kh, kw] = window.transpose(1, 0, 2, 3)            # (C, N, OH, OW)
    return cols.reshape(C * KH * KW, N * OH * OW)


# One column is one window: output pixel (i, j) = (1, 2) of image 0, kernel 2x2, stride 1.
x = np.arange(16.0).reshape(1, 1, 4, 4)
cols = im2col(x, 2, 2)
print(x[0, 0])
print("column of output pixel (1, 2):", cols[:, 1 * 3 + 2], "= the window", x[0, 0, 1:3, 2:4].ravel())

# %% [markdown]
# ## Part 1 -- col2im (3 points)
#
# `im2col` *copies*: a pixel lands in every column whose window contains it. The backward of a
# copy is a sum -- if a value was used in several places, its gradient is the sum of the
# gradients of all the uses. So `col2im(dcols)` must **add** each column's entries back onto the
# pixels they were copied from.
#
# * When the stride is smaller than the kernel (stride 1, kernel 3: the usual case), windows
#   **overlap**, and one pixel receives contributions from several columns. Write `+=`, not
#   `=`: assigning keeps one window's contribution and silently drops the others -- gradcheck
#   then fails exactly at the pixels that several windows share.
# * Padding: accumulate into a padded buffer `(N, C, H + 2P, W + 2P)` and crop the border at
#   the end; the padding zeros are constants and need no gradient.
#
# The loop structure of `im2col` works here too: at offset (kh, kw), the rows (c, kh, kw) of
# `cols` belong to the strided slice `[kh : kh + S(OH-1) + 1 : S, kw : ... : S]` of the padded
# buffer, and within one offset no two output pixels share a pixel, so a slice `+=` is exact.
#
# A good test of `col2im` is the *adjoint identity*: for any `x` and `c` of the right shapes,
# `(im2col(x) * c).sum() == (x * col2im(c)).sum()` -- that is what "col2im is the backward
# of im2col" means.

# %% tags=["solution"]
def col2im(cols, x_shape, KH, KW, stride=1, pad=0):
    """The adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx of shape x_shape = (N, C, H, W)."""
    N, C, H, W = x_shape
    OH, OW = conv_output_size(H, W, KH, KW, stride, pad)
    ### BEGIN SOLUTION
    cols = cols.reshape(C, KH, KW, N, OH, OW)
    dxpad = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            dxpad[:, :, kh:kh + stride * (OH - 1) + 1:stride,
                  kw:kw + stride * (OW - 1) + 1:stride] += cols[:, kh, kw].transpose(1, 0, 2, 3)
    return dxpad[:, :, pad:pad + H, pad:pad + W]
    ### END SOLUTION

# %% tags=["tests"]
# Visible checks: the adjoint identity with overlapping windows, and with stride 2 + padding.
for x_shape, K, S, P in [((2, 3, 5, 5), 3, 1, 0), ((1, 2, 7, 7), 3, 2, 1)]:
    x = rng.standard_normal(x_shape)
    c = rng.standard_normal(im2col(x, K, K, S, P).shape)
    dx = col2im(c, x_shape, K, K, S, P)
    assert dx.shape == x_shape, f"col2im should return shape {x_shape}, got {dx.shape}"
    assert np.isclose((im2col(x, K, K, S, P) * c).sum(), (x * dx).sum()), \
        f"col2im is not the adjoint of im2col (kernel {K}, stride {S}, padding {P})"
print("col2im is the adjoint of im2col")

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw2_conv_backward", "col2im")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 -- Conv2D backward (7 points)
#
# The forward is a matrix product plus a bias, so the backward is the Dense layer's, in the
# im2col layout. Let `g` be the gradient at the output, `(N, O, OH, OW)`, and `g2` the same
# numbers as an `(O, L)` matrix with columns ordered (n, i, j) like `cols`:
# `g2 = g.transpose(1, 0, 2, 3).reshape(O, -1)`. Then
#
# * $dW_2 = g_2\, \mathrm{cols}^\top$ -- `(O, K)`, reshaped to W's shape `(O, C, KH, KW)`;
# * $db = $ `g2` summed over its columns -- every output pixel of filter o used $b_o$;
# * $d\mathrm{cols} = W_2^\top g_2$ -- `(K, L)`, and then `dx = col2im(dcols, ...)`.
#
# Look at $dW_2 = g_2 \mathrm{cols}^\top$: a weight's gradient sums its input window times the
# output gradient -- the convolutional twin of $dW = x^\top g$. A channel that is zero
# everywhere (a zero kernel upstream, lesson 4) gives zero rows of `cols`, so the weights that
# read it get no gradient. And $d\mathrm{cols} = W_2^\top g_2$: with a zero kernel, nothing at
# all flows further back.

# %% tags=["solution"]
class Conv2D(tn.Function):
    """y = conv2d(x, W) + b.  x (N, C, H, W), W (O, C, KH, KW), b (O,) -> y (N, O, OH, OW)."""

    def __init__(self, stride=1, pad=0):
        self.stride, self.pad = stride, pad

    def forward(self, x, w, b):
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = conv_output_size(H, W, KH, KW, self.stride, self.pad)
        self.x_shape, self.w = x.shape, w
        self.cols = im2col(x, KH, KW, self.stride, self.pad)      # (K, L)
        y2 = w.reshape(O, -1) @ self.cols + b[:, None]             # (O, L)
        return y2.reshape(O, N, OH, OW).transpose(1, 0, 2, 3)     # (N, O, OH, OW)

    def backward(self, g):
        """g (N, O, OH, OW) -> (dx (N, C, H, W), dW (O, C, KH, KW), db (O,))."""
        O, C, KH, KW = self.w.shape
        ### BEGIN SOLUTION
        g2 = g.transpose(1, 0, 2, 3).reshape(O, -1)               # (O, L), columns (n, i, j)
        dw = (g2 @ self.cols.T).reshape(self.w.shape)
        db = g2.sum(axis=1)
        dcols = self.w.reshape(O, -1).T @ g2                       # (K, L)
        dx = col2im(dcols, self.x_shape, KH, KW, self.stride, self.pad)
        ### END SOLUTION
        return dx, dw, db

# %% tags=["tests"]
# Visible checks: the forward agrees with tinynet's conv2d; gradcheck with stride 2 and padding 1.
x = tn.tensor(rng.standard_normal((2, 3, 7, 7)), requires_grad=True)
w = tn.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
b = tn.tensor(rng.standard_normal(4), requires_grad=True)
y = Conv2D(stride=2, pad=1)(x, w, b)
assert np.allclose(y.numpy(), F.conv2d(x, w, b, stride=2, padding=1).numpy())
y.backward(np.ones(y.shape))
assert (x.grad.shape, w.grad.shape, b.grad.shape) == (x.shape, w.shape, b.shape), \
    "every gradient must have the shape of its input"
assert tn.gradcheck(lambda x, w, b: Conv2D(stride=2, pad=1)(x, w, b), [x, w, b])
print("Conv2D.backward passes gradcheck")

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw2_conv_backward", "conv_dw")
### END HIDDEN TESTS

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw2_conv_backward", "conv_db")
### END HIDDEN TESTS

# %% tags=["hidden-tests"]
### BEGIN HIDDEN TESTS
from tinynet.grade import check

earned = check(globals(), "hw2_conv_backward", "conv_dx")
### END HIDDEN TESTS

# %% [markdown]
# ## Your Conv2D and the zero kernel
#
# Lesson 4's network has a convolution whose kernel and bias start at zero, followed by a ReLU.
# With your backward you can see the whole story in one step: the zero conv outputs 0, ReLU'(0)
# = 0 blocks the gradient at its output, so its own dW and db are zero -- and since W = 0,
# dx = col2im(Wᵀ g2) is zero too: the layers in front of it get nothing either.

# %% tags=["demo"]
h = tn.tensor(np.abs(rng.standard_normal((2, 4, 6, 6))), requires_grad=True)   # ReLU output upstream
w0 = tn.tensor(np.zeros((4, 4, 3, 3)), requires_grad=True)
b0 = tn.tensor(np.zeros(4), requires_grad=True)
out = Conv2D(stride=1, pad=1)(h, w0, b0).relu()
(out * tn.tensor(rng.standard_normal(out.shape))).sum().backward()
for name, t in [("dW", w0), ("db", b0), ("dx", h)]:
    print(f"{name}: largest |value| = {np.abs(t.grad.numpy()).max()}")
