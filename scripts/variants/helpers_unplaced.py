"""B: the pool's threads may run on any CPU of the process, the kernel alone
placing them (before: ``_parallel.keep_helpers_off_my_cpu`` keeps them off the
calling thread's CPU at every hand-off)."""
import os

from tinynet.ops import _parallel

_keep_off = _parallel.keep_helpers_off_my_cpu


def _unplaced():
    return None


def apply():
    for tid in list(_parallel._helper_tids):
        try:
            os.sched_setaffinity(tid, os.sched_getaffinity(0))
        except OSError:
            pass
    _parallel.keep_helpers_off_my_cpu = _unplaced


def revert():
    _parallel.keep_helpers_off_my_cpu = _keep_off
    _parallel._kept_off = None          # place them again at the next hand-off
