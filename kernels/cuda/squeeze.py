"""Squeeze on the GPU: the CUDA kernels of ``squeeze.cu`` behind the signatures of the NumPy twin
``kernels/reference/squeeze.py`` (equation there and at the top of the ``.cu`` file).

forward (squeeze) and inverse (unsqueeze): one gather kernel each, one thread per output element. The backward
of each is the other applied to the gradient (a permutation's Jacobian is orthogonal), so there is no backward
kernel. CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference.squeeze import BLOCK, FACTOR, check_squeeze, check_unsqueeze

SOURCE = "squeeze.cu"


def _contiguous(a):
    import cupy as cp
    return cp, cp.ascontiguousarray(a)


def _launch(name, src, out, full_shape):
    """Run kernel ``name`` over ``out``; ``full_shape`` is the unsqueezed array's (N, C, H, W)."""
    if out.size:
        _, c, h, w = full_shape
        kern = loader.function(SOURCE, name, out.dtype)
        kern((loader.blocks(out.size),), (loader.THREADS,),
             (src, out, np.int64(c), np.int64(h), np.int64(w), np.int64(out.size)))
    return out


def forward(x):
    """(N, C, H, W) -> (N, 4C, H/2, W/2), y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]."""
    check_squeeze(x)
    cp, x = _contiguous(x)
    n, c, h, w = x.shape
    y = cp.empty((n, c * BLOCK, h // FACTOR, w // FACTOR), dtype=x.dtype)
    return _launch("squeeze_forward", x, y, x.shape)


def inverse(y):
    """(N, 4C, H, W) -> (N, C, 2H, 2W), the inverse permutation of :func:`forward`."""
    check_unsqueeze(y)
    cp, y = _contiguous(y)
    n, c4, h, w = y.shape
    x = cp.empty((n, c4 // BLOCK, h * FACTOR, w * FACTOR), dtype=y.dtype)
    return _launch("squeeze_inverse", y, x, x.shape)
