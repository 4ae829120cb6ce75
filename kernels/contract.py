"""The argument checks of the kernel families, written once.

Each family states its contract — dtypes, shapes, which arguments must match — in one ``check`` function in its
NumPy twin (``kernels/reference/<family>.py``), built from the helpers below. The twin, the Numba kernel and the
CUDA kernel all call that one function first, so every implementation refuses the same bad input with the same
sentence (family, argument, what was expected, what arrived), and a compiled loop never reads past an array
that was the wrong shape. The graph nodes do not check again.
"""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what every kernel is compiled for


def require_float(family, name, a):
    """``a`` is a float32 or float64 array."""
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{family} kernel: {name} must be float32 or float64, got {a.dtype}")


def require_ndim(family, name, a, ndim, layout):
    """``a`` has ``ndim`` axes (an int), or at least ``ndim[0]`` (a 1-tuple); ``layout`` says which, e.g. (N, C, ...)."""
    ok = a.ndim >= ndim[0] if isinstance(ndim, tuple) else a.ndim == ndim
    if not ok:
        raise ValueError(f"{family} kernel: {name} must have shape {layout}, got shape {a.shape}")


def require_like(family, name, a, like_name, like, shape=None):
    """``a`` has the dtype of ``like`` and the shape ``shape`` (default: the shape of ``like``)."""
    if a.dtype != like.dtype:
        raise TypeError(f"{family} kernel: {name} is {a.dtype} but {like_name} is {like.dtype}; "
                        "all arrays must share one float dtype")
    expected = tuple(like.shape) if shape is None else tuple(shape)
    if tuple(a.shape) != expected:
        raise ValueError(f"{family} kernel: {name} must have shape {expected} for {like_name} of shape "
                         f"{tuple(like.shape)}, got {tuple(a.shape)}")


def require_per_sample(family, name, a, like_name, like):
    """``a`` is one value per sample of ``like``: shape (N,), ``like``'s dtype (the log-det's gradient)."""
    require_like(family, name, a, like_name, like, shape=(like.shape[0],))


def require_c_order(family, name, a):
    """``a`` is C-ordered (it is written in place, so no contiguous copy can stand in for it)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"{family} kernel: {name} is updated in place and must be C-ordered")
