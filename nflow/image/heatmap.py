"""Heat maps: a grid of values, or a 2-D histogram of points, drawn through the colour map."""
import numpy as np

from nflow.image.colormap import colormap
from nflow.image.pixels import upscale
from nflow.image.png import write_png


def heatmap(values, vmin=None, vmax=None):
    """An (H, W) array of values -> an (H, W, 3) uint8 RGB image: (v - vmin) / (vmax - vmin) through
    :func:`colormap`. ``vmin``/``vmax`` default to the finite minimum and maximum; row 0 is the top."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"heatmap: expected a 2-D array of values, got shape {values.shape}")
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if vmin is None and finite.size else (0.0 if vmin is None else vmin)
    hi = float(finite.max()) if vmax is None and finite.size else (1.0 if vmax is None else vmax)
    span = hi - lo if hi > lo else 1.0
    t = np.where(np.isnan(values), np.nan, (np.clip(values, lo, hi) - lo) / span)
    return colormap(t)


def save_heatmap(path, values, vmin=None, vmax=None, scale=1):
    """``heatmap`` written as a PNG, enlarged ``scale`` times (nearest neighbour)."""
    write_png(path, upscale(heatmap(values, vmin, vmax), scale))
