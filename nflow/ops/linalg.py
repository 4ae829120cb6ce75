"""Matrix product with NumPy's stacking rules: (..., n, k) @ (..., k, m) -> (..., n, m)."""
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
