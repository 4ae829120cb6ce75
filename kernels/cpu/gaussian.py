"""The standard Gaussian prior's log-density as Numba kernels: the CPU twin of ``kernels/reference/gaussian.py``.

The equations (copied from the NumPy twin):

    log N(z; 0, I)[n]  = -½ Σ_m (z² + log 2π),            ∂/∂z = -z · g[n]

What is fused: each function is one pass over its arrays, ``prange`` over the batch (built serial: see
``kernels/cpu/__init__.py``); the log-density is accumulated per sample (in float64) with no z² temporary.
Element-wise arithmetic in the arrays' dtype, sums in float64. z: shape (N, ...), float32 or float64.
"""
import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL

from nflow.kernels.reference.gaussian import LOG_2PI

# As in kernels/cpu/affine_coupling.py: reassociation for vectorised sums, NumPy's division semantics.
REDUCTION_FLAGS = {"reassoc"}


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
