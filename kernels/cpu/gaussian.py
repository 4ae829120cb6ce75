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
from nflow.kernels.reference.gaussian import LOG_2PI, check

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
def _rows(a):
    """``a`` as a C-ordered (N, M) array (copies only a non-contiguous view)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def standard_log_prob(z):
    check(z)
    out = np.empty(z.shape[0], dtype=z.dtype)
    _standard_log_prob(_rows(z), out)
    return out


def standard_log_prob_backward(z, glogp):
    check(z, glogp)
    zr = _rows(z)
    gz = np.empty_like(zr)
    _standard_log_prob_backward(zr, np.ascontiguousarray(glogp), gz)
    return gz.reshape(z.shape)
