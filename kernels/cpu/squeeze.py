"""Squeeze and unsqueeze as Numba kernels: the CPU twin of ``kernels/reference/squeeze.py``.

The permutation (RealNVP, Dinh et al. 2017, §3.6; Glow's ``squeeze2d``; copied from the NumPy twin, which is
the reference these kernels are tested against):

    squeeze:    y[n, 4·c + 2·di + dj, i, j] = x[n, c, 2·i + di, 2·j + dj]        (N, C, H, W) -> (N, 4C, H/2, W/2)
    unsqueeze:  the same equation read the other way, x from y                  (N, 4C, H, W) -> (N, C, 2H, 2W)

log|det| = 0. Backward: the Jacobian is a permutation matrix, whose transpose is its inverse, so the gradient
of squeeze is unsqueeze of the incoming gradient and the gradient of unsqueeze is squeeze; the graph nodes
(``nflow/flows/squeeze_nodes.py``) call :func:`inverse` / :func:`forward` on the gradient, no separate kernel.

Each function is one pass written as plain loops: every output element is written once, from the input
element it comes from, row by row (see the comment above the kernels for the loop order). NumPy's twin does
the same work through a transposed 6-D view that ``reshape`` copies with a generic strided loop. ``prange``
over the batch, built serial (see ``kernels/cpu/__init__.py``).

Arrays: 4-D, float32 or float64; H and W even for :func:`forward`, C a multiple of 4 for :func:`inverse`.
Non-contiguous inputs are copied to C order by the wrappers first. ``NUMBA_DISABLE_JIT=1`` runs the loops as
plain Python.
"""
import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL
from nflow.kernels.reference.squeeze import BLOCK, FACTOR, check_squeeze, check_unsqueeze



# --------------------------------------------------------------------------------------------- kernels
# error_model="numpy", as every kernel of this folder: no Python exception checks inside the loops.
# Both kernels walk the (unsqueezed) rows x[n, c, 2i + di, :] one at a time. A row holds, interleaved, row i of
# two output planes, dj = 0 (even elements) and dj = 1 (odd ones); the two offsets are written out (FACTOR = 2)
# so the inner loop reads (or writes) the row once, contiguously, which LLVM vectorises as an interleaved
# access. A loop over dj with a stride-2 inner loop instead was measured 1.5-2x slower at Glow's sizes.
@njit(cache=True, parallel=PARALLEL, error_model="numpy")
def _squeeze(x, y):
    """y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]: each input row split into two output rows."""
    n_samples, channels, height, width = x.shape
    half_h, half_w = height // FACTOR, width // FACTOR
    for n in prange(n_samples):
        for c in range(channels):
            for i in range(half_h):
                for di in range(FACTOR):
                    src = x[n, c, FACTOR * i + di]
                    even, odd = y[n, c * BLOCK + FACTOR * di, i], y[n, c * BLOCK + FACTOR * di + 1, i]
                    for j in range(half_w):
                        even[j] = src[FACTOR * j]
                        odd[j] = src[FACTOR * j + 1]


@njit(cache=True, parallel=PARALLEL, error_model="numpy")
def _unsqueeze(y, x):
    """x[n, c, 2i + di, 2j + dj] = y[n, 4c + 2di + dj, i, j]: each output row woven from two input rows."""
    n_samples, channels, height, width = x.shape
    half_h, half_w = height // FACTOR, width // FACTOR
    for n in prange(n_samples):
        for c in range(channels):
            for i in range(half_h):
                for di in range(FACTOR):
                    dst = x[n, c, FACTOR * i + di]
                    even, odd = y[n, c * BLOCK + FACTOR * di, i], y[n, c * BLOCK + FACTOR * di + 1, i]
                    for j in range(half_w):
                        dst[FACTOR * j] = even[j]
                        dst[FACTOR * j + 1] = odd[j]


# --------------------------------------------------------------------------------------------- wrappers
def forward(x):
    """(N, C, H, W) -> (N, 4C, H/2, W/2), y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]."""
    check_squeeze(x)
    n, c, h, w = x.shape
    y = np.empty((n, c * BLOCK, h // FACTOR, w // FACTOR), dtype=x.dtype)
    _squeeze(np.ascontiguousarray(x), y)
    return y


def inverse(y):
    """(N, 4C, H, W) -> (N, C, 2H, 2W), the inverse permutation of :func:`forward`."""
    check_unsqueeze(y)
    n, c4, h, w = y.shape
    x = np.empty((n, c4 // BLOCK, h * FACTOR, w * FACTOR), dtype=y.dtype)
    _unsqueeze(np.ascontiguousarray(y), x)
    return x
