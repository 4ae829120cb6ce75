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

Arrays: 4-D, any dtype (the kernels take float32 or float64); H and W even for ``forward``, C a multiple of 4
for ``inverse``. Cost: O(N·C·H·W), one copy, memory-bound.
"""
FACTOR = 2                  # side of the folded spatial block
BLOCK = FACTOR * FACTOR     # channels each input channel becomes


def forward(x):
    """(N, C, H, W) -> (N, 4C, H/2, W/2), y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]."""
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // FACTOR, FACTOR, w // FACTOR, FACTOR).transpose(0, 1, 3, 5, 2, 4)
    # a copy, since the transposed view is not C-ordered (except for H = W = 2, where the order is unchanged
    # and NumPy returns a view, as the Reshape op of the graph does)
    return y.reshape(n, c * BLOCK, h // FACTOR, w // FACTOR)


def inverse(y):
    """(N, 4C, H, W) -> (N, C, 2H, 2W), the inverse permutation of :func:`forward`."""
    n, c4, h, w = y.shape
    x = y.reshape(n, c4 // BLOCK, FACTOR, FACTOR, h, w).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c4 // BLOCK, h * FACTOR, w * FACTOR)
