"""Atomic file writes: a file at ``path`` is either the old one or the complete new one, never half of either.

The recipe (what databases and package managers do on POSIX):

1. write into a temporary file *in the same directory* (so the rename below stays within one file system),
2. flush Python's buffer and ``fsync`` the file, so its bytes are on disk before its name is,
3. ``os.replace`` it over ``path`` (an atomic rename on POSIX and Windows),
4. ``fsync`` the directory, so the rename itself survives a power cut.

If the writer raises at any point, the temporary file is removed and ``path`` is untouched.
Checkpoints, downloaded data files, PNGs and rewritten logs all go through :func:`atomic_write`.
"""
import os
import tempfile

TEMP_SUFFIX = ".tmp"


def atomic_write(path, write, mode="wb"):
    """Create or replace ``path`` with what ``write(fileobj)`` writes, atomically (see the module docstring).

    ``mode`` is ``"wb"`` (binary) or ``"w"`` (UTF-8 text). The temporary file is named
    ``.<name>.<random>.tmp`` in ``path``'s directory and never outlives this call.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=TEMP_SUFFIX)
    try:
        # mkstemp makes the file private (0600); the result should have the mode any new file of the user gets
        # (0666 less the umask), or keep the mode of the file it replaces.
        os.chmod(tmp, _mode_for(path))
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # BaseException: a KeyboardInterrupt halfway through must not leave the temporary file behind either.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def stale_temporaries(path):
    """The temporary files :func:`atomic_write` left beside ``path`` when its process was killed outright
    (SIGKILL, a power cut: no ``except`` clause runs). Only the owner of ``path`` may remove them, when it knows that
    no write to ``path`` is under way (a trainer at the start of a run it owns)."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.startswith(prefix) and n.endswith(TEMP_SUFFIX))


def _mode_for(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)   # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path, data):
    """``atomic_write`` for a bytes object already in memory."""
    atomic_write(path, lambda f: f.write(data))


def fsync_directory(directory):
    """Flush a directory's entries (a rename into it) to disk; a no-op where directories cannot be opened."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows, or a file system that refuses: the rename is still atomic, only less durable.
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
