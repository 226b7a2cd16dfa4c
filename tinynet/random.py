"""One seed for everything random in tinynet.

Initializers, dropout masks and shuffling all draw from the generator here,
so ``tn.manual_seed(n)`` makes a CPU run repeat bit for bit.  Device arrays
(dropout masks on "cuda") come from a device generator seeded from the host
one, so a seed also fixes a GPU run's draws.
"""
import numpy as np

_host = np.random.default_rng()
_device_rngs = {}


def manual_seed(seed):
    """Seed tinynet's random number generators (host and device)."""
    global _host
    _host = np.random.default_rng(seed)
    _device_rngs.clear()


def host_rng():
    """The numpy Generator used for initial weights and shuffling."""
    return _host


def rng_for(xp):
    """A Generator that makes arrays of module ``xp`` (numpy or cupy)."""
    if xp is np:
        return _host
    rng = _device_rngs.get(xp)
    if rng is None:
        rng = _device_rngs[xp] = xp.random.default_rng(int(_host.integers(2**63)))
    return rng
