#!/usr/bin/env python
"""Render the glyph masks behind tinynet's embedded digits into tinynet/data/glyphs.npz.

    python scripts/render_glyphs.py            # rewrite tinynet/data/glyphs.npz
    python scripts/render_glyphs.py --check    # exit 1 if a fresh render differs from it

The digits (tinynet.data.digits) are drawn from the ink masks of '0'-'9' in 15
fonts that matplotlib ships.  FreeType's rasterizer changes between matplotlib
releases (3.10 and 3.11 give different pixels), and a matplotlib install may
lack some fonts, so rendering at import time made the data set -- and every
count a lesson quotes -- depend on the student's matplotlib.  The masks are
therefore rendered once, here, and shipped with the package: the same images
on every machine.  Run this only to change the glyphs on purpose (then update
the fingerprint in tests/data/test_digits.py and re-measure what the lessons
quote).
"""
import argparse
import importlib
import io
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf",
)  # not DejaVu Sans Mono: its zero has a dot in it, which no MNIST zero has


def render_font(path, glyph_px):
    """Ink masks (bool, cropped to the ink) of '0'..'9', larger side ~glyph_px."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(path)

    def render(px):
        out = []
        for ch in "0123456789":
            font.set_size(px, 72)  # points at 72 dpi = pixels
            font.set_text(ch, 0.0)
            font.draw_glyphs_to_bitmap(antialiased=True)
            img = np.asarray(font.get_image(), dtype=np.float32) / 255
            rows = np.flatnonzero(img.max(axis=1) >= 0.5)
            cols = np.flatnonzero(img.max(axis=0) >= 0.5)
            out.append(img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] >= 0.5)
        return out

    probe = render(100)  # fonts differ in how big a digit is at a given size; measure, then rescale
    largest = max(max(g.shape) for g in probe)
    glyphs = render(100 * 0.97 * glyph_px / largest)
    return [g[:glyph_px + 2, :glyph_px + 2] for g in glyphs]  # hinting can add a pixel


def render_all():
    """(masks (K, S, S) bool, shapes (K, 2) int16, fonts) with K = 10 * fonts, S = GLYPH_PX + 2."""
    import matplotlib
    d = importlib.import_module("tinynet.data.digits")

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    missing = [f for f in FONT_FILES if not os.path.exists(os.path.join(folder, f))]
    if missing:
        raise SystemExit(f"render_glyphs.py: fonts missing from {folder}: {', '.join(missing)}")
    side = d.GLYPH_PX + 2
    glyphs = [g for f in FONT_FILES for g in render_font(os.path.join(folder, f), d.GLYPH_PX)]
    masks = np.zeros((len(glyphs), side, side), dtype=bool)
    shapes = np.zeros((len(glyphs), 2), dtype=np.int16)
    for k, g in enumerate(glyphs):
        masks[k, :g.shape[0], :g.shape[1]] = g
        shapes[k] = g.shape
    return masks, shapes, FONT_FILES, matplotlib.__version__


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the shipped file instead")
    args = p.parse_args(argv)
    d = importlib.import_module("tinynet.data.digits")
    from tinynet.files import atomic_write

    masks, shapes, fonts, mpl = render_all()
    if args.check:
        shipped = d.load_glyph_masks()
        same = len(shipped) == len(masks) and all(
            np.array_equal(a, masks[k, :shapes[k][0], :shapes[k][1]]) for k, a in enumerate(shipped))
        print(f"glyphs rendered with matplotlib {mpl} {'match' if same else 'DIFFER FROM'} "
              f"{d.GLYPHS_FILE}")
        return 0 if same else 1
    buf = io.BytesIO()
    np.savez_compressed(buf, bits=np.packbits(masks, axis=-1), shapes=shapes,
                        side=np.int16(masks.shape[-1]), fonts=np.array(fonts),
                        matplotlib=np.array(mpl))
    with atomic_write(d.GLYPHS_FILE, "wb") as f:
        f.write(buf.getvalue())
    print(f"wrote {d.GLYPHS_FILE} ({len(buf.getvalue()):,} bytes, {len(masks)} glyphs, "
          f"matplotlib {mpl})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
