"""A 3x5 pixel font for tick labels (digits, sign, point, exponent), and stamping its text onto a canvas."""
import numpy as np

from nflow.image.pixels import upscale

FONT_WIDTH, FONT_HEIGHT = 3, 5
_FONT_ROWS = {
    "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"), "9": ("111", "101", "111", "001", "111"),
    ".": ("000", "000", "000", "000", "010"), "-": ("000", "000", "111", "000", "000"),
    "+": ("000", "010", "111", "010", "000"), "e": ("000", "111", "101", "110", "011"),
    " ": ("000", "000", "000", "000", "000"),
}
FONT = {ch: np.array([[c == "1" for c in row] for row in rows]) for ch, rows in _FONT_ROWS.items()}


def text_mask(text, scale=1):
    """A boolean (5·scale, 4·scale·len - scale) mask of ``text`` in the 3x5 font (one blank column between)."""
    glyphs = []
    for ch in text:
        if ch not in FONT:
            raise ValueError(f"text_mask: no glyph for {ch!r} (the font has {''.join(sorted(FONT))})")
        glyphs += [FONT[ch], np.zeros((FONT_HEIGHT, 1), dtype=bool)]
    mask = np.concatenate(glyphs[:-1], axis=1) if glyphs else np.zeros((FONT_HEIGHT, 0), dtype=bool)
    return upscale(mask, scale)


def stamp(canvas, mask, top, left, color):
    """Paint ``color`` where ``mask`` is set, with its top-left corner at (top, left), clipped to the canvas."""
    h, w = mask.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + h, canvas.shape[0]), min(left + w, canvas.shape[1])
    if t0 < t1 and l0 < l1:
        region = canvas[t0:t1, l0:l1]
        region[mask[t0 - top:t1 - top, l0 - left:l1 - left]] = color
