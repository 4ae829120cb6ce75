"""The one way nflow makes a matplotlib picture: a ``Figure`` on its own Agg canvas, never pyplot.

pyplot keeps a global list of open figures and picks an interactive backend from the environment; a
``matplotlib.figure.Figure`` given a ``FigureCanvasAgg`` has neither, so it draws the same on a headless
server, in a thread, or next to a user's own pyplot session, and is freed like any Python object.

matplotlib is imported inside the functions, not at module top: it costs about half a second to import,
and ``import nflow`` / ``import nflow.train`` / ``nflow --help`` should not pay that for pictures they may
never draw.
"""
import io

import numpy as np

from nflow.atomic import atomic_write_bytes

DPI = 100  # pixels per inch of every picture: sizes below are in inches, so 6.4 in -> 640 px
FIGURE_LAYOUT = "constrained"  # matplotlib places axes, labels and colour bars so none overlap


def new_figure(width, height, dpi=DPI, layout=FIGURE_LAYOUT):
    """An empty ``Figure`` of ``width`` × ``height`` inches with an Agg canvas attached (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure):
    """The bytes of ``figure`` as a PNG file, rendered by Agg in memory."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


def save_figure(figure, path):
    """Write ``figure`` to ``path`` as a PNG, atomically: rendered into memory first, so a crash while
    drawing leaves the old picture (or none), never half a file."""
    atomic_write_bytes(path, figure_png(figure))


def figure_pixels(figure):
    """``figure`` rendered by Agg as an (H, W, 3) uint8 RGB array (H, W = its size in inches × dpi)."""
    figure.canvas.draw()
    return np.array(figure.canvas.buffer_rgba())[:, :, :3]
