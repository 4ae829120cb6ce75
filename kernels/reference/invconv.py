"""Glow's invertible 1x1 convolution, the channel map (Kingma & Dhariwal 2018, §3.2, eq. 9), on NCHW arrays.

    forward:    y[n, :, h, w] = W x[n, :, h, w]                          (every pixel of every sample)
    backward:   ∂L/∂x[n, :, h, w] = Wᵀ gy[n, :, h, w],    ∂L/∂W = Σ_{n, h, w} gy[n, :, h, w] x[n, :, h, w]ᵀ

A 1x1 convolution is a matrix product per sample once the pixel axes are flattened: x viewed as (N, C, H·W)
(a reshape of an NCHW array, no copy) gives y = W @ x[n] for each n, which is one batched ``matmul``. The
inverse map is the same forward with W⁻¹ (the layer computes W⁻¹ in float64 and caches it). The log-det,
H·W·log|det W| per sample, does not depend on x and is computed by the layer, not here.

Arrays: x and gy of shape (N, C, H, W), W of shape (C, C), one float dtype (:func:`check`, the contract every
implementation checks first). Results are C-contiguous.
Cost: 2·N·C²·H·W FLOPs forward, twice that backward; memory traffic 2·N·C·H·W elements forward.
"""
from nflow.backend import get_array_module
from nflow.kernels.contract import require_float, require_like, require_ndim

FAMILY = "invconv"


def check(x, w, gy=None):
    """x: float32/float64 (N, C, H, W); w: (C, C) of x's dtype; gy, where given, x's shape and dtype."""
    require_float(FAMILY, "x", x)
    require_ndim(FAMILY, "x", x, 4, "(N, C, H, W)")
    require_like(FAMILY, "w", w, "x", x, shape=(x.shape[1], x.shape[1]))
    if gy is not None:
        require_like(FAMILY, "gy", gy, "x", x)


def _pixels_last(a):
    """(N, C, H, W) viewed as (N, C, H·W): a view for a C-ordered array (NumPy copies only a strided one)."""
    n, c, h, w = a.shape
    return a.reshape(n, c, h * w)


def forward(x, w):
    """y[n] = W @ x[n] with x[n] the (C, H·W) matrix of sample n's pixels."""
    check(x, w)
    xp = get_array_module(x)
    return xp.matmul(w, _pixels_last(x)).reshape(x.shape)


def backward(x, w, gy):
    """(∂L/∂x, ∂L/∂W) given gy = ∂L/∂y: gx[n] = Wᵀ @ gy[n],  gW = Σ_n gy[n] @ x[n]ᵀ."""
    check(x, w, gy)
    xp = get_array_module(x)
    g, xr = _pixels_last(gy), _pixels_last(x)
    gx = xp.matmul(w.T, g).reshape(x.shape)
    gw = xp.matmul(g, xr.transpose(0, 2, 1)).sum(axis=0)  # N products of (C, HW) @ (HW, C), summed
    return gx, gw
