"""The prior's Gaussian log-density as Numba kernels: the CPU twin of ``kernels/reference/gaussian.py``.

The equations (copied from the NumPy twin):

    log N(z; μ, σ²)[n] = -½ Σ_m (u² + 2 log σ + log 2π),     u = (z - μ) · exp(-log σ)
    ∂/∂z = -u · exp(-log σ) · g[n],   ∂/∂μ = u · exp(-log σ) · g[n],   ∂/∂log σ = (u² - 1) · g[n]
    log N(z; 0, I)[n]  = -½ Σ_m (z² + log 2π),            ∂/∂z = -z · g[n]

What is fused: each function is one pass over its arrays, ``prange`` over the batch (built serial: see
``kernels/cpu/__init__.py``); the log-density is
accumulated per sample (in float64) as u is formed, with no u, u² or per-element temporaries; the backward
forms exp(-log σ) once per element (``vector_exp.exp``, so the loop vectorises) and writes all three gradients.
Element-wise arithmetic in the arrays' dtype, sums in float64.
z, μ, log σ: one shape (N, ...), one float dtype (the graph node broadcasts μ and log σ beforehand).
"""
import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL

from nflow.kernels.cpu.vector_exp import exp
from nflow.kernels.reference.gaussian import LOG_2PI

# As in kernels/cpu/affine_coupling.py: reassociation for vectorised sums, NumPy's division semantics.
REDUCTION_FLAGS = {"reassoc"}


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _log_prob(z, mean, log_std, out):
    n_samples, m = z.shape
    for n in prange(n_samples):
        zs, ms, ls = z[n], mean[n], log_std[n]
        total = 0.0
        for j in range(m):
            lsv = ls[j]
            u = (zs[j] - ms[j]) * exp(-lsv)  # in the arrays' dtype; the sum in float64
            total += u * u + 2.0 * lsv
        out[n] = -0.5 * (total + m * LOG_2PI)


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _log_prob_backward(z, mean, log_std, glogp, gz, gmean, glog_std):
    n_samples, m = z.shape
    for n in prange(n_samples):
        g = glogp[n]
        one = type(g)(1.0)
        zs, ms, ls, gzs, gms, gls = z[n], mean[n], log_std[n], gz[n], gmean[n], glog_std[n]
        for j in range(m):
            r = exp(-ls[j])
            u = (zs[j] - ms[j]) * r
            gm = u * r * g
            gzs[j] = -gm
            gms[j] = gm
            gls[j] = (u * u - one) * g


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _standard_log_prob(z, out):
    n_samples, m = z.shape
    for n in prange(n_samples):
        zs = z[n]
        total = 0.0
        for j in range(m):
            zv = float(zs[j])
            total += zv * zv
        out[n] = -0.5 * (total + m * LOG_2PI)


@njit(cache=True, parallel=PARALLEL, fastmath=REDUCTION_FLAGS, error_model="numpy")
def _standard_log_prob_backward(z, glogp, gz):
    n_samples, m = z.shape
    for n in prange(n_samples):
        g = glogp[n]
        zs, gzs = z[n], gz[n]
        for j in range(m):
            gzs[j] = -zs[j] * g


# --------------------------------------------------------------------------------------------- wrappers
def _rows(a, like, name):
    if a.dtype != like.dtype:
        raise TypeError(f"gaussian kernel: {name} is {a.dtype} but z is {like.dtype}; use one float dtype")
    if a.shape != like.shape:
        raise ValueError(f"gaussian kernel: {name} has shape {a.shape}, z has {like.shape}; "
                         "broadcast them before the call")
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def _check_z(z):
    if z.dtype not in (np.float32, np.float64):
        raise TypeError(f"gaussian kernel: needs float32 or float64 arrays, got {z.dtype}")
    if z.ndim < 1:
        raise ValueError("gaussian kernel: z must be (N, ...), got a 0-d array")


def _per_sample(g, z):
    if g.shape != (z.shape[0],) or g.dtype != z.dtype:
        raise ValueError(f"gaussian kernel: glogp must be {z.dtype} of shape ({z.shape[0]},), "
                         f"got {g.dtype} of shape {g.shape}")
    return np.ascontiguousarray(g)


def log_prob(z, mean, log_std):
    _check_z(z)
    out = np.empty(z.shape[0], dtype=z.dtype)
    _log_prob(_rows(z, z, "z"), _rows(mean, z, "mean"), _rows(log_std, z, "log_std"), out)
    return out


def log_prob_backward(z, mean, log_std, glogp):
    _check_z(z)
    zr, mr, lr = _rows(z, z, "z"), _rows(mean, z, "mean"), _rows(log_std, z, "log_std")
    gz, gmean, glog_std = np.empty_like(zr), np.empty_like(zr), np.empty_like(zr)
    _log_prob_backward(zr, mr, lr, _per_sample(glogp, z), gz, gmean, glog_std)
    return gz.reshape(z.shape), gmean.reshape(z.shape), glog_std.reshape(z.shape)


def standard_log_prob(z):
    _check_z(z)
    out = np.empty(z.shape[0], dtype=z.dtype)
    _standard_log_prob(_rows(z, z, "z"), out)
    return out


def standard_log_prob_backward(z, glogp):
    _check_z(z)
    zr = _rows(z, z, "z")
    gz = np.empty_like(zr)
    _standard_log_prob_backward(zr, _per_sample(glogp, z), gz)
    return gz.reshape(z.shape)
