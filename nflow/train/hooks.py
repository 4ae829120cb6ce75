"""Ready-made ``on_sample`` callbacks: write the model's samples as a PNG every few steps."""
import os

import numpy as np

from nflow.backend import to_numpy
from nflow.data.toy import PLOT_LIMIT
from nflow.image import histogram_heatmap, save_grid, upscale, write_png

HIST_BINS = 200  # resolution of the 2-D histogram drawn for toy samples
HIST_SCALE = 2  # and its enlargement in the PNG


def samples_to_numpy(samples):
    """A model's samples as a host NumPy array (from an nflow Tensor, a CuPy or a NumPy array)."""
    return to_numpy(getattr(samples, "data", samples))


def save_samples_png(path, samples, nrow=8):
    """Images (N, C, H, W) in [0, 1] -> a grid PNG; 2-D points (N, 2) -> a histogram heat map over
    [-PLOT_LIMIT, PLOT_LIMIT]² (y up)."""
    samples = samples_to_numpy(samples)
    if samples.ndim == 4:
        save_grid(path, np.clip(samples, 0.0, 1.0), nrow=nrow)
    elif samples.ndim == 2 and samples.shape[1] == 2:
        write_png(path, upscale(histogram_heatmap(samples, HIST_BINS, PLOT_LIMIT), HIST_SCALE))
    else:
        raise ValueError(f"save_samples_png: expected images (N, C, H, W) or points (N, 2), got {samples.shape}")


def make_sample_hook(model, out_dir, n=64, temperature=1.0, seed=0, nrow=8, prefix="samples"):
    """An ``on_sample(step)`` that writes ``model.sample(n, temperature, seed)`` to
    ``out_dir/<prefix>_<step>.png``. The fixed seed shows the same latent points at every step, so the
    pictures show the model changing, not the noise; it also leaves nflow's global Generator alone."""
    os.makedirs(out_dir, exist_ok=True)

    def on_sample(step):
        samples = model.sample(n, temperature=temperature, seed=seed)
        save_samples_png(os.path.join(out_dir, f"{prefix}_{step:07d}.png"), samples, nrow)

    return on_sample
