"""Ready-made callbacks of the trainer: ``on_sample`` writes the model's samples as a PNG every few steps,
captioned with the model, the data, the step and the temperature; ``on_evaluate`` measures the held-out
likelihood."""
import os

import numpy as np

from nflow.backend import to_numpy
from nflow.data.toy import PLOT_LIMIT
from nflow.image import plot_points, save_grid
from nflow.train.evaluate import DEFAULT_EVAL_BATCH, evaluate

HIST_BINS = 200  # histogram cells per side of the picture of toy samples


def samples_to_numpy(samples):
    """A model's samples as a host NumPy array (from an nflow Tensor, a CuPy or a NumPy array)."""
    return to_numpy(getattr(samples, "data", samples))


def run_title(model, data_name=None):
    """What a picture of a run is titled: the model's class and the data, "Glow on mnist" (or "Glow")."""
    name = type(model).__name__
    return f"{name} on {data_name}" if data_name else name


def sample_caption(title, step=None, temperature=None):
    """The caption of a picture of samples: "Glow on mnist — step 1200, temperature 0.7"; the step and the
    temperature are left out when None."""
    details = ([f"step {step}"] if step is not None else []) + (
        [f"temperature {temperature:g}"] if temperature is not None else [])
    return " — ".join([title, ", ".join(details)]) if details else title


def save_samples_png(path, samples, nrow=8, caption=None):
    """Images (N, C, H, W) in [0, 1] -> a grid PNG, ``caption`` as a line of text above it; 2-D points (N, 2)
    -> a histogram over [-PLOT_LIMIT, PLOT_LIMIT]² with axes and a colour bar, titled ``caption``."""
    samples = samples_to_numpy(samples)
    if samples.ndim == 4:
        save_grid(path, np.clip(samples, 0.0, 1.0), nrow=nrow, caption=caption)
    elif samples.ndim == 2 and samples.shape[1] == 2:
        plot_points(path, samples, limit=PLOT_LIMIT, title=caption or "samples", bins=HIST_BINS)
    else:
        raise ValueError(f"save_samples_png: expected images (N, C, H, W) or points (N, 2), got {samples.shape}")


def make_sample_hook(model, out_dir, n=64, temperature=1.0, seed=0, nrow=8, prefix="samples", data_name=None):
    """An ``on_sample(step)`` that writes ``model.sample(n, temperature, seed)`` to
    ``out_dir/<prefix>_<step>.png``, captioned "<model> on <data_name> — step <step>, temperature <t>". The
    fixed seed shows the same latent points at every step, so the pictures show the model changing, not the
    noise; it also leaves nflow's global Generator alone."""
    os.makedirs(out_dir, exist_ok=True)
    title = run_title(model, data_name)

    def on_sample(step):
        samples = model.sample(n, temperature=temperature, seed=seed)
        save_samples_png(os.path.join(out_dir, f"{prefix}_{step:07d}.png"), samples, nrow,
                         caption=sample_caption(title, step, temperature))

    return on_sample


def make_eval_hook(model, data, batch_size=DEFAULT_EVAL_BATCH, seed=0, labels=None):
    """An ``on_evaluate(step)`` for :class:`~nflow.train.Trainer`: the held-out NLL (nats per example) and
    bits/dim of ``model`` on ``data`` (:func:`nflow.train.evaluate`, its own noise seed; given ``labels``, of
    a class-conditional model's log p(x | y)), as ``{"test_nll", "test_bpd"}`` for the run's evaluation log and
    its curve."""
    def on_evaluate(step):
        result = evaluate(model, data, batch_size=batch_size, seed=seed, labels=labels)
        return {"test_nll": result["nll"], "test_bpd": result["bpd"], "test_n": result["n"]}

    return on_evaluate
