"""ReLU as a layer.  relu'(0) = 0, as in TensorFlow and PyTorch (see ops.elementwise)."""
from tinynet import _checks
from tinynet.nn.module import Module
from tinynet.ops.elementwise import relu


class ReLU(Module):
    """y = max(x, 0), elementwise; any shape."""

    def forward(self, x):
        return relu(_checks.input_tensor("ReLU()", x))
