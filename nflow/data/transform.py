"""Grey or colour, and one square size: the conversions every image source shares.

Grey from RGB is ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B, computed for uint8 pixels in the same
16-bit fixed point Pillow's ``convert("L")`` uses, so an RGB array made grey here equals the same pictures
read from a folder as grey. Colour from grey repeats the channel three times.

Resizing (``image_size``): the centred square with side min(H, W) is cut out and scaled to
``image_size × image_size`` with Pillow's bicubic filter (antialiased when shrinking) -- the same picture as
scaling the shorter side to ``image_size`` and then centre-cropping, with one resampling instead of two.
"""
import numpy as np
from PIL import Image

from nflow.data.image_set import GREY_CHANNELS, RGB_CHANNELS

RESAMPLE = Image.Resampling.BICUBIC
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
LUMA_FIXED_POINT = (19595, 38470, 7471)  # round(weight · 2^16); they sum to 2^16
LUMA_SHIFT = 16
LUMA_ROUNDING = 1 << (LUMA_SHIFT - 1)


def to_grey(images):
    """(N, 3, H, W) -> (N, 1, H, W), uint8 or float32 as given."""
    if images.dtype == np.uint8:
        r, g, b = (images[:, c:c + 1].astype(np.uint32) * w for c, w in enumerate(LUMA_FIXED_POINT))
        return ((r + g + b + LUMA_ROUNDING) >> LUMA_SHIFT).astype(np.uint8)
    r, g, b = (images[:, c:c + 1] * w for c, w in enumerate(LUMA_WEIGHTS))
    return np.clip(r + g + b, 0.0, 1.0).astype(images.dtype)  # clip: float rounding may step past 1


def to_colour(images):
    """(N, 1, H, W) -> (N, 3, H, W): the grey channel three times."""
    return np.repeat(images, RGB_CHANNELS, axis=1)


def set_channels(images, grey):
    """``grey=True``: one channel; ``False``: three; ``None``: as they are."""
    if grey is True and images.shape[1] == RGB_CHANNELS:
        return to_grey(images)
    if grey is False and images.shape[1] == GREY_CHANNELS:
        return to_colour(images)
    return images


def centred_square(width, height):
    """The (left, top, right, bottom) box of the largest square centred in a width × height picture."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def fit_image(image, size):
    """A Pillow image cut to its centred square and scaled to size × size (see the module docstring)."""
    if image.size == (size, size):
        return image
    return image.resize((size, size), RESAMPLE, box=centred_square(*image.size))


def resize_images(images, size):
    """(N, C, H, W) uint8 or float32 -> (N, C, size, size), each channel through :func:`fit_image` (Pillow mode
    "L" for uint8, "F" for float32; float results are clipped back into [0, 1], which bicubic may overshoot)."""
    n, channels, height, width = images.shape
    if (height, width) == (size, size):
        return images
    out = np.empty((n, channels, size, size), dtype=images.dtype)
    for i in range(n):
        for c in range(channels):
            out[i, c] = np.asarray(fit_image(Image.fromarray(images[i, c]), size))
    return out if images.dtype == np.uint8 else np.clip(out, 0.0, 1.0, out=out)


def fit_images(images, image_size=None, grey=None):
    """:func:`set_channels` then, when ``image_size`` is given, :func:`resize_images`."""
    images = set_channels(images, grey)
    return images if image_size is None else resize_images(images, image_size)


def check_image_size(image_size):
    """``image_size`` is None or a positive whole number of pixels."""
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive whole number of pixels, got {image_size!r}")
