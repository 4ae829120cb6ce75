"""Sample sheets: N images (N, C, H, W) tiled into one picture, as torchvision's ``make_grid`` does."""
import math

import numpy as np

from nflow.image.caption import add_caption
from nflow.image.pixels import chw_to_hwc, to_uint8, upscale
from nflow.image.png import write_png


def make_grid(images, nrow=8, padding=2, pad_value=1.0):
    """Tile N images (N, C, H, W) into one (C, H', W') image, ``nrow`` images per row (as torchvision).

    Rows = ceil(N / nrow); ``padding`` pixels of ``pad_value`` around and between the tiles, so
    H' = rows·(H + padding) + padding and W' = min(N, nrow)·(W + padding) + padding. Empty cells of the last
    row are ``pad_value`` too. The images keep their dtype (floats in [0, 1] or uint8).
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"make_grid: expected images of shape (N, C, H, W), got {images.shape}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("make_grid: no images")
    if nrow < 1 or padding < 0:
        raise ValueError(f"make_grid: need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    cols = min(n, nrow)
    rows = math.ceil(n / cols)
    fill = pad_value if images.dtype.kind == "f" else to_uint8(np.float64(pad_value))
    grid = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), fill, dtype=images.dtype)
    for k in range(n):
        r, q = divmod(k, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top:top + h, left:left + w] = images[k]
    return grid


def save_grid(path, images, nrow=8, padding=2, pad_value=1.0, scale=1, caption=None):
    """``make_grid`` then ``write_png`` (enlarged ``scale`` times, nearest neighbour): a sample sheet in one call.

    ``caption``: a line of text set above the grid (:func:`nflow.image.caption.add_caption`), e.g.
    "Glow on mnist — step 1200, temperature 0.7"; the grid's pixels below it are the same as without one.
    """
    picture = upscale(chw_to_hwc(make_grid(images, nrow, padding, pad_value)), scale)
    write_png(path, picture if caption is None else add_caption(picture, caption))
