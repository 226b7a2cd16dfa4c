"""The embedded offline dataset: MNIST-like 28x28 digits that tinynet draws itself.

How an image is made:

1. Once per process, the ink masks of the glyphs '0'-'9' of 15 fonts that matplotlib
   ships (DejaVu Sans / Serif, STIX, Computer Modern; regular, bold, italic), rendered
   with FreeType at ~64 px by scripts/render_glyphs.py and shipped in glyphs.npz, are
   turned into signed distance fields (SDF: distance to the glyph outline in bank pixels,
   negative inside). That is the glyph bank.
2. Per sample, a random affine map (rotation, slant, aspect), a smooth random "elastic"
   wobble, a random pen width and a random edge softness are drawn. The pen width is a
   threshold on the SDF (``ink where sdf < r``): one number thickens or thins every
   stroke evenly, like a different pen, at no per-pixel cost.
3. Each output pixel looks its SDF value up through the inverse map (bilinear, batched
   index arithmetic) and turns it into coverage: ``clip(0.5 - (sdf - r) * scale / edge, 0, 1)``.
   That is anti-aliased downsampling in one lookup per pixel.

The scale is solved per sample so the ink (pen width, soft edge and wobble included) fits
a 20x20 box, like MNIST's size normalisation; the box is centred and shifted by at most
+-2 px. Only the central 24x24 window is ever drawn, so the 2-px border is exactly 0.0
in every image — the always-zero pixels the lessons count.

Only +, -, *, /, sqrt, floor and comparisons touch the random numbers (the rotation uses
the rational parametrisation of the circle, not sin/cos; no BLAS), so a seed is meant to
give the same images bit for bit on any CPU and any numpy or matplotlib version. (The
glyphs used to be rendered at import time, but FreeType's pixels change between
matplotlib releases -- 3.10 and 3.11 disagree -- which changed the data set and every
count the lessons quote; so they are shipped instead.)
"""
import functools
import os

import numpy as np

GLYPH_PX = 64          # a glyph's larger side in the bank, in bank pixels
DMAX = 16              # the SDF is exact up to this distance (bank px) and clamped beyond
BANK = GLYPH_PX + 2 * DMAX   # side of one bank image: glyph plus a margin where sdf >= DMAX - 0.5
N_DIRS = 64            # support directions kept per glyph to bound its extent under any affine map
IMAGE, WINDOW, BOX, MAX_SHIFT = 28, 24, 20, 2
CHUNK = 1000           # samples per independent random stream: digits(n)[:k] == digits(k)
SPLITS = {"train": 0, "test": 1}


GLYPHS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "glyphs.npz")


def load_glyph_masks():
    """The ink masks of '0'..'9' in 15 fonts (list of K = 150 bool arrays, cropped to the ink).

    Rendered once from the fonts matplotlib ships by scripts/render_glyphs.py and
    shipped as glyphs.npz: FreeType's pixels change between matplotlib releases,
    and the data set must not.
    """
    with np.load(GLYPHS_FILE) as f:
        side = int(f["side"])
        masks = np.unpackbits(f["bits"], axis=-1, count=side).astype(bool)
        return [masks[k, :h, :w] for k, (h, w) in enumerate(f["shapes"])]


def _edt(mask, dmax):
    """Euclidean distance from each pixel to the nearest True pixel of mask (K, H, W), capped at dmax.

    Exact below dmax: a row pass (running index of the nearest hit to the left/right)
    then a column pass over the 2*dmax+1 vertical offsets that can still matter.
    """
    k, h, w = mask.shape
    col = np.arange(w)
    far = 4 * (h + w)
    left = np.maximum.accumulate(np.where(mask, col, -far), axis=2)
    right = np.minimum.accumulate(np.where(mask, col, far)[..., ::-1], axis=2)[..., ::-1]
    gx = np.minimum(np.minimum(col - left, right - col), dmax).astype(np.float32)
    g2 = np.pad(gx * gx, ((0, 0), (dmax, dmax), (0, 0)), constant_values=dmax * dmax)
    d2 = gx * gx
    for dy in range(1, dmax + 1):
        np.minimum(d2, g2[:, dmax - dy:dmax - dy + h] + dy * dy, out=d2)
        np.minimum(d2, g2[:, dmax + dy:dmax + dy + h] + dy * dy, out=d2)
    return np.sqrt(np.minimum(d2, dmax * dmax))


