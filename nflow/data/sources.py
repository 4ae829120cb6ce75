"""One way in for image data: a short text (a *spec*) names the source, :func:`load_images` returns an ImageSet.

The accepted specs are :data:`IMAGE_SOURCES`. Every source gives the same thing, an
:class:`~nflow.data.image_set.ImageSet` of (N, C, H, W) images, C = 1 or 3, uint8 0..255 (float32 in [0, 1]
only from float array files), so a model needs nothing but ``image_set.image_shape`` to fit any of them.

``grey`` and ``image_size`` apply to every source: ``grey=True`` makes one channel (ITU-R 601-2 luma),
``grey=False`` three, ``None`` keeps what the source has (an image folder is grey when every picture in it is);
``image_size`` cuts each picture to its centred square and scales it to image_size × image_size
(:mod:`nflow.data.transform`); None keeps the size (a folder's pictures must then share one).
"""
import os

import numpy as np

from nflow.data.arrays import load_array_file
from nflow.data.cifar10 import CLASS_NAMES as CIFAR10_CLASS_NAMES
from nflow.data.cifar10 import load_cifar10
from nflow.data.errors import DataNotFoundError
from nflow.data.folder import load_folder
from nflow.data.holdout import check_test_fraction
from nflow.data.idx_set import load_idx_dir
from nflow.data.image_set import SPLITS, ImageSet
from nflow.data.locations import resolve_dir
from nflow.data.mnist import DATA_ENV_VAR, load_mnist
from nflow.data.transform import check_image_size, fit_images

IMAGE_SOURCES = {
    "mnist": "MNIST's 70 000 grey 28×28 digits; checked against their MD5s, downloaded when missing",
    "cifar10": "CIFAR-10's 60 000 colour 32×32 pictures (binary version); downloaded when missing",
    "idx": "the four IDX files of MNIST's layout (Fashion-MNIST, KMNIST, EMNIST, ...) in --data-dir or "
           f"${DATA_ENV_VAR}; no checksum, no download",
    "idx:DIR": "the same, in the folder DIR",
    "npz:PATH": "a NumPy .npz: images (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or float in [0, 1], "
                "optional labels and test arrays",
    "npy:PATH": "a NumPy .npy holding one such image array",
    "folder:DIR": "PNG/JPEG pictures in DIR, or in one sub-folder of DIR per class",
}
WORD_KINDS = ("mnist", "cifar10", "idx")  # specs that are one word
PATH_KINDS = ("idx", "npz", "npy", "folder")  # specs of the form KIND:PATH
ARRAY_EXTENSIONS = (".npz", ".npy")


def _accepted():
    return ", ".join(IMAGE_SOURCES)


def parse_image_spec(spec):
    """``(kind, argument)`` of an image data spec: ``("mnist", None)``, ``("idx", None)``, ``("idx", DIR)``,
    ``("cifar10", None)``, ``("npz", PATH)``, ``("npy", PATH)``, ``("folder", DIR)``.

    Kinds are case-insensitive and ``~`` in a path is expanded. For ``npz:``/``npy:`` a PATH ending in
    ``.npz`` or ``.npy`` decides the kind (``npz:x.npy`` is an npy). Anything else raises ``ValueError``
    naming the accepted forms.
    """
    if not isinstance(spec, str):
        raise ValueError(f"image data must be given as text, one of {_accepted()}; got {spec!r}")
    text = spec.strip()
    if text.lower() in WORD_KINDS:
        return text.lower(), None
    kind, colon, argument = text.partition(":")
    kind = kind.lower()
    if colon and kind in PATH_KINDS:
        if not argument:
            raise ValueError(f"image data {spec!r}: {kind}: needs a path after the colon ({kind}:PATH)")
        argument = os.path.expanduser(argument)
        extension = os.path.splitext(argument)[1].lower()
        if kind in ("npz", "npy") and extension in ARRAY_EXTENSIONS:
            kind = extension[1:]
        return kind, argument
    hint = ""
    if os.path.splitext(text)[1].lower() in ARRAY_EXTENSIONS:
        hint = f" (for a NumPy file write npz:{text})"
    elif text and os.path.isdir(os.path.expanduser(text)):
        hint = f" (for a folder of pictures write folder:{text})"
    raise ValueError(f"unknown image data {spec!r}{hint}; accepted: {_accepted()}")


def is_image_spec(spec):
    """Whether ``spec`` names image data (:func:`parse_image_spec` accepts it); e.g. False for toy densities."""
    try:
        parse_image_spec(spec)
    except ValueError:
        return False
    return True


def _idx_dir(argument, data_dir):
    directory = argument or resolve_dir(data_dir)
    if directory is None:
        raise DataNotFoundError(f"image data 'idx' needs the folder of its IDX files: pass data_dir= (the "
                                f"--data-dir flag), set {DATA_ENV_VAR}, or write idx:DIR")
    return directory


def load_images(spec, split, data_dir=None, *, image_size=None, grey=None, test_fraction=0.1, seed=0,
                download=True):
    """The ``split`` ("train" or "test") of the image data ``spec`` names, as an :class:`ImageSet`.

    ``data_dir``: where ``mnist``, ``cifar10`` and ``idx`` are read (else ``$NFLOW_DATA``, else, for the two
    that download, a per-user cache). ``image_size``, ``grey``: see the module docstring. ``test_fraction``,
    ``seed``: the held-out test split of an array file or folder that has none of its own
    (``max(1, round(test_fraction · N))`` examples chosen by a permutation seeded with ``seed``; disjoint from
    train, the same on every call). ``download=False``: never fetch MNIST or CIFAR-10, only read them.
    Raises ``ValueError`` for a bad spec or argument, and an :class:`~nflow.errors.NflowError` (which
    names the file) for data that is missing or malformed.
    """
    kind, argument = parse_image_spec(spec)
    if split not in SPLITS:
        raise ValueError(f"load_images: split must be one of {SPLITS}, got {split!r}")
    if grey not in (None, True, False):
        raise ValueError(f"load_images: grey must be True, False or None, got {grey!r}")
    check_image_size(image_size)
    check_test_fraction(test_fraction)
    if kind == "folder":
        return load_folder(argument, split, image_size=image_size, grey=grey, test_fraction=test_fraction,
                           seed=seed)
    if kind == "mnist":
        images, labels = load_mnist(split, data_dir=data_dir, download=download)
        found = ImageSet(images=images, labels=labels.astype(np.int64), name="mnist", split=split)
    elif kind == "cifar10":
        images, labels = load_cifar10(split, data_dir=data_dir, download=download)
        found = ImageSet(images=images, labels=labels, name="cifar10", split=split,
                         class_names=CIFAR10_CLASS_NAMES)
    elif kind == "idx":
        found = load_idx_dir(_idx_dir(argument, data_dir), split)
    else:
        found = load_array_file(argument, kind, split, test_fraction=test_fraction, seed=seed)
    found.images = fit_images(found.images, image_size, grey)
    return found
