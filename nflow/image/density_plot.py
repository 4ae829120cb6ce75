"""Two-dimensional densities as matplotlib heat maps: a histogram of points, and a learned density beside it.

Both panels cover [-limit, limit]² with x to the right and y up, have axes and a colour bar saying what the
colour measures ("count" of points per cell, "density" p(x)), and share one colour map, so a density that
fits its data looks like its histogram.

A density grid is laid out as :func:`nflow.data.grid_points` lays out its points: (R, R), row 0 at
y = +limit, column 0 at x = -limit, values at the cell centres.
"""
import numpy as np

from nflow.image.figure import new_figure, save_figure

COLORMAP = "viridis"  # perceptually ordered and readable in grey
PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.4  # inches per panel with its colour bar (420 × 340 pixels at figure.DPI):
# a square image, its labels and a colour bar side by side; sized so the colour bar is as tall as the image
HEIGHT_FOR_TITLES = 0.4  # inches above the panels for the figure title
DEFAULT_BINS = 200  # histogram cells per side when no density grid sets the resolution
COUNT_LABEL, DENSITY_LABEL = "count", "density"
# A few samples (a training run's sample hook draws 64) are lost among a histogram's cells: draw them as dots.
SCATTER_MAX_POINTS = 2_000
SCATTER_DOT_SIZE = 6  # points²
SCATTER_COLOR = "#31688E"  # viridis' blue


def histogram_2d(points, bins, limit):
    """Counts of ``points`` (N, 2) in ``bins`` × ``bins`` equal cells over [-limit, limit]², laid out as a
    density grid (row 0 is y = +limit); points outside the square are not counted."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"histogram_2d: expected points of shape (N, 2), got {points.shape}")
    edges = np.linspace(-limit, limit, bins + 1)
    counts, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=(edges, edges))  # rows: y, columns: x
    return counts[::-1]


def _heat_panel(figure, ax, grid, limit, colorbar_label, title):
    """``grid`` drawn as an image over [-limit, limit]², with axis labels, a title and a labelled colour bar."""
    image = ax.imshow(grid, cmap=COLORMAP, extent=(-limit, limit, -limit, limit), origin="upper",
                      interpolation="nearest", aspect="equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    figure.colorbar(image, ax=ax, label=colorbar_label)


def density_figure(data_points, density_grid, *, limit, title, bins=None):
    """A ``Figure`` of two panels over [-limit, limit]²: the 2-D histogram of ``data_points`` (N, 2) in
    ``bins`` cells per side (default: the density grid's resolution) and ``density_grid`` (R, R), the learned
    density p(x) = exp(log p(x)) at the grid's cell centres; ``title`` above both."""
    density_grid = np.asarray(density_grid, dtype=np.float64)
    if density_grid.ndim != 2 or density_grid.shape[0] != density_grid.shape[1]:
        raise ValueError(f"density_figure: expected a square density grid (R, R), got {density_grid.shape}")
    # exp(log p) overflows to inf where a diverged model puts huge mass: leave such cells blank (NaN is drawn
    # empty) rather than let one inf set the colour scale and paint every other cell the bottom colour.
    density_grid = np.where(np.isfinite(density_grid), density_grid, np.nan)
    counts = histogram_2d(data_points, bins or density_grid.shape[0], limit)
    figure = new_figure(2 * PANEL_WIDTH, PANEL_HEIGHT + HEIGHT_FOR_TITLES)
    data_ax, model_ax = figure.subplots(1, 2)
    _heat_panel(figure, data_ax, counts, limit, COUNT_LABEL, f"data ({len(data_points):,} points)")
    _heat_panel(figure, model_ax, density_grid, limit, DENSITY_LABEL, "learned density")
    figure.suptitle(title, parse_math=False)
    return figure


def plot_density(path, data_points, density_grid, *, limit, title, bins=None):
    """Draw :func:`density_figure` and write it to ``path`` as a PNG, atomically."""
    save_figure(density_figure(data_points, density_grid, limit=limit, title=title, bins=bins), path)


def points_figure(points, *, limit, title, bins=DEFAULT_BINS):
    """A ``Figure`` of one panel over [-limit, limit]², ``title`` above it: a model's samples (N, 2) drawn as
    dots when there are at most SCATTER_MAX_POINTS of them, else as :func:`density_figure` draws the data (a
    2-D histogram in ``bins`` cells per side, with a colour bar)."""
    points = np.asarray(points, dtype=np.float64)
    figure = new_figure(PANEL_WIDTH, PANEL_HEIGHT + HEIGHT_FOR_TITLES)
    ax = figure.add_subplot()
    what = f"{len(points):,} points"
    if len(points) <= SCATTER_MAX_POINTS:
        ax.scatter(points[:, 0], points[:, 1], s=SCATTER_DOT_SIZE, color=SCATTER_COLOR)
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", xlabel="x", ylabel="y", title=what)
    else:
        _heat_panel(figure, ax, histogram_2d(points, bins, limit), limit, COUNT_LABEL, what)
    figure.suptitle(title, parse_math=False)
    return figure


def plot_points(path, points, *, limit, title, bins=DEFAULT_BINS):
    """Draw :func:`points_figure` and write it to ``path`` as a PNG, atomically."""
    save_figure(points_figure(points, limit=limit, title=title, bins=bins), path)
