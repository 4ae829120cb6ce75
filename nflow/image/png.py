"""The PNG file format (ISO/IEC 15948, W3C PNG spec §5, §11) in the smallest form every viewer reads:

    signature  89 50 4E 47 0D 0A 1A 0A
    chunk      length (uint32 BE) | type (4 ASCII bytes) | data | CRC-32 of type + data
    IHDR       width, height (uint32 BE), bit depth 8, colour type 0 (grey) or 2 (RGB),
               compression 0, filter 0, interlace 0
    IDAT       zlib stream of the rows, each preceded by its filter-type byte (0: none)
    IEND       empty
"""
import struct
import zlib

import numpy as np

from nflow.atomic import atomic_write_bytes
from nflow.image.pixels import to_uint8

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BIT_DEPTH = 8
PNG_COLOR_GRAY = 0
PNG_COLOR_RGB = 2
PNG_FILTER_NONE = 0
ZLIB_LEVEL = 6


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
