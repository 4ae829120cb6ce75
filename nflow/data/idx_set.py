"""Any data set in MNIST's layout: the four standard IDX files, whatever their contents (Fashion-MNIST, KMNIST,
EMNIST, your own), gzipped or not.

A split's images are ``train-images-idx3-ubyte`` or ``t10k-images-idx3-ubyte`` (``.gz`` optional): a 3-D IDX
array (N, H, W), returned as (N, 1, H, W), uint8 or float in [0, 1] as :mod:`nflow.data.pixels` accepts. Its
labels, ``train-labels-idx1-ubyte`` / ``t10k-labels-idx1-ubyte``, are optional; when present they must hold one
label per image. Unlike :func:`nflow.data.mnist.load_mnist`, no checksum is checked and nothing is downloaded.

EMNIST ships its files under longer names (``emnist-letters-train-images-idx3-ubyte.gz``): rename them to the
standard four. It also stores each picture transposed; transpose the images (``images.transpose(0, 1, 3, 2)``)
if upright letters matter to you.
"""
import os

from nflow.data.errors import DataError, DataNotFoundError
from nflow.data.idx import read_idx
from nflow.data.image_set import ImageSet
from nflow.data.mnist import FILES, find_file
from nflow.data.pixels import to_images, to_labels

IDX_IMAGE_NDIM = 3


def load_idx_dir(directory, split):
    """One split (``"train"`` or ``"test"``) of the IDX files in ``directory`` as an :class:`ImageSet`."""
    directory = os.fspath(directory)
    name = f"idx:{directory}"
    images_base, labels_base = FILES[(split, "images")], FILES[(split, "labels")]
    if not os.path.isdir(directory):
        raise DataNotFoundError(f"{directory}: no such directory (image data {name})")
    images_path = find_file(directory, images_base)
    if images_path is None:
        raise DataNotFoundError(f"{directory}: no {images_base} or {images_base}.gz, the {split} images of an "
                                f"IDX data set (expected files: {', '.join(FILES.values())}, gzipped or not)")
    images = read_idx(images_path)
    if images.ndim != IDX_IMAGE_NDIM:
        raise DataError(f"{images_path}: expected IDX images of shape (N, H, W), got a {images.ndim}-D array "
                        f"of shape {images.shape}")
    images = to_images(images, images_path)
    labels_path = find_file(directory, labels_base)
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path)
        if labels.ndim != 1:
            raise DataError(f"{labels_path}: expected IDX labels of shape (N,), got shape {labels.shape}")
        labels = to_labels(labels, len(images), labels_path, images_path)
    return ImageSet(images=images, labels=labels, name=name, split=split)
