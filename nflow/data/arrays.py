"""Images from a NumPy file: ``npy:PATH`` (one array) or ``npz:PATH`` (named arrays), read with
``allow_pickle=False`` (a data file never runs code).

The images: an array of shape (N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or 3 (channels-last is
recognised when the last axis is 1 or 3 and the second is not), uint8 (or another integer type with values
0..255), or float in [0, 1] (kept as float32, continuous data). See :mod:`nflow.data.pixels` for what is refused.

In an ``.npz`` the images are the first present of :data:`IMAGE_KEYS` (or the only array when the file holds
just one), the labels the first present of :data:`LABEL_KEYS` (optional). When the file also holds one of
:data:`TEST_IMAGE_KEYS` (with, optionally, one of :data:`TEST_LABEL_KEYS`), those are the test split -- the
layout of Keras' ``mnist.npz``. Otherwise the test split is held out: ``max(1, round(test_fraction · N))``
examples chosen by a permutation seeded with ``seed`` (:mod:`nflow.data.holdout`); train and test never
overlap and are the same on every call.
"""
import os
import zipfile

import numpy as np

from nflow.data.errors import DataError, DataNotFoundError
from nflow.data.holdout import holdout_indices
from nflow.data.image_set import ImageSet
from nflow.data.pixels import to_images, to_labels

IMAGE_KEYS = ("images", "x", "train_images", "x_train")
LABEL_KEYS = ("labels", "y", "train_labels", "y_train")
TEST_IMAGE_KEYS = ("test_images", "x_test")
TEST_LABEL_KEYS = ("test_labels", "y_test")


def _first_key(keys, candidates):
    return next((k for k in candidates if k in keys), None)


def _read_entry(npz, path, key):
    try:
        return npz[key]
    except ValueError as e:  # an object array: refused by allow_pickle=False
        raise DataError(f"{path}[{key}]: cannot be read without unpickling Python objects ({e}); save plain "
                        "numeric arrays (np.savez(path, images=uint8_array))") from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}[{key}]: damaged entry ({type(e).__name__}: {e})") from e


def _split_of_npz(npz, path, split):
    """(images, labels or None, images' name, labels' name, whether the file has its own test split) of
    ``split`` in an open .npz (see the module docstring for the keys)."""
    keys = npz.files
    test_key = _first_key(keys, TEST_IMAGE_KEYS)
    if split == "test" and test_key is not None:
        images_key, label_key = test_key, _first_key(keys, TEST_LABEL_KEYS)
    else:
        images_key, label_key = _first_key(keys, IMAGE_KEYS), _first_key(keys, LABEL_KEYS)
        if images_key is None and len(keys) == 1:
            images_key = keys[0]
    if images_key is None:
        raise DataError(f"{path}: found arrays {sorted(keys)}, expected the images under one of "
                        f"{', '.join(IMAGE_KEYS)} (or a file holding a single array)")
    images = _read_entry(npz, path, images_key)
    labels = None if label_key is None else _read_entry(npz, path, label_key)
    return images, labels, f"{path}[{images_key}]", f"{path}[{label_key}]", test_key is not None


def load_array_file(path, kind, split, test_fraction=0.1, seed=0):
    """One split of the images in the NumPy file at ``path`` as an :class:`ImageSet` (module docstring).

    ``kind`` ("npy" or "npz") names the set (``"npz:PATH"``); the file's own magic bytes decide how it is read.
    """
    path = os.fspath(path)
    name = f"{kind}:{path}"
    if not os.path.isfile(path):
        raise DataNotFoundError(f"{path}: no such file (image data {name})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: not a NumPy .npy/.npz file, or one holding pickled Python objects, which "
                        f"nflow does not load ({e})") from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: cannot be read as a NumPy .npy/.npz file ({type(e).__name__}: {e})") from e
    if isinstance(loaded, np.ndarray):
        images, labels, images_name, labels_name, has_test = loaded, None, path, None, False
    else:
        with loaded:
            images, labels, images_name, labels_name, has_test = _split_of_npz(loaded, path, split)
    images = to_images(images, images_name)
    if labels is not None:
        labels = to_labels(labels, len(images), labels_name, images_name)
    if not has_test:
        keep = holdout_indices(len(images), split, test_fraction, seed, name)
        images = images[keep]
        labels = None if labels is None else labels[keep]
    return ImageSet(images=images, labels=labels, name=name, split=split)
