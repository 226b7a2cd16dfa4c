"""B: the optimizer hands each large parameter's blocks to the pool on its own
(one hand-off per parameter of 64 K values or more; smaller ones in one piece on
the calling thread) -- as before Optimizer._update_all took all in one."""
import numpy as np

from tinynet import optim
from tinynet.ops._parallel import BLOCKS, block_bounds, run_blocks

_all_at_once = optim.Optimizer._update_all


def _per_parameter(self, updates):
    for p, g, state in updates:
        if (type(p) is np.ndarray and p.flags.c_contiguous and g.flags.c_contiguous
                and all(k in state for k in self.state_keys) and p.size >= self._BLOCK_ELEMENTS):
            n = max(BLOCKS, p.size // self._BLOCK_ELEMENTS)
            flat = {k: v.reshape(-1) for k, v in state.items() if k != "step"}
            run_blocks(self._update_block, [(p.reshape(-1), g.reshape(-1), flat, state["step"],
                                             lo, hi) for lo, hi in block_bounds(p.size, n)])
        else:
            self._update(p, g, state, self._tmp_for(p))


def apply():
    optim.Optimizer._update_all = _per_parameter


def revert():
    optim.Optimizer._update_all = _all_at_once