@functools.lru_cache(maxsize=1)
def _glyph_bank():
    """The glyph bank, built once per process.

    Returns a dict of read-only arrays, K = fonts * 10 glyphs, glyph k = font * 10 + digit:
        sdf     (K, BANK, BANK) float32  signed distance in bank px, < 0 inside the ink
        center  (K, 2) float32           (x, y) of the ink's bounding-box centre
        support (K, N_DIRS, 2) float32   ink pixels extreme in N_DIRS directions, relative to center
        width   (K,) float32             mean stroke width in bank px
        size    (K,) float32             larger side of the ink's bounding box in bank px
    """
    glyphs = load_glyph_masks()
    mask = np.zeros((len(glyphs), BANK, BANK), dtype=bool)
    for k, g in enumerate(glyphs):  # 150 small paste operations, once
        h, w = g.shape
        top, left = (BANK - h) // 2, (BANK - w) // 2
        mask[k, top:top + h, left:left + w] = g
    # pixel centres: the outline lies half a pixel beyond the last ink pixel
    sdf = np.where(mask, 0.5 - _edt(~mask, DMAX), _edt(mask, DMAX) - 0.5).astype(np.float32)

    angles = np.arange(N_DIRS) * (2 * np.pi / N_DIRS)
    # integer directions and integer pixel coordinates: exact projections, so ties (common on
    # a pixel grid) always break the same way, whatever the CPU or BLAS
    dirs = np.round(1024 * np.stack([np.cos(angles), np.sin(angles)])).astype(np.int64)  # (2, N_DIRS)
    center = np.zeros((len(glyphs), 2))
    support = np.zeros((len(glyphs), N_DIRS, 2))
    width = np.zeros(len(glyphs))
    size = np.zeros(len(glyphs))
    for k in range(len(glyphs)):
        ys, xs = np.nonzero(mask[k])
        center[k] = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
        size[k] = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
        pts = np.stack([xs, ys], axis=1).astype(np.int64)
        support[k] = pts[np.argmax(pts @ dirs, axis=0)] - center[k]
        # a stroke of width w has mean distance-to-edge w/4 over its ink; rounded so that
        # summation order (CPU-dependent SIMD) can never change a bit of the result
        width[k] = np.round(4 * np.mean(-sdf[k][mask[k]]) * 64) / 64
    bank = dict(sdf=sdf, center=center.astype(np.float32), support=support.astype(np.float32),
                width=width.astype(np.float32), size=size.astype(np.float32))
    for a in bank.values():
        a.flags.writeable = False
    return bank


def _upsample_matrix(n_out, n_in):
    """(n_out, n_in) linear-interpolation weights from n_in grid nodes to n_out pixel centres."""
    pos = (np.arange(n_out) + 0.5) * (n_in - 1) / n_out
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    u = np.zeros((n_out, n_in))
    u[np.arange(n_out), lo] = 1 - frac
    u[np.arange(n_out), lo + 1] = frac
    return u.astype(np.float32)


