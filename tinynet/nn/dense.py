"""Dense: the fully connected layer, y = x @ W + b.

Notation: N samples, IN = in_features, OUT = out_features.
x (N, IN) -> y (N, OUT); weight (IN, OUT); bias (OUT,).

The weight keeps Keras's (IN, OUT) layout, not PyTorch's (OUT, IN): row i
of ``weight`` holds the weights leaving input feature i, so for a first
layer on flattened 28x28 images ``weight[i]`` belongs to pixel i and
``weight[:, j].reshape(28, 28)`` is the picture unit j looks for.
Defaults follow Keras too: a glorot_uniform kernel and a zero bias.
"""
import numpy as np

from tinynet import init
from tinynet import _checks
from tinynet.nn import _repr
from tinynet.nn.module import Module
from tinynet.nn.parameter import Parameter
from tinynet.ops.dense import Dense as DenseFn


class Dense(Module):
    """Fully connected layer: y = x @ weight + bias.

    in_features, out_features -- IN and OUT
    kernel_init  -- initializer of the (IN, OUT) weight (default glorot_uniform,
                    fans IN and OUT), or an array of that shape
    bias_init    -- initializer of the (OUT,) bias (default zeros), or an array
    bias         -- False for a layer without bias (``self.bias`` is None)

    Attributes: in_features, out_features, weight, bias, kernel_init, bias_init.
    """

    def __init__(self, in_features, out_features, kernel_init=init.glorot_uniform,
                 bias_init=init.zeros, bias=True):
        super().__init__()
        self.in_features = _checks.positive_int("Dense", "in_features", in_features)
        self.out_features = _checks.positive_int("Dense", "out_features", out_features)
        where = self._where()
        self.kernel_init = init.resolve(kernel_init, f"{where}: kernel_init")
        self.bias_init = init.resolve(bias_init, f"{where}: bias_init") if bias else None
        shape = (self.in_features, self.out_features)
        self.weight = Parameter(init.make_array(
            self.kernel_init, shape, np.float32, fan_in=self.in_features,
            fan_out=self.out_features, what=f"{where}.weight (kernel_init)"))
        # As in Keras, the bias initializer sees only the bias shape (its fans are OUT).
        self.bias = Parameter(init.make_array(
            self.bias_init, (self.out_features,), np.float32,
            what=f"{where}.bias (bias_init)")) if bias else None

    def _where(self):
        return f"Dense({self.in_features} -> {self.out_features})"

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, fuse_relu=False, observe=None):
        """y = x @ W + b; with ``fuse_relu`` relu(x @ W + b) as one graph node (used
        by Sequential where nothing -- or only ``observe`` -- watches in between)."""
        where = self._where()
        x = _checks.input_tensor(where, x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(self._shape_message(x.shape))
        _checks.match_weights(where, x, self.weight)
        fn = DenseFn(fuse_relu, observe)
        if self.bias is None:
            return fn(x, self.weight)
        return fn(x, self.weight, self.bias)

    def _shape_message(self, shape):
        n_in = self.in_features
        msg = f"{self._where()}: expected input of shape (N, {n_in}), got {shape}"
        features = int(np.prod(shape[1:])) if len(shape) > 1 else None
        if len(shape) > 2 and features == n_in:
            return msg + "; flatten images first with nn.Flatten()"
        if len(shape) > 2:
            return (msg + f"; flattening it (nn.Flatten()) would give {features} features, "
                    f"but this layer takes {n_in}: set in_features={features}")
        if len(shape) == 2:
            return (msg + f"; the data (or the previous layer) gives {shape[1]} features: "
                    f"set in_features={shape[1]} or fix the previous layer")
        if len(shape) == 1 and shape[0] == n_in:
            return msg + "; for a single sample use x.reshape(1, -1)"
        return msg

    def extra_repr(self):
        return _repr.layer_repr(f"{self.in_features} -> {self.out_features}", self)

