"""Bias + ReLU epilogue on the GPU: the CUDA kernels of ``bias_relu.cu`` behind the signatures of the NumPy twin
``kernels/reference/bias_relu.py`` (equations there and at the top of the ``.cu`` file).

forward: one element-wise kernel, in place; backward: one kernel writing g and the per-channel sums (block
reduction, one ``atomicAdd`` per block). CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference.bias_relu import check_backward, check_forward

SOURCE = "bias_relu.cu"


def forward(z, b):
    """y = max(z + b, 0), in place in z (which must be C-ordered); returns z."""
    import cupy as cp
    check_forward(z, b)
    kern = loader.function(SOURCE, "bias_relu_forward", z.dtype)
    kern((loader.blocks(z.size),), (loader.THREADS,), (z, cp.ascontiguousarray(b), np.int64(z.shape[1]),
                                                       np.int64(z.size)))
    return z


def backward(y, gy, out=None):
    """(g, gb): g = gy · [y > 0], gb = Σ over the columns of g, written into ``out`` where given (gy itself
    allowed: each thread reads its elements before writing them, and the kernel does not declare the two
    pointers ``__restrict__``)."""
    import cupy as cp
    check_backward(y, gy, out)
    if y.shape[0] > loader.MAX_BLOCKS:
        raise ValueError(f"bias-relu kernel (cupy): one grid row per channel, at most {loader.MAX_BLOCKS}, "
                         f"got {y.shape[0]}")
    y, gy = cp.ascontiguousarray(y), cp.ascontiguousarray(gy)
    g = cp.empty_like(gy) if out is None else out
    gb = cp.zeros((y.shape[0],), dtype=y.dtype)
    kern = loader.function(SOURCE, "bias_relu_backward", y.dtype)
    grid = (min(loader.blocks(y.shape[1]), 1024), y.shape[0])
    kern(grid, (loader.THREADS,), (y, gy, g, gb, np.int64(y.shape[1])))
    return g, gb
