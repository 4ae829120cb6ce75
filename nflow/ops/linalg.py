"""Linear algebra ops: the matrix product with NumPy's stacking rules, (..., n, k) @ (..., k, m) -> (..., n, m),
and the float64 log|det| and inverse of a square matrix that Glow's invertible 1x1 convolution needs."""
import numpy as np

from nflow.backend import get_array_module
from nflow.ops.broadcast import broadcast_shape, sum_to
from nflow.tensor import Function


class MatMul(Function):
    """y = a @ b; da = gy @ bᵀ, db = aᵀ @ gy, each summed over broadcast batch axes. Keeps: both inputs."""

    def validate(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul: both operands need at least 2 dimensions, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        if a.dtype != b.dtype:
            raise TypeError(f"matmul: operands have dtypes {a.dtype} and {b.dtype}")
        broadcast_shape("matmul (batch axes)", a.shape[:-2], b.shape[:-2])

    def forward(self, a, b):
        self.saved = (a, b)
        return get_array_module(a, b).matmul(a, b)

    def backward(self, gy):
        a, b = self.saved
        xp = get_array_module(gy)
        ga = sum_to(xp.matmul(gy, xp.swapaxes(b, -1, -2)), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(xp.matmul(xp.swapaxes(a, -1, -2), gy), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def matmul(a, b):
    return MatMul()(a, b)


# ----------------------------------------------------------------------------------------- float64 square-matrix ops
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


def logabsdet(w):
    return LogAbsDet()(w)


def matrix_inverse(w):
    return MatrixInverse()(w)
