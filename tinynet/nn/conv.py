"""Conv2D: 2-D convolution (cross-correlation, as in every framework), NCHW.

Notation: N samples, C = in_channels, O = out_channels, H, W the input
height and width, KH, KW the kernel size, S the stride, P the padding,
OH = (H + 2P - KH) // S + 1 and OW likewise.

    x (N, C, H, W)  weight (O, C, KH, KW)  bias (O,)  ->  y (N, O, OH, OW)

padding="valid" is P = 0; padding="same" pads so that OH = ceil(H / S)
(with S = 1, the output has the input's size).  Defaults follow Keras: a
glorot_uniform kernel with fan_in = C*KH*KW and fan_out = O*KH*KW, and a
zero bias.  The computation is ``tinynet.ops.conv.conv2d``.
"""
import numpy as np

from tinynet import init
from tinynet import _checks
from tinynet.nn import _repr
from tinynet.nn.module import Module
from tinynet.nn.parameter import Parameter
from tinynet.ops.conv import Conv2D as Conv2DFn


class Conv2D(Module):
    """2-D convolution layer on NCHW input.

    in_channels, out_channels -- C and O
    kernel_size, stride       -- an int or a pair (height, width)
    padding                   -- an int, a pair, "same" or "valid"
    kernel_init, bias_init    -- as for Dense (defaults glorot_uniform and zeros)
    bias                      -- False for a layer without bias

    Attributes: in_channels, out_channels, kernel_size, stride (pairs),
    padding (a pair or "same"/"valid"), weight (O, C, KH, KW), bias (O,),
    kernel_init, bias_init.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 kernel_init=init.glorot_uniform, bias_init=init.zeros, bias=True):
        super().__init__()
        self.in_channels = _checks.positive_int("Conv2D", "in_channels", in_channels)
        self.out_channels = _checks.positive_int("Conv2D", "out_channels", out_channels)
        where = f"Conv2D({self.in_channels} -> {self.out_channels})"
        self.kernel_size = _checks.pair(where, "kernel_size", kernel_size)
        self.stride = _checks.pair(where, "stride", stride)
        self.padding = _checks.padding_arg(where, padding)
        where = self._where()
        self.kernel_init = init.resolve(kernel_init, f"{where}: kernel_init")
        self.bias_init = init.resolve(bias_init, f"{where}: bias_init") if bias else None
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels, kh, kw)
        fan_in, fan_out = init.compute_fans(shape, "conv")
        self.weight = Parameter(init.make_array(
            self.kernel_init, shape, np.float32, fan_in=fan_in, fan_out=fan_out,
            what=f"{where}.weight (kernel_init)"))
        self.bias = Parameter(init.make_array(
            self.bias_init, (self.out_channels,), np.float32,
            what=f"{where}.bias (bias_init)")) if bias else None

    def _where(self):
        return f"Conv2D({self._config()})"

    def _config(self):
        s = (f"{self.in_channels} -> {self.out_channels}, "
             f"kernel_size={_repr.compact(self.kernel_size)}")
        if self.stride != (1, 1):
            s += f", stride={_repr.compact(self.stride)}"
        if self.padding != (0, 0):
            s += f", padding={_repr.compact(self.padding)!r}"
        return s

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, fuse_relu=False, observe=None):
        """y = conv2d(x); with ``fuse_relu`` relu(conv2d(x)) as one graph node
        (used by Sequential where nothing observes the pre-activation, or where
        what observes it takes the fused op's per-channel reports: ``observe``)."""
        operands, pad = self._operands(x)
        return Conv2DFn(self.stride, pad, fuse_relu, observe)(*operands)

    def _forward_relu_pool(self, x, observe=None):
        """maxpool2d(relu(conv2d(x)), 2) as one op (nn.Sequential, CPU), or None when
        the pair does not fit it (an odd output size, not a numpy array) -- then the
        caller runs the layers one by one."""
        from tinynet.ops.conv_relu_pool import Conv2DReLUPool, fusable_shape
        operands, pad = self._operands(x)
        x = operands[0]
        if type(x.data) is not np.ndarray or \
                not fusable_shape(x.shape, self.weight.shape, self.stride, pad):
            return None
        return Conv2DReLUPool(self.stride, pad, observe)(*operands)

    def _operands(self, x):
        """(operands, padding) after every check conv2d would make, with this layer's
        hints -- the op's Function is then called directly, so none runs twice."""
        where = self._where()
        x = _checks.input_tensor(where, x)
        self._check_shape(where, x.shape)
        _checks.match_weights(where, x, self.weight)
        KH, KW = self.kernel_size
        pad = _checks.conv_padding(where, self.padding, x.shape[2], x.shape[3], KH, KW,
                                   self.stride)
        operands = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        return operands, pad

    def _check_shape(self, where, shape):
        c = self.in_channels
        msg = f"{where}: expected input of shape (N, {c}, H, W), got {shape}"
        if len(shape) != 4:
            if len(shape) == 2:
                side = int(round(np.sqrt(shape[1] / c)))
                if side * side * c == shape[1]:
                    msg += (f"; these look like flattened images: reshape them with "
                            f"x.reshape(-1, {c}, {side}, {side})")
            elif len(shape) == 3 and c == 1:
                msg += "; add the channel axis with x.reshape(N, 1, H, W)"
            elif len(shape) == 3:
                msg += "; for a single image add the batch axis with x.reshape(1, C, H, W)"
            raise ValueError(msg)
        if shape[1] != c:
            if shape[3] == c:
                msg += ("; it looks channels-last (N, H, W, C): tinynet uses channels-first, "
                        "convert with x.transpose(0, 3, 1, 2)")
            else:
                msg += (f"; the data (or the previous layer) has {shape[1]} channels: set "
                        f"in_channels={shape[1]}")
            raise ValueError(msg)
        if self.padding != "same":
            ph, pw = (0, 0) if self.padding == "valid" else self.padding
            kh, kw = self.kernel_size
            if shape[2] + 2 * ph < kh or shape[3] + 2 * pw < kw:
                raise ValueError(
                    f"{where}: the input is {shape[2]}x{shape[3]} (padding {ph}, {pw}), "
                    f"smaller than the {kh}x{kw} kernel; use a smaller kernel, padding, or "
                    f"fewer pooling layers before this one")

    def extra_repr(self):
        return _repr.layer_repr(self._config(), self)
