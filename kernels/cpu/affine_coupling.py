"""Affine coupling, element-wise part, as Numba kernels: the CPU twin of ``kernels/reference/affine_coupling.py``.

The equations (copied from the NumPy twin, which is the reference these kernels are tested against):

    forward:            y = x · s + t,               logdet[n] = Σ_m log s[n, m]
    inverse:            x = (y - t) / s,             logdet[n] = -Σ_m log s[n, m]
    forward_backward:   ∂L/∂x = gy · s,   ∂L/∂t = gy,   ∂L/∂h = (gy · x · s + glogdet[n]) · d(log s)/dh
    inverse_backward:   ∂L/∂y = gx / s,   ∂L/∂t = -gx / s,   ∂L/∂h = -(gx · x + glogdet[n]) · d(log s)/dh

with the log-scale form ``"sigmoid"`` (Glow): s = sigmoid(h + 2), log s = logsigmoid(h + 2), d log s/dh = 1 - s;
or ``"exp"`` (RealNVP): s = exp(h), log s = h, d log s/dh = 1.

What is fused: each function is one pass over the arrays, sample by sample (``prange`` over the batch, built
serial: see ``kernels/cpu/__init__.py``): s is
computed once per element from h and used at once; forward writes y and accumulates the per-sample log-det in
the same loop; forward_backward writes gx and gh in one loop (gt = gy is returned as is, no copy, exactly as the
twin does); inverse_backward writes gy, gh and gt in one loop (x is recomputed from y, t and s on the fly).

How s is computed (one ``exp`` per element, the only transcendental in the inner loops): with u = h + 2 and
e = exp(-|u|) ∈ (0, 1],  s = 1 / (1 + e) for u ≥ 0 and e / (1 + e) for u < 0, and 1/s = 1 + e or (1 + e)/e;
log s = min(u, 0) - log(1 + e). The log-det needs Σ log(1 + e) over a sample; rather than one ``log1p`` per
element, the factors (1 + e) ∈ (1, 2] are multiplied in float64 over runs of ``LOG_PRODUCT_RUN`` elements
(at most 2^64, far from overflow) and one ``log`` is taken per run: the same sum, a transcendental fewer per
element. ``exp`` is ``vector_exp.exp`` (plain arithmetic, so the loops vectorise; the C library's exp would
be called element by element). Element-wise arithmetic runs in the arrays' dtype (float32 or float64); the
per-sample sums accumulate in float64.

Arrays: ``x``, ``h``, ``t`` of one shape (N, ...) and one float dtype. The coupling hands in channel slices
(non-contiguous views); the Python wrappers copy those to C order before the call, since the loops assume it.
``NUMBA_DISABLE_JIT=1`` runs these loops as plain Python.
"""
import math

import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL

from nflow.kernels.cpu.vector_exp import exp
from nflow.kernels.reference.affine_coupling import SIGMOID_SHIFT, check

LOG_PRODUCT_RUN = 64  # factors (1 + e) ≤ 2 multiplied before one log: the product stays ≤ 2^64 (no overflow)

# Compile options of every kernel below. fastmath "reassoc" lets LLVM reorder the per-sample sums and products
# so it can vectorise them; no other fast-math licence (inf and NaN keep their IEEE meaning).
# error_model="numpy": x / 0 gives inf or NaN as in NumPy; Numba's default (Python's ZeroDivisionError) puts a
# test and a raise in the loop, which stops vectorisation (measured: 7 ms instead of 0.5 ms for 200k elements).
REDUCTION_FLAGS = {"reassoc"}


# --------------------------------------------------------------------------------------------- s from h
@njit(cache=True, inline="always", error_model="numpy")
def _scale(hv, exp_form):
    """(s, 1/s, d log s/dh, min(u, 0), 1 + e) for one element of h, in h's precision (float32 or float64);
    the last two only matter for the sigmoid form."""
    real = type(hv)  # every constant in h's dtype, so a float32 kernel never widens to float64
    one = real(1.0)
    if exp_form:
        return exp(hv), exp(-hv), one, hv, one
    u = hv + real(SIGMOID_SHIFT)
    e = exp(-abs(u))
    one_e = one + e
    if u >= real(0.0):
        s, inv_s, low = one / one_e, one_e, real(0.0)
    else:
        s, inv_s, low = e / one_e, one_e / e, u
    return s, inv_s, one - s, low, one_e


