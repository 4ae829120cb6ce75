"""Pictures, one idea per file.

Pixels, written without an imaging library (a sample grid's pixels are the model's samples, exactly):

- :mod:`~nflow.image.pixels`: float pixels to uint8, (C, H, W) to (H, W, C), nearest-neighbour enlargement;
- :mod:`~nflow.image.png`: the PNG encoder and writer;
- :mod:`~nflow.image.grid`: sample sheets, N images (N, C, H, W) tiled into one, with an optional caption.

Plots that a person reads, drawn by matplotlib on its Agg canvas (no pyplot; matplotlib is imported only when
one is drawn, so ``import nflow.image`` stays cheap):

- :mod:`~nflow.image.figure`: a ``Figure`` on an Agg canvas, written as a PNG atomically;
- :mod:`~nflow.image.training_curve`: the loss against the step, in bits/dim or nats, test evaluations marked;
- :mod:`~nflow.image.density_plot`: a 2-D histogram of data and a learned density, with colour bars;
- :mod:`~nflow.image.caption`: a line of text rendered into a pixel strip, for the caption of a sample grid.

Images are NumPy arrays: (H, W) grey or (H, W, 3) RGB, uint8 or floats in [0, 1].
"""
from nflow.image.caption import add_caption, caption_strip
from nflow.image.density_plot import density_figure, histogram_2d, plot_density, plot_points, points_figure
from nflow.image.figure import figure_pixels, new_figure, save_figure
from nflow.image.grid import make_grid, save_grid
from nflow.image.pixels import chw_to_hwc, to_uint8, upscale
from nflow.image.png import encode_png, write_png
from nflow.image.training_curve import ema, plot_training_curve, training_curve_figure

__all__ = [
    "to_uint8", "chw_to_hwc", "upscale", "encode_png", "write_png", "make_grid", "save_grid", "new_figure",
    "save_figure", "figure_pixels", "ema",
    "training_curve_figure", "plot_training_curve", "histogram_2d", "density_figure", "plot_density",
    "points_figure", "plot_points", "caption_strip", "add_caption",
]
