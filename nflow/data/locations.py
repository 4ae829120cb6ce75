"""Where data sets are looked for and where nflow keeps what it derives from them.

A data set named by a bare word (``cifar10``, ``idx``) is read from, in order: the ``data_dir`` argument (the
CLI's ``--data-dir``), the directory in ``$NFLOW_DATA``, and, for a set nflow can download, a per-user cache
``$XDG_CACHE_HOME/nflow/<set>`` (default ``~/.cache/nflow/<set>``) -- the rule MNIST follows
(:func:`nflow.data.mnist.resolve_data_dir`).
"""
import os

from nflow.data.mnist import DATA_ENV_VAR

CACHE_ROOT_NAME = "nflow"


def user_cache_root():
    """``$XDG_CACHE_HOME/nflow``, or ``~/.cache/nflow`` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, CACHE_ROOT_NAME)


def resolve_dir(data_dir=None, cache_subdir=None):
    """``data_dir``, else ``$NFLOW_DATA``, else ``user_cache_root()/cache_subdir``; None when all three are
    absent (``cache_subdir=None``: a set nflow cannot download has no default place)."""
    if data_dir:
        return os.path.expanduser(os.fspath(data_dir))
    if os.environ.get(DATA_ENV_VAR):
        return os.environ[DATA_ENV_VAR]
    return os.path.join(user_cache_root(), cache_subdir) if cache_subdir else None
