"""A caption above a picture, rendered by matplotlib's Agg into pixels, so the picture's own pixels stay
exactly as they were (a sample grid is written pixel for pixel by :mod:`nflow.image.png`).

The strip is black text, centred, on white. Text wider than the picture is broken at spaces into as many
lines as it needs, each :data:`LINE_HEIGHT` pixels high (a grid of four small samples is narrower than
"Glow on mnist — step 1200, temperature 0.7"); a single word wider than the picture is cut at its edges.
"""
import numpy as np

from nflow.image.figure import DPI, figure_pixels, new_figure
from nflow.image.pixels import to_uint8

FONT_POINTS = 7.0  # DejaVu Sans at 7 pt is about 10 pixels high at figure.DPI: small, still easy to read
LINE_HEIGHT = 16  # pixels per line of text, spacing included
SIDE_MARGIN = 4  # pixels kept free at each end of a line
WHITE = 255


def _text_width(figure, label, text):
    """The width in pixels that ``text`` takes when set in ``label``'s font."""
    label.set_text(text)
    return label.get_window_extent(renderer=figure.canvas.get_renderer()).width


def _lines(figure, label, text, room):
    """``text`` broken greedily at spaces into lines at most ``room`` pixels wide (a longer word stays whole)."""
    lines = []
    for word in text.split():
        if lines and _text_width(figure, label, f"{lines[-1]} {word}") <= room:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def caption_strip(text, width, line_height=LINE_HEIGHT):
    """``text`` rendered black on a white (n · ``line_height``, ``width``, 3) uint8 RGB strip, centred, in
    as few lines n as fit the width (one, unless the text is wider than ``width``)."""
    if int(width) != width or int(line_height) != line_height or width < 1 or line_height < 1:
        raise ValueError(f"caption_strip: width and line_height must be positive integers, got {width}, "
                         f"{line_height}")
    width, line_height = int(width), int(line_height)
    # parse_math=False: a caption is text, "$" is a dollar sign, not the start of mathematics.
    measure = new_figure(width / DPI, line_height / DPI, layout=None)
    label = measure.text(0, 0, "", fontsize=FONT_POINTS, parse_math=False)
    lines = _lines(measure, label, text, width - 2 * SIDE_MARGIN)
    height = len(lines) * line_height
    figure = new_figure(width / DPI, height / DPI, layout=None)
    for i, line in enumerate(lines):
        figure.text(0.5, 1 - (i + 0.5) / len(lines), line, ha="center", va="center", fontsize=FONT_POINTS,
                    color="black", parse_math=False)
    pixels = figure_pixels(figure)
    # Agg sizes its canvas as int(inches · dpi), which can be a pixel short of width / DPI · DPI: pad to size.
    strip = np.full((height, width, 3), WHITE, dtype=np.uint8)
    h, w = min(height, pixels.shape[0]), min(width, pixels.shape[1])
    strip[:h, :w] = pixels[:h, :w]
    return strip


def add_caption(image, text, line_height=LINE_HEIGHT):
    """``image`` ((H, W) grey or (H, W, 3) RGB, uint8 or floats in [0, 1]) as uint8 with the
    :func:`caption_strip` of ``text`` stacked on top; the image's pixels are unchanged below it. A grey image
    gets a grey strip, so the PNG stays grey."""
    pixels = to_uint8(image)
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"add_caption: expected an (H, W) or (H, W, 3) image, got shape {pixels.shape}")
    strip = caption_strip(text, pixels.shape[1], line_height)
    if pixels.ndim == 2:
        strip = strip[:, :, 0]  # black on white: the three channels are equal
    return np.concatenate([strip, pixels], axis=0)
