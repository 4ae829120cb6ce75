"""Pixel arrays: floats in [0, 1] to uint8, channel layout, and nearest-neighbour enlargement.

Images here are NumPy arrays: (H, W) grey or (H, W, 3) RGB, either uint8 or floats in [0, 1] (quantised
as floor(x · 256), clipped to 0..255, the inverse of :func:`nflow.data.dequantize`). Model samples come
as (N, C, H, W).
"""
import numpy as np

from nflow.data.dequantize import quantize


def to_uint8(image):
    """uint8 images pass through; float images in [0, 1] become floor(x · 256) clipped to 0..255."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind != "f":
        raise TypeError(f"to_uint8: expected uint8 or floating-point pixels, got dtype {image.dtype}")
    return quantize(image)


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
