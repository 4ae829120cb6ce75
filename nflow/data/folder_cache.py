"""The decoded pictures of an image folder, kept in one ``.npz`` so that a folder is decoded only once.

Where: ``DIR/.nflow-cache-<size>-<mode>.npz`` when the folder is writable, else
``$XDG_CACHE_HOME/nflow/folders/<digest of DIR's absolute path>-<size>-<mode>.npz`` (default
``~/.cache/nflow/...``); ``<size>`` is the image size or ``native``, ``<mode>`` is ``L``, ``RGB`` or ``auto``
(grey=None). Both places are looked in, the folder first; when neither can be written, nothing is cached.

Key: a SHA-256 fingerprint of every picture's path inside DIR, byte size and modification time (ns), and of the
settings, stored inside the cache. A cache whose fingerprint differs (a file added, removed, renamed or
rewritten) or that cannot be read is ignored and written anew. Writes are atomic (:mod:`nflow.atomic`), so a
reader never sees half a cache; arrays are read back with ``allow_pickle=False``.
"""
import hashlib
import os
import zipfile

import numpy as np

from nflow.atomic import atomic_write
from nflow.data.locations import user_cache_root

CACHE_FORMAT = 1  # bump when what is stored, or how pictures are decoded, changes: old caches then miss
CACHE_PREFIX = ".nflow-cache"
USER_CACHE_SUBDIR = "folders"
PATH_DIGEST_CHARS = 16
NATIVE_SIZE_TAG = "native"
MODE_TAGS = {True: "L", False: "RGB", None: "auto"}


def fingerprint(directory, relpaths, image_size, grey):
    """SHA-256 (hex) of the settings and of each file's relative path, size and mtime, in the given order."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\t{image_size}\t{grey}\n".encode())
    for rel in relpaths:
        stat = os.stat(os.path.join(directory, rel))
        digest.update(f"{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def cache_paths(directory, image_size, grey):
    """(the cache's path inside ``directory``, its path in the per-user cache)."""
    tag = f"{NATIVE_SIZE_TAG if image_size is None else image_size}-{MODE_TAGS[grey]}"
    path_digest = hashlib.sha256(os.path.abspath(directory).encode("utf-8", "surrogateescape")).hexdigest()
    return (os.path.join(directory, f"{CACHE_PREFIX}-{tag}.npz"),
            os.path.join(user_cache_root(), USER_CACHE_SUBDIR, f"{path_digest[:PATH_DIGEST_CHARS]}-{tag}.npz"))


def _read_one(path, key):
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != key:
                return None
            labels = z["labels"] if bool(z["has_labels"]) else None
            class_names = tuple(str(c) for c in z["class_names"]) if labels is not None else None
            return z["images"], labels, class_names
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):  # absent, damaged, or another format
        return None


def read_cache(directory, image_size, grey, key):
    """(images, labels or None, class names or None) from a cache with fingerprint ``key``, or None."""
    for path in cache_paths(directory, image_size, grey):
        found = _read_one(path, key)
        if found is not None:
            return found
    return None


def write_cache(directory, image_size, grey, key, images, labels, class_names):
    """Store the decoded folder; returns the path written, or None when no place was writable."""
    arrays = dict(images=images, fingerprint=np.array(key), has_labels=np.array(labels is not None),
                  labels=np.zeros(0, np.int64) if labels is None else labels,
                  class_names=np.array(class_names or (), dtype=str))
    for path in cache_paths(directory, image_size, grey):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, lambda f: np.savez(f, **arrays))
            return path
        except OSError:  # a read-only folder or cache: try the next place, or go without
            continue
    return None
