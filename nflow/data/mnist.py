"""MNIST (LeCun, Cortes & Burges): 70 000 grey 28×28 digits in four IDX files, read without any framework.

Where the files are looked for, in order:

1. the ``data_dir`` argument (the CLI's ``--data-dir``),
2. the directory in the environment variable ``NFLOW_DATA``,
3. a per-user cache, ``$XDG_CACHE_HOME/nflow/mnist`` (default ``~/.cache/nflow/mnist``).

Each of the four files may be gzipped (``train-images-idx3-ubyte.gz``) or not (``train-images-idx3-ubyte``).
Missing files are downloaded into that directory from the public mirrors in :data:`MIRRORS` and checked
against the well-known MD5 checksums below before they are kept; without a network the error says where to
put the files and which variable or flag to set.

Checksums: :data:`GZ_MD5` are the MD5s of the original ``.gz`` files the mirrors serve (the values
torchvision and many others pin). Re-compressed copies (same content, different gzip header) are common, so a
file is also accepted when the MD5 of its *decompressed* IDX bytes matches :data:`IDX_MD5`, the well-known
MD5s of the uncompressed files; that is the check applied to files found on disk (``verify=True``).
"""
import hashlib
import http.client
import os
import urllib.error
import urllib.request

import numpy as np

from nflow.atomic import atomic_write_bytes
from nflow.data.idx import IDXError, decompress_if_gzip, parse_idx, read_file_bytes
from nflow.errors import NflowError

DATA_ENV_VAR = "NFLOW_DATA"
CACHE_SUBDIR = os.path.join("nflow", "mnist")

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT_S = 60

