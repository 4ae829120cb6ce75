"""CIFAR-10 (Krizhevsky 2009): 60 000 colour 32×32 pictures in ten classes, from its binary version (no pickle).

Files: ``data_batch_1.bin`` … ``data_batch_5.bin`` (train, 50 000) and ``test_batch.bin`` (test, 10 000). Each
is a run of 3073-byte records: one label byte (0..9, :data:`CLASS_NAMES`), then 3072 pixel bytes -- the 1024
red values, then 1024 green, then 1024 blue, each plane a 32×32 picture row by row. So record ``k``'s byte
``1 + c·1024 + y·32 + x`` is pixel (c, y, x), and a file reshaped to (N, 3073) gives images (N, 3, 32, 32)
directly.

Where the files are looked for: in the directory of :func:`nflow.data.locations.resolve_dir` (``data_dir``,
else ``$NFLOW_DATA``, else ``$XDG_CACHE_HOME/nflow/cifar10``), each either there or in its
``cifar-10-batches-bin/`` sub-folder (the official tarball's layout). Missing files are downloaded, as MNIST's
are: :data:`URL` is fetched into a temporary file, its MD5 checked against :data:`TARBALL_MD5`, and only then are
the six ``.bin`` members written, each atomically, into ``cifar-10-batches-bin/``; the tarball is deleted.
A member is taken only when its name is exactly ``cifar-10-batches-bin/<one of the six>``, and it is written
under that fixed name: no path from the archive ever becomes a path on disk, so no member can write outside
the directory (stricter than tarfile's ``filter="data"``, which would still unpack every other member).
"""
import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib

import numpy as np

from nflow.atomic import atomic_write_bytes
from nflow.data.errors import DataError, DataNotFoundError
from nflow.data.image_set import RGB_CHANNELS
from nflow.data.locations import resolve_dir
from nflow.data.mnist import DATA_ENV_VAR, DOWNLOAD_TIMEOUT_S

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
TARBALL_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
TARBALL_DIR = "cifar-10-batches-bin"
CACHE_SUBDIR = "cifar10"
FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
IMAGE_SIZE = 32
LABEL_BYTES = 1
RECORD_BYTES = LABEL_BYTES + RGB_CHANNELS * IMAGE_SIZE * IMAGE_SIZE  # 3073
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DOWNLOAD_CHUNK_BYTES = 1 << 20


def find_batch(data_dir, name):
    """The path of ``name`` in ``data_dir`` or its ``cifar-10-batches-bin/``, or None when in neither."""
    for folder in (data_dir, os.path.join(data_dir, TARBALL_DIR)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _where_to_put_files(data_dir):
    names = ", ".join(FILES["train"] + FILES["test"])
    return (f"Put the CIFAR-10 binary files ({names}; from {URL}) in {data_dir} or its {TARBALL_DIR}/ "
            f"sub-folder, or in another directory named by the environment variable {DATA_ENV_VAR} or the "
            "--data-dir flag (data_dir= in Python).")


def _fetch(url, destination, timeout):
    """Stream ``url`` into the open binary file ``destination``; returns the MD5 (hex) of what came."""
    md5 = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
            md5.update(chunk)
            destination.write(chunk)
    return md5.hexdigest()


def _unpack(tarball, data_dir):
    """Write the six batch files of the tarball at ``tarball`` into ``data_dir/cifar-10-batches-bin/``
    (see the module docstring for why this is safe); returns the paths written."""
    wanted = {f"{TARBALL_DIR}/{name}": name for name in FILES["train"] + FILES["test"]}
    out_dir = os.path.join(data_dir, TARBALL_DIR)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.isfile() and member.name in wanted:
                path = os.path.join(out_dir, wanted.pop(member.name))
                atomic_write_bytes(path, archive.extractfile(member).read())
                written.append(path)
    if wanted:
        raise DataError(f"{tarball}: the archive lacks {', '.join(sorted(wanted))}")
    return written


def download_cifar10(data_dir=None, url=None, md5=None, timeout=DOWNLOAD_TIMEOUT_S):
    """Download and unpack the CIFAR-10 binary tarball into ``data_dir`` (module docstring); returns the paths
    written. ``url`` and ``md5`` default to :data:`URL` and :data:`TARBALL_MD5`. Raises
    :class:`DataNotFoundError` saying what failed and where to put the files by hand."""
    url = URL if url is None else url
    md5 = TARBALL_MD5 if md5 is None else md5
    data_dir = resolve_dir(data_dir, CACHE_SUBDIR)
    try:
        os.makedirs(data_dir, exist_ok=True)
        fd, tarball = tempfile.mkstemp(dir=data_dir, prefix=".cifar-10-binary.", suffix=".tar.gz.tmp")
    except OSError as e:
        raise DataNotFoundError(f"cannot create a file in the CIFAR-10 directory {data_dir} ({e}). "
                                + _where_to_put_files(data_dir)) from e
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                got = _fetch(url, f, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            raise DataNotFoundError(f"CIFAR-10 is not in {data_dir} and could not be downloaded:\n  {url}: {e}\n"
                                    + _where_to_put_files(data_dir)) from e
        if got != md5:
            raise DataNotFoundError(f"CIFAR-10 is not in {data_dir} and could not be downloaded:\n  {url}: checksum "
                                    f"mismatch: MD5 {got}, expected {md5} (a damaged download or a changed "
                                    "file)\n" + _where_to_put_files(data_dir))
        try:
            return _unpack(tarball, data_dir)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise DataError(f"{url}: the downloaded archive cannot be unpacked into {data_dir} "
                            f"({type(e).__name__}: {e}). "
                            + _where_to_put_files(data_dir)) from e
    finally:
        try:
            os.unlink(tarball)
        except FileNotFoundError:
            pass


def read_batch(path):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one CIFAR-10 binary file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise DataError(f"{path}: {len(raw)} bytes is not a whole number of CIFAR-10 records of {RECORD_BYTES} "
                        f"bytes (1 label + {RECORD_BYTES - LABEL_BYTES} pixels); the file is truncated or not "
                        "CIFAR-10's binary version")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CLASS_NAMES):
        k = int(np.argmax(labels >= len(CLASS_NAMES)))
        raise DataError(f"{path}: record {k} has label {labels[k]}, expected 0..{len(CLASS_NAMES) - 1}; "
                        "not CIFAR-10's binary version (CIFAR-100's records are laid out differently)")
    images = records[:, LABEL_BYTES:].reshape(-1, RGB_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    return images, labels


def load_cifar10(split="train", data_dir=None, download=True):
    """One split of CIFAR-10: ``(images, labels)``, uint8 (N, 3, 32, 32) and int64 (N,).

    With ``download=True`` missing files are fetched (:func:`download_cifar10`); otherwise, or when that fails,
    :class:`DataNotFoundError` says where to put them.
    """
    if split not in FILES:
        raise ValueError(f"load_cifar10: split must be one of {tuple(FILES)}, got {split!r}")
    data_dir = resolve_dir(data_dir, CACHE_SUBDIR)
    missing = [name for name in FILES[split] if find_batch(data_dir, name) is None]
    if missing and download:
        download_cifar10(data_dir)
        missing = [name for name in FILES[split] if find_batch(data_dir, name) is None]
    if missing:
        raise DataNotFoundError(f"CIFAR-10 file{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                f"{'are' if len(missing) > 1 else 'is'} not in {data_dir}. "
                                + _where_to_put_files(data_dir))
    parts = [read_batch(find_batch(data_dir, name)) for name in FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
