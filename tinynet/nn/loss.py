"""Losses as modules, for the PyTorch habit ``criterion = nn.CrossEntropyLoss()``."""
from tinynet.nn.module import Module
from tinynet.ops.loss import REDUCTIONS, softmax_cross_entropy


class CrossEntropyLoss(Module):
    """``criterion(logits, labels)`` = ``F.softmax_cross_entropy(logits, labels, reduction)``.

    logits (N, C); labels (N,) class ids or (N, C) probability rows, as in
    PyTorch.  No parameters.  PyTorch's ``weight``, ``ignore_index`` and
    ``label_smoothing`` are not supported (a TypeError says so).
    """

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"CrossEntropyLoss: reduction must be one of {REDUCTIONS}, "
                             f"got {reduction!r}")
        self.reduction = reduction

    def forward(self, input, target):
        return softmax_cross_entropy(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
