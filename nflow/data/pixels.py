"""Arrays read from a user's file, checked and brought into ImageSet's layout: (N, C, H, W), C in {1, 3}, uint8
pixel values 0..255 or float32 values in [0, 1], and int64 labels (N,).

What is refused, each with the file (or ``file[key]``) named and the shape, type or range found: arrays that are
not 3-D or 4-D, a channel count other than 1 or 3, no images at all, integer pixels outside 0..255, floats
outside [0, 1] or not finite, other element types, labels that are not whole numbers >= 0 or not one per image.
"""
import numpy as np

from nflow.data.errors import DataError
from nflow.data.image_set import GREY_CHANNELS, RGB_CHANNELS

CHANNEL_COUNTS = (GREY_CHANNELS, RGB_CHANNELS)
UINT8_MAX = 255
ACCEPTED_LAYOUTS = "(N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or 3"


def to_nchw(array, name):
    """``array`` as (N, C, H, W): (N, H, W) gains a channel axis; (N, H, W, C) is recognised when its last axis
    is 1 or 3 and its second is not (so (N, 3, H, 3) stays channels-first) and transposed (a view)."""
    shape = tuple(array.shape)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if shape[1] not in CHANNEL_COUNTS:
            if shape[3] not in CHANNEL_COUNTS:
                raise DataError(f"{name}: images of shape {shape} have neither 1 nor 3 channels (axis 1 of "
                                f"(N, C, H, W), or the last axis of (N, H, W, C)); expected {ACCEPTED_LAYOUTS}")
            array = array.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{name}: expected images of shape {ACCEPTED_LAYOUTS}, got a {array.ndim}-D array "
                        f"of shape {shape}")
    if array.size == 0:
        raise DataError(f"{name}: holds no images (shape {shape})")
    return array


def to_pixels(array, name):
    """uint8 kept; other integers in 0..255 cast to uint8; floats in [0, 1] (all finite) cast to float32."""
    kind = array.dtype.kind
    if kind == "u" and array.dtype.itemsize == 1:
        return array
    if kind in "ui":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > UINT8_MAX:
            raise DataError(f"{name}: integer pixel values must lie in 0..{UINT8_MAX}, found {low}..{high}")
        return array.astype(np.uint8)
    if kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            raise DataError(f"{name}: {int(array.size - finite.sum())} pixel values are NaN or infinite; "
                            "float images must lie in [0, 1]")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise DataError(f"{name}: float pixel values must lie in [0, 1], found {low:g}..{high:g} "
                            f"(scale them, e.g. divide 0..255 values by {UINT8_MAX})")
        return array.astype(np.float32)
    raise DataError(f"{name}: pixels must be uint8 (0..{UINT8_MAX}) or float in [0, 1], got dtype {array.dtype}")


def to_images(array, name):
    """A user's image array as (N, C, H, W) uint8 or float32, C-contiguous (see the module docstring)."""
    return np.ascontiguousarray(to_pixels(to_nchw(np.asarray(array), name), name))


def to_labels(labels, n_images, name, images_name):
    """Labels as int64 (N,): one whole number >= 0 per image; (N, 1), as Keras stores CIFAR-10's, is flattened."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{name}: expected labels of shape (N,), got shape {labels.shape}")
    if labels.dtype.kind not in "uif":
        raise DataError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    if len(labels) != n_images:
        raise DataError(f"{images_name} holds {n_images} images but {name} holds {len(labels)} labels")
    if labels.dtype.kind == "f" and not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
        raise DataError(f"{name}: labels must be whole numbers, found non-integer float values")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{name}: labels must be >= 0, found {labels.min()}")
    return labels.astype(np.int64)
