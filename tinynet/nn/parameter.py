"""Parameter: a Tensor that a Module registers as something to train."""
import numbers

import numpy as np

from tinynet import backend
from tinynet.tensor import Tensor


class Parameter(Tensor):
    """A float leaf Tensor with ``requires_grad=True`` that Modules collect.

    Assigning one to a Module attribute (``self.weight = Parameter(...)``)
    registers it, so it appears in ``parameters()``, ``named_parameters()``
    and ``state_dict()``.  ``data`` may be a numpy or cupy array (used as
    is, not copied), a Tensor (its array is shared) or a list / number
    (becomes float32).
    """

    kind = "parameter"      # how error messages name it ("parameter '0.weight'")

    def __init__(self, data, requires_grad=True):
        shared_version = None
        if isinstance(data, Tensor):
            data, shared_version = data.data, data._version
        elif isinstance(data, (list, tuple, numbers.Number)):
            data = np.asarray(data, dtype=np.float32)
        elif not (isinstance(data, np.ndarray) or backend.is_device_array(data)):
            raise TypeError(f"Parameter: expected an array, a Tensor or a list of numbers, "
                            f"got {type(data).__name__}")
        if not np.issubdtype(np.dtype(data.dtype), np.floating):
            raise TypeError(f"Parameter: parameters must be float (float32 or float64), got "
                            f"{data.dtype}; convert with .astype('float32')")
        super().__init__(data, requires_grad=requires_grad)
        if shared_version is not None:      # the same memory: one in-place counter
            self._version = shared_version

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