def _draw_params(rng, n_glyph_fonts):
    """All random numbers of one chunk, drawn in a fixed order for the full CHUNK."""
    c = CHUNK
    labels = rng.permutation(np.arange(c) % 10)   # exactly balanced per chunk
    font = rng.integers(0, n_glyph_fonts, c)
    u = rng.random((c, 9), dtype=np.float32)
    wobble = rng.random((c, 2, 3, 3), dtype=np.float32) * 2 - 1
    t = (u[:, 0] * 2 - 1) * np.float32(0.1317)   # tan(theta/2) for theta in +-15 degrees
    p = dict(
        label=labels, glyph=font * 10 + labels,
        cos=(1 - t * t) / (1 + t * t), sin=2 * t / (1 + t * t),
        shear=(u[:, 1] * 2 - 1) * np.float32(0.3),         # slant, on top of the italic fonts' own
        aspect=np.float32(0.85) + u[:, 2] * np.float32(0.35),  # width stretch 0.85..1.2
        fill=np.float32(0.95) + u[:, 3] * np.float32(0.05),    # ink box side 19..20 px, as in MNIST
        pen=np.float32(0.1) + u[:, 4] * np.float32(0.12),      # stroke width / glyph size
        edge=np.float32(0.9) + u[:, 5] * np.float32(0.8),      # soft-edge width in output px
        shift=(u[:, 6:8] * 2 - 1) * np.float32(MAX_SHIFT),     # (x, y) px
        amp=u[:, 8] * np.float32(0.8),                         # wobble amplitude in output px
        wobble=wobble,
    )
    return p


def _take(p, m):
    return {k: v[:m] for k, v in p.items()}


def _render(bank, p):
    """Images (M, 28, 28) float32 for the parameters p of M samples; the 2-px border stays 0."""
    m = len(p["glyph"])
    f32 = np.float32
    g = p["glyph"]
    c, s, a, k = p["cos"], p["sin"], p["aspect"], p["shear"]
    # L = rotation @ shear @ diag(aspect, 1/aspect): bank offsets -> output offsets (det L = 1)
    l00, l01 = c * a, (c * k - s) / a
    l10, l11 = s * a, (s * k + c) / a

    # extent of the transformed glyph from its support points (exact for the convex hull)
    sup = bank["support"][g]                                  # (M, D, 2)
    qx = l00[:, None] * sup[..., 0] + l01[:, None] * sup[..., 1]
    qy = l10[:, None] * sup[..., 0] + l11[:, None] * sup[..., 1]
    ex, cx = qx.max(1) - qx.min(1), (qx.max(1) + qx.min(1)) / 2
    ey, cy = qy.max(1) - qy.min(1), (qy.max(1) + qy.min(1)) / 2
    nx, ny = np.sqrt(l00 * l00 + l01 * l01), np.sqrt(l10 * l10 + l11 * l11)  # how far L stretches a disc

    # the wobble first: its exact reach on each axis is taken out of the size budget
    up = _upsample_matrix(WINDOW, 3)
    wob = p["wobble"] * p["amp"][:, None, None, None]                     # (M, 2, 3, 3) node offsets
    along_x = sum(wob[..., j, None] * up[:, j] for j in range(3))          # (M, 2, 3, WINDOW)
    disp = sum(along_x[:, :, j, None, :] * up[:, j, None] for j in range(3))  # (M, 2, WINDOW, WINDOW)
    dlo, dhi = disp.min(axis=(2, 3)), disp.max(axis=(2, 3))                # (M, 2)

    width, size = bank["width"][g], bank["size"][g]
    r = np.maximum(p["pen"] * size - width, f32(-0.25) * width) / 2  # pen: grow (r > 0) or thin the strokes
    rho = r + f32(0.75)  # + half a pixel (outline beyond pixel centres) + bilinear error
    edge = p["edge"]
    # a pixel p is inked when p + disp(p) is, so the wobble widens the ink by (dhi - dlo)
    tgt_x = p["fill"] * f32(BOX) - (dhi[:, 0] - dlo[:, 0])
    tgt_y = p["fill"] * f32(BOX) - (dhi[:, 1] - dlo[:, 1])
    # ink extent along x = scale * (ex + 2 rho nx) + edge * nx <= tgt_x (same for y); solve for scale
    scale = np.minimum((tgt_x - edge * nx) / (ex + 2 * rho * nx), (tgt_y - edge * ny) / (ey + 2 * rho * ny))
    # never let the ink reach the clamped part of the SDF (ink needs sdf < r + edge / (2 scale))
    edge = np.minimum(edge, 2 * scale * (f32(DMAX - 2) - r))

    # output -> bank: u = L^-1 (p - t) / scale + center; t puts the ink box centre at 12 + shift
    tx = f32(WINDOW / 2) + p["shift"][:, 0] - scale * cx + (dlo[:, 0] + dhi[:, 0]) / 2
    ty = f32(WINDOW / 2) + p["shift"][:, 1] - scale * cy + (dlo[:, 1] + dhi[:, 1]) / 2
    a00, a01, a10, a11 = l11 / scale, -l01 / scale, -l10 / scale, l00 / scale
    ctr = bank["center"][g]
    b0 = ctr[:, 0] - a00 * tx - a01 * ty
    b1 = ctr[:, 1] - a10 * tx - a11 * ty

    centres = np.arange(WINDOW, dtype=f32) + f32(0.5)
    px = (centres[None, None, :] + disp[:, 0]).reshape(m, -1)
    py = (centres[None, :, None] + disp[:, 1]).reshape(m, -1)

    ux = a00[:, None] * px + a01[:, None] * py + b0[:, None]
    uy = a10[:, None] * px + a11[:, None] * py + b1[:, None]
    del px, py
    # bilinear lookup on the flattened bank; out-of-bank points clamp to the margin (sdf ~ DMAX)
    x0 = np.clip(np.floor(ux), 0, BANK - 2)
    y0 = np.clip(np.floor(uy), 0, BANK - 2)
    fx = np.clip(ux - x0, 0, 1)
    fy = np.clip(uy - y0, 0, 1)
    idx = (g[:, None] * (BANK * BANK) + y0.astype(np.int64) * BANK + x0.astype(np.int64))
    flat = bank["sdf"].reshape(-1)
    top = flat[idx] * (1 - fx) + flat[idx + 1] * fx
    bottom = flat[idx + BANK] * (1 - fx) + flat[idx + BANK + 1] * fx
    d = top * (1 - fy) + bottom * fy
    # coverage of the pixel by a pen of radius r with an anti-aliased edge `edge` px wide
    ink = np.clip(f32(0.5) - (d - r[:, None]) * (scale / edge)[:, None], 0, 1)

    out = np.zeros((m, IMAGE, IMAGE), dtype=f32)
    lo = (IMAGE - WINDOW) // 2
    out[:, lo:lo + WINDOW, lo:lo + WINDOW] = ink.reshape(m, WINDOW, WINDOW)
    return out


