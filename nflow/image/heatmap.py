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


def histogram_heatmap(points, bins, limit):
    """The heat map of a 2-D histogram of ``points`` (N, 2): counts in ``bins`` × ``bins`` equal cells over
    [-limit, limit]², y up (row 0 is y = +limit, as :func:`nflow.data.grid_points` lays out its grid)."""
    edges = np.linspace(-limit, limit, bins + 1)
    counts, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=(edges, edges))  # rows: y, columns: x
    return heatmap(counts[::-1])
