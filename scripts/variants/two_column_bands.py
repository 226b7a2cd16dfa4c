"""B: row-route tiles of two column bands where the L2 rule gives one (seed003's
convs: 4 tiles of 8 and 6 columns instead of 2 of 14; tried: slower).  dW adds its
tiles' partial sums in tile order, so more tiles change its last bits."""

CHANGES_BITS = True
from tinynet.ops import _conv_rows

_tiles = _conv_rows.tiles


def _two_bands(OH, OW, N, KH, CKW, itemsize, pooled=False):
    t = _tiles(OH, OW, N, KH, CKW, itemsize, pooled)
    cols = sorted({(j0, j1) for _, _, j0, j1 in t})
    rows = sorted({(i0, i1) for i0, i1, _, _ in t})
    if len(cols) == 1 and OW >= 4:
        return tuple((i0, i1, j0, j1) for i0, i1 in rows for j0, j1 in _conv_rows.cut_bands(OW, 2))
    return t


def apply():
    _conv_rows.tiles = _two_bands


def revert():
    _conv_rows.tiles = _tiles
