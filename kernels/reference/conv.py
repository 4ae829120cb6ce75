"""im2col and col2im, the non-GEMM part of a stride-1 'same'-padded convolution with an odd k×k kernel.

    im2col:  cols[n, (c, i, j), (h, w)] = x[n, c, h + i - p, w + j - p]   (0 outside the image; p = k // 2)
    col2im:  x[n, c, h', w'] = Σ_{i, j} cols[n, (c, i, j), (h' - i + p, w' - j + p)]   (its adjoint)

Shapes: x (N, C, H, W) <-> cols (N, C·k·k, H·W), the layout ``nflow/ops/conv.py`` multiplies by the
(C_out, C·k·k) weight matrix. Cost: k² copies of the input (im2col) and k² read-add-writes (col2im), all
memory traffic: cols is k² = 9 times the input. These are the NumPy twins of ``kernels/cpu/conv.py``.
"""
from nflow.backend import get_array_module


def im2col(x, k):
    """(N, C, H, W) -> (N, C·k·k, H·W): every k×k zero-padded neighbourhood as a column."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    p = k // 2
    xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = xp.empty((n, c, k, k, h, w), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xpad[:, :, i:i + h, j:j + w]
    return cols.reshape(n, c * k * k, h * w)


def col2im(cols, shape, k):
    """The adjoint of :func:`im2col`: (N, C·k·k, H·W) -> (N, C, H, W), overlapping entries summed."""
    xp = get_array_module(cols)
    n, c, h, w = shape
    p = k // 2
    cols = cols.reshape(n, c, k, k, h, w)
    xpad = xp.zeros((n, c, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + h, j:j + w] += cols[:, :, i, j]
    return xpad[:, :, p:p + h, p:p + w]  # a view into the padded buffer, as nflow/ops/conv.py returns it
