"""Graph nodes for the flow-specific kernels, and the float64 matrix ops the 1x1 convolution needs.

Each fused node calls :func:`nflow.kernels.dispatch.kernel` for the current backend's implementation (the
NumPy twin, a Numba kernel or a CUDA kernel) and has two outputs, the transformed tensor and the per-sample
log-det, so one pass computes both and one pass back-propagates both.
"""
import numpy as np

from nflow.backend import get_array_module
from nflow.kernels.dispatch import kernel
from nflow.ops.broadcast import broadcast_shape, sum_to
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
        self.kernel = kernel("affine_coupling")  # backward runs the same backend's kernel as forward did
        return self.kernel.forward(x, h, t, self.form)

    def backward(self, gy, glogdet):
        x, h = self.saved
        return self.kernel.forward_backward(x, h, gy, glogdet, self.form)


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
        self.kernel = kernel("affine_coupling")
        return self.kernel.inverse(y, h, t, self.form)

    def backward(self, gx, glogdet):
        y, h, t = self.saved
        return self.kernel.inverse_backward(y, h, t, gx, glogdet, self.form)


# ----------------------------------------------------------------------------------------- actnorm
class ActNormForward(Function):
    """(x, b, log_s) -> ((x + b)·exp(log_s), P·Σ log_s). Keeps: x, b, log_s."""

    def forward(self, x, bias, log_s):
        self.saved = (x, bias, log_s)
        self.kernel = kernel("actnorm")
        return self.kernel.forward(x, bias, log_s)

    def backward(self, gy, glogdet):
        x, bias, log_s = self.saved
        return self.kernel.forward_backward(x, bias, log_s, gy, glogdet)


class ActNormInverse(Function):
    """(y, b, log_s) -> (y·exp(-log_s) - b, -P·Σ log_s). Keeps: y, b, log_s."""

    def forward(self, y, bias, log_s):
        self.saved = (y, bias, log_s)
        self.kernel = kernel("actnorm")
        return self.kernel.inverse(y, bias, log_s)

    def backward(self, gx, glogdet):
        y, bias, log_s = self.saved
        return self.kernel.inverse_backward(y, bias, log_s, gx, glogdet)


# ----------------------------------------------------------------------------------------- gaussian prior
class GaussianLogProb(Function):
    """(z, μ, log σ) -> log N(z; μ, σ²) summed per sample, shape (N,). μ and log σ broadcast against z
    (NumPy's rules; their gradients are summed back to their shapes). Keeps: z, μ, log σ (broadcast views)."""

    def validate(self, z, mean, log_std):
        shape = broadcast_shape("gaussian log-density", z.shape, mean.shape, log_std.shape)
        if len(shape) < 1 or z.ndim != len(shape) or shape[0] != z.shape[0]:
            raise ValueError(f"gaussian log-density: z must be (N, ...) and set the batch; got z {z.shape}, "
                             f"mean {mean.shape}, log_std {log_std.shape}")

    def forward(self, z, mean, log_std):
        xp = get_array_module(z)
        shape = broadcast_shape("gaussian log-density", z.shape, mean.shape, log_std.shape)
        self.shapes = (z.shape, mean.shape, log_std.shape)
        self.saved = (xp.broadcast_to(z, shape), xp.broadcast_to(mean, shape), xp.broadcast_to(log_std, shape))
        self.kernel = kernel("gaussian")
        return self.kernel.log_prob(*self.saved)

    def backward(self, glogp):
        grads = self.kernel.log_prob_backward(*self.saved, glogp)
        return tuple(sum_to(g, shape) for g, shape in zip(grads, self.shapes))


class StandardGaussianLogProb(Function):
    """z -> log N(z; 0, I) summed per sample, shape (N,). Keeps: z."""

    def validate(self, z):
        if z.ndim < 1:
            raise ValueError(f"standard gaussian log-density: z must be (N, ...), got shape {z.shape}")

    def forward(self, z):
        self.saved = z
        self.kernel = kernel("gaussian")
        return self.kernel.standard_log_prob(z)

    def backward(self, glogp):
        return self.kernel.standard_log_prob_backward(self.saved, glogp)


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


def gaussian_log_prob(z, mean, log_std):
    return GaussianLogProb()(z, mean, log_std)


def standard_gaussian_log_prob(z):
    return StandardGaussianLogProb()(z)


def logabsdet(w):
    return LogAbsDet()(w)


def matrix_inverse(w):
    return MatrixInverse()(w)
