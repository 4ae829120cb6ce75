"""Glow's 1x1 convolution, the channel map, as Numba kernels: the CPU twin of ``kernels/reference/invconv.py``
(Kingma & Dhariwal 2018, §3.2, eq. 9).

The equations (copied from the NumPy twin, the reference these kernels are tested against), on NCHW arrays
with the pixel axes flattened, x[n] a (C, H·W) matrix:

    forward:    y[n] = W x[n]
    backward:   ∂L/∂x[n] = Wᵀ gy[n],     ∂L/∂W = Σ_n gy[n] x[n]ᵀ        (a sum over every pixel of every sample)

The loops (``NUMBA_DISABLE_JIT=1`` runs them as plain Python):

- ``_map``: per sample, per output channel o, y[n, o, :] = Σ_i W[o, i] · x[n, i, :], accumulated row by row
  with the pixel loop innermost (unit stride: LLVM vectorises it). Backward's ∂L/∂x is the same loop with Wᵀ.
- ``_weight_grad``: ∂L/∂W[o, i] = Σ_n ⟨gy[n, o, :], x[n, i, :]⟩, one dot product over the pixels per sample
  (in the arrays' dtype, vectorised thanks to fastmath "reassoc"), summed over the samples in float64.
  Its outer loop runs over the output channels, so a ``parallel=True`` build (``prange``) needs no atomics.

When the loops run and when ``np.matmul`` (OpenBLAS, one GEMM per sample) does instead: measured on this
project's machine (AMD EPYC with AVX-512, one thread, N=64, H·W = 49 and 196, median of 41 alternating calls),
the loops win only for very few channels. They move one load, one store and one FMA per element and input
channel, while a GEMM keeps a block of the output in registers; above a handful of channels that is worth
more than the GEMM's per-call overhead:

    map (forward, ∂L/∂x), float32, 196 px:  C=2: 9 µs vs 10 µs;  C=3: 17 vs 15;  C=4: 26 vs 18;  C=16: 334 vs 176
    map, float64, 196 px:                   C=2: 11 vs 9;        C=3: 20 vs 15;  C=4: 52 vs 30
    ∂L/∂W, float32, 196 px:                 C=4: 35 vs 51;       C=6: 79 vs 113; C=8: 141 vs 146; C=16: 630 vs 308
    ∂L/∂W, float64, 49 px:                  C=4: 11 vs 20;       C=6: 30 vs 40;  C=8: 42 vs 43;   C=12: 95 vs 72

hence the two thresholds below (``benchmarks/kernels_invconv_lu.py`` re-measures at Glow's shapes). Either
path computes the same sums; only the rounding order differs.

Arrays: x and gy of shape (N, C, H, W), W of shape (C, C), one float dtype (float32 or float64). A
non-contiguous x is copied to C order by the wrapper first; results are C-contiguous.
"""
import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL
from nflow.kernels.reference.invconv import check

# Measured crossovers (module docstring): the loops run up to these channel counts, np.matmul above them.
MAP_LOOP_MAX_CHANNELS = 2      # forward and ∂L/∂x: BLAS is ahead from C = 3-4 on, in both dtypes
WEIGHT_LOOP_MAX_CHANNELS = 6   # ∂L/∂W: the dot-product loop is ahead up to C = 6, level at C = 8

# "reassoc" lets LLVM split the dot product of _weight_grad into vector lanes; no other fast-math licence.
# error_model="numpy": no ZeroDivisionError test in the loops (see kernels/cpu/affine_coupling.py).
REDUCTION_FLAGS = {"reassoc"}


# --------------------------------------------------------------------------------------------- kernels
@njit(cache=True, parallel=PARALLEL, error_model="numpy")
def _map(x, w, y):
    """y[n] = w @ x[n] for (N, C, M) arrays x, y and a (C, C) matrix w."""
    n_samples, channels, pixels = x.shape
    for n in prange(n_samples):
        for o in range(channels):
            yo = y[n, o]
            for p in range(pixels):
                yo[p] = 0
            for i in range(channels):
                wv, xi = w[o, i], x[n, i]
                for p in range(pixels):
                    yo[p] += wv * xi[p]


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _weight_grad(x, gy, gw):
    """gw[o, i] = Σ_n Σ_p gy[n, o, p] · x[n, i, p] for (N, C, M) arrays x, gy."""
    n_samples, channels, pixels = x.shape
    for o in prange(channels):
        for i in range(channels):
            total = 0.0  # float64 across samples
            for n in range(n_samples):
                go, xi = gy[n, o], x[n, i]
                part = gy.dtype.type(0)  # the per-sample dot in the arrays' dtype (float32: 16 lanes, not 8)
                for p in range(pixels):
                    part += go[p] * xi[p]
                total += part
            gw[o, i] = total


# --------------------------------------------------------------------------------------------- wrappers
def _pixels_last(a):
    """``a`` as a C-ordered (N, C, H·W) array (copies only a non-contiguous view)."""
    n, c, h, w = a.shape
    return np.ascontiguousarray(a).reshape(n, c, h * w)


def forward(x, w):
    """y[n, :, h, w] = W x[n, :, h, w]."""
    check(x, w)
    xr = _pixels_last(x)
    if x.shape[1] > MAP_LOOP_MAX_CHANNELS:
        return np.matmul(w, xr).reshape(x.shape)
    y = np.empty_like(xr)
    _map(xr, np.ascontiguousarray(w), y)
    return y.reshape(x.shape)


def backward(x, w, gy):
    """(∂L/∂x, ∂L/∂W) given gy = ∂L/∂y: gx = Wᵀ gy per pixel, gW = Σ over pixels and samples of gy xᵀ."""
    check(x, w, gy)
    xr, g = _pixels_last(x), _pixels_last(gy)
    c = x.shape[1]
    if c > MAP_LOOP_MAX_CHANNELS:
        gx = np.matmul(w.T, g)
    else:
        gx = np.empty_like(xr)
        _map(g, np.ascontiguousarray(w.T), gx)
    if c > WEIGHT_LOOP_MAX_CHANNELS:
        gw = np.matmul(g, xr.transpose(0, 2, 1)).sum(axis=0)
    else:
        gw = np.empty((c, c), dtype=x.dtype)
        _weight_grad(xr, g, gw)
    return gx.reshape(x.shape), gw
