"""Bias + ReLU epilogue of a convolution as Numba kernels: the CPU twin of ``kernels/reference/bias_relu.py``.

    forward:   y[c, m] = max(z[c, m] + b[c], 0)   (in place in z)
    backward:  g[c, m] = gy[c, m] · [y[c, m] > 0],   gb[c] = Σ_m g[c, m]

What is fused: the NumPy twin makes two passes forward (add, then maximum) and, backward, builds a boolean
mask, multiplies, and reduces (three passes, two temporaries); here the forward is one read-modify-write pass
and the backward one pass that reads y and gy, writes g and accumulates gb (in float64) as it goes. Rows are
channels, so the bias is one register per row. ``prange`` over the channels, built serial
(``kernels/cpu/__init__.py``). The rows must be unit-stride; the wrappers copy anything else to C order.

``forward(..., split=True)`` cuts the channels over nflow's own threads (``kernels/cpu/threads.py``; the loops
release the GIL): for ``kernels/cpu/conv_jit.py``'s networks, which make no threaded BLAS call, so the second core
is free (their backward masks are ``kernels/cpu/grid_epilogue.py``'s). Beside
OpenBLAS's threads it loses (its idle worker spins on that core: benchmarks/RESULTS.md, issue 12), so the family's
default stays one thread.

NaN propagates as in ``numpy.maximum``: the test is ``v < 0`` (false for NaN), not ``v > 0``.
"""
import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL, threads
from nflow.kernels.reference.bias_relu import check_backward, check_forward

REDUCTION_FLAGS = {"reassoc"}  # lets LLVM vectorise the per-channel sum (see affine_coupling.py)


@njit(cache=True, parallel=PARALLEL, nogil=True, error_model="numpy")
def _forward(z, b):
    channels, m = z.shape
    for c in prange(channels):
        row, bias = z[c], b[c]
        zero = type(bias)(0.0)  # in the arrays' dtype: a float32 kernel never widens to float64
        for j in range(m):
            v = row[j] + bias
            row[j] = zero if v < zero else v


@njit(cache=True, parallel=PARALLEL, nogil=True, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _backward(y, gy, g, gb):
    channels, m = y.shape
    for c in prange(channels):
        yr, gyr, gr = y[c], gy[c], g[c]
        total = 0.0
        for j in range(m):
            gv = gyr[j]
            v = gv if yr[j] > 0 else gv * 0  # gy · [y > 0] exactly as the twin: NaN · 0 stays NaN
            gr[j] = v
            total += v
        gb[c] = total


@njit(cache=True, parallel=PARALLEL, nogil=True, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _backward_in_place(y, g, gb):
    # _backward with g = gy: one array read and written, so LLVM sees no possible overlap. Handing _backward the
    # same array twice makes its runtime overlap check fail and the loop run scalar (3x slower, measured).
    channels, m = y.shape
    for c in prange(channels):
        yr, gr = y[c], g[c]
        total = 0.0
        for j in range(m):
            gv = gr[j]
            v = gv if yr[j] > 0 else gv * 0
            gr[j] = v
            total += v
        gb[c] = total


def _run(kernel, channels, split, *arrays):
    """kernel(*rows of each array) over the channels: in one call, or cut over nflow's threads with ``split``."""
    if not split:
        kernel(*arrays)
        return
    threads.split(kernel, [tuple(a[lo:hi] for a in arrays) for lo, hi in threads.ranges(0, channels, 1)])


def forward(z, b, split=False):
    """y = max(z + b, 0), in place in z (which must be C-ordered); returns z."""
    check_forward(z, b)
    _run(_forward, z.shape[0], split, z, b)
    return z


def backward(y, gy, out=None):
    """(g, gb): g = gy · [y > 0], gb = Σ over the columns of g, written into ``out`` where given (gy itself
    allowed: the loop reads each element before writing it)."""
    check_backward(y, gy, out)
    y, gy = np.ascontiguousarray(y), np.ascontiguousarray(gy)
    gb = np.empty(y.shape[0], dtype=y.dtype)
    if out is gy:
        _backward_in_place(y, gy, gb)
        return gy, gb
    g = np.empty_like(gy) if out is None else out
    _backward(y, gy, g, gb)
    return g, gb
