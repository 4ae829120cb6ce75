"""Pictures without an imaging library, one idea per file:

- :mod:`~nflow.image.pixels`: float pixels to uint8, (C, H, W) to (H, W, C), nearest-neighbour enlargement;
- :mod:`~nflow.image.png`: the PNG encoder and writer;
- :mod:`~nflow.image.grid`: sample sheets, N images (N, C, H, W) tiled into one;
- :mod:`~nflow.image.font`: a 3x5 pixel font for tick labels;
- :mod:`~nflow.image.curve`: the training-curve plot;
- :mod:`~nflow.image.colormap`: the viridis-like colour map;
- :mod:`~nflow.image.heatmap`: heat maps of a grid of values or of a 2-D histogram of points.

Images are NumPy arrays: (H, W) grey or (H, W, 3) RGB, uint8 or floats in [0, 1].
"""
from nflow.image.colormap import colormap
from nflow.image.curve import ema, format_tick, nice_ticks, plot_curve, save_curve
from nflow.image.font import text_mask
from nflow.image.grid import make_grid, save_grid
from nflow.image.heatmap import heatmap, histogram_heatmap, save_heatmap
from nflow.image.pixels import chw_to_hwc, to_uint8, upscale
from nflow.image.png import encode_png, write_png

__all__ = [
    "to_uint8", "chw_to_hwc", "upscale", "encode_png", "write_png", "make_grid", "save_grid", "text_mask",
    "nice_ticks", "format_tick", "ema", "plot_curve", "save_curve", "colormap", "heatmap", "histogram_heatmap",
    "save_heatmap",
]
