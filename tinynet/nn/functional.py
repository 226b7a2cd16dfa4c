"""Function forms of the layers and losses (``import tinynet.nn.functional as F``).

They are the ops themselves, re-exported under the names PyTorch users
expect; the shapes are documented where each op is defined.

    F.dense(x, weight, bias=None)                  x (N, IN), weight (IN, OUT) -> (N, OUT)
    F.conv2d(x, weight, bias=None, stride=1, padding=0)     NCHW, weight (O, C, KH, KW)
    F.max_pool2d(x, kernel_size, stride=None, padding=0)
    F.conv2d_relu_maxpool(x, weight, bias=None, stride=1, padding=0)   the three as one op
    F.relu(x), F.flatten(x, start_dim=1)
    F.dropout(x, p=0.5, training=True, mask=None)
    F.softmax(x, axis=-1), F.log_softmax(x, axis=-1)
    F.softmax_cross_entropy(logits, labels, reduction="mean")   labels: ids or one-hot
    F.nll_loss(log_probs, labels, reduction="mean")

Readable twins (plain loops over kernel positions; same results, slower;
see tinynet/ops/simple.py):

    F.conv2d_simple(x, weight, bias=None, stride=1, padding=0)
    F.max_pool2d_simple(x, kernel_size, stride=None)
    F.conv2d_relu_maxpool_simple(x, weight, bias=None, stride=1, padding=0)
    F.softmax_cross_entropy_simple(logits, labels)              mean over the batch
"""
from tinynet.nn.flatten import flatten
from tinynet.ops.conv import conv2d
from tinynet.ops.conv_relu_pool import conv2d_relu_maxpool
from tinynet.ops.dense import dense
from tinynet.ops.dropout import dropout
from tinynet.ops.elementwise import relu
from tinynet.ops.loss import nll_loss, softmax_cross_entropy
from tinynet.ops.pool import max_pool2d
from tinynet.ops.simple import (conv2d_relu_maxpool_simple, conv2d_simple, max_pool2d_simple,
                                softmax_cross_entropy_simple)
from tinynet.ops.softmax import log_softmax, softmax

__all__ = ["dense", "conv2d", "max_pool2d", "relu", "flatten", "dropout", "softmax",
           "log_softmax", "softmax_cross_entropy", "nll_loss",
           "conv2d_relu_maxpool", "conv2d_simple", "max_pool2d_simple",
           "conv2d_relu_maxpool_simple", "softmax_cross_entropy_simple"]

# PyTorch's name for the same op (labels: class ids or probability rows, as in torch).
cross_entropy = softmax_cross_entropy
__all__ += ["cross_entropy"]
