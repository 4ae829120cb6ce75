"""The matplotlib pictures: the training curve, the density panels, the picture of toy samples and the caption
of a sample grid. Checked through the Figure each is built as (labels, titles, units, colour bars, what is
marked), not by comparing images; and each written file is a PNG of a plausible size, left by an atomic write."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import nflow.functional as F
from nflow.image import (add_caption, caption_strip, density_figure, plot_density, plot_points,
                         plot_training_curve, points_figure, save_grid, training_curve_figure)
from nflow.image.caption import LINE_HEIGHT
from nflow.image.density_plot import SCATTER_MAX_POINTS
from nflow.image.figure import DPI
from nflow.image.training_curve import FIGURE_SIZE, SMOOTHING, ema
from nflow.nn import Module, Parameter
from nflow.train import TrainConfig, Trainer, make_sample_hook, save_samples_png
from nflow.train import trainer as trainer_module
from nflow.train.hooks import run_title, sample_caption
from cli_helpers import PNG_SIGNATURE

CAPTION = "Glow on mnist — step 1200, temperature 0.7"


def png_size(path):
    """(width, height) from the IHDR of a PNG file, after checking the signature and that IHDR comes first."""
    with open(path, "rb") as f:
        data = f.read(24)
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def png_pixels(path):
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        return np.asarray(im)


def only_file(directory):
    """The one file in ``directory`` (an atomic write leaves no temporary file beside it)."""
    names = os.listdir(directory)
    assert len(names) == 1, names
    return names[0]


def lines_labelled(ax, label):
    return [line for line in ax.get_lines() if line.get_label() == label]


def curve_records():
    """A log: 20 steps (step 5 skipped, its loss null), and test evaluations at steps 10 and 20."""
    records = [{"step": k, "loss": 10.0 / k, "bpd": 5.0 / k, "skipped": False} for k in range(1, 21)]
    records[4] = {"step": 5, "loss": None, "bpd": None, "skipped": True, "reason": "non-finite loss"}
    records.insert(10, {"step": 10, "test_bpd": 0.6, "test_nll": 1.2})
    records.append({"step": 20, "test_bpd": 0.3, "test_nll": 0.6})
    return records


# -------------------------------------------------------------------------------------------------------------
# Training curve
# -------------------------------------------------------------------------------------------------------------
def test_training_curve_in_bits_per_dim_has_axes_title_smoothing_and_test_points():
    ax = training_curve_figure(curve_records(), title="Glow on mnist", unit="bits/dim").axes[0]
    assert ax.get_xlabel() == "training step"
    assert "bits/dim" in ax.get_ylabel()
    assert ax.get_title() == "Glow on mnist"
    assert ax.xaxis.get_gridlines()[0].get_visible() and ax.yaxis.get_gridlines()[0].get_visible()
    (raw,), (test,) = lines_labelled(ax, "training batch"), lines_labelled(ax, "test set")
    steps = [k for k in range(1, 21) if k != 5]
    np.testing.assert_array_equal(raw.get_xdata(), steps)  # the skipped step is left out
    np.testing.assert_allclose(raw.get_ydata(), [5.0 / k for k in steps])  # bpd, not the loss
    smooth = [line for line in ax.get_lines() if line.get_label().startswith("moving average")]
    np.testing.assert_allclose(smooth[0].get_ydata(), ema(np.array([5.0 / k for k in steps]), SMOOTHING))
    np.testing.assert_array_equal(test.get_xdata(), [10, 20])
    np.testing.assert_array_equal(test.get_ydata(), [0.6, 0.3])


def test_training_curve_in_nats_plots_the_loss_and_marks_nothing_without_test_records():
    records = [r for r in curve_records() if "loss" in r]
    ax = training_curve_figure(records, title="RealNVP on moons", unit="nats").axes[0]
    assert "nats" in ax.get_ylabel() and ax.get_title() == "RealNVP on moons"
    np.testing.assert_allclose(lines_labelled(ax, "training batch")[0].get_ydata()[:2], [10.0, 5.0])
    assert lines_labelled(ax, "test set") == []
    assert "test set" not in [t.get_text() for t in ax.get_legend().get_texts()]


def test_training_curve_caps_the_y_axis_above_a_huge_start_and_refuses_unknown_units():
    records = [{"step": 1, "loss": 1000.0}] + [{"step": k, "loss": 1.0 + 1.0 / k} for k in range(2, 200)]
    ax = training_curve_figure(records, title="t", unit="nats").axes[0]
    assert ax.get_ylim()[1] < 10  # the body of the curve, not the first step, sets the scale
    with pytest.raises(ValueError, match="unit"):
        training_curve_figure(records, title="t", unit="bpd")


def test_plot_training_curve_writes_one_png_atomically(tmp_path):
    plot_training_curve(tmp_path / "curve.png", curve_records(), title="Glow on mnist", unit="bits/dim")
    assert only_file(tmp_path) == "curve.png"
    assert png_size(tmp_path / "curve.png") == (round(FIGURE_SIZE[0] * DPI), round(FIGURE_SIZE[1] * DPI))


class TinyGaussian(Module):
    """log p(x) = Σ_d -½ (x_d - μ_d)² - ½ log 2π: the least a Trainer can train."""

    def __init__(self, dims):
        super().__init__()
        self.dims = dims
        self.mu = Parameter(np.zeros(dims, np.float32))

    def log_prob(self, x):
        x = F.reshape(x, (x.shape[0], self.dims))
        return F.sum((x - self.mu) * (x - self.mu) * -0.5, axis=1) - 0.5 * self.dims * np.log(2 * np.pi)


@pytest.mark.parametrize("data, unit", [(np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32), "nats"),
                                        (np.random.default_rng(0).integers(0, 256, (16, 1, 2, 2), np.uint8),
                                         "bits/dim")])
def test_trainer_plots_its_log_titled_with_model_and_data_in_the_unit_of_the_data(tmp_path, monkeypatch, data,
                                                                                 unit):
    calls = []
    monkeypatch.setattr(trainer_module, "plot_training_curve",
                        lambda path, records, **kw: calls.append((path, len(records), kw)))
    config = TrainConfig(steps=3, batch_size=8, progress=False, checkpoint_every=0)
    Trainer(TinyGaussian(int(np.prod(data.shape[1:]))), data, config, tmp_path, run_config={"data": "moons"}).fit()
    assert calls == [(os.path.join(tmp_path, "curve.png"), 3, {"title": "TinyGaussian on moons", "unit": unit})]


# -------------------------------------------------------------------------------------------------------------
# Densities and toy samples
# -------------------------------------------------------------------------------------------------------------
def heat_panels(figure):
    """The axes of ``figure`` that show an image (the colour bars' own axes show none)."""
    return [ax for ax in figure.axes if ax.get_images()]


def colorbar_labels(figure):
    return [ax.get_images()[0].colorbar.ax.get_ylabel() for ax in heat_panels(figure)]


def test_density_figure_shows_the_histogram_and_the_density_with_labelled_colour_bars():
    points = np.array([[2.5, 2.5], [2.4, 2.6], [-2.5, -2.5], [9.0, 0.0]])  # the last is off the square
    grid = np.arange(16.0).reshape(4, 4)
    grid[0, 0] = np.inf  # an overflowed exp(log p) is left blank, not the top of the scale
    figure = density_figure(points, grid, limit=3.0, title="RealNVP on moons")
    assert figure.get_suptitle() == "RealNVP on moons"
    assert colorbar_labels(figure) == ["count", "density"]
    data_ax, model_ax = heat_panels(figure)
    assert data_ax.get_xlabel() == "x" and data_ax.get_ylabel() == "y" and model_ax.get_xlabel() == "x"
    counts = data_ax.get_images()[0].get_array()
    assert counts.shape == (4, 4) and counts.sum() == 3
    assert counts[0, 3] == 2 and counts[3, 0] == 1  # y up: top right holds the two points near (2.5, 2.5)
    density = model_ax.get_images()[0]
    assert density.get_extent() == [-3.0, 3.0, -3.0, 3.0]
    assert np.ma.is_masked(density.get_array()[0, 0]) and density.get_clim()[1] == 15.0


def test_plot_density_writes_a_png_atomically(tmp_path):
    points = np.random.default_rng(0).normal(size=(500, 2))
    plot_density(tmp_path / "density.png", points, np.ones((20, 20)), limit=3.0, title="NICE on rings")
    assert only_file(tmp_path) == "density.png"
    width, height = png_size(tmp_path / "density.png")
    assert 600 <= width <= 1200 and 250 <= height <= 600 and width > height


def test_samples_of_toy_data_are_dots_when_few_and_a_histogram_when_many(tmp_path):
    rng = np.random.default_rng(0)
    few = points_figure(rng.normal(size=(64, 2)), limit=3.0, title=CAPTION)
    (ax,) = few.axes
    assert few.get_suptitle() == CAPTION and len(ax.collections[0].get_offsets()) == 64
    assert ax.get_xlim() == (-3.0, 3.0) and ax.get_xlabel() == "x"
    many = points_figure(rng.normal(size=(SCATTER_MAX_POINTS + 1, 2)), limit=3.0, title=CAPTION, bins=10)
    assert colorbar_labels(many) == ["count"]
    plot_points(tmp_path / "p.png", rng.normal(size=(64, 2)), limit=3.0, title=CAPTION)
    assert only_file(tmp_path) == "p.png" and png_size(tmp_path / "p.png")[0] > 200


# -------------------------------------------------------------------------------------------------------------
# Captions of sample grids
# -------------------------------------------------------------------------------------------------------------
def test_caption_strip_has_the_width_asked_for_and_holds_dark_text():
    strip = caption_strip(CAPTION, 242)
    assert strip.shape == (LINE_HEIGHT, 242, 3) and strip.dtype == np.uint8
    assert (strip < 100).sum() > 50 and (strip == 255).mean() > 0.5  # black text on white
    assert np.array_equal(strip[..., 0], strip[..., 1]) and np.array_equal(strip[..., 1], strip[..., 2])
    narrow = caption_strip(CAPTION, 90)  # too narrow for one line: broken at spaces
    assert narrow.shape[1] == 90 and narrow.shape[0] >= 2 * LINE_HEIGHT and narrow.shape[0] % LINE_HEIGHT == 0


@pytest.mark.parametrize("channels, scale", [(1, 1), (3, 2)])
def test_save_grid_with_a_caption_keeps_the_grid_pixels_exactly(tmp_path, channels, scale):
    images = np.random.default_rng(1).random((16, channels, 6, 6))
    save_grid(tmp_path / "plain.png", images, nrow=8, scale=scale)
    save_grid(tmp_path / "captioned.png", images, nrow=8, scale=scale, caption=CAPTION)
    plain, captioned = png_pixels(tmp_path / "plain.png"), png_pixels(tmp_path / "captioned.png")
    top = captioned.shape[0] - plain.shape[0]
    assert top > 0 and top % LINE_HEIGHT == 0 and captioned.ndim == plain.ndim  # a grey grid stays grey
    np.testing.assert_array_equal(captioned[top:], plain)
    assert captioned[:top].min() < 100  # text above it
    with pytest.raises(ValueError):
        add_caption(np.zeros((4, 4, 2)), CAPTION)


class PointsOrImages:
    """A stand-in model whose samples are images (N, 1, 4, 4) or points (N, 2)."""

    def __init__(self, shape):
        self.shape = shape

    def sample(self, n, temperature=1.0, seed=None):
        return np.random.default_rng(seed).random((n,) + self.shape) * temperature


def test_sample_hook_captions_grids_with_model_data_step_and_temperature(tmp_path):
    model = PointsOrImages((1, 4, 4))
    assert run_title(model, "mnist") == "PointsOrImages on mnist" and run_title(model) == "PointsOrImages"
    assert sample_caption("Glow on mnist", 1200, 0.7) == CAPTION and sample_caption("Glow", None, None) == "Glow"
    make_sample_hook(model, tmp_path / "img", n=16, temperature=0.7, nrow=8, data_name="mnist")(1200)
    name = only_file(tmp_path / "img")
    width, height = png_size(tmp_path / "img" / name)
    grid_height = 2 * (4 + 2) + 2  # two rows of 4-pixel images, padding 2
    assert name == "samples_0001200.png" and width == 8 * (4 + 2) + 2
    assert height > grid_height and (height - grid_height) % LINE_HEIGHT == 0  # the caption's lines on top
    save_samples_png(tmp_path / "toy.png", PointsOrImages((2,)).sample(64), caption="NICE on moons — step 3")
    assert png_size(tmp_path / "toy.png")[0] > 200


# -------------------------------------------------------------------------------------------------------------
def test_importing_nflow_train_and_image_does_not_import_matplotlib():
    code = "import sys, nflow.train, nflow.image; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
