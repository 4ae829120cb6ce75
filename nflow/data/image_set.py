"""ImageSet: one split of an image data set, whatever it was read from, in the one layout models take.

``images`` is (N, C, H, W) with C = 1 (grey) or 3 (RGB), channels first, C-contiguous, and either uint8 pixel
values 0..255 (dequantized for training, see :mod:`nflow.data.dequantize`) or float32 values in [0, 1]
(continuous data from a float array file, used as they are). ``labels`` is int64 (N,) or None.
"""
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "test")
GREY_CHANNELS = 1
RGB_CHANNELS = 3


@dataclass
class ImageSet:
    """One split of an image data set (see the module docstring for the layout).

    ``name`` says where it came from, for messages and plot titles (``"mnist"``, ``"cifar10"``,
    ``"idx:DIR"``, ``"npz:PATH"``, ``"npy:PATH"``, ``"folder:DIR"``); ``split`` is ``"train"`` or ``"test"``;
    ``class_names`` names label 0, 1, … where the source knows them (an image folder's class folders,
    CIFAR-10's ten classes), else None.
    """

    images: np.ndarray
    labels: np.ndarray | None
    name: str
    split: str
    class_names: tuple | None = None

    def __post_init__(self):
        # A programming error, not a user's: every loader builds this layout itself.
        if self.images.ndim != 4 or self.images.shape[1] not in (GREY_CHANNELS, RGB_CHANNELS):
            raise AssertionError(f"ImageSet {self.name}: images must be (N, 1 or 3, H, W), got {self.images.shape}")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise AssertionError(f"ImageSet {self.name}: labels {self.labels.shape} for {len(self.images)} images")

    def __len__(self):
        return len(self.images)

    @property
    def image_shape(self):
        """(C, H, W) of one image: the ``input_shape`` of a model for this data."""
        return tuple(int(s) for s in self.images.shape[1:])

    @property
    def is_grey(self):
        return self.images.shape[1] == GREY_CHANNELS
