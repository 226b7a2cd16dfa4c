"""Differentiable operations, one Function subclass and one lowercase wrapper each.

The wrappers take Tensors (or numbers) and return a Tensor; the Function's
``forward`` and ``backward`` sit next to each other so the derivative can be
read beside the code it differentiates.
"""
from tinynet.ops.arithmetic import add, div, mul, neg, pow, sub
from tinynet.ops.conv import conv2d
from tinynet.ops.conv_relu_pool import conv2d_relu_maxpool
from tinynet.ops.dense import dense
from tinynet.ops.dropout import dropout
from tinynet.ops.elementwise import exp, log, relu
from tinynet.ops.loss import nll_loss, softmax_cross_entropy
from tinynet.ops.matmul import matmul
from tinynet.ops.pool import max_pool2d
from tinynet.ops.reduction import max, mean, sum
from tinynet.ops.simple import (conv2d_relu_maxpool_simple, conv2d_simple, max_pool2d_simple,
                                softmax_cross_entropy_simple)
from tinynet.ops.shape import broadcast_to, cast, concatenate, getitem, reshape, to_device, transpose
from tinynet.ops.softmax import log_softmax, softmax

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "relu", "matmul",
    "sum", "mean", "max", "reshape", "transpose", "getitem", "concatenate",
    "broadcast_to", "cast", "to_device", "log_softmax", "softmax", "dense", "conv2d",
    "max_pool2d", "conv2d_relu_maxpool", "dropout", "softmax_cross_entropy", "nll_loss",
    "conv2d_simple", "max_pool2d_simple", "conv2d_relu_maxpool_simple",
    "softmax_cross_entropy_simple",
]
