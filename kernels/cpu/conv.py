"""im2col and col2im as Numba kernels: the CPU twin of ``kernels/reference/conv.py``.

    im2col:  cols[n, (c, i, j), (h, w)] = x[n, c, h + i - p, w + j - p]   (0 outside the image; p = k // 2)
    col2im:  x[n, c, h', w'] = Σ_{i, j} cols[n, (c, i, j), (h' - i + p, w' - j + p)]   (its adjoint)

What is fused: the NumPy twin pads the input into a new buffer (one extra copy) and then makes k² strided
copies; here each output row of ``cols`` is written once, straight from the unpadded input, with the zero
border written in the same pass (no padded copy). col2im in NumPy zero-fills a padded buffer, makes k²
read-add-write passes over it and returns a view; here each input pixel is produced once, as the sum of its
k² taps read from ``cols``, and written once (a C-ordered result, no padded buffer). ``prange`` over (n, c).
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _im2col(x, k, cols):
    n_samples, channels, height, width = x.shape
    p = k // 2
    for nc in prange(n_samples * channels):
        n, c = nc // channels, nc % channels
        src = x[n, c]
        for i in range(k):
            for j in range(k):
                row = cols[n, (c * k + i) * k + j]
                for h in range(height):
                    hs = h + i - p
                    out = row[h * width:(h + 1) * width]
                    if hs < 0 or hs >= height:
                        out[:] = 0
                        continue
                    line = src[hs]
                    # columns whose source w + j - p falls outside [0, width) are the zero border
                    lo, hi = max(0, p - j), min(width, width + p - j)
                    for w in range(lo):
                        out[w] = 0
                    for w in range(lo, hi):
                        out[w] = line[w + j - p]
                    for w in range(hi, width):
                        out[w] = 0


@njit(cache=True, parallel=True)
def _col2im(cols, k, x):
    n_samples, channels, height, width = x.shape
    p = k // 2
    for nc in prange(n_samples * channels):
        n, c = nc // channels, nc % channels
        dst = x[n, c]
        dst[:] = 0
        for i in range(k):
            for j in range(k):
                row = cols[n, (c * k + i) * k + j]
                # tap (i, j) of output pixel (h, w) sends its value to input pixel (h + i - p, w + j - p)
                for h in range(max(0, p - i), min(height, height + p - i)):
                    line = dst[h + i - p]
                    src = row[h * width:(h + 1) * width]
                    lo, hi = max(0, p - j), min(width, width + p - j)
                    for w in range(lo, hi):
                        line[w + j - p] += src[w]


def _check_k(k):
    if k < 1 or k % 2 == 0:
        raise ValueError(f"im2col/col2im kernel: k must be a positive odd kernel size, got {k}")


def im2col(x, k):
    """(N, C, H, W) -> (N, C·k·k, H·W), C-ordered."""
    _check_k(k)
    if x.ndim != 4 or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"im2col kernel: needs a float32/float64 (N, C, H, W) array, got {x.dtype} {x.shape}")
    n, c, h, w = x.shape
    cols = np.empty((n, c * k * k, h * w), dtype=x.dtype)
    _im2col(np.ascontiguousarray(x), k, cols)
    return cols


def col2im(cols, shape, k):
    """(N, C·k·k, H·W) -> (N, C, H, W), overlapping taps summed; C-ordered."""
    _check_k(k)
    n, c, h, w = shape
    if cols.shape != (n, c * k * k, h * w) or cols.dtype not in (np.float32, np.float64):
        raise TypeError(f"col2im kernel: needs a float32/float64 array of shape {(n, c * k * k, h * w)}, "
                        f"got {cols.dtype} {cols.shape}")
    x = np.empty((n, c, h, w), dtype=cols.dtype)
    _col2im(np.ascontiguousarray(cols), k, x)
    return x
