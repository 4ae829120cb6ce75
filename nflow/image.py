"""Pictures without an imaging library: a PNG writer, sample grids, a training-curve plot and heat maps.

PNG (ISO/IEC 15948, W3C PNG spec §5, §11) in the smallest form every viewer reads:

    signature  89 50 4E 47 0D 0A 1A 0A
    chunk      length (uint32 BE) | type (4 ASCII bytes) | data | CRC-32 of type + data
    IHDR       width, height (uint32 BE), bit depth 8, colour type 0 (grey) or 2 (RGB),
               compression 0, filter 0, interlace 0
    IDAT       zlib stream of the rows, each preceded by its filter-type byte (0: none)
    IEND       empty

Images here are NumPy arrays: (H, W) grey or (H, W, 3) RGB, either uint8 or floats in [0, 1] (quantised
as floor(x · 256), clipped to 0..255, the inverse of :func:`nflow.data.dequantize`). Model samples come
as (N, C, H, W); :func:`make_grid` tiles them into one picture.
"""
import math
import struct
import zlib

import numpy as np

from nflow.atomic import atomic_write_bytes
from nflow.data.dequantize import quantize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BIT_DEPTH = 8
PNG_COLOR_GRAY = 0
PNG_COLOR_RGB = 2
PNG_FILTER_NONE = 0
ZLIB_LEVEL = 6

# ---------------------------------------------------------------------------------------------------------
# PNG encoding
# ---------------------------------------------------------------------------------------------------------


def to_uint8(image):
    """uint8 images pass through; float images in [0, 1] become floor(x · 256) clipped to 0..255."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind != "f":
        raise TypeError(f"to_uint8: expected uint8 or floating-point pixels, got dtype {image.dtype}")
    return quantize(image)


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(image):
    """The bytes of a PNG file holding ``image``: (H, W) or (H, W, 1) grey, or (H, W, 3) RGB."""
    pixels = to_uint8(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        color_type = PNG_COLOR_GRAY
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        color_type = PNG_COLOR_RGB
    else:
        raise ValueError(f"encode_png: expected (H, W), (H, W, 1) or (H, W, 3), got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"encode_png: an image needs at least one pixel, got shape {pixels.shape}")
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    filtered = np.concatenate([np.full((height, 1), PNG_FILTER_NONE, dtype=np.uint8), rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, PNG_BIT_DEPTH, color_type, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), ZLIB_LEVEL)) + _chunk(b"IEND", b""))


def write_png(path, image):
    """Encode ``image`` (see :func:`encode_png`) and write it to ``path`` atomically."""
    atomic_write_bytes(path, encode_png(image))


def chw_to_hwc(image):
    """(C, H, W) -> (H, W) for one channel, (H, W, C) otherwise: the layout :func:`encode_png` takes."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"chw_to_hwc: expected (C, H, W), got shape {image.shape}")
    return image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))


def upscale(image, factor):
    """Nearest-neighbour enlargement of an (H, W) or (H, W, C) image by an integer ``factor``."""
    if int(factor) != factor or factor < 1:
        raise ValueError(f"upscale: factor must be a positive integer, got {factor}")
    return np.repeat(np.repeat(image, int(factor), axis=0), int(factor), axis=1)


# ---------------------------------------------------------------------------------------------------------
# Grids of samples
# ---------------------------------------------------------------------------------------------------------


