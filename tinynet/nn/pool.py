"""MaxPool2D: the largest value of each window, NCHW.

Notation: x (N, C, H, W) -> y (N, C, OH, OW) with OH = (H + 2P - KH) // S + 1;
the stride S defaults to the kernel size (non-overlapping windows).  The
gradient goes to one maximum per window (the tie rule is the op's, see
``tinynet.ops.pool``); the other entries of a window get none.
"""
from tinynet import _checks
from tinynet.nn import _repr
from tinynet.nn.module import Module
from tinynet.ops.pool import MaxPool2D as MaxPool2DFn


class MaxPool2D(Module):
    """Max pooling over (KH, KW) windows.

    kernel_size -- an int or a pair;  stride -- defaults to kernel_size;
    padding     -- an int or a pair (padded with -inf, never the maximum)

    Attributes: kernel_size, stride, padding (pairs).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _checks.pair("MaxPool2D", "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else \
            _checks.pair("MaxPool2D", "stride", stride)
        self.padding = _checks.pair("MaxPool2D", "padding", padding, minimum=0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"MaxPool2D: padding {padding!r} is more than half the "
                             f"{self.kernel_size} window; a window would see only padding")

    def _where(self):
        return f"MaxPool2D({self.extra_repr()})"

    def forward(self, x):
        where = self._where()
        x = _checks.input_tensor(where, x)
        if x.ndim != 4:
            hint = "; add the channel axis with x.reshape(N, 1, H, W)" if x.ndim == 3 else ""
            raise ValueError(f"{where}: expected input of shape (N, C, H, W), got "
                             f"{x.shape}{hint}")
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            raise ValueError(f"{where}: the input is {x.shape[2]}x{x.shape[3]}, smaller "
                             f"than the {kh}x{kw} pooling window; remove a pooling layer or "
                             f"use a smaller window")
        _checks.float_input(where, x)
        # the op's own checks are all done above: call its Function directly
        return MaxPool2DFn(self.kernel_size, self.stride, self.padding)(x)

    def extra_repr(self):
        s = f"kernel_size={_repr.compact(self.kernel_size)}"
        if self.stride != self.kernel_size:
            s += f", stride={_repr.compact(self.stride)}"
        if self.padding != (0, 0):
            s += f", padding={_repr.compact(self.padding)}"
        return s