# --------------------------------------------------------------------------------------------- kernels
@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _forward(x, h, t, y, logdet, exp_form):
    n_samples, m = x.shape
    for n in prange(n_samples):
        total = 0.0
        for start in range(0, m, LOG_PRODUCT_RUN):
            stop = min(start + LOG_PRODUCT_RUN, m)
            # one run as 1-D slices indexed from 0: LLVM then sees unit-stride, non-negative indices and
            # vectorises the loop (indexing x[n, start + j] directly gave gathers and scatters, 3x slower)
            xs, hs, ts, ys = x[n, start:stop], h[n, start:stop], t[n, start:stop], y[n, start:stop]
            product = 1.0  # Π (1 + e) over this run (stays 1 for the exp form)
            for j in range(stop - start):
                s, _, _, low, one_e = _scale(hs[j], exp_form)
                ys[j] = xs[j] * s + ts[j]
                total += low
                product *= one_e
            total -= math.log(product)
        logdet[n] = total


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _inverse(y, h, t, x, logdet, exp_form):
    n_samples, m = y.shape
    for n in prange(n_samples):
        total = 0.0
        for start in range(0, m, LOG_PRODUCT_RUN):
            stop = min(start + LOG_PRODUCT_RUN, m)
            ys, hs, ts, xs = y[n, start:stop], h[n, start:stop], t[n, start:stop], x[n, start:stop]
            product = 1.0
            for j in range(stop - start):
                _, inv_s, _, low, one_e = _scale(hs[j], exp_form)
                xs[j] = (ys[j] - ts[j]) * inv_s
                total += low
                product *= one_e
            total -= math.log(product)
        logdet[n] = -total


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _forward_backward(x, h, gy, glogdet, gx, gh, exp_form):
    n_samples, m = x.shape
    for n in prange(n_samples):
        gl = glogdet[n]
        for j in range(m):
            s, _, dlog_s, _, _ = _scale(h[n, j], exp_form)
            g = gy[n, j]
            gx[n, j] = g * s
            gh[n, j] = (g * x[n, j] * s + gl) * dlog_s


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _inverse_backward(y, h, t, gx, glogdet, gy, gh, gt, exp_form):
    n_samples, m = y.shape
    for n in prange(n_samples):
        gl = glogdet[n]
        for j in range(m):
            _, inv_s, dlog_s, _, _ = _scale(h[n, j], exp_form)
            g = gx[n, j]
            xv = (y[n, j] - t[n, j]) * inv_s
            gyv = g * inv_s
            gy[n, j] = gyv
            gh[n, j] = -(g * xv + gl) * dlog_s
            gt[n, j] = -gyv


# --------------------------------------------------------------------------------------------- wrappers
def _rows(a):
    """``a`` as a C-ordered (N, M) array (copies only a non-contiguous view)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def forward(x, h, t, form):
    """y = x · s + t, logdet = Σ log s."""
    check(form, x=x, h=h, t=t)
    xr, hr, tr = _rows(x), _rows(h), _rows(t)
    y = np.empty_like(xr)
    logdet = np.empty(x.shape[0], dtype=x.dtype)
    _forward(xr, hr, tr, y, logdet, form == "exp")
    return y.reshape(x.shape), logdet


def inverse(y, h, t, form):
    """x = (y - t) / s, logdet = -Σ log s."""
    check(form, y=y, h=h, t=t)
    yr, hr, tr = _rows(y), _rows(h), _rows(t)
    x = np.empty_like(yr)
    logdet = np.empty(y.shape[0], dtype=y.dtype)
    _inverse(yr, hr, tr, x, logdet, form == "exp")
    return x.reshape(y.shape), logdet


def forward_backward(x, h, gy, glogdet, form):
    """(∂L/∂x, ∂L/∂h, ∂L/∂t) of the forward map, given gy = ∂L/∂y and glogdet = ∂L/∂logdet (N,)."""
    check(form, glogdet, x=x, h=h, gy=gy)
    xr, hr, gyr = _rows(x), _rows(h), _rows(gy)
    gx, gh = np.empty_like(xr), np.empty_like(xr)
    _forward_backward(xr, hr, gyr, np.ascontiguousarray(glogdet), gx, gh, form == "exp")
    return gx.reshape(x.shape), gh.reshape(x.shape), gy


def inverse_backward(y, h, t, gx, glogdet, form):
    """(∂L/∂y, ∂L/∂h, ∂L/∂t) of the inverse map, given gx = ∂L/∂x and glogdet = ∂L/∂logdet (N,)."""
    check(form, glogdet, y=y, h=h, t=t, gx=gx)
    yr, hr, tr, gxr = _rows(y), _rows(h), _rows(t), _rows(gx)
    gy, gh, gt = np.empty_like(yr), np.empty_like(yr), np.empty_like(yr)
    _inverse_backward(yr, hr, tr, gxr, np.ascontiguousarray(glogdet), gy, gh, gt, form == "exp")
    return gy.reshape(y.shape), gh.reshape(y.shape), gt.reshape(y.shape)
