"""Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...), keeping the batch axis."""
from tinynet import _checks
from tinynet.nn.module import Module
from tinynet.ops.shape import reshape


def flatten(x, start_dim=1):
    """Merge the axes from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W) by default."""
    x = _checks.input_tensor("flatten", x)
    if not 0 <= start_dim < max(x.ndim, 1):
        raise ValueError(f"flatten: start_dim={start_dim} is out of range for an input of "
                         f"shape {x.shape}")
    return reshape(x, x.shape[:start_dim] + (-1,))


class Flatten(Module):
    """(N, ...) -> (N, features): the bridge from Conv2D/MaxPool2D (or images) to Dense."""

    def forward(self, x):
        x = _checks.input_tensor("Flatten()", x)
        if x.ndim < 2:
            raise ValueError(f"Flatten(): expected a batch of shape (N, ...), got {x.shape}; "
                             f"the first axis is the batch and is kept")
        return reshape(x, (x.shape[0], -1))
