"""Squeeze: fold each 2×2 spatial block into 4 channels, (N, C, H, W) -> (N, 4C, H/2, W/2) (RealNVP §3.6).

RealNVP (Dinh et al. 2017, §3.6) and Glow (Kingma & Dhariwal 2018, ``squeeze2d`` in ``glow/tfops.py``) trade
spatial size for channels so that the next couplings can mix neighbouring pixels. With input channel c and
offset (di, dj) ∈ {0, 1}² inside the block at (i, j):

    y[n, 4·c + 2·di + dj, i, j] = x[n, c, 2·i + di, 2·j + dj]

which is ``x.reshape(N, C, H/2, 2, W/2, 2).transpose(0, 1, 3, 5, 2, 4)`` made C-ordered. It is a permutation
of the elements, so log|det| = 0, and its inverse ("unsqueeze") is the inverse permutation.

Gradients: a permutation's Jacobian is a permutation matrix P, whose transpose is its inverse; so the backward
of squeeze is unsqueeze applied to the gradient (∂L/∂x = Pᵀ gy = P⁻¹ gy) and the backward of unsqueeze is
squeeze. No separate backward functions exist: the graph nodes call ``inverse``/``forward`` on the gradient.

Arrays: 4-D, float32 or float64; H and W even for ``forward``, C a multiple of 4 for ``inverse`` (the contract
every implementation checks first, :func:`check_squeeze` and :func:`check_unsqueeze`).
Cost: O(N·C·H·W), one copy, memory-bound.
"""
from nflow.kernels.contract import require_float, require_ndim

FAMILY = "squeeze"
FACTOR = 2                  # side of the folded spatial block
BLOCK = FACTOR * FACTOR     # channels each input channel becomes


def _check_4d(name, a):
    require_float(FAMILY, name, a)
    require_ndim(FAMILY, name, a, 4, "(N, C, H, W)")


def check_squeeze(x):
    """x: float32/float64 (N, C, H, W) with H and W even."""
    _check_4d("x", x)
    if x.shape[2] % FACTOR or x.shape[3] % FACTOR:
        raise ValueError(f"{FAMILY} kernel: x must have even H and W, got shape {tuple(x.shape)}")


def check_unsqueeze(y):
    """y: float32/float64 (N, C, H, W) with C a multiple of 4."""
    _check_4d("y", y)
    if y.shape[1] % BLOCK:
        raise ValueError(f"{FAMILY} kernel: y must have a multiple of {BLOCK} channels, got shape {tuple(y.shape)}")


def forward(x):
    """(N, C, H, W) -> (N, 4C, H/2, W/2), y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]."""
    check_squeeze(x)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // FACTOR, FACTOR, w // FACTOR, FACTOR).transpose(0, 1, 3, 5, 2, 4)
    # a copy, since the transposed view is not C-ordered (except for H = W = 2, where the order is unchanged
    # and NumPy returns a view, as the Reshape op of the graph does)
    return y.reshape(n, c * BLOCK, h // FACTOR, w // FACTOR)


def inverse(y):
    """(N, 4C, H, W) -> (N, C, 2H, 2W), the inverse permutation of :func:`forward`."""
    check_unsqueeze(y)
    n, c4, h, w = y.shape
    x = y.reshape(n, c4 // BLOCK, FACTOR, FACTOR, h, w).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c4 // BLOCK, h * FACTOR, w * FACTOR)
