"""Layers and models: ``from tinynet import nn``.

    model = nn.Sequential(
        nn.Flatten(),
        nn.Dense(784, 512), nn.ReLU(),
        nn.Dense(512, 10),
    )

Module, Parameter, Sequential and the layers Dense, Conv2D, ReLU,
MaxPool2D, Flatten, Dropout; ``nn.functional`` holds the function forms.
"""
from tinynet.nn import functional
from tinynet.nn.activation import ReLU
from tinynet.nn.containers import Sequential
from tinynet.nn.conv import Conv2D
from tinynet.nn.dense import Dense
from tinynet.nn.dropout import Dropout
from tinynet.nn.flatten import Flatten
from tinynet.nn.module import Module
from tinynet.nn.parameter import Parameter
from tinynet.nn.pool import MaxPool2D

__all__ = ["Module", "Parameter", "Sequential", "Dense", "Conv2D", "ReLU", "MaxPool2D",
           "Flatten", "Dropout", "functional"]

# PyTorch's name for the softmax cross-entropy as a module (criterion = nn.CrossEntropyLoss()).
from tinynet.nn.loss import CrossEntropyLoss  # noqa: E402

__all__ += ["CrossEntropyLoss"]
