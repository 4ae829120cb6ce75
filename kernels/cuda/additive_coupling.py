"""Additive coupling on the GPU: the CUDA kernels of ``additive_coupling.cu`` behind the signatures of the NumPy
twin ``kernels/reference/additive_coupling.py`` (equations there and at the top of the ``.cu`` file).

forward / inverse: one kernel, one pass writing all of the output (the shift added to, or subtracted from, the
transformed channel block; a copy elsewhere). forward_backward / inverse_backward: the full-size gradient is
the incoming one, returned as is (as the twin does); one kernel writes the shift's gradient, the block's slice
(negated for the inverse). CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference.additive_coupling import check, check_block

SOURCE = "additive_coupling.cu"


def _cupy():
    import cupy
    return cupy


def _run_length(a):
    """Elements per channel, P."""
    return int(np.prod(a.shape[2:], dtype=np.int64))


def _map(a, name, shift, start, sign):
    cp = _cupy()
    start = check(name, a, shift, start)
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
    start, width = check_block(name, g, start, width)
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
