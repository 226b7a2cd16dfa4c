"""Dropout as a layer: active in training mode, the identity in eval mode."""
import numpy as np

from tinynet import _checks
from tinynet.nn.module import Module
from tinynet.ops.dropout import check_p, dropout


class Dropout(Module):
    """Inverted dropout with drop probability p (see ``tinynet.ops.dropout``).

    ``model.eval()`` turns it off.  ``forward(x, mask=...)`` takes a fixed
    keep-mask (1 keep, 0 drop) instead of a random draw, for gradchecking.
    """

    def __init__(self, p=0.5):
        super().__init__()
        self.p = check_p("Dropout", p)

    def forward(self, x, mask=None):
        where = f"Dropout({self.extra_repr()})"
        x = _checks.input_tensor(where, x)
        _checks.float_input(where, x)
        if mask is not None and tuple(np.shape(mask)) != x.shape:
            raise ValueError(f"{where}: the mask has shape {tuple(np.shape(mask))}, expected "
                             f"the input's shape {x.shape}")
        return dropout(x, self.p, training=self.training, mask=mask)

    def extra_repr(self):
        return f"p={self.p}"