def make_grid(images, nrow=8, padding=2, pad_value=1.0):
    """Tile N images (N, C, H, W) into one (C, H', W') image, ``nrow`` images per row (as torchvision).

    Rows = ceil(N / nrow); ``padding`` pixels of ``pad_value`` around and between the tiles, so
    H' = rows·(H + padding) + padding and W' = min(N, nrow)·(W + padding) + padding. Empty cells of the last
    row are ``pad_value`` too. The images keep their dtype (floats in [0, 1] or uint8).
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"make_grid: expected images of shape (N, C, H, W), got {images.shape}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("make_grid: no images")
    if nrow < 1 or padding < 0:
        raise ValueError(f"make_grid: need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    cols = min(n, nrow)
    rows = math.ceil(n / cols)
    fill = pad_value if images.dtype.kind == "f" else to_uint8(np.float64(pad_value))
    grid = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), fill, dtype=images.dtype)
    for k in range(n):
        r, q = divmod(k, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top:top + h, left:left + w] = images[k]
    return grid


def save_grid(path, images, nrow=8, padding=2, pad_value=1.0, scale=1):
    """``make_grid`` then ``write_png`` (enlarged ``scale`` times, nearest neighbour): a sample sheet in one call."""
    write_png(path, upscale(chw_to_hwc(make_grid(images, nrow, padding, pad_value)), scale))


# ---------------------------------------------------------------------------------------------------------
# A 3x5 pixel font for tick labels (digits, sign, point, exponent)
# ---------------------------------------------------------------------------------------------------------
FONT_WIDTH, FONT_HEIGHT = 3, 5
_FONT_ROWS = {
    "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"), "9": ("111", "101", "111", "001", "111"),
    ".": ("000", "000", "000", "000", "010"), "-": ("000", "000", "111", "000", "000"),
    "+": ("000", "010", "111", "010", "000"), "e": ("000", "111", "101", "110", "011"),
    " ": ("000", "000", "000", "000", "000"),
}
FONT = {ch: np.array([[c == "1" for c in row] for row in rows]) for ch, rows in _FONT_ROWS.items()}


def text_mask(text, scale=1):
    """A boolean (5·scale, 4·scale·len - scale) mask of ``text`` in the 3x5 font (one blank column between)."""
    glyphs = []
    for ch in text:
        if ch not in FONT:
            raise ValueError(f"text_mask: no glyph for {ch!r} (the font has {''.join(sorted(FONT))})")
        glyphs += [FONT[ch], np.zeros((FONT_HEIGHT, 1), dtype=bool)]
    mask = np.concatenate(glyphs[:-1], axis=1) if glyphs else np.zeros((FONT_HEIGHT, 0), dtype=bool)
    return upscale(mask, scale)


def _stamp(canvas, mask, top, left, color):
    """Paint ``color`` where ``mask`` is set, with its top-left corner at (top, left), clipped to the canvas."""
    h, w = mask.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + h, canvas.shape[0]), min(left + w, canvas.shape[1])
    if t0 < t1 and l0 < l1:
        region = canvas[t0:t1, l0:l1]
        region[mask[t0 - top:t1 - top, l0 - left:l1 - left]] = color


# ---------------------------------------------------------------------------------------------------------
# Training curve
# ---------------------------------------------------------------------------------------------------------
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
        _stamp(canvas, text_mask(text, FONT_SCALE), r - char_h // 2, left - TICK_LENGTH - 2 - len(text) * char_w + 1,
               BLACK)
    for v in x_ticks:
        c = int(round(to_px(v)))
        canvas[top:bottom + 1, c] = GRID_GREY
        canvas[bottom + 1:bottom + 1 + TICK_LENGTH, c] = BLACK
        text = format_tick(v)
        _stamp(canvas, text_mask(text, FONT_SCALE), bottom + TICK_LENGTH + 2, c - len(text) * char_w // 2, BLACK)
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


# ---------------------------------------------------------------------------------------------------------
# Heat maps
# ---------------------------------------------------------------------------------------------------------
# A viridis-like colormap (dark purple -> blue -> green -> yellow; perceptually ordered, readable in grey):
# the ten colours of viridis(10) (van der Walt & Smith, 2015), evenly spaced on [0, 1], linearly interpolated.
COLORMAP_HEX = ("440154", "482878", "3E4989", "31688E", "26828E", "1F9E89", "35B779", "6DCD59", "B4DE2C", "FDE725")
COLORMAP_ANCHORS = np.array([[int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)] for h in COLORMAP_HEX])
NAN_COLOR = (128, 128, 128)


def colormap(t):
    """Map values ``t`` in [0, 1] (clipped) to RGB uint8 with the built-in viridis-like map; NaN -> grey."""
    t = np.asarray(t, dtype=np.float64)
    nan = np.isnan(t)
    pos = np.clip(np.where(nan, 0.0, t), 0.0, 1.0) * (len(COLORMAP_ANCHORS) - 1)
    i = np.minimum(np.floor(pos).astype(np.int64), len(COLORMAP_ANCHORS) - 2)
    frac = (pos - i)[..., None]
    rgb = COLORMAP_ANCHORS[i] * (1 - frac) + COLORMAP_ANCHORS[i + 1] * frac
    out = np.rint(rgb * 255).astype(np.uint8)
    out[nan] = NAN_COLOR
    return out


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
