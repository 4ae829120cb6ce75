"""im2col and col2im, the non-GEMM part of a stride-1 'same'-padded convolution with an odd k×k kernel, in the
channel-major layout of ``nflow/ops/conv.py`` (the batch folded into the GEMMs' long axis):

    im2col:  cols[(c, i, j), (n, h, w)] = x[n, c, h + i - p, w + j - p]   (0 outside the image; p = k // 2)
    col2im:  x[n, c, h', w'] = Σ_{i, j} cols[(c, i, j), (n, h' - i + p, w' - j + p)]   (its adjoint)

Shapes: x (N, C, H, W) <-> cols (C·k·k, N·H·W). Cost: k² copies of the input (im2col) and k² read-add-writes
(col2im), all memory traffic: cols is k² = 9 times the input. These are the NumPy twins of
``kernels/cpu/conv.py``, the same code as ``nflow/ops/conv.py``'s im2col/col2im.
"""
from nflow.backend import get_array_module


def channel_major(a):
    """(N, C, H, W) -> (C, N·H·W), contiguous."""
    xp = get_array_module(a)
    n, c, h, w = a.shape
    return xp.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(c, n * h * w)


def batch_major(a, shape):
    """The inverse of :func:`channel_major`: (C, N·H·W) -> (N, C, H, W) with ``shape`` = (N, C, H, W)."""
    xp = get_array_module(a)
    n, c, h, w = shape
    return xp.ascontiguousarray(a.reshape(c, n, h, w).transpose(1, 0, 2, 3))


def im2col(x, k):
    """(N, C, H, W) -> (C·k·k, N·H·W): every k×k zero-padded neighbourhood as a column, channel-major."""
    if k == 1:
        return channel_major(x)
    xp = get_array_module(x)
    n, c, h, w = x.shape
    p = k // 2
    xpad = xp.pad(x.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (p, p), (p, p)))  # (C, N, H+2p, W+2p)
    cols = xp.empty((c, k, k, n, h, w), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = xpad[:, :, i:i + h, j:j + w]
    return cols.reshape(c * k * k, n * h * w)


def col2im(cols, shape, k):
    """The adjoint of :func:`im2col`: (C·k·k, N·H·W) -> (N, C, H, W), overlapping entries summed."""
    if k == 1:
        return batch_major(cols, shape)
    xp = get_array_module(cols)
    n, c, h, w = shape
    p = k // 2
    cols = cols.reshape(c, k, k, n, h, w)
    xpad = xp.zeros((c, n, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + h, j:j + w] += cols[:, i, j]
    return xp.ascontiguousarray(xpad[:, :, p:p + h, p:p + w].transpose(1, 0, 2, 3))
