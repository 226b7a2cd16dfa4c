"""B: the conv backward's pass 1 (ReLU mask, db) in four blocks on the pool for
any gradient of 4 x 32 K values or more -- as before PASS1_MIN_ELEMENTS."""
from tinynet.ops import _conv_rows

_saved = _conv_rows.PASS1_MIN_ELEMENTS


def apply():
    _conv_rows.PASS1_MIN_ELEMENTS = None          # copy_blocks' default minimum


def revert():
    _conv_rows.PASS1_MIN_ELEMENTS = _saved
