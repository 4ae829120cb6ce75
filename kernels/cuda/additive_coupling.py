"""Additive coupling on the GPU: the CUDA kernels of ``additive_coupling.cu`` behind the signatures of the NumPy
twin ``kernels/reference/additive_coupling.py`` (equations there and at the top of the ``.cu`` file).

forward / inverse: one kernel, one pass writing all of the output (the shift added to, or subtracted from, the
transformed channel block; a copy elsewhere). forward_backward / inverse_backward: the full-size gradient is
the incoming one, returned as is (as the twin does); one kernel writes the shift's gradient, the block's slice
(negated for the inverse). CuPy is imported when a function here first runs, never at import.
"""
import operator

import numpy as np

from nflow.kernels.cuda import loader

SOURCE = "additive_coupling.cu"
KERNEL = "additive coupling kernel (cupy)"  # how every error message below names this kernel


def _cupy():
    import cupy
    return cupy


def _check_array(cp, a, name):
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{KERNEL}: {name} must be a CuPy array, got {type(a).__name__}")
    if a.dtype not in loader.CTYPES:
        raise TypeError(f"{KERNEL}: {name} must be float32 or float64, got {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"{KERNEL}: {name} must have shape (N, C, ...), got shape {a.shape}")


def _check_block(a, name, start, width):
    start, width = operator.index(start), operator.index(width)
    if start < 0 or width < 0 or start + width > a.shape[1]:
        raise ValueError(f"{KERNEL}: channels [{start}, {start + width}) must lie within the {a.shape[1]} "
                         f"channels of {name} (shape {a.shape})")
    return start, width


def _run_length(a):
    """Elements per channel, P."""
    return int(np.prod(a.shape[2:], dtype=np.int64))


def _map(a, name, shift, start, sign):
    cp = _cupy()
    _check_array(cp, a, name)
    _check_array(cp, shift, "shift")
    if shift.dtype != a.dtype:
        raise TypeError(f"{KERNEL}: shift is {shift.dtype} but {name} is {a.dtype}; both must share one float dtype")
    if shift.ndim != a.ndim or shift.shape[0] != a.shape[0] or shift.shape[2:] != a.shape[2:]:
        expected = (a.shape[0], "C_b") + tuple(a.shape[2:])
        raise ValueError(f"{KERNEL}: shift must have shape {expected} for {name} of shape {a.shape}, "
                         f"got {shift.shape}")
    start, _ = _check_block(a, name, start, shift.shape[1])
    a, shift = cp.ascontiguousarray(a), cp.ascontiguousarray(shift)
    out = cp.empty_like(a)
    if a.size:
        p = _run_length(a)
        kern = loader.function(SOURCE, "additive_coupling_map", a.dtype)
        kern((loader.blocks(a.size),), (loader.THREADS,),
             (a, shift, out, np.int64(a.size // a.shape[0]), np.int64(start * p), np.int64(shift.size // a.shape[0]),
              np.int64(a.size), np.int32(sign)))
    return out


def _slice(g, name, start, width, sign):
    cp = _cupy()
    _check_array(cp, g, name)
    start, width = _check_block(g, name, start, width)
    g = cp.ascontiguousarray(g)
    p = _run_length(g)
    out = cp.empty((g.shape[0], width) + tuple(g.shape[2:]), dtype=g.dtype)
    if out.size:
        kern = loader.function(SOURCE, "additive_coupling_block", g.dtype)
        kern((loader.blocks(out.size),), (loader.THREADS,),
             (g, out, np.int64(g.size // g.shape[0]), np.int64(start * p), np.int64(width * p), np.int64(out.size),
              np.int32(sign)))
    return out


def forward(x, shift, start):
    """y = x, with shift added to channels [start, start + C_b)."""
    return _map(x, "x", shift, start, 1)


def inverse(y, shift, start):
    """x = y, with shift subtracted from channels [start, start + C_b)."""
    return _map(y, "y", shift, start, -1)


def forward_backward(gy, start, width):
    """(∂L/∂x, ∂L/∂shift) = (gy, gy[:, start:start + width])."""
    return gy, _slice(gy, "gy", start, width, 1)


def inverse_backward(gx, start, width):
    """(∂L/∂y, ∂L/∂shift) = (gx, -gx[:, start:start + width])."""
    return gx, _slice(gx, "gx", start, width, -1)
