"""The training curve: a metric against the step, rasterised with axes, ticks, labels and a smoothed line."""
import math

import numpy as np

from nflow.image.font import FONT_HEIGHT, FONT_WIDTH, stamp, text_mask
from nflow.image.png import write_png

PLOT_SIZE = (400, 640)  # (height, width) in pixels
PLOT_MARGIN = 12  # pixels around the axes box, besides the labels
FONT_SCALE = 2
N_TICKS = 5  # about this many tick marks per axis
TICK_LENGTH = 5
WHITE, BLACK, GRID_GREY = (255, 255, 255), (0, 0, 0), (225, 225, 225)
RAW_COLOR, SMOOTH_COLOR = (160, 190, 230), (20, 60, 160)
SMOOTHING = 0.9  # exponential moving average factor of the dark curve (0: draw the raw values only)
OUTLIER_RATIO = 5.0  # if max - min exceeds this many times q98 - min, cap the y axis near q98


def nice_ticks(lo, hi, n=N_TICKS):
    """About ``n`` round tick values (1, 2 or 5 × 10^k apart) inside [lo, hi]."""
    if not hi > lo:
        return np.array([lo])
    raw = (hi - lo) / n
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10)), key=lambda c: abs(math.log(c / raw)))
    first = math.ceil(lo / step) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    return np.round(ticks / step) * step  # remove float drift (0.30000000000000004)


def format_tick(value):
    """A short label: at most four significant digits, in the font's alphabet."""
    text = f"{value:.4g}"
    return "0" if text in ("-0", "0") else text


def ema(values, factor):
    """Exponential moving average m_t = factor · m_(t-1) + (1 - factor) · v_t, started at v_0, skipping NaNs."""
    out = np.empty(len(values))
    m = math.nan
    for i, v in enumerate(values):
        if math.isfinite(v):
            m = v if not math.isfinite(m) else factor * m + (1 - factor) * v
        out[i] = m
    return out


def _draw_polyline(canvas, px, py, color, box):
    """Straight segments between consecutive finite points, sampled once per pixel, clipped to ``box``."""
    top, bottom, left, right = box
    ok = np.isfinite(px) & np.isfinite(py)
    seg = ok[:-1] & ok[1:]
    x0, y0, x1, y1 = px[:-1][seg], py[:-1][seg], px[1:][seg], py[1:][seg]
    single = ok & ~np.r_[False, seg] & ~np.r_[seg, False]  # isolated points get a dot
    xs, ys = [px[single]], [py[single]]
    if len(x0):
        n = np.ceil(np.maximum(np.abs(x1 - x0), np.abs(y1 - y0))).astype(np.int64) + 1
        which = np.repeat(np.arange(len(n)), n)
        t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.maximum(np.repeat(n - 1, n), 1)
        xs.append(x0[which] + t * (x1 - x0)[which])
        ys.append(y0[which] + t * (y1 - y0)[which])
    xs, ys = np.rint(np.concatenate(xs)).astype(np.int64), np.rint(np.concatenate(ys)).astype(np.int64)
    inside = (xs >= left) & (xs <= right) & (ys >= top) & (ys <= bottom)
    canvas[ys[inside], xs[inside]] = color


def plot_curve(steps, values, size=PLOT_SIZE, smoothing=SMOOTHING):
    """Rasterise ``values`` against ``steps`` as an RGB uint8 image of ``size`` = (height, width).

    An axes box with tick marks, faint grid lines and numeric tick labels; the raw values in light blue and
    their exponential moving average (``smoothing``) in dark blue. Non-finite values break the line. When a
    few early values dwarf the rest (max - min > OUTLIER_RATIO · (q98 - min)), the y axis is capped just
    above the 98th percentile so the body of the curve stays readable; the capped part runs off the top.
    """
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(f"plot_curve: steps and values must be 1-D of equal length, got {steps.shape}, {values.shape}")
    height, width = size
    canvas = np.full((height, width, 3), WHITE, dtype=np.uint8)
    finite = np.isfinite(values) & np.isfinite(steps)
    if not finite.any():
        return canvas
    x_lo, x_hi = steps[finite].min(), steps[finite].max()
    y_lo, y_hi = values[finite].min(), values[finite].max()
    q98 = np.percentile(values[finite], 98)
    if y_hi - y_lo > OUTLIER_RATIO * (q98 - y_lo) and q98 > y_lo:
        y_hi = q98 + 0.1 * (q98 - y_lo)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    y_ticks, x_ticks = nice_ticks(y_lo, y_hi), nice_ticks(x_lo, x_hi)
    char_w, char_h = (FONT_WIDTH + 1) * FONT_SCALE, FONT_HEIGHT * FONT_SCALE
    label_w = max(len(format_tick(v)) for v in y_ticks) * char_w
    left, right = PLOT_MARGIN + label_w + TICK_LENGTH, width - PLOT_MARGIN
    top, bottom = PLOT_MARGIN, height - PLOT_MARGIN - char_h - TICK_LENGTH - 2
    if right - left < 2 or bottom - top < 2:
        raise ValueError(f"plot_curve: size {size} leaves no room for the plot area")

    def to_px(x):
        return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

    def to_py(y):
        return bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)

    for v in y_ticks:
        r = int(round(to_py(v)))
        canvas[r, left:right + 1] = GRID_GREY
        canvas[r, left - TICK_LENGTH:left] = BLACK
        text = format_tick(v)
        stamp(canvas, text_mask(text, FONT_SCALE), r - char_h // 2, left - TICK_LENGTH - 2 - len(text) * char_w + 1,
               BLACK)
    for v in x_ticks:
        c = int(round(to_px(v)))
        canvas[top:bottom + 1, c] = GRID_GREY
        canvas[bottom + 1:bottom + 1 + TICK_LENGTH, c] = BLACK
        text = format_tick(v)
        stamp(canvas, text_mask(text, FONT_SCALE), bottom + TICK_LENGTH + 2, c - len(text) * char_w // 2, BLACK)
    box = (top, bottom, left, right)
    px = to_px(steps)
    _draw_polyline(canvas, px, to_py(np.where(finite, values, np.nan)), RAW_COLOR, box)
    if smoothing > 0:
        _draw_polyline(canvas, px, to_py(ema(np.where(finite, values, np.nan), smoothing)), SMOOTH_COLOR, box)
    canvas[top, left:right + 1] = canvas[bottom, left:right + 1] = BLACK
    canvas[top:bottom + 1, left] = canvas[top:bottom + 1, right] = BLACK
    return canvas


def save_curve(path, steps, values, size=PLOT_SIZE, smoothing=SMOOTHING):
    """``plot_curve`` written as a PNG."""
    write_png(path, plot_curve(steps, values, size, smoothing))
