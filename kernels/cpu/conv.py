"""im2col and col2im as Numba kernels: the CPU twin of ``kernels/reference/conv.py`` (channel-major layout
(C, N, H, W) of ``nflow/ops/conv.py``).

Not dispatched: measured against the NumPy twin at Glow's and RealNVP's sizes (``python -m benchmarks.kernels``),
these loops lose (im2col 1.5-2.6x slower; col2im within ±15%): NumPy's pad + k² strided block copies run at
memcpy speed, while the loops here move one image row (14-28 elements) at a time. ``kernels/dispatch.py``
therefore runs the twin on the ``numba`` backend; the kernels stay as the loop form of the same arithmetic,
tested against the twin, and as the baseline of that benchmark.

    im2col:  cols[(c, i, j), (n, h, w)] = x[c, n, h + i - p, w + j - p]   (0 outside the image; p = k // 2)
    col2im:  x[c, n, h', w'] = Σ_{i, j} cols[(c, i, j), (n, h' - i + p, w' - j + p)]   (its adjoint)

What is fused: the NumPy twin pads the input into a new buffer (one extra copy) and then makes k² strided
copies; here each row segment of ``cols`` is written once, straight from the unpadded input, its zero border in
the same pass. The input may be any strided (C, N, H, W) view (an NCHW array through ``transpose(1, 0, 2, 3)``):
only the last axis has to be unit-stride for the inner copy to vectorise, and it is in both layouts, so nothing
is copied to C order first (Numba compiles one more specialisation for such views). col2im in NumPy zero-fills
a padded buffer, makes k² read-add-write passes over it and copies the interior out; here each input row is
zeroed and then receives its k² taps read from ``cols``, written in place. ``prange`` over the channels, built
serial (``kernels/cpu/__init__.py``).
"""
import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL


@njit(cache=True, parallel=PARALLEL)
def _im2col(x, k, cols):
    channels, n_samples, height, width = x.shape
    p = k // 2
    for c in prange(channels):
        for i in range(k):
            for j in range(k):
                row = cols[(c * k + i) * k + j]
                # columns w whose source w + j - p lies inside [0, width): the rest is the zero border
                lo, hi = max(0, p - j), min(width, width + p - j)
                for n in range(n_samples):
                    for h in range(height):
                        out = row[(n * height + h) * width:(n * height + h + 1) * width]
                        hs = h + i - p
                        if hs < 0 or hs >= height:
                            out[:] = 0
                            continue
                        line = x[c, n, hs]
                        for w in range(lo):
                            out[w] = 0
                        for w in range(lo, hi):
                            out[w] = line[w + j - p]
                        for w in range(hi, width):
                            out[w] = 0


@njit(cache=True, parallel=PARALLEL)
def _col2im(cols, k, x):
    channels, n_samples, height, width = x.shape
    p = k // 2
    for c in prange(channels):
        x[c] = 0
        for i in range(k):
            for j in range(k):
                row = cols[(c * k + i) * k + j]
                lo, hi = max(0, p - j), min(width, width + p - j)
                for n in range(n_samples):
                    # tap (i, j) at output pixel (h, w) sends its value to input pixel (h + i - p, w + j - p)
                    for h in range(max(0, p - i), min(height, height + p - i)):
                        line = x[c, n, h + i - p]
                        src = row[(n * height + h) * width:(n * height + h + 1) * width]
                        for w in range(lo, hi):
                            line[w + j - p] += src[w]


def _check_k(k):
    if k < 1 or k % 2 == 0:
        raise ValueError(f"im2col/col2im kernel: k must be a positive odd kernel size, got {k}")


def im2col(x, k):
    """(C, N, H, W), any strides -> (C·k·k, N·H·W), C-ordered."""
    _check_k(k)
    if x.ndim != 4 or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"im2col kernel: needs a float32/float64 (C, N, H, W) array, got {x.dtype} {x.shape}")
    c, n, h, w = x.shape
    if k == 1:
        return np.ascontiguousarray(x).reshape(c, n * h * w)
    cols = np.empty((c * k * k, n * h * w), dtype=x.dtype)
    _im2col(x, k, cols)
    return cols


def col2im(cols, shape, k):
    """(C·k·k, N·H·W) -> (C, N, H, W) with ``shape`` = (C, N, H, W), overlapping taps summed; C-ordered."""
    _check_k(k)
    c, n, h, w = shape
    if cols.shape != (c * k * k, n * h * w) or cols.dtype not in (np.float32, np.float64):
        raise TypeError(f"col2im kernel: needs a float32/float64 array of shape {(c * k * k, n * h * w)}, "
                        f"got {cols.dtype} {cols.shape}")
    if k == 1:
        return np.ascontiguousarray(cols).reshape(shape)
    x = np.empty((c, n, h, w), dtype=cols.dtype)
    _col2im(np.ascontiguousarray(cols), k, x)
    return x