SPLITS = ("train", "test")
FILES = {  # (split, part) -> file name without ".gz"
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
GZ_MD5 = {  # MD5 of the original gzipped files, as served by the mirrors
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_MD5 = {  # MD5 of the decompressed IDX files, whatever gzip wrapped them
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SPLIT_SIZES = {"train": 60000, "test": 10000}
IMAGE_SIZE = 28
N_CLASSES = 10


class MNISTError(NflowError):
    """MNIST files are damaged, of the wrong shape, or fail their checksum."""


class MNISTNotFoundError(MNISTError, FileNotFoundError):
    """MNIST files are absent and could not be downloaded; the message says where to put them."""


def default_cache_dir():
    """``$XDG_CACHE_HOME/nflow/mnist``, or ``~/.cache/nflow/mnist`` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, CACHE_SUBDIR)


def resolve_data_dir(data_dir=None):
    """The directory MNIST is read from: ``data_dir``, else ``$NFLOW_DATA``, else :func:`default_cache_dir`."""
    if data_dir:
        return os.fspath(data_dir)
    return os.environ.get(DATA_ENV_VAR) or default_cache_dir()


def find_file(data_dir, base):
    """The path of ``base`` (plain) or ``base.gz`` in ``data_dir``, or None when neither exists."""
    for name in (base, base + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    return None


def md5_hex(data):
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _where_to_put_files(data_dir):
    names = ", ".join(b + ".gz" for b in FILES.values())
    return (f"Put the four MNIST files ({names}; gzipped or not) in {data_dir}, or in another directory named by "
            f"the environment variable {DATA_ENV_VAR} or the --data-dir flag (data_dir= in Python).")


def _accept_download(name, payload, gz_md5, idx_md5):
    """Check downloaded bytes against the known MD5s; return None when accepted, else the reason."""
    base = name[:-3] if name.endswith(".gz") else name
    if gz_md5.get(name) == md5_hex(payload):
        return None
    try:
        raw = decompress_if_gzip(payload, name)
    except IDXError as e:
        return str(e)
    got = md5_hex(raw)
    if idx_md5.get(base) == got:
        return None
    return (f"checksum mismatch: MD5 of the decompressed file is {got}, expected {idx_md5.get(base)} "
            "(a damaged download or a changed mirror)")


def download_mnist(data_dir=None, mirrors=None, files=None, gz_md5=None, idx_md5=None, timeout=DOWNLOAD_TIMEOUT_S):
    """Download the MNIST files missing from ``data_dir`` (resolved as in :func:`resolve_data_dir`).

    Each file is tried on every mirror in turn, checked against ``gz_md5`` / ``idx_md5`` (see the module
    docstring), and only then written, atomically, as ``<name>.gz``. Returns the list of paths written.
    Raises :class:`MNISTNotFoundError` listing every failed attempt when a file cannot be fetched.
    ``mirrors``, ``gz_md5`` and ``idx_md5`` default to :data:`MIRRORS`, :data:`GZ_MD5` and :data:`IDX_MD5`.
    """
    mirrors = MIRRORS if mirrors is None else mirrors
    gz_md5 = GZ_MD5 if gz_md5 is None else gz_md5
    idx_md5 = IDX_MD5 if idx_md5 is None else idx_md5
    data_dir = resolve_data_dir(data_dir)
    files = list(FILES.values()) if files is None else list(files)
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:
        raise MNISTNotFoundError(f"cannot create the MNIST directory {data_dir} ({e}). "
                                 + _where_to_put_files(data_dir)) from e
    written = []
    for base in files:
        if find_file(data_dir, base):
            continue
        name = base + ".gz"
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    payload = response.read()
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                failures.append(f"{url}: {e}")
                continue
            reason = _accept_download(name, payload, gz_md5, idx_md5)
            if reason is not None:
                failures.append(f"{url}: {reason}")
                continue
            path = os.path.join(data_dir, name)
            atomic_write_bytes(path, payload)
            written.append(path)
            break
        else:
            raise MNISTNotFoundError(f"MNIST file {name} is not in {data_dir} and could not be downloaded:\n  "
                                     + "\n  ".join(failures) + "\n" + _where_to_put_files(data_dir))
    return written


def _read_part(data_dir, split, part, verify):
    base = FILES[(split, part)]
    path = find_file(data_dir, base)
    if path is None:
        raise MNISTNotFoundError(f"MNIST file {base}(.gz) is not in {data_dir}. " + _where_to_put_files(data_dir))
    raw = read_file_bytes(path)
    if verify and md5_hex(raw) != IDX_MD5[base]:
        raise MNISTError(f"{path}: checksum mismatch (MD5 of the decompressed file is {md5_hex(raw)}, expected "
                         f"{IDX_MD5[base]}); the file is damaged or is not the original MNIST. Delete it to "
                         "download it again, or pass verify=False for another dataset in the same format.")
    return path, parse_idx(raw, name=path)


def load_mnist(split="train", data_dir=None, download=True, verify=True):
    """Load one split of MNIST: ``(images, labels)``.

    ``images``: uint8 array (N, 1, 28, 28), values 0..255; ``labels``: uint8 array (N,), values 0..9;
    N = 60 000 for ``"train"``, 10 000 for ``"test"``. With ``download=True`` missing files are fetched
    (:func:`download_mnist`). With ``verify=True`` each file's content must match the known MD5 and the
    split its known size; ``verify=False`` reads any IDX files of the same layout (e.g. Fashion-MNIST).
    Raises :class:`MNISTNotFoundError`, :class:`MNISTError`, or :class:`~nflow.data.idx.IDXError`.
    """
    if split not in SPLITS:
        raise ValueError(f"load_mnist: split must be one of {SPLITS}, got {split!r}")
    data_dir = resolve_data_dir(data_dir)
    missing = [b for (s, _), b in FILES.items() if s == split and find_file(data_dir, b) is None]
    if missing and download:
        download_mnist(data_dir, files=missing)
    images_path, images = _read_part(data_dir, split, "images", verify)
    labels_path, labels = _read_part(data_dir, split, "labels", verify)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise MNISTError(f"{images_path}: expected uint8 images of shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                         f"got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise MNISTError(f"{labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise MNISTError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if verify and len(images) != SPLIT_SIZES[split]:
        raise MNISTError(f"{images_path}: the {split} split has {SPLIT_SIZES[split]} images, this file {len(images)}")
    if labels.size and labels.max() >= N_CLASSES:
        raise MNISTError(f"{labels_path}: label {int(labels.max())} is out of range 0..{N_CLASSES - 1}")
    return np.ascontiguousarray(images[:, None]), labels
