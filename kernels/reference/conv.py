"""im2col and col2im, the non-GEMM part of a stride-1 'same'-padded convolution with an odd k×k kernel, in the
channel-major layout ``(C, N, H, W)`` of ``nflow/ops/conv.py`` (the batch folded into the GEMMs' long axis):

    im2col:  cols[(c, i, j), (n, h, w)] = x[c, n, h + i - p, w + j - p]   (0 outside the image; p = k // 2)
    col2im:  x[c, n, h', w'] = Σ_{i, j} cols[(c, i, j), (n, h' - i + p, w' - j + p)]   (its adjoint)

Shapes: x (C, N, H, W) <-> cols (C·k·k, N·H·W). ``im2col`` accepts any strided view of that shape (an NCHW array
seen through ``x.transpose(1, 0, 2, 3)`` is read in place, never copied first); ``col2im`` returns a new
C-ordered (C, N, H, W) array. Cost: k² copies of the input (im2col) and k² read-add-writes (col2im), all memory
traffic: cols is k² = 9 times the input. These are the NumPy twins of ``kernels/cpu/conv.py``.
"""
from nflow.backend import get_array_module


def channel_major(a):
    """(N, C, H, W) -> (C, N, H, W), C-ordered (one transposing copy)."""
    return get_array_module(a).ascontiguousarray(a.transpose(1, 0, 2, 3))


def batch_major(a):
    """(C, N, H, W) -> (N, C, H, W), C-ordered: the inverse of :func:`channel_major` (the same transposition)."""
    return channel_major(a)


def im2col(x, k):
    """(C, N, H, W) -> (C·k·k, N·H·W): every k×k zero-padded neighbourhood as a column."""
    xp = get_array_module(x)
    c, n, h, w = x.shape
    if k == 1:
        return xp.ascontiguousarray(x).reshape(c, n * h * w)
    p = k // 2
    xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))  # (C, N, H+2p, W+2p)
    cols = xp.empty((c, k, k, n, h, w), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = xpad[:, :, i:i + h, j:j + w]
    return cols.reshape(c * k * k, n * h * w)


def col2im(cols, shape, k):
    """The adjoint of :func:`im2col`: (C·k·k, N·H·W) -> (C, N, H, W) with ``shape`` = (C, N, H, W), overlapping
    entries summed."""
    xp = get_array_module(cols)
    c, n, h, w = shape
    if k == 1:
        return xp.ascontiguousarray(cols).reshape(shape)
    p = k // 2
    cols = cols.reshape(c, k, k, n, h, w)
    xpad = xp.zeros((c, n, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + h, j:j + w] += cols[:, i, j]
    return xp.ascontiguousarray(xpad[:, :, p:p + h, p:p + w])
