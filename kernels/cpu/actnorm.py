"""ActNorm as Numba kernels: the CPU twin of ``kernels/reference/actnorm.py`` (Kingma & Dhariwal 2018, §3.1).

The equations (copied from the NumPy twin, the reference these kernels are tested against):

    forward:            y = (x + b) · exp(log_s),        logdet[n] = P · Σ_c log_s[c]   (P = pixels per channel)
    inverse:            x = y · exp(-log_s) - b,         logdet[n] = -P · Σ_c log_s[c]
    forward_backward:   ∂L/∂x = gy·s;  ∂L/∂b = Σ gy·s;  ∂L/∂log_s = Σ gy·(x + b)·s + P·Σ_n glogdet
    inverse_backward:   ∂L/∂y = gx/s;  ∂L/∂b = -Σ gx;   ∂L/∂log_s = -Σ gx·y/s - P·Σ_n glogdet
                        (Σ without a subscript: over the batch and the pixels of channel c)

What is fused (loops marked ``prange``, built serial: see ``kernels/cpu/__init__.py``): the forward and inverse
maps are one pass (``prange`` over the batch, the per-channel scale
exp(±log_s) computed once per call, C exponentials in all; the log-det is the same for every sample, so it is
one number filled in). Each backward is one pass that writes the input gradient and accumulates both
per-channel sums (``prange`` over the channels, so each thread owns its channels' sums: no atomics, no
per-thread partial arrays). Arithmetic in float64, results stored in the arrays' dtype.

Arrays: x of shape (N, C) or (N, C, H, W) (any number of pixel axes), b and log_s of shape (C,), one float dtype
(the twin's ``check``, run first). A non-contiguous x is copied to C order by the wrapper first. ``NUMBA_DISABLE_JIT=1`` runs the loops as Python.
"""
import math

import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL
from nflow.kernels.reference.actnorm import check

# See kernels/cpu/affine_coupling.py: "reassoc" lets LLVM vectorise the per-channel sums; error_model="numpy"
# keeps Python's ZeroDivisionError test (and its branch) out of the loops.
REDUCTION_FLAGS = {"reassoc"}


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _affine(x, bias, log_s, sign, out):
    """out = (x + b)·exp(log_s) for sign = +1 (forward); out = x·exp(-log_s) - b for sign = -1 (inverse)."""
    n_samples, channels, _ = x.shape
    scale = np.empty(channels)
    for c in range(channels):
        scale[c] = math.exp(sign * float(log_s[c]))
    for n in prange(n_samples):
        for c in range(channels):
            s, b = scale[c], float(bias[c])
            xs, ys = x[n, c], out[n, c]
            if sign > 0:
                for p in range(xs.shape[0]):
                    ys[p] = (xs[p] + b) * s
            else:
                for p in range(xs.shape[0]):
                    ys[p] = xs[p] * s - b


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _forward_backward(x, bias, log_s, gy, glogdet, gx, gbias, glog_s):
    n_samples, channels, pixels = x.shape
    glogdet_total = 0.0
    for n in range(n_samples):
        glogdet_total += glogdet[n]
    for c in prange(channels):
        s, b = math.exp(float(log_s[c])), float(bias[c])
        sum_g, sum_gxb = 0.0, 0.0
        for n in range(n_samples):
            xs, gys, gxs = x[n, c], gy[n, c], gx[n, c]
            for p in range(pixels):
                g = gys[p] * s
                gxs[p] = g
                sum_g += g
                sum_gxb += g * (xs[p] + b)
        gbias[c] = sum_g
        glog_s[c] = sum_gxb + pixels * glogdet_total


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _inverse_backward(y, bias, log_s, gx, glogdet, gy, gbias, glog_s):
    n_samples, channels, pixels = y.shape
    glogdet_total = 0.0
    for n in range(n_samples):
        glogdet_total += glogdet[n]
    for c in prange(channels):
        r = math.exp(-float(log_s[c]))
        sum_gx, sum_gyy = 0.0, 0.0
        for n in range(n_samples):
            ys, gxs, gys = y[n, c], gx[n, c], gy[n, c]
            for p in range(pixels):
                g = gxs[p]
                gyv = g * r
                gys[p] = gyv
                sum_gx += g
                sum_gyy += gyv * ys[p]
        gbias[c] = -sum_gx
        glog_s[c] = -sum_gyy - pixels * glogdet_total


# --------------------------------------------------------------------------------------------- wrappers
def _as3d(a):
    """``a`` as a C-ordered (N, C, P) array (copies only a non-contiguous view)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _pixels(x):
    p = 1
    for n in x.shape[2:]:
        p *= n
    return p


def _logdet(x, log_s, sign):
    total = sign * _pixels(x) * float(log_s.astype(np.float64).sum())
    return np.full((x.shape[0],), total, dtype=x.dtype)


def forward(x, bias, log_s):
    check(bias, log_s, x=x)
    x3 = _as3d(x)
    y = np.empty_like(x3)
    _affine(x3, np.ascontiguousarray(bias), np.ascontiguousarray(log_s), 1, y)
    return y.reshape(x.shape), _logdet(x, log_s, 1)


def inverse(y, bias, log_s):
    check(bias, log_s, y=y)
    y3 = _as3d(y)
    x = np.empty_like(y3)
    _affine(y3, np.ascontiguousarray(bias), np.ascontiguousarray(log_s), -1, x)
    return x.reshape(y.shape), _logdet(y, log_s, -1)


def forward_backward(x, bias, log_s, gy, glogdet):
    check(bias, log_s, glogdet, x=x, gy=gy)
    x3, gy3 = _as3d(x), _as3d(gy)
    gx = np.empty_like(x3)
    gbias, glog_s = np.empty_like(bias), np.empty_like(log_s)
    _forward_backward(x3, np.ascontiguousarray(bias), np.ascontiguousarray(log_s), gy3,
                      np.ascontiguousarray(glogdet), gx, gbias, glog_s)
    return gx.reshape(x.shape), gbias, glog_s


def inverse_backward(y, bias, log_s, gx, glogdet):
    check(bias, log_s, glogdet, y=y, gx=gx)
    y3, gx3 = _as3d(y), _as3d(gx)
    gy = np.empty_like(y3)
    gbias, glog_s = np.empty_like(bias), np.empty_like(log_s)
    _inverse_backward(y3, np.ascontiguousarray(bias), np.ascontiguousarray(log_s), gx3,
                      np.ascontiguousarray(glogdet), gy, gbias, glog_s)
    return gy.reshape(y.shape), gbias, glog_s
