"""Graph nodes for the flow-specific kernels, and the float64 matrix ops the 1x1 convolution needs.

Each fused node calls :func:`nflow.kernels.dispatch.kernel` for the current backend's implementation (the
NumPy twin, a Numba kernel or a CUDA kernel) and has two outputs, the transformed tensor and the per-sample
log-det, so one pass computes both and one pass back-propagates both.
"""
import numpy as np

from nflow.backend import get_array_module
from nflow.kernels.dispatch import kernel
from nflow.tensor import Function


# ----------------------------------------------------------------------------------------- affine coupling
class AffineCouplingForward(Function):
    """(x, h, t) -> (y = x·s(h) + t, Σ log s(h)). Keeps: x and h."""

    def __init__(self, form):
        self.form = form

    def validate(self, x, h, t):
        if not x.shape == h.shape == t.shape:
            raise ValueError(f"affine coupling: x {x.shape}, log-scale {h.shape} and shift {t.shape} must match")

    def forward(self, x, h, t):
        self.saved = (x, h)
        return kernel("affine_coupling").forward(x, h, t, self.form)

    def backward(self, gy, glogdet):
        x, h = self.saved
        return kernel("affine_coupling").forward_backward(x, h, gy, glogdet, self.form)


class AffineCouplingInverse(Function):
    """(y, h, t) -> (x = (y - t)/s(h), -Σ log s(h)). Keeps: y, h and t."""

    def __init__(self, form):
        self.form = form

    def validate(self, y, h, t):
        if not y.shape == h.shape == t.shape:
            raise ValueError(f"affine coupling inverse: y {y.shape}, log-scale {h.shape} and shift {t.shape} "
                             "must match")

    def forward(self, y, h, t):
        self.saved = (y, h, t)
        return kernel("affine_coupling").inverse(y, h, t, self.form)

    def backward(self, gx, glogdet):
        y, h, t = self.saved
        return kernel("affine_coupling").inverse_backward(y, h, t, gx, glogdet, self.form)


# ----------------------------------------------------------------------------------------- actnorm
class ActNormForward(Function):
    """(x, b, log_s) -> ((x + b)·exp(log_s), P·Σ log_s). Keeps: x, b, log_s."""

    def forward(self, x, bias, log_s):
        self.saved = (x, bias, log_s)
        return kernel("actnorm").forward(x, bias, log_s)

    def backward(self, gy, glogdet):
        x, bias, log_s = self.saved
        return kernel("actnorm").forward_backward(x, bias, log_s, gy, glogdet)


class ActNormInverse(Function):
    """(y, b, log_s) -> (y·exp(-log_s) - b, -P·Σ log_s). Keeps: y, b, log_s."""

    def forward(self, y, bias, log_s):
        self.saved = (y, bias, log_s)
        return kernel("actnorm").inverse(y, bias, log_s)

    def backward(self, gx, glogdet):
        y, bias, log_s = self.saved
        return kernel("actnorm").inverse_backward(y, bias, log_s, gx, glogdet)


# ----------------------------------------------------------------------------------------- float64 linalg
class LogAbsDet(Function):
    """log|det W| of a square matrix, computed in float64 whatever W's dtype (LU via ``slogdet``).

    ∂ log|det W| / ∂W = W⁻ᵀ (Jacobi's formula). Keeps: W⁻ᵀ in float64.
    """

    def validate(self, w):
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise ValueError(f"log|det|: needs a square matrix, got shape {w.shape}")

    def forward(self, w):
        xp = get_array_module(w)
        w64 = w.astype(np.float64)
        sign, logabs = xp.linalg.slogdet(w64)
        if float(sign) == 0 or not np.isfinite(float(logabs)):
            raise np.linalg.LinAlgError(f"log|det|: the {w.shape[0]}x{w.shape[1]} matrix is singular")
        self.saved = xp.linalg.inv(w64).T
        self.dtype = w.dtype
        return xp.asarray(logabs, dtype=w.dtype)

    def backward(self, g):
        return (self.saved * g.astype(np.float64)).astype(self.dtype)


class MatrixInverse(Function):
    """W⁻¹ computed in float64 and cast back; ∂L/∂W = -W⁻ᵀ (∂L/∂W⁻¹) W⁻ᵀ. Keeps: W⁻¹ in float64."""

    def validate(self, w):
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise ValueError(f"matrix inverse: needs a square matrix, got shape {w.shape}")

    def forward(self, w):
        xp = get_array_module(w)
        inv = xp.linalg.inv(w.astype(np.float64))
        self.saved, self.dtype = inv, w.dtype
        return inv.astype(w.dtype)

    def backward(self, g):
        inv_t = self.saved.T
        return (-(inv_t @ g.astype(np.float64) @ inv_t)).astype(self.dtype)


def affine_coupling_forward(x, h, t, form):
    return AffineCouplingForward(form)(x, h, t)


def affine_coupling_inverse(y, h, t, form):
    return AffineCouplingInverse(form)(y, h, t)


def actnorm_forward(x, bias, log_s):
    return ActNormForward()(x, bias, log_s)


def actnorm_inverse(y, bias, log_s):
    return ActNormInverse()(y, bias, log_s)


def logabsdet(w):
    return LogAbsDet()(w)


def matrix_inverse(w):
    return MatrixInverse()(w)
