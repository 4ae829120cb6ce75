"""Graph nodes for NICE's additive coupling (Dinh et al. 2014, eq. 5): the fused join y = x + E·m(x_a).

E embeds the network's output m(x_a), of shape (N, C_b, ...), into channels [start, start + C_b) of axis 1,
so the layer hands the whole input x and the shift to one node, which calls the current backend's kernel
(``kernel("additive_coupling")``: the NumPy twin, a Numba kernel or a CUDA kernel) and gets all of y in one
pass, instead of splitting x, adding and concatenating. The log-det is 0; the layer supplies it.

Gradients (equations in ``kernels/reference/additive_coupling.py``): ∂L/∂x = ∂L/∂y, ∂L/∂m = the block's
slice of ∂L/∂y (negated for the inverse). Neither depends on x or m, so the nodes keep no arrays: only the block.
"""
from nflow.kernels.dispatch import kernel
from nflow.tensor import Function


def _check_block(what, a, a_name, shift, start):
    if a.ndim < 2 or shift.ndim != a.ndim or shift.shape[0] != a.shape[0] or shift.shape[2:] != a.shape[2:]:
        raise ValueError(f"{what}: the shift must have shape (N, C_b, ...) with the batch and trailing axes of "
                         f"{a_name}; got {a_name} {a.shape} and shift {shift.shape}")
    if start < 0 or start + shift.shape[1] > a.shape[1]:
        raise ValueError(f"{what}: channels [{start}, {start + shift.shape[1]}) of the shift's block must lie "
                         f"within the {a.shape[1]} channels of {a_name} {a.shape}")
    if shift.dtype != a.dtype:
        raise TypeError(f"{what}: {a_name} is {a.dtype} but the shift is {shift.dtype}")


class AdditiveCouplingForward(Function):
    """(x, m) -> y = x with m added to channels [start, start + C_b). Keeps: the block (start, C_b) only."""

    def __init__(self, start):
        self.start = start

    def validate(self, x, shift):
        _check_block("additive coupling", x, "x", shift, self.start)

    def forward(self, x, shift):
        self.width = shift.shape[1]
        self.kernel = kernel("additive_coupling")  # backward runs the same backend's kernel as forward did
        return self.kernel.forward(x, shift, self.start)

    def backward(self, gy):
        return self.kernel.forward_backward(gy, self.start, self.width)


class AdditiveCouplingInverse(Function):
    """(y, m) -> x = y with m subtracted from channels [start, start + C_b). Keeps: the block (start, C_b) only."""

    def __init__(self, start):
        self.start = start

    def validate(self, y, shift):
        _check_block("additive coupling inverse", y, "y", shift, self.start)

    def forward(self, y, shift):
        self.width = shift.shape[1]
        self.kernel = kernel("additive_coupling")
        return self.kernel.inverse(y, shift, self.start)

    def backward(self, gx):
        return self.kernel.inverse_backward(gx, self.start, self.width)


def additive_coupling_forward(x, shift, start):
    return AdditiveCouplingForward(start)(x, shift)


def additive_coupling_inverse(y, shift, start):
    return AdditiveCouplingInverse(start)(y, shift)