def digits(n=10000, seed=0, flatten=False, *, split="train"):
    """MNIST-like handwritten-looking digits generated offline by tinynet.

    Args:
        n: number of images.
        seed: non-negative int. Same seed, same images, bit for bit; ``digits(k, seed)`` is
            the first k images of ``digits(n, seed)`` for any k <= n.
        flatten: return x as (n, 784) instead of (n, 1, 28, 28).
        split: "train" or "test": two disjoint random streams for the same seed.

    Returns:
        x: float32 (n, 1, 28, 28) or (n, 784) in [0, 1], background exactly 0 and the
           outer 2-pixel border exactly 0 in every image.
        y: int64 (n,), digits 0..9, balanced (each block of 1000 holds 100 of each).
    """
    if split not in SPLITS:
        raise ValueError(f"digits(split={split!r}): expected one of {sorted(SPLITS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"digits(seed={seed!r}): expected a non-negative int")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"digits(n={n!r}): expected a non-negative int")
    bank = _glyph_bank()
    n_fonts = len(bank["width"]) // 10
    x = np.empty((n, IMAGE, IMAGE), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    for i, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        # one independent stream per (seed, split, chunk): prefixes agree and chunks never overlap
        p = _take(_draw_params(np.random.default_rng([int(seed), SPLITS[split], i]), n_fonts), m)
        x[start:start + m] = _render(bank, p)
        y[start:start + m] = p["label"]
    return (x.reshape(n, IMAGE * IMAGE) if flatten else x.reshape(n, 1, IMAGE, IMAGE)), y
