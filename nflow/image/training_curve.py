"""The training curve: the negative log-likelihood against the step, as matplotlib draws it.

One axes: the value of every logged step as a thin light line, its exponential moving average as a dark line
on top, the held-out evaluations of the log (if any) as red points; "training step" along x, the unit along y
(bits/dim for images, nats for continuous data), grid lines, and a title naming the model and the data.

The records are those of ``log.jsonl`` (:mod:`nflow.train.runlog`): a step's record holds ``"loss"`` (nats per
example) and ``"bpd"``; skipped steps (``"skipped": true``) and null values are left out. A held-out
evaluation is a record holding the key of :data:`EVAL_KEY` for the unit, e.g. ``{"step": 2000, "test_bpd":
1.21}`` (on its own line or inside a step's record).
"""
import math

import numpy as np

from nflow.image.figure import new_figure, save_figure

# The plotted unit -> the log key of the training value, and of a held-out evaluation.
TRAIN_KEY = {"bits/dim": "bpd", "nats": "loss"}
EVAL_KEY = {"bits/dim": "test_bpd", "nats": "test_nll"}
FIGURE_SIZE = (6.4, 4.0)  # inches: 640 × 400 pixels at figure.DPI
SMOOTHING = 0.9  # exponential moving average factor of the dark line (0: the raw values again)
OUTLIER_RATIO = 5.0  # if max - min exceeds this many times q98 - min, cap the y axis near q98
OUTLIER_HEADROOM = 0.1  # the capped axis ends this fraction of (q98 - min) above q98
RAW_STYLE = dict(color="tab:blue", linewidth=0.6, alpha=0.35)
SMOOTH_STYLE = dict(color="tab:blue", linewidth=1.6)
EVAL_STYLE = dict(color="tab:red", linestyle="none", marker="o", markersize=5, zorder=3)
GRID_STYLE = dict(color="0.85", linewidth=0.6)


def ema(values, factor):
    """Exponential moving average m_t = factor · m_(t-1) + (1 - factor) · v_t, started at v_0, skipping NaNs."""
    out = np.empty(len(values))
    m = math.nan
    for i, v in enumerate(values):
        if math.isfinite(v):
            m = v if not math.isfinite(m) else factor * m + (1 - factor) * v
        out[i] = m
    return out


def _series(records, key, skip_skipped):
    """(steps, values) of the records holding a finite ``key``, in log order, as float arrays."""
    pairs = [(r["step"], r[key]) for r in records
             if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]) and "step" in r
             and not (skip_skipped and r.get("skipped"))]
    steps, values = zip(*pairs) if pairs else ((), ())
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)


def _cap_outliers(ax, values):
    """When a few early values dwarf the rest (a flow's first steps can be 10× its final loss), end the
    y axis just above the 98th percentile so the body of the curve is readable; the start runs off the top."""
    lo, hi, q98 = values.min(), values.max(), np.percentile(values, 98)
    if q98 > lo and hi - lo > OUTLIER_RATIO * (q98 - lo):
        margin = OUTLIER_HEADROOM * (q98 - lo)
        ax.set_ylim(lo - margin, q98 + margin)


def training_curve_figure(records, *, title, unit):
    """The training curve of ``records`` (dicts of ``log.jsonl``) as a matplotlib ``Figure`` (see the module
    docstring); ``unit`` is ``"bits/dim"`` (plots ``bpd``) or ``"nats"`` (plots ``loss``)."""
    from matplotlib.ticker import MaxNLocator  # lazily, as nflow.image.figure explains

    if unit not in TRAIN_KEY:
        raise ValueError(f"training_curve_figure: unit must be one of {sorted(TRAIN_KEY)}, got {unit!r}")
    steps, values = _series(records, TRAIN_KEY[unit], skip_skipped=True)
    eval_steps, eval_values = _series(records, EVAL_KEY[unit], skip_skipped=False)
    figure = new_figure(*FIGURE_SIZE)
    ax = figure.add_subplot()
    if len(steps):
        ax.plot(steps, values, label="training batch", **RAW_STYLE)
        ax.plot(steps, ema(values, SMOOTHING), label=f"moving average ({SMOOTHING:g})", **SMOOTH_STYLE)
    if len(eval_steps):
        ax.plot(eval_steps, eval_values, label="test set", **EVAL_STYLE)
    if len(steps) or len(eval_steps):
        _cap_outliers(ax, np.concatenate([values, eval_values]))
        ax.legend(loc="upper right")
    ax.set_xlabel("training step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole: no tick at step 2.5
    ax.set_ylabel(f"negative log-likelihood ({unit})")
    ax.set_title(title, parse_math=False)  # names of models and data sets are text, "$" included
    ax.grid(True, **GRID_STYLE)
    ax.set_axisbelow(True)
    return figure


def plot_training_curve(path, records, *, title, unit):
    """Draw :func:`training_curve_figure` and write it to ``path`` as a PNG, atomically."""
    save_figure(training_curve_figure(records, title=title, unit=unit), path)
