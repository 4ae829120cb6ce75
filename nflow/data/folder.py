"""Images from a folder of PNG and JPEG files (``folder:DIR``), decoded with Pillow.

Layout: either every picture directly in DIR (no labels), or one sub-folder per class, holding its pictures
directly (the sub-folders' names, sorted, are classes 0..K-1 and become ``class_names``); both at once is
refused. Pictures are the files ending ``.png``, ``.jpg`` or ``.jpeg`` in any case; names starting with ``.``
are skipped (macOS' ``._*`` companions, nflow's own cache), as are sub-folders holding no picture.

Each picture is turned upright by its EXIF orientation, then made RGB, or grey (Pillow's "L") when
``grey=True`` or when ``grey=None`` and every picture in the folder is grey (mode 1, L, LA, or 16-bit I,
scaled to 8 bits); transparency is dropped. With ``image_size`` each is cut to its centred square and scaled to
``image_size × image_size`` (:func:`nflow.data.transform.fit_image`); without it all pictures must already
have one size. The decoded folder is cached (:mod:`nflow.data.folder_cache`).

The test split is held out as for array files: ``max(1, round(test_fraction · N))`` pictures chosen by a
permutation seeded with ``seed`` (:mod:`nflow.data.holdout`); train and test never overlap and are the same
on every call while the folder is unchanged.
"""
import os

import numpy as np
from PIL import Image, ImageOps

from nflow.data.errors import DataError, DataNotFoundError
from nflow.data.folder_cache import fingerprint, read_cache, write_cache
from nflow.data.holdout import check_test_fraction, holdout_indices
from nflow.data.image_set import ImageSet
from nflow.data.transform import check_image_size, fit_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
HIDDEN_PREFIX = "."
GREY_MODES = ("1", "L", "LA")  # plus the integer modes "I", "I;16", "I;16B", ... (see is_grey_mode)
UINT16_MAX = 65535
UINT8_MAX = 255
# What Pillow raises for a file it cannot decode: unknown format (UnidentifiedImageError is an OSError),
# truncated data (OSError), broken headers (SyntaxError, ValueError, EOFError), absurd sizes (DecompressionBomb).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def is_picture(name):
    return not name.startswith(HIDDEN_PREFIX) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _pictures_in(directory):
    return sorted(e.name for e in os.scandir(directory) if e.is_file() and is_picture(e.name))


def scan_folder(directory):
    """(paths relative to ``directory``, labels or None, class names or None), sorted (module docstring)."""
    if not os.path.exists(directory):
        raise DataNotFoundError(f"{directory}: no such folder (image data folder:{directory})")
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: not a folder; folder:DIR takes a folder of PNG/JPEG files")
    direct = _pictures_in(directory)
    sub_folders = sorted(e.name for e in os.scandir(directory)
                         if e.is_dir() and not e.name.startswith(HIDDEN_PREFIX))
    classes = [(name, _pictures_in(os.path.join(directory, name))) for name in sub_folders]
    classes = [(name, files) for name, files in classes if files]
    if direct and classes:
        raise DataError(f"{directory}: holds pictures both directly ({direct[0]}, …) and in sub-folders "
                        f"({classes[0][0]}/, …); put every picture in a class sub-folder, or all directly in "
                        "the folder (no labels)")
    if direct:
        return direct, None, None
    if not classes:
        raise DataError(f"{directory}: holds no PNG or JPEG file ({', '.join(IMAGE_EXTENSIONS)}, any case), "
                        "neither directly nor in class sub-folders")
    relpaths, labels = [], []
    for label, (name, files) in enumerate(classes):
        relpaths += [os.path.join(name, f) for f in files]
        labels += [label] * len(files)
    return relpaths, labels, tuple(name for name, _ in classes)


def is_grey_mode(mode):
    return mode in GREY_MODES or mode.startswith("I")


def _to_8bit_grey(image):
    """A 16-bit (or 32-bit integer) grey picture as "L", scaled 0..65535 -> 0..255 (Pillow's own convert
    would clip everything above 255 to white)."""
    values = np.clip(np.asarray(image).astype(np.int64), 0, UINT16_MAX)
    return Image.fromarray(((values * UINT8_MAX + UINT16_MAX // 2) // UINT16_MAX).astype(np.uint8))


def decode_picture(path, mode=None, image_size=None):
    """The picture at ``path`` as uint8 (H, W) for mode "L" or (H, W, 3) for "RGB"; ``mode=None``: "L" when
    the picture is grey, else "RGB". Scaled per :func:`fit_image` when ``image_size`` is given."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)  # a decoded copy, upright
        grey = is_grey_mode(image.mode)
        mode = mode or ("L" if grey else "RGB")
        if image.mode.startswith("I"):
            image = _to_8bit_grey(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # Pillow's advice for palettes with transparency
        image = image.convert(mode)
        if image_size is not None:
            image = fit_image(image, image_size)
        return np.asarray(image)
    except DECODE_ERRORS as e:
        raise DataError(f"{path}: not a readable PNG or JPEG picture ({type(e).__name__}: {e})") from e


def decode_folder(directory, relpaths, image_size=None, grey=None):
    """uint8 (N, C, H, W) of the pictures ``relpaths`` in ``directory`` (module docstring)."""
    mode = None if grey is None else ("L" if grey else "RGB")
    pictures, first = [], None
    for rel in relpaths:
        path = os.path.join(directory, rel)
        picture = decode_picture(path, mode, image_size)
        if first is None:
            first = (path, picture.shape[:2])
        elif picture.shape[:2] != first[1]:
            (h0, w0), (h1, w1) = first[1], picture.shape[:2]
            raise DataError(f"{directory}: pictures differ in size: {first[0]} is {w0}×{h0}, {path} is {w1}×{h1} "
                            "(width × height); pass an image size (image_size=, --image-size) to scale them all "
                            "to one square size")
        pictures.append(picture)
    if any(p.ndim == 3 for p in pictures):  # grey=None and some colour: every grey picture becomes RGB too
        pictures = [p if p.ndim == 3 else np.repeat(p[:, :, None], 3, axis=2) for p in pictures]
        return np.ascontiguousarray(np.stack(pictures).transpose(0, 3, 1, 2))
    return np.stack(pictures)[:, None]


def read_folder(directory, image_size=None, grey=None):
    """(images uint8 (N, C, H, W), labels int64 (N,) or None, class names or None) of the whole folder, from
    its cache when the cache matches the folder, else decoded and cached."""
    directory = os.path.expanduser(os.fspath(directory))
    check_image_size(image_size)
    relpaths, labels, class_names = scan_folder(directory)
    key = fingerprint(directory, relpaths, image_size, grey)
    cached = read_cache(directory, image_size, grey, key)
    if cached is not None:
        return cached
    images = decode_folder(directory, relpaths, image_size, grey)
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    write_cache(directory, image_size, grey, key, images, labels, class_names)
    return images, labels, class_names


def load_folder(directory, split, image_size=None, grey=None, test_fraction=0.1, seed=0):
    """One split of the pictures in ``directory`` as an :class:`ImageSet` (see the module docstring)."""
    check_test_fraction(test_fraction)
    images, labels, class_names = read_folder(directory, image_size, grey)
    name = f"folder:{os.fspath(directory)}"
    keep = holdout_indices(len(images), split, test_fraction, seed, name)
    return ImageSet(images=images[keep], labels=None if labels is None else labels[keep], name=name,
                    split=split, class_names=class_names)
